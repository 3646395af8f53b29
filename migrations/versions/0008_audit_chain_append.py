"""audit_chain_append(): PostgreSQL appends a transaction's audit events to the hash chain in one statement

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 09:00:00.000000

The chain and its hashes are unchanged: the function computes in SQL what app.audit.chain computes in Python.
SQLite needs nothing (one writer at a time: the application appends there itself).
"""
from alembic import op

from app.audit.models import CHAIN_APPEND_FUNCTION


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(CHAIN_APPEND_FUNCTION)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP FUNCTION IF EXISTS audit_chain_append(json)')
