"""Checks every diagram in workflows/ must pass: deployable, drawable, lanes, forms and articles."""

import pytest
from lxml import etree

from app.engine.layout import missing_diagram_elements
from tests.workflows.conftest import WORKFLOWS

BPMN_FILES = sorted(WORKFLOWS.glob("*.bpmn"))
NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "camunda": "http://camunda.org/schema/1.0/bpmn"}


def test_library_deploys(flow):
    from app import engine

    keys = {d.key for d in engine.latest_definitions()}
    assert {p.stem for p in BPMN_FILES} <= keys


@pytest.mark.parametrize("path", BPMN_FILES, ids=lambda p: p.name)
def test_every_flow_element_has_a_shape_or_edge(path):
    assert missing_diagram_elements(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", BPMN_FILES, ids=lambda p: p.name)
def test_every_user_task_documents_itself_and_labels_its_fields(path):
    root = etree.fromstring(path.read_bytes())
    for task in root.iter(f"{{{NS['bpmn']}}}userTask"):
        assert task.get("name"), f"{path.name}#{task.get('id')} has no name"
        assert task.find("bpmn:documentation", NS) is not None, f"{path.name}#{task.get('id')} has no documentation"
        for field in task.iterfind(".//camunda:formField", NS):
            assert field.get("label"), f"{path.name}#{task.get('id')} field {field.get('id')} has no label"


def test_readme_rule_table_names_tests_that_exist():
    """workflows/README.md: every test named in the rule → element → test table exists."""
    import re

    names = {
        path.name: set(re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), re.M))
        for path in (WORKFLOWS.parent / "tests" / "workflows").glob("test_*.py")
    }
    table = (WORKFLOWS / "README.md").read_text(encoding="utf-8").split("## Rules, elements and tests")[1]
    missing, checked = [], 0
    for row in table.splitlines():
        if not row.startswith("| ") or row.startswith("| rule"):
            continue
        module = None
        for part in re.split(r"[;,]\s*", row.split("|")[-2]):
            match = re.match(r"\s*(test_\w+\.py)?::(test_\w+)", part)
            if not match:
                continue
            module = match.group(1) or module
            checked += 1
            if match.group(2) not in names.get(module, set()):
                missing.append(f"{module}::{match.group(2)}")
    assert checked > 60 and missing == []
