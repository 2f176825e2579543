"""per-project quotas

`quotas` holds the limits an admin set (one row per project and resource: clusters, nodes,
cores, ram, shares, gigabytes); a project without a row has the server's default. `quota_locks`
holds one row per project, which every quota-checked change locks first (docs/quotas.md).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 22:40:00
"""
from alembic import op
import sqlalchemy as sa
import floe.db.base


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'quotas',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('project_id', sa.String(length=36), nullable=False),
        sa.Column('resource', sa.String(length=32), nullable=False),
        sa.Column('hard_limit', sa.Integer(), nullable=False),
        sa.Column('created_at', floe.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', floe.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_quotas_project_id_projects'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_quotas')),
        sa.UniqueConstraint('project_id', 'resource', name='uq_quotas_project_resource'),
    )
    with op.batch_alter_table('quotas') as batch:
        batch.create_index(batch.f('ix_quotas_project_id'), ['project_id'], unique=False)
    op.create_table(
        'quota_locks',
        sa.Column('project_id', sa.String(length=36), nullable=False),
        sa.Column('changes', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_quota_locks_project_id_projects'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('project_id', name=op.f('pk_quota_locks')),
    )


def downgrade() -> None:
    op.drop_table('quota_locks')
    with op.batch_alter_table('quotas') as batch:
        batch.drop_index(batch.f('ix_quotas_project_id'))
    op.drop_table('quotas')
