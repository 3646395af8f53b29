"""Reads for the designer pages: the library, versions with instance counts, drafts, requests, migration choices."""

from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree
from sqlalchemy import func, select, union

from app import engine
from app.auth.models import JurisdictionNode, User
from app.auth.scope import scope_node_ids
from app.designer.models import DefinitionDraft, DeployRequest, MigrationJob, RequestStatus
from app.engine.models import (
    DefinitionKind,
    MessageSubscription,
    ProcessDefinition,
    ProcessInstance,
    Timer,
    TimerStatus,
    WorkItem,
    WorkItemStatus,
)
from app.extensions import db

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
#: Elements an instance can wait at (and so be mapped from or to in a migration).
WAIT_TAGS = ("userTask", "manualTask", "intermediateCatchEvent", "boundaryEvent", "callActivity", "subProcess")
#: Instances one migration job may take (a larger set is split by filtering, e.g. by jurisdiction).
MAX_JOB_INSTANCES = 20_000
#: Instances a dry run checks one by one within a request (about 1-2 ms each); the rest are summarised by where they
#: wait, read from the projected rows.
MAX_DRY_RUN = 1_000


@dataclass
class VersionRow:
    definition: ProcessDefinition
    deployed_by: str
    #: Instance status value -> count (all jurisdictions: counts are not personal data).
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def running(self) -> int:
        return sum(self.counts.get(s, 0) for s in ("running", "incident", "suspended"))


@dataclass
class LibraryRow:
    key: str
    kind: DefinitionKind
    name: str
    latest: ProcessDefinition
    versions: int
    running: int


def _instance_counts(definition_ids: list[int] | None = None) -> dict[int, dict[str, int]]:
    query = select(ProcessInstance.definition_id, ProcessInstance.status, func.count()).group_by(
        ProcessInstance.definition_id, ProcessInstance.status
    )
    if definition_ids is not None:
        query = query.where(ProcessInstance.definition_id.in_(definition_ids))
    counts: dict[int, dict[str, int]] = {}
    for definition_id, status, count in db.session.execute(query):
        counts.setdefault(definition_id, {})[status.value] = count
    return counts


def library() -> list[LibraryRow]:
    """Every deployed process and decision: newest version, how many versions, instances not yet finished."""
    definitions = db.session.scalars(
        select(ProcessDefinition).order_by(ProcessDefinition.kind, ProcessDefinition.key, ProcessDefinition.version)
    ).all()
    counts = _instance_counts()
    rows: dict[str, LibraryRow] = {}
    for definition in definitions:
        running = sum(counts.get(definition.id, {}).get(s, 0) for s in ("running", "incident", "suspended"))
        row = rows.get(definition.key)
        if row is None:
            rows[definition.key] = LibraryRow(definition.key, definition.kind, definition.name, definition, 1, running)
        else:
            row.latest, row.name = definition, definition.name
            row.versions += 1
            row.running += running
    return list(rows.values())


def user_names(ids: set[int | None]) -> dict[int, str]:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return dict(db.session.execute(select(User.id, User.display_name).where(User.id.in_(ids))).all())


def versions(key: str) -> list[VersionRow]:
    """The versions of one process or decision, newest first, with who deployed them and their instances."""
    definitions = db.session.scalars(
        select(ProcessDefinition).where(ProcessDefinition.key == key).order_by(ProcessDefinition.version.desc())
    ).all()
    counts = _instance_counts([d.id for d in definitions])
    names = user_names({d.deployed_by_id for d in definitions})
    return [VersionRow(d, names.get(d.deployed_by_id, "—"), counts.get(d.id, {})) for d in definitions]


def definition_or_none(definition_id: int) -> ProcessDefinition | None:
    return db.session.get(ProcessDefinition, definition_id)


def drafts_of(user: User) -> list[DefinitionDraft]:
    return list(
        db.session.scalars(
            select(DefinitionDraft)
            .where(DefinitionDraft.owner_id == user.id)
            .order_by(DefinitionDraft.updated_at.desc())
        )
    )


def requests(status: RequestStatus | None = None, limit: int = 100) -> list[DeployRequest]:
    query = select(DeployRequest).order_by(DeployRequest.requested_at.desc()).limit(limit)
    if status is not None:
        query = query.where(DeployRequest.status == status)
    return list(db.session.scalars(query))


def pending_requests() -> int:
    return db.session.scalar(
        select(func.count()).select_from(DeployRequest).where(DeployRequest.status == RequestStatus.PENDING)
    )


def recent_jobs(key: str | None = None, limit: int = 20) -> list[MigrationJob]:
    query = select(MigrationJob).order_by(MigrationJob.created_at.desc()).limit(limit)
    if key is not None:
        query = query.where(MigrationJob.process_key == key)
    return list(db.session.scalars(query))


# --- migration --------------------------------------------------------------------------------------------------


def wait_elements(xml: str) -> list[tuple[str, str]]:
    """(id, name) of the elements of a BPMN file an instance can wait at, in document order."""
    root = etree.fromstring(xml.encode("utf-8"), etree.XMLParser(resolve_entities=False))
    found = []
    for tag in WAIT_TAGS:
        found.extend(root.iter(f"{{{BPMN_NS}}}{tag}"))
    found.sort(key=lambda el: el.sourceline or 0)
    return [(el.get("id"), el.get("name") or el.get("id")) for el in found]


@dataclass(frozen=True)
class InstanceFilter:
    node_id: int | None = None
    waiting_at: str | None = None
    started_from: datetime | None = None
    started_to: datetime | None = None

    def as_dict(self) -> dict:
        return {
            "node_id": self.node_id,
            "waiting_at": self.waiting_at,
            "started_from": self.started_from.isoformat() if self.started_from else None,
            "started_to": self.started_to.isoformat() if self.started_to else None,
        }


def migratable_instances(definition_id: int, chosen: InstanceFilter, limit: int = MAX_JOB_INSTANCES) -> list[int]:
    """Ids of the version's running instances matching the filter (jurisdiction: the node and below, within the
    user's scope), oldest first."""
    nodes = scope_node_ids()
    if chosen.node_id:
        node = db.session.get(JurisdictionNode, chosen.node_id)
        below = select(JurisdictionNode.id).where(JurisdictionNode.path.startswith(node.path)) if node else None
        nodes = list(db.session.scalars(below.where(JurisdictionNode.id.in_(nodes)))) if below is not None else []
    return engine.instances_of(
        definition_id,
        jurisdiction_ids=nodes,
        waiting_at=chosen.waiting_at,
        started_after=chosen.started_from,
        started_before=chosen.started_to,
        limit=limit,
    )


def waiting_counts(instance_ids: list[int]) -> dict[str, int]:
    """Element id -> how many of the instances wait there (open task, waiting timer or message catch)."""
    counts: dict[str, int] = {}
    for first in range(0, len(instance_ids), 1000):
        chunk = instance_ids[first : first + 1000]
        waits = union(
            select(WorkItem.instance_id, WorkItem.element_id).where(
                WorkItem.instance_id.in_(chunk), WorkItem.status == WorkItemStatus.OPEN
            ),
            select(Timer.instance_id, Timer.element_id).where(
                Timer.instance_id.in_(chunk), Timer.status == TimerStatus.WAITING
            ),
            select(MessageSubscription.instance_id, MessageSubscription.element_id).where(
                MessageSubscription.instance_id.in_(chunk)
            ),
        ).subquery()
        for element_id, count in db.session.execute(
            select(waits.c.element_id, func.count()).group_by(waits.c.element_id)
        ):
            counts[element_id] = counts.get(element_id, 0) + count
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
