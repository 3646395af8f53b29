"""Workflow state without its spec: specs are stored once per bundle, instances keep only their tasks and data."""

import json
from copy import deepcopy
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.task_spec import BpmnTaskSpecConverter
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG

from app.engine.services import TopicServiceTask

#: Bumped whenever the stored state format changes (SpiffWorkflow's own migrations are skipped).
STATE_FORMAT = "rehabflow-1/spiff-3.2.0"


class SpeclessWorkflowConverter(BpmnWorkflowConverter):
    """Like SpiffWorkflow's converter, but leaves ``spec``/``subprocess_specs`` out and takes them back in."""

    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct, specs=None):
        spec, subprocess_specs = specs
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


_config = deepcopy(CAMUNDA_CONFIG)
_config[TopicServiceTask] = BpmnTaskSpecConverter
_config[BpmnWorkflow] = SpeclessWorkflowConverter
registry = BpmnWorkflowSerializer.configure(_config)


def dump_specs(spec, subprocess_specs: dict) -> str:
    """Serialize a top-level spec and the specs it calls, for a SpecBundle row."""
    return json.dumps(
        {
            "format": STATE_FORMAT,
            "spec": registry.convert(spec),
            "subprocess_specs": {name: registry.convert(s) for name, s in subprocess_specs.items()},
        },
        separators=(",", ":"),
    )


def load_specs(content: str):
    """The (spec, subprocess_specs) pair stored by :func:`dump_specs`."""
    dct = json.loads(content)
    spec = registry.restore(dct["spec"])
    subprocess_specs = {name: registry.restore(s) for name, s in dct["subprocess_specs"].items()}
    return spec, subprocess_specs


def dump_state(workflow: BpmnWorkflow) -> str:
    """Serialize a workflow's tasks, data and pending events (not its spec)."""
    dct = registry.convert(workflow)
    dct["format"] = STATE_FORMAT
    return json.dumps(dct, separators=(",", ":"))


def load_state(state: str, specs) -> BpmnWorkflow:
    """Rebuild a workflow from :func:`dump_state` output and its (spec, subprocess_specs)."""
    dct = json.loads(state)
    dct.pop("format", None)
    return registry.restore(dct, specs=specs)


def dump_event(event) -> dict:
    return registry.convert(event)


def load_event(dct: dict):
    return registry.restore(deepcopy(dct))


def _register_engine_datetime() -> None:
    """Scripts build datetimes with the engine's ``datetime`` subclass; store them as plain datetimes."""
    from datetime import datetime

    from app.engine.clock import EngineDatetime

    registry.register(
        EngineDatetime,
        lambda v: {"value": v.isoformat()},
        lambda v: datetime.fromisoformat(v["value"]),
        typename="datetime",
    )


_register_engine_datetime()
