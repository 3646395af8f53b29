"""KPI read model: counts per node, measure, period and key; each case's contribution; change marks; state

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00.000000

The kpi_state row is created with refreshed_at NULL: the worker's next pass counts everything once (or run
`flask kpi refresh`); until then the dashboard counts live.
"""
from alembic import op
import sqlalchemy as sa

import app.core.db


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('kpi_count',
    sa.Column('measure', sa.String(length=40), nullable=False),
    sa.Column('grain', sa.String(length=8), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('node_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=20), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['node_id'], ['jurisdiction_node.id'], ),
    sa.PrimaryKeyConstraint('measure', 'grain', 'period_start', 'node_id', 'key')
    )
    with op.batch_alter_table('kpi_count', schema=None) as batch_op:
        batch_op.create_index('ix_kpi_count_node', ['node_id'], unique=False)

    op.create_table('kpi_case',
    sa.Column('case_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('node_id', sa.Integer(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('case_id')
    )
    op.create_table('kpi_dirty',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('kpi_state',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('refreshed_at', app.core.db.UTCDateTime(), nullable=True),
    sa.Column('generation', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('id = 1', name='ck_kpi_state_single_row'),
    sa.PrimaryKeyConstraint('id')
    )
    op.execute("INSERT INTO kpi_state (id, refreshed_at, generation) VALUES (1, NULL, 0)")


def downgrade():
    op.drop_table('kpi_state')
    op.drop_table('kpi_dirty')
    op.drop_table('kpi_case')
    with op.batch_alter_table('kpi_count', schema=None) as batch_op:
        batch_op.drop_index('ix_kpi_count_node')

    op.drop_table('kpi_count')
