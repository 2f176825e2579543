"""events: what happened to clusters and shares, for `floe cluster events` and the live stream

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 08:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import floe.db.base


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('created_at', floe.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('cluster_id', sa.String(length=36), nullable=True),
    sa.Column('cluster_name', sa.String(length=255), nullable=False),
    sa.Column('share_id', sa.String(length=36), nullable=True),
    sa.Column('operation_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('level', sa.String(length=8), nullable=False),
    sa.Column('step', sa.String(length=64), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_cluster_id'), ['cluster_id'], unique=False)
        batch_op.create_index('ix_events_project_id_id', ['project_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_project_id_id')
        batch_op.drop_index(batch_op.f('ix_events_cluster_id'))

    op.drop_table('events')
