"""Versions side by side: a deploy never moves running instances; new starts take the newest version."""

from sqlalchemy import select

from app import engine
from app.core.db import transaction
from app.engine.models import InstanceStatus, ProcessInstance, WorkItem
from app.extensions import db
from tests.engine.test_migration import V1, V2, complete, deploy, item_at, start
from tests.workflows.conftest import WORKFLOWS, Flow


def path_of(instance_id: int) -> list[str]:
    """Element ids of the instance's work items, in the order they opened."""
    query = select(WorkItem.element_id).where(WorkItem.instance_id == instance_id).order_by(WorkItem.id)
    return list(db.session.scalars(query))


def finish(instance_id: int) -> None:
    while True:
        db.session.expire_all()
        found = db.session.get(ProcessInstance, instance_id)
        if found.status != InstanceStatus.RUNNING:
            return
        complete(item_at(instance_id))


def test_v1_instances_finish_on_v1_while_new_cases_start_on_v2(deploy_fixtures, case_factory):
    v1 = deploy(V1)
    old = [start(case_factory()) for _ in range(2)]
    complete(item_at(old[1].id, "intake"))  # one further along: at record_check, which v2 drops
    v2 = deploy(V2)
    new = start(case_factory())

    assert [i.definition_version for i in old] == [1, 1] and new.definition_version == 2
    for info in old:
        finish(info.id)
    finish(new.id)
    assert path_of(old[0].id) == path_of(old[1].id) == ["intake", "record_check", "review"]
    assert path_of(new.id) == ["intake", "review", "sign_off"]
    definitions = {i.id: i.definition_id for i in db.session.scalars(select(ProcessInstance))}
    assert definitions == {old[0].id: v1.id, old[1].id: v1.id, new.id: v2.id}
    names = dict(
        db.session.execute(
            select(WorkItem.instance_id, WorkItem.name).where(WorkItem.element_id == "review").order_by(WorkItem.id)
        ).all()
    )
    assert names == {old[0].id: "Police review", old[1].id: "Police review", new.id: "Police review of the intake"}


def test_redeployed_supervision_keeps_running_cycle_and_starts_the_next_on_the_new_version(
    app, clock, tree, case_factory
):
    """supervision.bpmn: one instance per cycle; a redeploy leaves the running cycle alone, the next one (started
    by the message the running cycle sends) runs the new version."""
    flow = Flow(clock, tree, case_factory)
    flow.deploy_all()
    case = flow.new_case(stage="supervision")
    flow.send(case, "supervision_cycle", {"cycle": 1})
    [first] = flow.instances(case, "supervision")
    assert first.definition.version == 1

    text = (WORKFLOWS / "supervision.bpmn").read_text(encoding="utf-8")
    old_name = "尿检与见面核查 Drug test and face-to-face check"
    assert old_name in text
    with transaction():
        deployed = engine.deploy([engine.SourceFile("supervision.bpmn", text.replace(old_name, "尿检核查 v2"))])
    assert [(d.key, d.version) for d in deployed.deployed] == [("supervision", 2)]
    assert flow.item("drug_test_check", case).name == old_name  # the running cycle did not move

    flow.complete("drug_test_check", {"result": "negative", "method": "in_person"}, case=case)
    assert flow.incidents() == []
    first, second = flow.instances(case, "supervision")
    assert (first.status, first.definition.version) == (InstanceStatus.COMPLETED, 1)
    assert (second.status, second.definition.version) == (InstanceStatus.RUNNING, 2)
    assert second.parent_instance_id == first.id
    assert flow.item("drug_test_check", case).name == "尿检核查 v2"
