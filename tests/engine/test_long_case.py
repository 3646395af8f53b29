"""A case supervised for years: one short instance per cycle, so state stays flat and no depth limit is hit."""

from sqlalchemy import func, select

from app import engine
from app.audit.models import AuditEvent
from app.core.db import transaction
from app.engine.models import InstanceStatus, ProcessInstance, WorkItem, WorkItemStatus
from app.extensions import db

CYCLES = 1000


def test_one_case_runs_1000_cycles_with_flat_state(deploy_fixtures, case_factory, clock):
    deploy_fixtures("cycle.bpmn")
    case = case_factory()
    with transaction():
        engine.send_message(case.id, case.jurisdiction_id, "next_cycle", {"cycle": 1, "cycles": CYCLES})
    sizes = []
    for n in range(1, CYCLES + 1):
        item = db.session.scalars(
            select(WorkItem).where(WorkItem.case_id == case.id, WorkItem.status == WorkItemStatus.OPEN)
        ).one()
        instance = db.session.get(ProcessInstance, item.instance_id)
        if n in (1, 10, 500, CYCLES):
            sizes.append(len(instance.state))
            assert f'"cycle":{n},' in instance.state
        with transaction():
            engine.complete_work_item(item.id, {"result": "negative"})
        clock.advance(days=1)
    assert (
        db.session.scalar(
            select(func.count()).where(WorkItem.case_id == case.id, WorkItem.status == WorkItemStatus.OPEN)
        )
        == 0
    )
    statuses = db.session.scalars(select(ProcessInstance.status).where(ProcessInstance.case_id == case.id)).all()
    assert len(statuses) == CYCLES and set(statuses) == {InstanceStatus.COMPLETED}
    assert max(sizes) - min(sizes) <= 16  # only the digits of the cycle number differ
    completed = db.session.scalar(
        select(func.count()).where(AuditEvent.case_id == case.id, AuditEvent.type == "task_completed")
    )
    assert completed == CYCLES  # the history lives in the audit table, not in a growing task tree
