"""Inbox lists and counts: indexed reads of work_item joined to its case, never a workflow replay."""

from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from sqlalchemy import Select, and_, func, or_, select, union_all
from sqlalchemy.orm import aliased

from app.auth.models import User
from app.auth.roles import Role
from app.auth.scope import in_scope
from app.cases.models import Case
from app.core.clock import now
from app.core.search import url_args
from app.core.templating import LOCAL_TZ
from app.engine.models import WorkItem, WorkItemStatus
from app.extensions import db


class View(StrEnum):
    MINE = "mine"  # assigned to me
    CLAIMABLE = "claimable"  # nobody's yet, for one of my roles, in my jurisdiction
    OVERDUE = "overdue"  # past due among what I can act on (supervisors: everything in their jurisdiction)
    WEEK = "week"  # due in the next 7 days among what I can act on
    COMPLETED = "completed"  # completed by me in the last 30 days
    TEAM = "team"  # supervisors: all open work in their jurisdiction


SORTS = {
    "due": (WorkItem.due_at.asc().nulls_last(), WorkItem.id.asc()),
    "-due": (WorkItem.due_at.desc().nulls_last(), WorkItem.id.desc()),
    "created": (WorkItem.created_at.desc(), WorkItem.id.desc()),
    "person": (Case.person_name.asc(), WorkItem.id.asc()),
    "task": (WorkItem.name.asc(), WorkItem.id.asc()),
}
COMPLETED_DAYS = 30


@dataclass
class InboxFilter:
    """What the inbox shows: a view plus server-side filters, sorting and the page (all from the query string)."""

    view: str = View.MINE.value
    node: int | None = None
    stage: str | None = None
    task: str | None = None
    tier: str | None = None
    due_from: date | None = None
    due_to: date | None = None
    q: str | None = None
    sort: str = "due"
    page: int = 1

    @classmethod
    def from_args(cls, args) -> "InboxFilter":
        """Read the filter from request args; values that do not parse are dropped, not errors."""
        f = cls()
        f.view = args.get("view") if args.get("view") in View.__members__.values() else View.MINE.value
        f.node = _int(args.get("node"))
        f.stage = args.get("stage") or None
        f.task = args.get("task") or None
        f.tier = args.get("tier") or None
        f.due_from = _date(args.get("due_from"))
        f.due_to = _date(args.get("due_to"))
        f.q = (args.get("q") or "").strip()[:100] or None
        f.sort = args.get("sort") if args.get("sort") in SORTS else "due"
        f.page = max(_int(args.get("page")) or 1, 1)
        return f

    def params(self, **changes) -> dict:
        """All parameters (blank ones left out), with ``changes`` applied; includes the search term."""
        values = vars(self) | changes  # the fields, shallow (asdict() deep-copies: 3x slower, ~25 links a page)
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in values.items() if v not in (None, "")}

    def to_args(self, **changes) -> dict:
        """Query-string parameters for links: the search term is never in a URL (app.core.search)."""
        return url_args(self.params(**changes), self.q)

    def saved_params(self) -> dict:
        """What a saved filter keeps (in the database): everything but the page."""
        return {k: v for k, v in self.params().items() if k != "page"}

    @property
    def active_filters(self) -> int:
        keys = {f.name for f in fields(self)} - {"view", "sort", "page"}
        return sum(1 for k in keys if getattr(self, k) not in (None, ""))


@dataclass(frozen=True)
class InboxRow:
    id: int
    case_id: int
    name: str
    element_id: str
    process_key: str
    candidate_role: str | None
    due_at: datetime | None
    legal_basis: str | None
    created_at: datetime
    completed_at: datetime | None
    assignee_id: int | None
    assignee_name: str | None
    person_name: str
    id_number: str
    stage: str
    tier: str | None
    reference: str

    def is_overdue(self, at: datetime) -> bool:
        return self.completed_at is None and self.due_at is not None and self.due_at < at


