"""audit hash chain: seq, prev_hash, row_hash, the chain head, append-only trigger (PostgreSQL)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import app.core.db
from app.audit.chain import GENESIS, row_hash
from app.audit.models import APPEND_ONLY_FUNCTION, APPEND_ONLY_TRIGGER


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

BATCH = 2000


def upgrade():
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('row_hash', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_audit_event_seq', ['seq'], unique=True)

    op.create_table('audit_chain_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint('id = 1', name='ck_audit_chain_head_single_row'),
    sa.PrimaryKeyConstraint('id')
    )
    last_seq, last_hash = _backfill_chain()
    op.execute(
        sa.text("INSERT INTO audit_chain_head (id, last_seq, last_hash) VALUES (1, :seq, :hash)").bindparams(
            seq=last_seq, hash=last_hash
        )
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(APPEND_ONLY_FUNCTION)
        op.execute(APPEND_ONLY_TRIGGER)


def _backfill_chain():
    """Chain the rows written before this revision, in id order; returns the last (seq, hash)."""
    bind = op.get_bind()
    events = sa.table(
        'audit_event',
        sa.column('id', sa.BigInteger()),
        sa.column('type', sa.String()),
        sa.column('actor_id', sa.Integer()),
        sa.column('occurred_at', app.core.db.UTCDateTime()),
        sa.column('jurisdiction_id', sa.Integer()),
        sa.column('case_id', sa.Integer()),
        sa.column('instance_id', sa.Integer()),
        sa.column('payload', sa.JSON()),
        sa.column('seq', sa.BigInteger()),
        sa.column('prev_hash', sa.String()),
        sa.column('row_hash', sa.String()),
    )
    seal = (
        sa.update(events)
        .where(events.c.id == sa.bindparam('b_id'))
        .values(seq=sa.bindparam('b_seq'), prev_hash=sa.bindparam('b_prev'), row_hash=sa.bindparam('b_hash'))
    )
    seq, prev, after = 0, GENESIS, None
    while True:
        query = sa.select(events).order_by(events.c.id).limit(BATCH)
        if after is not None:
            query = query.where(events.c.id > after)
        rows = bind.execute(query).all()
        if not rows:
            return seq, prev
        params = []
        for row in rows:
            seq += 1
            digest = row_hash(
                seq=seq,
                type=row.type,
                actor_id=row.actor_id,
                occurred_at=row.occurred_at,
                jurisdiction_id=row.jurisdiction_id,
                case_id=row.case_id,
                instance_id=row.instance_id,
                payload=row.payload,
                prev_hash=prev,
            )
            params.append({'b_id': row.id, 'b_seq': seq, 'b_prev': prev, 'b_hash': digest})
            prev = digest
        bind.execute(seal, params)
        after = rows[-1].id


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event')
        op.execute('DROP FUNCTION IF EXISTS audit_event_append_only()')
    op.drop_table('audit_chain_head')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_event_seq')
        batch_op.drop_column('row_hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('seq')
