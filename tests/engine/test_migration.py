"""Moving running instances to another deployed version: dry run, execution, mapping, timers, claims, refusals."""

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from app import engine
from app.audit.models import AuditEvent
from app.core.db import transaction
from app.engine.models import (
    InstanceStatus,
    ProcessDefinition,
    ProcessInstance,
    SpecBundle,
    Timer,
    TimerStatus,
    WorkItem,
    WorkItemStatus,
)
from app.extensions import db
from app.inbox.models import TaskDraft
from app.inbox.operations import claim, save_draft
from tests.conftest import FIXTURES

MIGRATION = FIXTURES / "migration"
V1 = (MIGRATION / "check_v1.bpmn").read_text()
V2 = (MIGRATION / "check_v2.bpmn").read_text()
#: v1 with a timer on record_check: the open task gets boundary events it did not have.
V1_CHECK_TIMER = V1.replace(
    '<bpmn:sequenceFlow id="f3" sourceRef="record_check" targetRef="review"/>',
    '<bpmn:sequenceFlow id="f3" sourceRef="record_check" targetRef="review"/>'
    '<bpmn:boundaryEvent id="check_overdue" attachedToRef="record_check" cancelActivity="false">'
    '<bpmn:timerEventDefinition><bpmn:timeDuration>"P5D"</bpmn:timeDuration></bpmn:timerEventDefinition>'
    "</bpmn:boundaryEvent>"
    '<bpmn:sequenceFlow id="f_chase" sourceRef="check_overdue" targetRef="chase_check"/>'
    '<bpmn:userTask id="chase_check" name="Chase the check"/>'
    '<bpmn:sequenceFlow id="f_chase2" sourceRef="chase_check" targetRef="chase_end"/>'
    '<bpmn:endEvent id="chase_end"/>',
).replace(
    "<bpmn:flowNodeRef>escalate</bpmn:flowNodeRef>",
    "<bpmn:flowNodeRef>escalate</bpmn:flowNodeRef><bpmn:flowNodeRef>chase_check</bpmn:flowNodeRef>",
)


def deploy(text: str, name: str = "check.bpmn") -> ProcessDefinition:
    with transaction():
        result = engine.deploy([engine.SourceFile(name, text)])
    [definition] = result.deployed
    return definition


def start(case, key="check"):
    with transaction():
        return engine.start_process(key, case_id=case.id, jurisdiction_id=case.jurisdiction_id)


def start_many(cases, count: int, per_transaction: int = 100) -> list[int]:
    """``count`` instances spread over ``cases``, started through the engine, one transaction per 100."""
    ids = []
    for first in range(0, count, per_transaction):
        with transaction():
            for n in range(first, min(count, first + per_transaction)):
                case = cases[n % len(cases)]
                info = engine.start_process("check", case_id=case.id, jurisdiction_id=case.jurisdiction_id)
                ids.append(info.id)
    return ids


def _columns(row, model, **override) -> dict:
    values = {c.key: getattr(row, c.key) for c in model.__table__.columns if c.key != "id"}
    return {**values, **override}


def clone(instance_ids: list[int], copies: int) -> list[int]:
    """Copies of started instances with their work items and timers, written in bulk: volume without the cost of
    starting each one (task ids only need to be unique within an instance)."""
    sources = db.session.scalars(select(ProcessInstance).where(ProcessInstance.id.in_(instance_ids))).all()
    items = db.session.scalars(select(WorkItem).where(WorkItem.instance_id.in_(instance_ids))).all()
    timers = db.session.scalars(select(Timer).where(Timer.instance_id.in_(instance_ids))).all()
    with transaction():
        rows = [_columns(source, ProcessInstance) for _ in range(copies) for source in sources]
        new_ids = db.session.scalars(
            insert(ProcessInstance).returning(ProcessInstance.id, sort_by_parameter_order=True), rows
        ).all()
        copy_of = {}
        for n, new_id in enumerate(new_ids):
            copy_of.setdefault(sources[n % len(sources)].id, []).append(new_id)
        db.session.execute(
            insert(WorkItem), [_columns(i, WorkItem, instance_id=c) for i in items for c in copy_of[i.instance_id]]
        )
        db.session.execute(
            insert(Timer), [_columns(t, Timer, instance_id=c) for t in timers for c in copy_of[t.instance_id]]
        )
    return list(new_ids)


