"""Reads for the case pages: the list, term clocks, working group, open work, timeline and the actions on offer.

Everything here reads indexed rows (case, work_item, audit_event, message_subscription); no workflow is loaded.
"""

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

from flask_babel import lazy_gettext as _l
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import joinedload

from app.audit.models import AuditEvent
from app.auth.models import JurisdictionNode, NodeLevel, User
from app.auth.roles import Role
from app.auth.scope import in_scope, scope_nodes
from app.cases.forms import STAGE_ACTIONS, StageAction
from app.cases.models import Case, CaseStatus, Document
from app.cases.stages import STAGE_LABELS, TIER_LABELS
from app.core.clock import now
from app.core.i18n import bilingual
from app.core.search import url_args
from app.core.templating import LOCAL_TZ
from app.engine.models import (
    InstanceStatus,
    MessageSubscription,
    ProcessDefinition,
    ProcessInstance,
    WorkItem,
    WorkItemStatus,
)
from app.extensions import db

PAGE_SIZE = 25
TIMELINE_PAGE_SIZE = 30

#: Roles that work on people's files; the others (designers, administrators) never see personal data (PIPL).
CASE_ROLES = frozenset({Role.CASEWORKER, Role.POLICE, Role.CADRE, Role.MEDICAL, Role.SUPERVISOR})
#: Roles that open a case from a decision.
INTAKE_ROLES = frozenset({Role.CASEWORKER, Role.POLICE, Role.SUPERVISOR})
#: Roles that may see the whole ID number on the case page (elsewhere it is always masked).
FULL_ID_ROLES = frozenset({Role.CASEWORKER, Role.POLICE, Role.SUPERVISOR})

STATUS_LABELS = {
    CaseStatus.OPEN.value: _l("Under supervision"),
    CaseStatus.SUSPENDED.value: _l("Suspended (中止)"),
    CaseStatus.CLOSED.value: _l("Closed"),
}
#: Reasons carried by case_suspended / case_resumed / case_closed events and by Case.close_reason.
REASON_LABELS = {
    "expired": _l("term expired"),
    "terminated": _l("terminated (条例24)"),
    "isolated": _l("compulsory isolation"),
    "detained": _l("detained"),
    "arrested": _l("arrested"),
    "released": _l("released"),
    "prison_sentence": _l("sentenced to prison"),
    "compulsory_education": _l("compulsory education"),
}

#: Timeline labels of audit event types; types not listed are shown as they are.
EVENT_LABELS = {
    "case_created": _l("Case created"),
    "stage_changed": _l("Stage changed"),
    "tier_changed": _l("Tier changed"),
    "case_suspended": _l("Case suspended"),
    "case_resumed": _l("Case resumed"),
    "case_closed": _l("Case closed"),
    "case_transferred": _l("Case transferred"),
    "violation_recorded": _l("Violation recorded"),
    "document_uploaded": _l("Document uploaded"),
    "document_downloaded": _l("Document downloaded"),
    "id_number_revealed": _l("Full ID number shown"),
    "instance_started": _l("Process started"),
    "instance_completed": _l("Process completed"),
    "task_created": _l("Task opened"),
    "task_completed": _l("Task completed"),
    "task_cancelled": _l("Task cancelled"),
    "task_claimed": _l("Task claimed"),
    "task_unclaimed": _l("Task released"),
    "task_reassigned": _l("Task reassigned"),
    "timer_fired": _l("Deadline reached"),
    "message_sent": _l("Request sent"),
    "message_delivered": _l("Request delivered"),
    "message_expired": _l("Request expired"),
    "incident_raised": _l("Error in a process step"),
    "incident_retried": _l("Failed step retried"),
    "incident_resolved": _l("Error resolved"),
}

#: Names of the messages between stages (workflows/README.md), for the timeline.
MESSAGE_LABELS = {
    "intake_requested": _l("intake requested"),
    "intake_finished": _l("intake finished"),
    "agreement_requested": _l("agreement requested"),
    "agreement_finished": _l("agreement finished"),
    "term_started": _l("term clock started"),
    "supervision_cycle": _l("supervision cycle"),
    "violation_reported": _l("violation reported"),
    "isolation_referral_requested": _l("referral to compulsory isolation"),
    "term_ended": _l("term ended"),
    "isolation_started": _l("isolation started"),
    "rehabilitation_requested": _l("rehabilitation requested"),
    "rehabilitation_finished": _l("rehabilitation finished"),
    "case_terminated": _l("termination recorded"),
    "case_suspended": _l("suspension recorded"),
    "case_resumed": _l("resumption recorded"),
    "transfer_requested": _l("change of execution place"),
    "employment_requested": _l("employment help requested"),
}

