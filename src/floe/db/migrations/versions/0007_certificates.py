"""cluster CA generations and client certificate expiry

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 22:40:00
"""
from alembic import op
import sqlalchemy as sa
import floe.db.base


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The CA a rotation moves to, kept beside the current one until every node serves it.
    # Plain ADD COLUMN, never a batch copy: on SQLite a copy drops the old clusters table, and
    # with foreign keys on that deletes every node, operation and attachment (ON DELETE CASCADE).
    op.add_column('clusters', sa.Column('ca_next_cert_pem', sa.Text(), nullable=True))
    op.add_column('clusters', sa.Column('ca_next_key_pem', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('clusters') as batch:
        batch.drop_column('ca_next_key_pem')
        batch.drop_column('ca_next_cert_pem')
