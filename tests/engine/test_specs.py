"""Deploy: validation with file, element and reason; immutable versions; all-or-nothing."""

import re

import pytest
from sqlalchemy import func, select

from app import engine
from app.core.db import transaction
from app.engine.models import ProcessDefinition
from app.extensions import db
from tests.conftest import FIXTURES


def source(name: str, old: str | None = None, new: str | None = None) -> engine.SourceFile:
    text = (FIXTURES / name).read_text()
    if old is not None:
        assert old in text, old
        text = text.replace(old, new)
    return engine.SourceFile(name, text)


def refused(*sources: engine.SourceFile) -> list[engine.Problem]:
    before = db.session.scalar(select(func.count()).select_from(ProcessDefinition))
    with pytest.raises(engine.InvalidDefinition) as err:
        with transaction():
            engine.deploy(list(sources))
    assert db.session.scalar(select(func.count()).select_from(ProcessDefinition)) == before
    return err.value.problems


def test_deploy_creates_versions_and_skips_unchanged(app):
    with transaction():
        first = engine.deploy([source("three_tasks.bpmn"), source("tier_rule.dmn")])
    assert sorted((d.key, d.version, d.kind.value) for d in first.deployed) == [
        ("three_tasks", 1, "bpmn"),
        ("tier_rule", 1, "dmn"),
    ]
    assert all(re.fullmatch(r"[0-9a-f]{64}", d.sha256) for d in first.deployed)
    with transaction():
        again = engine.deploy([source("three_tasks.bpmn")])
    assert again.deployed == [] and [d.version for d in again.unchanged] == [1]
    with transaction():
        changed = engine.deploy([source("three_tasks.bpmn", 'name="Police review"', 'name="Police check"')])
    assert [d.version for d in changed.deployed] == [2]
    v1 = db.session.scalars(
        select(ProcessDefinition).where(ProcessDefinition.version == 1, ProcessDefinition.key == "three_tasks")
    ).one()
    assert "Police review" in v1.xml  # versions are immutable


def test_bad_xml_is_refused(app):
    [problem] = refused(engine.SourceFile("broken.bpmn", "<bpmn:definitions><oops"))
    assert problem.file == "broken.bpmn" and "not well-formed XML" in problem.message


def test_unknown_lane_is_refused_with_element_id(app):
    problems = refused(source("three_tasks.bpmn", 'name="社区民警 police"', 'name="Wizards"'))
    assert [(p.file, p.element_id) for p in problems] == [("three_tasks.bpmn", "c")]
    assert "Wizards" in problems[0].message and "known role" in problems[0].message


def test_unquoted_timer_duration_is_refused(app):
    [problem] = refused(source("timers.bpmn", '<bpmn:timeDuration>"P15D"', "<bpmn:timeDuration>P15D"))
    assert problem.element_id == "report_late" and "quotes" in problem.message


def test_bad_iso_duration_is_refused(app):
    [problem] = refused(source("timers.bpmn", '<bpmn:timeDuration>"P15D"', '<bpmn:timeDuration>"PT15D"'))
    assert problem.element_id == "report_late" and "ISO 8601" in problem.message


def test_missing_called_process_is_refused(app):
    with transaction():
        engine.deploy([source("tier_rule.dmn")])
    [problem] = refused(source("parent.bpmn"))
    assert problem.file == "parent.bpmn" and "'child'" in problem.message


def test_called_process_deployed_earlier_resolves(app):
    with transaction():
        engine.deploy([source("tier_rule.dmn"), source("child.bpmn")])
    with transaction():
        result = engine.deploy([source("parent.bpmn")])
    assert [d.key for d in result.deployed] == ["parent"]


@pytest.mark.parametrize(
    "script",
    ["import os", "x = __import__('os')", "x = ().__class__.__base__.__subclasses__()", "x = y.__globals__"],
)
def test_script_escapes_are_refused_at_deploy(app, script):
    problems = refused(source("failing.bpmn", "ratio = 10 / divisor", script))
    assert [p.element_id for p in problems] == ["divide"]
    assert problems[0].message.startswith("script:")


def test_dmn_without_output_is_refused(app):
    text = (FIXTURES / "tier_rule.dmn").read_text()
    text = text.replace('<output id="out_tier" name="tier" typeRef="string"/>', "")
    problems = refused(engine.SourceFile("tier_rule.dmn", text))
    assert any("no output" in p.message for p in problems)


def test_unsupported_hit_policy_is_refused(app):
    problems = refused(source("tier_rule.dmn", 'hitPolicy="FIRST"', 'hitPolicy="ANY"'))
    assert any("ANY" in p.message for p in problems)


def test_unknown_form_field_type_is_refused(app):
    problems = refused(source("three_tasks.bpmn", 'type="long"', 'type="colour"'))
    assert problems[0].element_id == "a" and "colour" in problems[0].message


def test_unknown_service_topic_is_refused(app):
    problems = refused(source("failing.bpmn", 'camunda:topic="fail_if_flag"', 'camunda:topic="send_sms"'))
    assert problems[0].element_id == "call_service" and "send_sms" in problems[0].message


def test_one_bad_file_deploys_nothing_from_the_set(app):
    refused(source("child.bpmn"), source("three_tasks.bpmn", 'name="社区民警 police"', 'name="nobody"'))
    assert db.session.scalar(select(func.count()).select_from(ProcessDefinition)) == 0


def test_spiffworkflow_parse_error_names_file(app):
    problems = refused(source("child.bpmn", 'targetRef="assess"/>', 'targetRef="nowhere"/>'))
    assert problems[0].file == "child.bpmn"


def test_unsupported_receive_task_is_named(app):
    problems = refused(
        source(
            "child.bpmn",
            '<bpmn:userTask id="assess" name="Health assessment"/>',
            '<bpmn:receiveTask id="assess" name="Wait"/>',
        )
    )
    assert problems[0].element_id == "assess" and "receiveTask is not supported" in problems[0].message