#: Working group (条例17) facts written by intake.bpmn save_working_group.
WORKING_GROUP = {
    "police_officer": _l("Police officer"),
    "cadre": _l("Community cadre"),
    "medical_staff": _l("Medical staff"),
    "family_member": _l("Family member"),
    "volunteer": _l("Volunteer"),
}
#: Decision facts from the new-case form.
DECISION_FACTS = {"decision_no": _l("Decision document number"), "decision_authority": _l("Issued by")}


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- the list ---------------------------------------------------------------------------------------------------


@dataclass
class CaseFilter:
    """Search and filters of the case list, read from the query string (values that do not parse are dropped)."""

    q: str | None = None
    stage: str | None = None
    tier: str | None = None
    status: str | None = None
    page: int = 1

    @classmethod
    def from_args(cls, args) -> "CaseFilter":
        f = cls()
        f.q = (args.get("q") or "").replace("\x00", "").strip()[:100] or None
        f.stage = args.get("stage") if args.get("stage") in STAGE_LABELS else None
        f.tier = args.get("tier") if args.get("tier") in (*TIER_LABELS, "none") else None
        f.status = args.get("status") if args.get("status") in STATUS_LABELS else None
        f.page = min(max(_int(args.get("page")) or 1, 1), 100_000)
        return f

    def to_args(self, **changes) -> dict:
        """Query-string parameters (blank ones left out), with ``changes`` applied; the search term is replaced
        by the ``s=1`` mark (app.core.search: names and ID numbers stay out of URLs)."""
        return url_args({k: v for k, v in (asdict(self) | changes).items() if v not in (None, "")}, self.q)

    @property
    def active(self) -> bool:
        return any((self.q, self.stage, self.tier, self.status))


def case_query(f: CaseFilter, user: User | None = None) -> Select:
    """Cases in the user's jurisdiction matching the filter, newest first."""
    query = select(Case).options(joinedload(Case.jurisdiction)).where(in_scope(Case.jurisdiction_id, user))
    if f.q:
        query = query.where(
            or_(
                Case.person_name.icontains(f.q, autoescape=True),
                Case.reference.icontains(f.q, autoescape=True),
                Case.id_number.icontains(f.q.upper(), autoescape=True),
            )
        )
    if f.stage:
        query = query.where(Case.stage == f.stage)
    if f.tier == "none":
        query = query.where(Case.tier.is_(None))
    elif f.tier:
        query = query.where(Case.tier == f.tier)
    if f.status:
        query = query.where(Case.status == CaseStatus(f.status))
    return query.order_by(Case.created_at.desc(), Case.id.desc())


def case_page(f: CaseFilter, user: User | None = None) -> Pagination:
    return db.paginate(case_query(f, user), page=f.page, per_page=PAGE_SIZE, error_out=False, count=True)


def open_item_counts(case_ids: list[int]) -> dict[int, int]:
    """Open work items per case, for the list."""
    if not case_ids:
        return {}
    rows = db.session.execute(
        select(WorkItem.case_id, func.count())
        .where(WorkItem.case_id.in_(case_ids), WorkItem.status == WorkItemStatus.OPEN)
        .group_by(WorkItem.case_id)
    )
    return {case_id: count for case_id, count in rows}


def communities_in_scope(user: User | None = None) -> list[JurisdictionNode]:
    """The communities a user may open a case in."""
    return [node for node in scope_nodes(user) if node.level == NodeLevel.COMMUNITY]


def transfer_targets(case: Case) -> list[JurisdictionNode]:
    """Every other community (条例22: the new execution place may be anywhere)."""
    return list(
        db.session.scalars(
            select(JurisdictionNode)
            .where(JurisdictionNode.level == NodeLevel.COMMUNITY, JurisdictionNode.id != case.jurisdiction_id)
            .order_by(JurisdictionNode.path)
        )
    )