def item_at(instance_id: int, element_id: str | None = None) -> WorkItem:
    query = select(WorkItem).where(WorkItem.instance_id == instance_id, WorkItem.status == WorkItemStatus.OPEN)
    if element_id:
        query = query.where(WorkItem.element_id == element_id)
    return db.session.scalars(query).one()


def complete(item: WorkItem, data=None):
    with transaction():
        return engine.complete_work_item(item.id, data or {})


def instance(instance_id: int) -> ProcessInstance:
    db.session.expire_all()
    return db.session.get(ProcessInstance, instance_id)


def migrated_events() -> list[AuditEvent]:
    return db.session.scalars(select(AuditEvent).where(AuditEvent.type == "instance_migrated")).all()


def rows_of(instance_id: int):
    """Everything the engine keeps about an instance, to compare before and after."""
    db.session.expire_all()
    found = db.session.get(ProcessInstance, instance_id)
    items = db.session.execute(
        select(WorkItem.id, WorkItem.task_id, WorkItem.element_id, WorkItem.status, WorkItem.assignee_id)
        .where(WorkItem.instance_id == instance_id)
        .order_by(WorkItem.id)
    ).all()
    timers = db.session.execute(
        select(Timer.id, Timer.task_id, Timer.due_at, Timer.status).where(Timer.instance_id == instance_id)
    ).all()
    return found.state, found.lock_version, found.definition_id, found.bundle_sha256, items, timers


# --- dry run and execution at scale -------------------------------------------------------------------------------


def test_dry_run_and_execute_over_1000_instances_one_unmappable(deploy_fixtures, case_factory, users, clock):
    v1 = deploy(V1)
    cases = [case_factory() for _ in range(5)]
    began = time.perf_counter()
    ids = start_many(cases, 100)
    ids += clone(ids, 9)
    started = time.perf_counter() - began
    stuck = start(cases[0]).id
    complete(item_at(stuck, "intake"))  # now waiting at record_check, which v2 removes
    claimed = [item_at(i, "intake") for i in ids[:5]]
    with transaction():
        for item in claimed:
            claim(item, users["caseworker"])
        save_draft(claimed[0], users["caseworker"], {"notes": "half written"})
    claims = {item.id: (item.assignee_id, item.claimed_at) for item in claimed}
    clock.advance(days=3)
    v2 = deploy(V2)
    everyone = engine.instances_of(v1.id)
    assert len(everyone) == 1001 and stuck in everyone

    audit_before = db.session.scalar(select(func.count()).select_from(AuditEvent))
    bundles_before = db.session.scalar(select(func.count()).select_from(SpecBundle))
    stuck_before = rows_of(stuck)
    locks = {i: instance(i).lock_version for i in ids[:3]}
    began = time.perf_counter()
    checks = engine.check_migration(everyone, v2.id)
    checked = time.perf_counter() - began

    by_id = {c.instance_id: c for c in checks}
    assert sum(c.can_move for c in checks) == 1000
    blocked = by_id[stuck]
    assert not blocked.can_move
    assert blocked.reason == (
        "waiting at 'record_check', which version 2 does not have; map it to an element of version 2"
    )
    assert blocked.missing == ["record_check"] and blocked.waiting == ["record_check"]
    sample = by_id[ids[0]]
    assert (sample.from_version, sample.to_version) == (1, 2)
    assert sample.waiting == ["intake", "intake_overdue"]
    assert "open task intake kept" in sample.changes
    assert "timer intake_overdue kept, due 2026-03-12 01:00 UTC" in sample.changes
    # a dry run writes nothing: no audit event, no bundle, no instance change
    assert not (db.session.new or db.session.dirty or db.session.deleted)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == audit_before
    assert db.session.scalar(select(func.count()).select_from(SpecBundle)) == bundles_before
    assert rows_of(stuck) == stuck_before
    assert instance(ids[0]).definition_id == v1.id

    began = time.perf_counter()
    results = engine.migrate_instances(everyone, v2.id, actor_id=users["designer"].id)
    executed = time.perf_counter() - began
    print(f"\n1,000 instances: start {started:.1f} s, dry run {checked:.1f} s, execute {executed:.1f} s")

    failed = [r for r in results if not r.can_move]
    assert [r.instance_id for r in failed] == [stuck]
    assert "record_check" in failed[0].reason and "version 2" in failed[0].reason
    assert rows_of(stuck) == stuck_before  # state, lock version, version, work items, timers: untouched
    moved = [instance(i) for i in ids[:3]]
    assert {m.definition_id for m in moved} == {v2.id}
    assert [m.lock_version for m in moved] == [locks[m.id] + 1 for m in moved]
    assert (
        db.session.scalar(
            select(func.count()).where(ProcessInstance.definition_id == v2.id, ProcessInstance.id.in_(ids))
        )
        == 1000
    )
    events = migrated_events()
    assert len(events) == 1000 and len({e.instance_id for e in events}) == 1000
    assert events[0].actor_id == users["designer"].id
    payload = events[0].payload
    assert (payload["from_version"], payload["to_version"]) == (1, 2)
    assert (payload["from_definition_id"], payload["to_definition_id"]) == (v1.id, v2.id)
    assert payload["mapping"] == {} and "open task intake kept" in payload["changes"]
    # claims and drafts stay on the same work items, which keep their task ids
    for item_id, (assignee_id, claimed_at) in claims.items():
        item = db.session.get(WorkItem, item_id)
        assert item.status == WorkItemStatus.OPEN
        assert (item.assignee_id, item.claimed_at) == (assignee_id, claimed_at)
    assert db.session.scalars(select(TaskDraft.work_item_id)).all() == [claimed[0].id]
    # timers kept their due time: nothing restarted
    due = db.session.scalars(
        select(Timer.due_at).where(Timer.status == TimerStatus.WAITING, Timer.instance_id.in_(ids)).distinct()
    ).all()
    assert due == [clock.now() - timedelta(days=3) + timedelta(days=10)]
    assert engine.instances_of(v1.id) == [stuck]


