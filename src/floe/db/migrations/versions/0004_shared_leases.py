"""operations and shares share one lease shape (the engine's runner leases both)

operations gain retry_at; shares gain step, interrupted_step and interruptions (the
step name and the poison guard). Share work in flight keeps its lease and queue columns,
so a share that was mid-work when the old server stopped finishes after the upgrade.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 23:30:00
"""
from alembic import op
import sqlalchemy as sa
import floe.db.base


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('operations') as batch:
        batch.add_column(sa.Column('retry_at', floe.db.base.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('shares') as batch:
        batch.add_column(sa.Column('step', sa.String(length=64), nullable=False, server_default=''))
        batch.add_column(sa.Column('interrupted_step', sa.String(length=64), nullable=False, server_default=''))
        batch.add_column(sa.Column('interruptions', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('shares') as batch:
        batch.drop_column('interruptions')
        batch.drop_column('interrupted_step')
        batch.drop_column('step')
    with op.batch_alter_table('operations') as batch:
        batch.drop_column('retry_at')
