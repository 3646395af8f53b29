"""Operations on cases: create one and start its lifecycle."""

from datetime import date
from uuid import uuid4

from app.audit.log import record
from app.auth.models import JurisdictionNode
from app.cases.models import Case, Measure
from app.core.clock import now
from app.extensions import db


def create_case(
    person_name: str,
    id_number: str,
    jurisdiction: JurisdictionNode,
    measure: Measure = Measure.COMMUNITY_TREATMENT,
    decision_date: date | None = None,
    actor_id: int | None = None,
) -> Case:
    """Open a case file from a 社区戒毒决定书 (the lifecycle process is started by the caller)."""
    case = Case(
        reference=f"new-{uuid4().hex[:24]}",
        person_name=person_name,
        id_number=id_number,
        jurisdiction_id=jurisdiction.id,
        measure=measure,
        decision_date=decision_date,
        created_at=now(),
    )
    db.session.add(case)
    db.session.flush()
    case.reference = f"RF-{now().year}-{case.id:06d}"
    record(
        "case_created",
        actor_id=actor_id,
        case_id=case.id,
        jurisdiction_id=jurisdiction.id,
        payload={"reference": case.reference, "measure": measure.value},
    )
    return case


def open_case(
    person_name: str,
    id_number: str,
    jurisdiction: JurisdictionNode,
    *,
    unified_intake: bool = False,
    decision_date: date | None = None,
    actor_id: int | None = None,
    **fields,
) -> Case:
    """Create a case from a 社区戒毒决定书 and start its lifecycle (workflows/case.bpmn).

    ``unified_intake`` routes it through Guiyang's unified intake (detox, then 诊断评估).
    """
    from app import engine

    measure = fields.pop("measure", Measure.COMMUNITY_TREATMENT)
    case = create_case(person_name, id_number, jurisdiction, measure, decision_date=decision_date, actor_id=actor_id)
    for key, value in fields.items():
        setattr(case, key, value)
    engine.start_process(
        "case", case_id=case.id, jurisdiction_id=jurisdiction.id, data={"unified": unified_intake}, actor_id=actor_id
    )
    return case


def send_stage_message(case: Case, message: str, payload: dict, actor_id: int | None = None) -> bool:
    """Send a message the case page may send (workflows/README.md: violation_reported, transfer_requested, ...).

    Returns whether a process took it now (a waiting one, or one it starts); otherwise it stays in the outbox
    and the worker retries it. Flushes; the caller commits.
    """
    from app import engine

    return engine.send_message(case.id, case.jurisdiction_id, message, payload, actor_id=actor_id)


def record_document_downloaded(case: Case, document_id: int, actor_id: int | None) -> None:
    """PIPL: every download of a case document is logged (who, when, which)."""
    record(
        "document_downloaded",
        actor_id=actor_id,
        case_id=case.id,
        jurisdiction_id=case.jurisdiction_id,
        payload={"document_id": document_id},
    )


def record_id_number_revealed(case: Case, actor_id: int | None) -> None:
    """PIPL: showing the whole ID number is logged; everywhere else it is masked."""
    record("id_number_revealed", actor_id=actor_id, case_id=case.id, jurisdiction_id=case.jurisdiction_id)