# --- mapping ---------------------------------------------------------------------------------------------------


def test_mapping_moves_a_task_whose_element_was_removed_with_its_claim(deploy_fixtures, case_factory, users):
    v1 = deploy(V1)
    info = start(case_factory())
    complete(item_at(info.id, "intake"))
    item = item_at(info.id, "record_check")
    with transaction():
        claim(item, users["caseworker"])
    v2 = deploy(V2)

    [check] = engine.check_migration([info.id], v2.id)
    assert not check.can_move and check.missing == ["record_check"]
    [check] = engine.check_migration([info.id], v2.id, {"record_check": "review"})
    assert check.can_move
    assert "task record_check mapped to review" in check.changes
    assert "task review: candidate_role, lane, name updated from the new version" in check.changes

    with transaction():
        result = engine.migrate_instance(info.id, v2.id, {"record_check": "review"}, actor_id=users["designer"].id)
    assert result.changes == check.changes
    moved = db.session.get(WorkItem, item.id)
    assert moved.status == WorkItemStatus.OPEN and moved.element_id == "review"
    assert (moved.name, moved.candidate_role) == ("Police review of the intake", "police")
    assert moved.assignee_id == users["caseworker"].id
    [event] = migrated_events()
    assert event.payload["mapping"] == {"record_check": "review"}
    assert instance(info.id).definition_id == v2.id and v1.id != v2.id

    complete(moved)
    assert item_at(info.id).element_id == "sign_off"  # the rest runs on version 2


def test_mapping_to_an_element_the_target_lacks_is_refused(deploy_fixtures, case_factory):
    deploy(V1)
    info = start(case_factory())
    complete(item_at(info.id, "intake"))
    v2 = deploy(V2)
    [check] = engine.check_migration([info.id], v2.id, {"record_check": "nowhere"})
    assert check.reason == "the mapping sends 'record_check' to 'nowhere', which version 2 does not have"
    with pytest.raises(engine.Conflict, match="nowhere"):
        with transaction():
            engine.migrate_instance(info.id, v2.id, {"record_check": "nowhere"})


def test_finished_steps_the_target_lacks_do_not_block(deploy_fixtures, case_factory):
    deploy(V1)
    info = start(case_factory())
    complete(item_at(info.id, "intake"))
    complete(item_at(info.id, "record_check"))
    v2 = deploy(V2)
    with transaction():
        result = engine.migrate_instance(info.id, v2.id)
    assert any(line.startswith("finished step record_check is not in version 2") for line in result.changes)
    review = item_at(info.id, "review")
    assert review.name == "Police review of the intake"
    complete(review)
    assert item_at(info.id).element_id == "sign_off"
    assert engine.instance_path(info.id).completed == {"start": 1, "intake": 1, "review": 1}