def open_case_with_id_number(id_number: str, user: User | None = None) -> Case | None:
    """A case not yet closed for the same ID number, in the user's jurisdiction (others are not revealed)."""
    return db.session.scalars(
        select(Case)
        .where(Case.id_number == id_number, Case.status != CaseStatus.CLOSED, in_scope(Case.jurisdiction_id, user))
        .limit(1)
    ).first()


# --- the case page -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TermClock:
    """The term as of today (条例14: counted from the report day; 条例24: days suspended do not count)."""

    started_on: date
    served_days: int
    #: Days until the term is over; None when the closure process has not computed the end yet.
    remaining_days: int | None
    #: The last day of the term; None while suspended (it moves by the days of this suspension).
    last_day: date | None
    paused_days: int
    #: Set while suspended (中止): the day the clock stopped.
    paused_since: date | None


def _local_day(value: datetime) -> date:
    return value.astimezone(LOCAL_TZ).date()


def _term_end(case: Case) -> datetime | None:
    """closure.bpmn record_term_end: ``term_ends`` is the moment the term is over (midnight, Beijing time)."""
    value = (case.facts or {}).get("term_ends")
    try:
        ends = datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None
    return ends if ends is None or ends.tzinfo else ends.replace(tzinfo=LOCAL_TZ)


def suspended_since(case: Case) -> date | None:
    """The day of the latest case_suspended event (closure.bpmn suspend_case), while the case is suspended."""
    if case.status != CaseStatus.SUSPENDED:
        return None
    at = db.session.scalar(
        select(AuditEvent.occurred_at)
        .where(AuditEvent.case_id == case.id, AuditEvent.type == "case_suspended")
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .limit(1)
    )
    return _local_day(at) if at else _local_day(now())


def term_clock(case: Case, at: datetime | None = None) -> TermClock | None:
    """Days served, remaining and paused; None before the person reported or once the case is closed."""
    if case.term_started_on is None or case.status == CaseStatus.CLOSED:
        return None
    today = _local_day(at or now())
    paused_before = _int((case.facts or {}).get("term_paused_days")) or 0
    since = suspended_since(case)
    counted_until = max(since or today, case.term_started_on)
    ends = _term_end(case)
    end_day = _local_day(ends) if ends else None  # the first day after the term
    return TermClock(
        started_on=case.term_started_on,
        served_days=max((counted_until - case.term_started_on).days - paused_before, 0),
        remaining_days=max((end_day - counted_until).days, 0) if end_day else None,
        last_day=end_day - timedelta(days=1) if end_day and since is None else None,
        paused_days=paused_before + ((today - since).days if since else 0),
        paused_since=since,
    )


def labelled_facts(case: Case, labels: dict) -> list[tuple[str, str]]:
    """(label, value) for the facts in ``labels`` that are filled in, in the order of ``labels``."""
    facts = case.facts or {}
    return [(str(label), str(facts[key])) for key, label in labels.items() if facts.get(key) not in (None, "")]


def open_work(case: Case) -> list[WorkItem]:
    return list(
        db.session.scalars(
            select(WorkItem)
            .where(WorkItem.case_id == case.id, WorkItem.status == WorkItemStatus.OPEN)
            .order_by(WorkItem.due_at.asc().nulls_last(), WorkItem.id)
        )
    )


def documents(case: Case) -> list[Document]:
    """The case's documents, newest first (their content is not loaded)."""
    return list(
        db.session.scalars(
            select(Document)
            .where(Document.case_id == case.id)
            .order_by(Document.uploaded_at.desc(), Document.id.desc())
        )
    )


