"""keystone identity: domains, users, roles, assignments, application credentials, tokens

Tokens gain an expiry, the role names they carry, their scope's domain, the methods that
issued them and an audit id; a token no longer needs a project (unscoped and domain-scoped
tokens). Existing API tokens keep working: an admin token carries admin, member and reader,
any other member and reader. The Default domain, the three roles and the admin user are made
by the server's bootstrap at start (floe.services.identity.bootstrap_admin), which also hands
the existing admin token to the admin user.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 22:40:00
"""
from alembic import op
import sqlalchemy as sa
import floe.db.base


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'domains',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('description', sa.String(length=255), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', floe.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_domains')),
        sa.UniqueConstraint('name', name=op.f('uq_domains_name')),
    )
    # Plain ADD COLUMN, never a batch copy of projects: on SQLite a copy drops the old table,
    # and dropping a parent table with foreign keys on deletes every token (ON DELETE CASCADE)
    # and fails outright once a cluster references a project.
    op.add_column('projects', sa.Column('domain_id', sa.String(length=64), nullable=False,
                                        server_default='default'))
    op.add_column('projects', sa.Column('description', sa.String(length=255), nullable=False, server_default=''))
    op.add_column('projects', sa.Column('enabled', sa.Boolean(), nullable=False, server_default=sa.true()))
    op.create_table(
        'users',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('domain_id', sa.String(length=64), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=True),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('email', sa.String(length=255), nullable=True),
        sa.Column('description', sa.String(length=255), nullable=False),
        sa.Column('default_project_id', sa.String(length=64), nullable=True),
        sa.Column('created_at', floe.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
        sa.UniqueConstraint('domain_id', 'name', name=op.f('uq_users_domain_id')),
    )
    op.create_table(
        'roles',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('description', sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_roles')),
        sa.UniqueConstraint('name', name=op.f('uq_roles_name')),
    )
    op.create_table(
        'role_assignments',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('user_id', sa.String(length=64), nullable=False),
        sa.Column('project_id', sa.String(length=36), nullable=False),
        sa.Column('role_id', sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_role_assignments_user_id_users'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'],
                                name=op.f('fk_role_assignments_project_id_projects'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['role_id'], ['roles.id'], name=op.f('fk_role_assignments_role_id_roles'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_role_assignments')),
        sa.UniqueConstraint('user_id', 'project_id', 'role_id', name=op.f('uq_role_assignments_user_id')),
    )
    with op.batch_alter_table('role_assignments') as batch:
        batch.create_index(batch.f('ix_role_assignments_user_id'), ['user_id'], unique=False)
        batch.create_index(batch.f('ix_role_assignments_project_id'), ['project_id'], unique=False)
    op.create_table(
        'application_credentials',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('description', sa.String(length=255), nullable=False),
        sa.Column('user_id', sa.String(length=64), nullable=False),
        sa.Column('project_id', sa.String(length=36), nullable=False),
        sa.Column('secret_hash', sa.String(length=255), nullable=False),
        sa.Column('role_ids', sa.JSON(), nullable=False),
        sa.Column('unrestricted', sa.Boolean(), nullable=False),
        sa.Column('expires_at', floe.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_at', floe.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_application_credentials_user_id_users'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'],
                                name=op.f('fk_application_credentials_project_id_projects'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_application_credentials')),
        sa.UniqueConstraint('user_id', 'name', name=op.f('uq_application_credentials_user_id')),
    )
    with op.batch_alter_table('application_credentials') as batch:
        batch.create_index(batch.f('ix_application_credentials_user_id'), ['user_id'], unique=False)
        batch.create_index(batch.f('ix_application_credentials_project_id'), ['project_id'], unique=False)
    with op.batch_alter_table('tokens') as batch:
        batch.alter_column('project_id', existing_type=sa.String(length=36), nullable=True)
        batch.add_column(sa.Column('expires_at', floe.db.base.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('roles', sa.String(length=255), nullable=False, server_default=''))
        batch.add_column(sa.Column('domain_id', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('methods', sa.String(length=128), nullable=False, server_default=''))
        batch.add_column(sa.Column('audit_id', sa.String(length=64), nullable=False, server_default=''))
        batch.add_column(sa.Column('application_credential_id', sa.String(length=64), nullable=True))
        batch.create_index(batch.f('ix_tokens_user_id'), ['user_id'], unique=False)
        batch.create_index(batch.f('ix_tokens_application_credential_id'), ['application_credential_id'],
                           unique=False)
    tokens = sa.table('tokens', sa.column('is_admin', sa.Boolean()), sa.column('roles', sa.String()))
    op.execute(tokens.update().where(tokens.c.is_admin == sa.true()).values(roles='admin,member,reader'))
    op.execute(tokens.update().where(tokens.c.is_admin == sa.false()).values(roles='member,reader'))


def downgrade() -> None:
    with op.batch_alter_table('tokens') as batch:
        batch.drop_index(batch.f('ix_tokens_application_credential_id'))
        batch.drop_index(batch.f('ix_tokens_user_id'))
        batch.drop_column('application_credential_id')
        batch.drop_column('audit_id')
        batch.drop_column('methods')
        batch.drop_column('domain_id')
        batch.drop_column('roles')
        batch.drop_column('expires_at')
    op.execute("DELETE FROM tokens WHERE project_id IS NULL")
    with op.batch_alter_table('tokens') as batch:
        batch.alter_column('project_id', existing_type=sa.String(length=36), nullable=False)
    op.drop_table('application_credentials')
    op.drop_table('role_assignments')
    op.drop_table('roles')
    op.drop_table('users')
    op.drop_column('projects', 'enabled')
    op.drop_column('projects', 'description')
    op.drop_column('projects', 'domain_id')
    op.drop_table('domains')