# --- timers ----------------------------------------------------------------------------------------------------


def test_kept_timer_fires_at_its_original_due_time_after_migration(deploy_fixtures, case_factory, clock):
    deploy(V1)
    info = start(case_factory())
    [timer] = db.session.scalars(select(Timer).where(Timer.instance_id == info.id)).all()
    due = timer.due_at
    clock.advance(days=3)
    v2 = deploy(V2)
    with transaction():
        engine.migrate_instance(info.id, v2.id)
    [after] = db.session.scalars(select(Timer).where(Timer.instance_id == info.id)).all()
    assert (after.id, after.due_at, after.status) == (timer.id, due, TimerStatus.WAITING)

    clock.set(due - timedelta(seconds=1))
    with transaction():
        assert engine.fire_due_timers() == 0
    clock.set(due + timedelta(seconds=1))
    with transaction():
        assert engine.fire_due_timers() == 1
    assert item_at(info.id, "escalate").candidate_role == "supervisor"
    assert item_at(info.id, "intake").status == WorkItemStatus.OPEN  # non-interrupting
    fired = db.session.scalars(select(AuditEvent).where(AuditEvent.type == "timer_fired")).all()
    assert [e.payload["element_id"] for e in fired] == ["intake_overdue"]


def test_changed_timer_counts_from_when_the_old_one_started(deploy_fixtures, case_factory, clock):
    deploy(V1)
    info = start(case_factory())
    started = clock.now()
    clock.advance(days=3)
    v2 = deploy(V2.replace('"P10D"', '"P7D"'))
    with transaction():
        result = engine.migrate_instance(info.id, v2.id)
    assert "timer intake_overdue changed: due 2026-03-12 01:00 UTC -> 2026-03-09 01:00 UTC" in result.changes
    [timer] = db.session.scalars(select(Timer).where(Timer.instance_id == info.id)).all()
    assert timer.due_at == started + timedelta(days=7)


def test_boundary_events_added_around_an_open_task_keep_its_work_item_claim_and_draft(
    deploy_fixtures, case_factory, users, clock
):
    deploy(V1)
    info = start(case_factory())
    complete(item_at(info.id, "intake"))
    item = item_at(info.id, "record_check")
    with transaction():
        claim(item, users["caseworker"])
        save_draft(item, users["caseworker"], {"notes": "draft"})
    old_task_id, claimed_at = item.task_id, item.claimed_at
    clock.advance(days=1)
    v2 = deploy(V1_CHECK_TIMER)

    [check] = engine.check_migration([info.id], v2.id)
    assert check.can_move, check.reason
    with transaction():
        result = engine.migrate_instance(info.id, v2.id)
    assert result.changes == check.changes
    assert (
        "open task record_check rebuilt with the boundary events of version 2 (its work item and claim are kept)"
        in result.changes
    )
    assert "timer check_overdue started (new in version 2), due 2026-03-08 01:00 UTC" in result.changes
    db.session.expire_all()
    rebuilt = db.session.get(WorkItem, item.id)
    assert rebuilt.task_id != old_task_id and rebuilt.status == WorkItemStatus.OPEN
    assert (rebuilt.assignee_id, rebuilt.claimed_at) == (users["caseworker"].id, claimed_at)
    assert db.session.scalars(select(TaskDraft.work_item_id)).all() == [item.id]
    assert db.session.scalar(select(func.count()).where(WorkItem.instance_id == info.id)) == 2  # no new item
    [timer] = db.session.scalars(
        select(Timer).where(Timer.instance_id == info.id, Timer.status == TimerStatus.WAITING)
    ).all()
    assert (timer.element_id, timer.due_at) == ("check_overdue", clock.now() + timedelta(days=5))

    clock.advance(days=5, seconds=1)
    with transaction():
        assert engine.fire_due_timers() == 1
    assert item_at(info.id, "chase_check").candidate_role == "supervisor"
    complete(rebuilt)  # the re-keyed work item completes the rebuilt task
    assert item_at(info.id, "review").name == "Police review"


