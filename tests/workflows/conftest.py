"""Harness for the workflow library tests: deploy workflows/, drive cases, move the simulated clock."""

from pathlib import Path

import pytest
from sqlalchemy import select

from app import engine
from app.audit.models import AuditEvent
from app.cases.models import Case
from app.core.db import transaction
from app.engine.models import (
    Incident,
    IncidentStatus,
    Message,
    ProcessInstance,
    Timer,
    TimerStatus,
    WorkItem,
    WorkItemStatus,
)
from app.extensions import db
from app.worker import drain

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def sent_payloads(case: Case, name: str) -> list:
    """Payloads of the messages ``name`` sent for the case, oldest first."""
    query = select(Message).where(Message.case_id == case.id, Message.name == name).order_by(Message.id)
    return [m.event["payload"]["payload"] for m in db.session.scalars(query)]


class Flow:
    """Drives cases through the deployed workflows/ like users and the worker would."""

    def __init__(self, clock, tree, case_factory):
        self.clock = clock
        self.tree = tree
        self._case_factory = case_factory

    def deploy_all(self) -> None:
        with transaction():
            engine.deploy(engine.workflow_files(WORKFLOWS))

    def new_case(self, node=None, **fields) -> Case:
        case = self._case_factory(node=node)
        if fields:
            with transaction():
                for key, value in fields.items():
                    setattr(case, key, value)
        return case

    def start(self, key: str, case: Case, data: dict | None = None) -> engine.InstanceInfo:
        with transaction():
            return engine.start_process(key, case_id=case.id, jurisdiction_id=case.jurisdiction_id, data=data)

    def send(self, case: Case, name: str, payload: dict | None = None) -> bool:
        with transaction():
            return engine.send_message(case.id, case.jurisdiction_id, name, payload)

    def items(self, case: Case | None = None) -> list[WorkItem]:
        query = select(WorkItem).where(WorkItem.status == WorkItemStatus.OPEN).order_by(WorkItem.id)
        if case is not None:
            query = query.where(WorkItem.case_id == case.id)
        return list(db.session.scalars(query))

    def open_elements(self, case: Case | None = None) -> list[str]:
        return sorted(item.element_id for item in self.items(case))

    def item(self, element_id: str, case: Case | None = None) -> WorkItem:
        matches = [i for i in self.items(case) if i.element_id == element_id]
        assert len(matches) == 1, f"expected one open {element_id!r}, open: {self.open_elements(case)}"
        return matches[0]

    def complete(self, element_id: str, data: dict | None = None, case: Case | None = None):
        item = self.item(element_id, case)
        with transaction():
            result = engine.complete_work_item(item.id, data or {})
        assert result.instance.incident_id is None, self.incidents()
        return result

    def run_worker(self) -> int:
        """Fire every due timer and deliver queued messages until nothing is left; returns timers fired."""
        return drain()

    def advance(self, **delta) -> int:
        """Move the clock and let the worker run; returns timers fired."""
        self.clock.advance(**delta)
        return self.run_worker()

    def waiting_timers(self, case: Case | None = None) -> list[Timer]:
        query = select(Timer).where(Timer.status == TimerStatus.WAITING).order_by(Timer.due_at)
        if case is not None:
            query = query.where(Timer.case_id == case.id)
        return list(db.session.scalars(query))

    def instances(self, case: Case, key: str | None = None) -> list[ProcessInstance]:
        query = select(ProcessInstance).where(ProcessInstance.case_id == case.id).order_by(ProcessInstance.id)
        if key:
            query = query.where(ProcessInstance.process_key == key)
        return list(db.session.scalars(query))

    def audit(self, type_: str, case: Case | None = None) -> list[AuditEvent]:
        query = select(AuditEvent).where(AuditEvent.type == type_).order_by(AuditEvent.id)
        if case is not None:
            query = query.where(AuditEvent.case_id == case.id)
        return list(db.session.scalars(query))

    def incidents(self) -> list[str]:
        return [i.error for i in db.session.scalars(select(Incident).where(Incident.status == IncidentStatus.OPEN))]

    def reload(self, case: Case) -> Case:
        db.session.expire_all()
        return db.session.get(Case, case.id)


@pytest.fixture
def flow(app, clock, tree, case_factory) -> Flow:
    harness = Flow(clock, tree, case_factory)
    harness.deploy_all()
    return harness