@dataclass(frozen=True)
class InboxPage:
    rows: list[InboxRow]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max((self.total + self.page_size - 1) // self.page_size, 1)

    def page_numbers(self, around: int = 2) -> list[int | None]:
        """Page links to show: the first and last pages and those near this one; None marks a gap."""
        shown = sorted({1, 2, self.pages - 1, self.pages} | set(range(self.page - around, self.page + around + 1)))
        numbers: list[int | None] = []
        for p in (p for p in shown if 1 <= p <= self.pages):
            if numbers and p - numbers[-1] > 1:
                numbers.append(None)
            numbers.append(p)
        return numbers


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _date(value) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _day_start(day: date) -> datetime:
    """Midnight in China of ``day``, as an aware datetime (due dates are stored in UTC)."""
    return datetime.combine(day, time.min, tzinfo=LOCAL_TZ)


def is_supervisor(user: User) -> bool:
    return Role.SUPERVISOR in user.roles


def _assigned(user: User):
    return and_(WorkItem.status == WorkItemStatus.OPEN, WorkItem.assignee_id == user.id)


def _claimable(user: User):
    return and_(
        WorkItem.status == WorkItemStatus.OPEN,
        WorkItem.assignee_id.is_(None),
        WorkItem.candidate_role.in_(sorted(user.roles)),
        in_scope(WorkItem.jurisdiction_id, user),
    )


def _area(user: User):
    return and_(WorkItem.status == WorkItemStatus.OPEN, in_scope(WorkItem.jurisdiction_id, user))


def _due(view: str, at: datetime):
    if view == View.OVERDUE:
        return WorkItem.due_at < at
    return and_(WorkItem.due_at >= at, WorkItem.due_at < at + timedelta(days=7))


def _completed(user: User, at: datetime):
    return and_(
        WorkItem.status == WorkItemStatus.COMPLETED,
        WorkItem.completed_by_id == user.id,
        WorkItem.completed_at >= at - timedelta(days=COMPLETED_DAYS),
    )


def view_condition(user: User, view: str, at: datetime):
    """The WHERE clause of one view for one user (scope included).

    "What I can act on" is mine OR claimable; the two never overlap, and an OR across them defeats every
    index, so overdue/week select the ids of each half separately (bench/inbox.py: 140 ms → 3 ms).
    """
    if view == View.MINE:
        return _assigned(user)
    if view == View.CLAIMABLE:
        return _claimable(user)
    if view in (View.OVERDUE, View.WEEK):
        if is_supervisor(user):
            return and_(_area(user), _due(view, at))
        halves = union_all(
            select(WorkItem.id).where(_assigned(user), _due(view, at)),
            select(WorkItem.id).where(_claimable(user), _due(view, at)),
        )
        return WorkItem.id.in_(halves)
    if view == View.COMPLETED:
        return _completed(user, at)
    if view == View.TEAM and is_supervisor(user):
        return _area(user)
    return WorkItem.id.is_(None)  # a view this user does not have: empty


def _filtered(query: Select, user: User, f: InboxFilter) -> Select:
    if f.node:
        from app.auth.models import JurisdictionNode

        node = db.session.get(JurisdictionNode, f.node)
        if node is not None:
            below = select(JurisdictionNode.id).where(JurisdictionNode.path.startswith(node.path))
            query = query.where(WorkItem.jurisdiction_id.in_(below))
    if f.stage:
        query = query.where(Case.stage == f.stage)
    if f.task:
        query = query.where(WorkItem.element_id == f.task)
    if f.tier:
        query = query.where(Case.tier.is_(None) if f.tier == "none" else Case.tier == f.tier)
    if f.due_from:
        query = query.where(WorkItem.due_at >= _day_start(f.due_from))
    if f.due_to:
        query = query.where(WorkItem.due_at < _day_start(f.due_to + timedelta(days=1)))
    if f.q:
        like = f"%{f.q.replace('%', '').replace('_', '')}%"
        query = query.where(or_(Case.person_name.ilike(like), Case.id_number.ilike(like), Case.reference.ilike(like)))
    return query


def _needs_case(f: InboxFilter) -> bool:
    return bool(f.stage or f.tier or f.q or f.sort == "person")


def inbox_page(
    user: User, f: InboxFilter, page_size: int = 25, at: datetime | None = None, total: int | None = None
) -> InboxPage:
    """One page of a view, filtered and sorted, with the total for the pager.

    ``total``: the view's unfiltered count when the caller has it already (view_counts), saving a count.
    """
    at = at or now()
    condition = view_condition(user, f.view, at)
    if total is None or f.active_filters:
        count_query = select(func.count()).select_from(WorkItem).where(condition)
        if _needs_case(f):
            count_query = count_query.join(Case, Case.id == WorkItem.case_id)
        total = db.session.scalar(_filtered(count_query, user, f))

    assignee = aliased(User)
    order = (WorkItem.completed_at.desc(), WorkItem.id.desc()) if f.view == View.COMPLETED else SORTS[f.sort]
    pages = max((total + page_size - 1) // page_size, 1)
    page = min(f.page, pages)
    query = (
        select(
            WorkItem.id,
            WorkItem.case_id,
            WorkItem.name,
            WorkItem.element_id,
            WorkItem.process_key,
            WorkItem.candidate_role,
            WorkItem.due_at,
            WorkItem.legal_basis,
            WorkItem.created_at,
            WorkItem.completed_at,
            WorkItem.assignee_id,
            assignee.display_name,
            Case.person_name,
            Case.id_number,
            Case.stage,
            Case.tier,
            Case.reference,
        )
        .join(Case, Case.id == WorkItem.case_id)
        .outerjoin(assignee, assignee.id == WorkItem.assignee_id)
        .where(condition)
        .order_by(*order)
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    rows = [InboxRow(*row) for row in db.session.execute(_filtered(query, user, f))]
    return InboxPage(rows=rows, total=total, page=page, page_size=page_size)


def views_for(user: User) -> list[View]:
    views = [View.MINE, View.CLAIMABLE, View.OVERDUE, View.WEEK, View.COMPLETED]
    return [*views, View.TEAM] if is_supervisor(user) else views


def _tally(condition, at: datetime) -> tuple[int, int, int]:
    """(all, overdue, due within 7 days) of the open items matching ``condition``, in one indexed pass."""
    n, overdue, week = db.session.execute(
        select(
            func.count(),
            func.count().filter(_due(View.OVERDUE, at)),
            func.count().filter(_due(View.WEEK, at)),
        )
        .select_from(WorkItem)
        .where(condition)
    ).one()
    return n, overdue, week


def view_counts(user: User, at: datetime | None = None) -> dict[str, int]:
    """How many items each of the user's views holds (unfiltered): three or four indexed counts in all."""
    at = at or now()
    mine = _tally(_assigned(user), at)
    claimable = _tally(_claimable(user), at)
    completed = db.session.scalar(select(func.count()).select_from(WorkItem).where(_completed(user, at)))
    counts = {
        View.MINE.value: mine[0],
        View.CLAIMABLE.value: claimable[0],
        View.OVERDUE.value: mine[1] + claimable[1],
        View.WEEK.value: mine[2] + claimable[2],
        View.COMPLETED.value: completed,
    }
    if is_supervisor(user):
        team = _tally(_area(user), at)
        counts |= {View.TEAM.value: team[0], View.OVERDUE.value: team[1], View.WEEK.value: team[2]}
    return counts


def filter_choices(user: User) -> dict[str, list]:
    """Values offered in the task filter: the user tasks of the deployed processes (not a scan of work items)."""
    from app.engine.specs import latest_definitions

    tasks = {}
    for definition in latest_definitions():
        for element_id, name in definition.user_tasks or []:
            tasks.setdefault(element_id, name)
    return {"tasks": sorted(tasks.items(), key=lambda t: t[1])}