def test_boundary_events_removed_around_an_open_task_cancel_their_timers(deploy_fixtures, case_factory, clock):
    deploy(V1_CHECK_TIMER)
    info = start(case_factory())
    complete(item_at(info.id, "intake"))
    item = item_at(info.id, "record_check")
    v2 = deploy(V1)
    with transaction():
        result = engine.migrate_instance(info.id, v2.id)
    assert "timer check_overdue removed (not in version 2)" in result.changes
    assert db.session.get(WorkItem, item.id).task_id == item.task_id  # the task itself stays
    statuses = db.session.scalars(
        select(Timer.status).where(Timer.instance_id == info.id, Timer.element_id == "check_overdue")
    ).all()
    assert statuses == [TimerStatus.CANCELLED]
    clock.advance(days=30)
    with transaction():
        assert engine.fire_due_timers() == 0
    complete(item)
    assert item_at(info.id).element_id == "review"


def test_changed_due_date_of_an_open_task_counts_from_when_it_opened(deploy_fixtures, case_factory, clock):
    deploy(V1)
    info = start(case_factory())
    item = item_at(info.id, "intake")
    opened = item.created_at
    clock.advance(days=2)
    v2 = deploy(V2.replace('camunda:dueDate="P15D"', 'camunda:dueDate="P20D"'))
    with transaction():
        result = engine.migrate_instance(info.id, v2.id)
    assert "task intake: due_at updated from the new version" in result.changes
    assert db.session.get(WorkItem, item.id).due_at == opened + timedelta(days=20)


# --- messages ----------------------------------------------------------------------------------------------------


def test_waiting_message_event_follows_a_renamed_message(deploy_fixtures, case_factory):
    deploy_fixtures("watch.bpmn")
    case = case_factory()
    info = start(case, "watch")
    watch = (FIXTURES / "watch.bpmn").read_text()
    v2 = deploy(watch.replace('name="violation_recorded"', 'name="violation_seen"'), "watch.bpmn")
    with transaction():
        result = engine.migrate_instance(info.id, v2.id)
    assert result.changes == ["open message event wait kept", "wait now waits for message 'violation_seen'"]
    with transaction():
        assert not engine.send_message(case.id, case.jurisdiction_id, "violation_recorded")
    with transaction():
        assert engine.send_message(case.id, case.jurisdiction_id, "violation_seen", {"kind": "absence"})
    assert item_at(info.id).element_id == "talk"


# --- called processes --------------------------------------------------------------------------------------------


def test_called_process_moves_to_its_latest_version(deploy_fixtures, case_factory):
    deploy_fixtures("tier_rule.dmn", "child.bpmn", "parent.bpmn")
    case = case_factory()
    with transaction():
        info = engine.start_process(
            "parent", case_id=case.id, jurisdiction_id=case.jurisdiction_id, data={"positives": 2}
        )
    assess = item_at(info.id, "assess")
    child = (FIXTURES / "child.bpmn").read_text()
    deploy(
        child.replace('sourceRef="assess" targetRef="end"', 'sourceRef="assess" targetRef="assess2"')
        .replace(
            '<bpmn:endEvent id="end"/>',
            '<bpmn:userTask id="assess2" name="Second look"/>'
            '<bpmn:sequenceFlow id="f3" sourceRef="assess2" targetRef="end"/><bpmn:endEvent id="end"/>',
        )
        .replace(
            "<bpmn:flowNodeRef>assess</bpmn:flowNodeRef>",
            "<bpmn:flowNodeRef>assess</bpmn:flowNodeRef><bpmn:flowNodeRef>assess2</bpmn:flowNodeRef>",
        ),
        "child.bpmn",
    )
    parent_v2 = deploy(
        (FIXTURES / "parent.bpmn").read_text().replace('name="After child"', 'name="After v2"'), "parent.bpmn"
    )
    with transaction():
        result = engine.migrate_instance(info.id, parent_v2.id)
    assert result.changes == ["open call activity call_child kept", "in call_child: open task assess kept"]
    complete(assess)
    complete(item_at(info.id, "assess2"))
    assert item_at(info.id).name == "After v2"


# --- refusals and concurrency ----------------------------------------------------------------------------------


