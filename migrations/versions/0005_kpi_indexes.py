"""KPI indexes: tasks by kind and time, cases by decision date

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_work_item_element_due", "work_item", ["element_id", "due_at"])
    op.create_index("ix_work_item_element_created", "work_item", ["element_id", "created_at"])
    op.create_index("ix_work_item_element_completed", "work_item", ["element_id", "completed_at"])
    op.create_index("ix_rehab_case_decision_date", "rehab_case", ["decision_date"])


def downgrade():
    op.drop_index("ix_rehab_case_decision_date", table_name="rehab_case")
    op.drop_index("ix_work_item_element_completed", table_name="work_item")
    op.drop_index("ix_work_item_element_created", table_name="work_item")
    op.drop_index("ix_work_item_element_due", table_name="work_item")