def user_names(ids) -> dict[int, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return {
        row.id: row.display_name
        for row in db.session.execute(select(User.id, User.display_name).where(User.id.in_(ids)))
    }


# --- the timeline -------------------------------------------------------------------------------------------------


#: Who looked at the case is the access log's business (supervisors, app.audit.views), not the timeline's.
ACCESS_EVENTS = ("case_viewed", "document_downloaded", "id_number_revealed", "export_downloaded")


def _case_events(case: Case):
    return and_(AuditEvent.case_id == case.id, AuditEvent.type.not_in(ACCESS_EVENTS))


def event_types(case: Case) -> list[tuple[str, str]]:
    """(type, label) of the event types the case has, for the timeline filter."""
    types = db.session.scalars(select(AuditEvent.type).where(_case_events(case)).distinct())
    return sorted(((t, str(EVENT_LABELS.get(t, t))) for t in types), key=lambda pair: pair[1])


def event_actors(case: Case) -> list[tuple[int, str]]:
    """(user id, name) of everyone who acted on the case, for the timeline filter."""
    ids = db.session.scalars(
        select(AuditEvent.actor_id).where(_case_events(case), AuditEvent.actor_id.is_not(None)).distinct()
    )
    return sorted(user_names(ids).items(), key=lambda pair: pair[1])


def timeline(case: Case, event_type: str | None, page: int, actor_id: int | None = None) -> Pagination:
    """The case's audit events, newest first, optionally of one type and one actor."""
    query = select(AuditEvent).where(_case_events(case))
    if event_type:
        query = query.where(AuditEvent.type == event_type)
    if actor_id:
        query = query.where(AuditEvent.actor_id == actor_id)
    query = query.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
    return db.paginate(query, page=page, per_page=TIMELINE_PAGE_SIZE, error_out=False, count=True)


def _task_names(events) -> dict[int, str]:
    ids = {e.payload.get("work_item_id") for e in events if isinstance(e.payload, dict)}
    ids = {i for i in ids if isinstance(i, int)}
    if not ids:
        return {}
    return {
        row.id: row.name for row in db.session.execute(select(WorkItem.id, WorkItem.name).where(WorkItem.id.in_(ids)))
    }


def _change(labels: dict, payload: dict) -> str:
    old, new = payload.get("old"), payload.get("new")
    return f"{labels.get(old, old or '—')} → {labels.get(new, new or '—')}"


def _process_names(events) -> dict[str, str]:
    """Diagram names ("案件全程 Case lifecycle") of the process keys the events mention."""
    keys = {e.payload.get("process_key") for e in events if isinstance(e.payload, dict)} - {None}
    if not keys:
        return {}
    rows = db.session.execute(
        select(ProcessDefinition.key, ProcessDefinition.name)
        .where(ProcessDefinition.key.in_(keys))
        .order_by(ProcessDefinition.version)
    )
    return {row.key: row.name for row in rows if row.name}  # the newest version's name wins


def describe_events(events) -> dict[int, str]:
    """A short detail line per event id, from its payload (never the submitted form data: it may be sensitive)."""
    tasks = _task_names(events)
    processes = _process_names(events)
    details = {}
    for event in events:
        p = event.payload if isinstance(event.payload, dict) else {}
        if "work_item_id" in p:
            text = bilingual(tasks.get(p["work_item_id"], p.get("element_id", "")))
        elif event.type == "stage_changed":
            text = _change(STAGE_LABELS, p)
        elif event.type == "tier_changed":
            text = _change(TIER_LABELS, p)
        elif "name" in p:
            text = str(MESSAGE_LABELS.get(p["name"], p["name"]))
        elif "process_key" in p:
            text = bilingual(processes.get(p["process_key"], str(p["process_key"])))
        elif event.type == "violation_recorded":
            text = str(p.get("kind", ""))
        elif "file_name" in p:
            text = str(p["file_name"])
        elif "reason" in p and p["reason"]:
            text = str(REASON_LABELS.get(p["reason"], p["reason"]))
        else:
            text = ""
        details[event.id] = str(text)
    return details


# --- stage actions ---------------------------------------------------------------------------------------------


def _waiting_messages(case: Case) -> set[str]:
    return set(db.session.scalars(select(MessageSubscription.name).where(MessageSubscription.case_id == case.id)))


def _running(case: Case, process_key: str) -> bool:
    return bool(
        db.session.scalar(
            select(
                exists().where(
                    ProcessInstance.case_id == case.id,
                    ProcessInstance.process_key == process_key,
                    ProcessInstance.status.in_([InstanceStatus.RUNNING, InstanceStatus.INCIDENT]),
                )
            )
        )
    )


def available_actions(case: Case, user: User) -> list[StageAction]:
    """The stage actions that make sense now for this case and that the user's roles may take."""
    waiting = None
    offered = []
    for action in STAGE_ACTIONS.values():
        if not action.roles & user.roles or case.status not in action.statuses:
            continue
        if action.stages and case.stage not in action.stages:
            continue
        if action.needs_waiting:
            waiting = _waiting_messages(case) if waiting is None else waiting
            if action.message not in waiting:
                continue
        if action.single and _running(case, action.single):
            continue
        offered.append(action)
    return offered
