"""Claim, unclaim and reassign work items; drafts. Each flushes; the caller commits (one transaction)."""

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import select, update

from app.audit.log import record
from app.auth.models import JurisdictionNode, User
from app.auth.roles import Role
from app.auth.scope import node_in_scope
from app.core.clock import now
from app.engine.models import WorkItem, WorkItemStatus
from app.extensions import db
from app.inbox.models import TaskDraft


class InboxError(Exception):
    """A claim or assignment that cannot be done; the message is shown to the user as it is."""


@dataclass(frozen=True)
class BulkResult:
    done: list[int]
    failed: dict[int, str]


def _audit(type_: str, item: WorkItem, actor: User, **payload) -> None:
    record(
        type_,
        actor_id=actor.id,
        case_id=item.case_id,
        instance_id=item.instance_id,
        jurisdiction_id=item.jurisdiction_id,
        payload={"work_item_id": item.id, "task": item.name, **payload},
    )


def _holder_name(item_id: int) -> str:
    name = db.session.scalar(
        select(User.display_name).join(WorkItem, WorkItem.assignee_id == User.id).where(WorkItem.id == item_id)
    )
    return name or "?"


def may_work_on(user: User, item: WorkItem) -> bool:
    """The user may fill in this task's form: it is theirs, or nobody's and for one of their roles here."""
    if item.status != WorkItemStatus.OPEN:
        return False
    if item.assignee_id == user.id:
        return True
    return item.assignee_id is None and item.candidate_role in user.roles and node_in_scope(item.jurisdiction_id, user)


def claim(item: WorkItem, user: User) -> None:
    """Take an open, unassigned item for one of the user's roles.

    One conditional UPDATE decides a race: of two people claiming at once exactly one gets the row;
    the other is told who has it.
    """
    if item.candidate_role and item.candidate_role not in user.roles:
        raise InboxError(_("This task is for another role."))
    result = db.session.execute(
        update(WorkItem)
        .where(WorkItem.id == item.id, WorkItem.status == WorkItemStatus.OPEN, WorkItem.assignee_id.is_(None))
        .values(assignee_id=user.id, claimed_at=now())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.refresh(item)
        if item.status != WorkItemStatus.OPEN:
            raise InboxError(_("This task is already done."))
        if item.assignee_id == user.id:
            return
        raise InboxError(_("%(name)s has already claimed this task.", name=_holder_name(item.id)))
    db.session.refresh(item)
    _audit("task_claimed", item, user)


def unclaim(item: WorkItem, user: User) -> None:
    """Give an item back to the pool (its assignee, or a supervisor over it)."""
    if item.assignee_id is None:
        return
    if item.assignee_id != user.id and Role.SUPERVISOR not in user.roles:
        raise InboxError(_("Only the person who has this task, or a supervisor, can release it."))
    previous = item.assignee_id
    item.assignee_id = None
    item.claimed_at = None
    _audit("task_unclaimed", item, user, previous_assignee_id=previous)
    db.session.flush()


def eligible_assignees(item: WorkItem) -> list[User]:
    """Active users holding the item's role whose jurisdiction covers the item's node."""
    node = db.session.get(JurisdictionNode, item.jurisdiction_id)
    ancestors = [int(part) for part in node.path.strip("/").split("/")] if node else []
    query = select(User).where(User.active.is_(True), User.jurisdiction_id.in_(ancestors)).order_by(User.display_name)
    users = db.session.scalars(query).all()
    return [u for u in users if item.candidate_role is None or item.candidate_role in u.roles]


def reassign(item: WorkItem, to_user: User, reason: str, actor: User) -> None:
    """Hand an item to someone else, with a reason (supervisors, or the current assignee)."""
    reason = (reason or "").strip()
    if not reason:
        raise InboxError(_("Give a reason for the reassignment."))
    if item.status != WorkItemStatus.OPEN:
        raise InboxError(_("This task is already done."))
    if Role.SUPERVISOR not in actor.roles and item.assignee_id != actor.id:
        raise InboxError(_("Only a supervisor or the person who has this task can reassign it."))
    if to_user.id not in {u.id for u in eligible_assignees(item)}:
        raise InboxError(_("%(name)s cannot take this task (role or jurisdiction).", name=to_user.display_name))
    previous = item.assignee_id
    item.assignee_id = to_user.id
    item.claimed_at = now()
    _audit("task_reassigned", item, actor, previous_assignee_id=previous, assignee_id=to_user.id, reason=reason[:500])
    db.session.flush()


def bulk(items: list[WorkItem], action, *args) -> BulkResult:
    """Apply ``action(item, *args)`` to each item; one failing item does not stop the others."""
    done, failed = [], {}
    for item in items:
        try:
            with db.session.begin_nested():
                action(item, *args)
            done.append(item.id)
        except InboxError as exc:
            failed[item.id] = str(exc)
    return BulkResult(done, failed)


def save_draft(item: WorkItem, user: User, data: dict) -> TaskDraft:
    draft = db.session.scalars(
        select(TaskDraft).where(TaskDraft.work_item_id == item.id, TaskDraft.user_id == user.id)
    ).first()
    if draft is None:
        draft = TaskDraft(work_item_id=item.id, user_id=user.id)
        db.session.add(draft)
    draft.data = data
    draft.saved_at = now()
    db.session.flush()
    return draft


def load_draft(item_id: int, user: User) -> TaskDraft | None:
    return db.session.scalars(
        select(TaskDraft).where(TaskDraft.work_item_id == item_id, TaskDraft.user_id == user.id)
    ).first()


def delete_drafts(item_id: int) -> None:
    for draft in db.session.scalars(select(TaskDraft).where(TaskDraft.work_item_id == item_id)):
        db.session.delete(draft)
