"""Service tasks that read and change the case file (registered by topic; used by the diagrams in workflows/).

Each takes the task data and the task's properties and returns data for the process. They run inside the
engine's transaction: a failing step rolls their changes back with it.
"""

from datetime import date

from sqlalchemy import select, update

from app.audit.log import record
from app.auth.models import JurisdictionNode, NodeLevel
from app.cases.models import Case, CaseStatus, Measure
from app.core.clock import now
from app.engine.services import ServiceError, service
from app.extensions import db

#: What ``case.record_violation`` counts (条例20: refusals and absences count toward the thresholds).
VIOLATION_KINDS = {"refusal", "absence", "drug_use", "other"}
#: 三色量化 tiers, as tier.dmn decides them.
TIERS = {"red", "yellow", "blue"}


def _case(data: dict) -> Case:
    case = db.session.get(Case, data.get("case_id"))
    if case is None:
        raise ServiceError(f"no case {data.get('case_id')!r}")
    return case


def _audit(type_: str, case: Case, **payload) -> None:
    record(type_, case_id=case.id, jurisdiction_id=case.jurisdiction_id, payload=payload)


def term_year(case: Case, today: date) -> int:
    """Year of the term (1, 2, 3, ...) counted from the day the person reported."""
    if case.term_started_on is None:
        return 1
    return (today - case.term_started_on).days // 365 + 1


def birth_date(case: Case) -> date | None:
    """The recorded birth date, else the one in an 18-digit resident ID number (digits 7-14, YYYYMMDD)."""
    if case.birth_date is not None:
        return case.birth_date
    digits = (case.id_number or "").strip()
    if len(digits) == 18 and digits[:17].isdigit():
        try:
            return date(int(digits[6:10]), int(digits[10:12]), int(digits[12:14]))
        except ValueError:
            return None
    return None


def age(case: Case, today: date) -> int | None:
    born = birth_date(case)
    if born is None:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@service("case.load")
def load_case(data: dict, params: dict) -> dict:
    """Put the case facts a diagram decides on into ``case`` (status, tier, term year, counts, age, facts)."""
    case = _case(data)
    today = now().date()
    return {
        "case": {
            **(case.facts or {}),
            "status": case.status.value,
            "stage": case.stage,
            "measure": case.measure.value,
            "tier": case.tier or "yellow",
            "term_started_on": case.term_started_on.isoformat() if case.term_started_on else None,
            "term_year": term_year(case, today),
            "refusals": case.refusal_count,
            "absences": case.absence_count,
            "absence_days": case.absence_days,
            "age": age(case, today),
            "gender": case.gender,
            "community_id": case.jurisdiction_id,
        }
    }


@service("case.set_stage")
def set_stage(data: dict, params: dict) -> dict:
    """Move the case to the stage named by the ``stage`` property."""
    case = _case(data)
    stage = params.get("stage")
    if not stage:
        raise ServiceError("case.set_stage needs a 'stage' property")
    if case.stage != stage:
        _audit("stage_changed", case, old=case.stage, new=stage)
        case.stage = stage
    return {}


@service("case.update")
def update_case(data: dict, params: dict) -> dict:
    """Copy the data keys listed in the ``fields`` property into the case file.

    ``tier`` sets the case's tier (audited as tier_changed), ``measure`` its measure (社区戒毒/社区康复) and
    ``term_started_on`` its term start; other keys go to the case's facts.
    """
    case = _case(data)
    keys = [k.strip() for k in params.get("fields", "").split(",") if k.strip()]
    facts = dict(case.facts or {})
    for key in keys:
        if key not in data:
            continue
        value = data[key]
        if key == "tier":
            if value not in TIERS:
                raise ServiceError(f"tier must be one of red, yellow, blue, not {value!r}")
            if case.tier != value:
                _audit("tier_changed", case, old=case.tier, new=value)
                case.tier = value
        elif key == "measure":
            case.measure = Measure(value)
        elif key == "term_started_on":
            case.term_started_on = date.fromisoformat(str(value)) if value else None
        else:
            facts[key] = value
    case.facts = facts
    return {}


@service("case.record_violation")
def record_violation(data: dict, params: dict) -> dict:
    """Count one refusal/absence (条例20) as an audited event with its evidence; returns the new totals."""
    case = _case(data)
    kind = params.get("kind") or data.get("violation_kind")
    if kind not in VIOLATION_KINDS:
        raise ServiceError(f"violation kind must be one of {', '.join(sorted(VIOLATION_KINDS))}, not {kind!r}")
    days = int(data.get("absence_days") or 0)
    if kind == "refusal":
        case.refusal_count += 1
    elif kind == "absence":
        case.absence_count += 1
        case.absence_days += days
    _audit(
        "violation_recorded",
        case,
        kind=kind,
        absence_days=days,
        evidence=data.get("evidence"),
        refusals=case.refusal_count,
        absences=case.absence_count,
        absence_days_total=case.absence_days,
    )
    return {"refusals": case.refusal_count, "absences": case.absence_count, "absence_days_total": case.absence_days}


@service("case.set_status")
def set_status(data: dict, params: dict) -> dict:
    """open / suspended (中止, 条例24) / closed (with ``reason`` from data or properties)."""
    case = _case(data)
    try:
        status = CaseStatus(params.get("status"))
    except ValueError:
        raise ServiceError(f"unknown case status {params.get('status')!r}") from None
    reason = params.get("reason") or data.get("reason")
    if case.status != status:
        events = {CaseStatus.SUSPENDED: "case_suspended", CaseStatus.CLOSED: "case_closed"}
        _audit(events.get(status, "case_resumed"), case, reason=reason, old=case.status.value)
        case.status = status
    if status == CaseStatus.CLOSED:
        case.close_reason = reason
    return {}


@service("case.transfer")
def transfer(data: dict, params: dict) -> dict:
    """变更执行地 (条例22): the case, its open work and its running instances move to the new community."""
    from app.engine.models import InstanceStatus, ProcessInstance, WorkItem, WorkItemStatus

    case = _case(data)
    target = db.session.get(JurisdictionNode, int(data.get("new_community_id") or 0))
    if target is None or target.level != NodeLevel.COMMUNITY:
        raise ServiceError("the new execution place must be a community")
    old = case.jurisdiction_id
    if old == target.id:
        return {}
    case.jurisdiction_id = target.id
    db.session.execute(
        update(WorkItem)
        .where(WorkItem.case_id == case.id, WorkItem.status == WorkItemStatus.OPEN)
        .values(jurisdiction_id=target.id, assignee_id=None)
    )
    running = select(ProcessInstance.id).where(
        ProcessInstance.case_id == case.id, ProcessInstance.status != InstanceStatus.COMPLETED
    )
    db.session.execute(update(ProcessInstance).where(ProcessInstance.id.in_(running)).values(jurisdiction_id=target.id))
    _audit("case_transferred", case, old_community_id=old, new_community_id=target.id)
    return {"previous_community_id": old}