def test_suspended_completed_and_foreign_targets_are_refused(deploy_fixtures, case_factory):
    v1 = deploy(V1)
    suspended, done, fine = (start(case_factory()).id for _ in range(3))
    with transaction():
        engine.suspend_instance(suspended, "detained")
    for element in ("intake", "record_check", "review"):
        complete(item_at(done, element))
    v2 = deploy(V2)
    other = deploy_fixtures("three_tasks.bpmn").deployed[0]

    checks = {c.instance_id: c for c in engine.check_migration([suspended, done, fine], v2.id)}
    assert checks[suspended].reason == "it is suspended; resume it before moving it"
    assert checks[done].reason == "it has completed; only running instances move"
    assert checks[fine].can_move
    [same] = engine.check_migration([fine], v1.id)
    assert same.reason == "it already runs on version 1"
    [foreign] = engine.check_migration([fine], other.id)
    assert foreign.reason == "version 1 of 'three_tasks' is not a version of 'check'"

    before = rows_of(suspended)
    with pytest.raises(engine.NotRunnable, match="suspended"):
        with transaction():
            engine.migrate_instance(suspended, v2.id)
    with pytest.raises(engine.NotRunnable, match="completed"):
        with transaction():
            engine.migrate_instance(done, v2.id)
    with pytest.raises(engine.Conflict, match="already runs on version 1"):
        with transaction():
            engine.migrate_instance(fine, v1.id)
    assert rows_of(suspended) == before
    assert migrated_events() == []


def test_stale_instance_is_not_overwritten(deploy_fixtures, case_factory):
    deploy(V1)
    info = start(case_factory())
    v2 = deploy(V2)
    [check] = engine.check_migration([info.id], v2.id)
    seen = instance(info.id).lock_version
    assert check.can_move
    complete(item_at(info.id, "intake"))  # meanwhile someone completes a task
    after_completion = rows_of(info.id)
    with pytest.raises(engine.Conflict, match="changed since it was checked"):
        with transaction():
            engine.migrate_instance(info.id, v2.id, expected_version=seen)
    assert rows_of(info.id) == after_completion


def _race(app, action, barrier, outcomes):
    with app.app_context():
        barrier.wait()
        try:
            with transaction():
                action()
            outcomes.append(("ok", action.__name__))
        except engine.Conflict:
            outcomes.append(("conflict", action.__name__))
        finally:
            db.session.remove()


def test_migration_racing_a_completion_one_of_them_wins(app, deploy_fixtures, case_factory):
    deploy(V1)
    info = start(case_factory())
    v2 = deploy(V2)
    item_id, seen, target_id = item_at(info.id, "intake").id, instance(info.id).lock_version, v2.id
    db.session.commit()  # and read nothing more: on SQLite an open transaction holds the write lock

    def complete_task():
        engine.complete_work_item(item_id, {}, expected_version=seen)

    def migrate():
        engine.migrate_instance(info.id, target_id, expected_version=seen)

    barrier, outcomes = threading.Barrier(2), []
    threads = [
        threading.Thread(target=_race, args=(app, action, barrier, outcomes)) for action in (complete_task, migrate)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(o[0] for o in outcomes) == ["conflict", "ok"], outcomes
    winner = next(name for result, name in outcomes if result == "ok")
    found = instance(info.id)
    assert found.lock_version == seen + 1
    if winner == "migrate":
        assert found.definition_id == target_id and item_at(info.id).element_id == "intake"
    else:
        assert found.definition.version == 1 and item_at(info.id).element_id == "record_check"


# --- choosing instances -----------------------------------------------------------------------------------------


def test_instances_of_filters_by_status_jurisdiction_element_and_start(deploy_fixtures, case_factory, tree, clock):
    v1 = deploy(V1)
    early = start(case_factory(node=tree["a"])).id
    clock.advance(days=1)
    late_b = start(case_factory(node=tree["b"])).id
    at_check = start(case_factory(node=tree["a"])).id
    complete(item_at(at_check, "intake"))
    with transaction():
        engine.suspend_instance(late_b, "detained")

    assert engine.instances_of(v1.id) == [early, at_check]
    assert engine.instances_of(v1.id, statuses=(InstanceStatus.SUSPENDED,)) == [late_b]
    assert engine.instances_of(v1.id, jurisdiction_ids=[tree["b"].id], statuses=tuple(InstanceStatus)) == [late_b]
    assert engine.instances_of(v1.id, waiting_at="record_check") == [at_check]
    assert engine.instances_of(v1.id, waiting_at="intake_overdue") == [early]
    assert engine.instances_of(v1.id, started_before=clock.now() - timedelta(hours=1)) == [early]
    assert engine.instances_of(v1.id, started_after=clock.now()) == [at_check]
    assert engine.instances_of(v1.id, limit=1) == [early]
