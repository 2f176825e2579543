"""operations remember the step their holders died in (the poison-operation guard)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 15:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('operations') as batch:
        batch.add_column(sa.Column('interrupted_step', sa.String(length=64), nullable=False, server_default=''))
        batch.add_column(sa.Column('interruptions', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('operations') as batch:
        batch.drop_column('interruptions')
        batch.drop_column('interrupted_step')
