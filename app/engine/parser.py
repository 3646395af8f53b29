"""The BPMN/DMN parser: SpiffWorkflow's Camunda parser plus the attributes RehabFlow reads."""

from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.parser.task_spec import CAMUNDA_MODEL_NS, CamundaTaskParser, UserTaskParser
from SpiffWorkflow.camunda.specs.user_task import UserTask

from app.engine.services import TopicServiceTask

_CAMUNDA = "{" + CAMUNDA_MODEL_NS + "}"
#: userTask attributes (Camunda 7 modeler names) copied into ``task_spec.extensions``.
USER_TASK_ATTRIBUTES = ("candidateGroups", "candidateUsers", "assignee", "dueDate", "formKey")


class RehabUserTaskParser(UserTaskParser):
    """Keeps candidateGroups, dueDate, ... which SpiffWorkflow's Camunda parser drops."""

    def parse_extensions(self, node=None):
        extensions = super().parse_extensions(node)
        for name in USER_TASK_ATTRIBUTES:
            value = self.node.get(_CAMUNDA + name)
            if value:
                extensions[name] = value
        return extensions


class ServiceTaskParser(CamundaTaskParser):
    """serviceTask with ``camunda:topic`` (external-task style) -> a registered Python service."""

    def parse_extensions(self, node=None):
        extensions = super().parse_extensions(node)
        topic = self.node.get(_CAMUNDA + "topic")
        if topic:
            extensions["topic"] = topic
        return extensions


class RehabParser(CamundaParser):
    OVERRIDE_PARSER_CLASSES = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("userTask"): (RehabUserTaskParser, UserTask),
        full_tag("serviceTask"): (ServiceTaskParser, TopicServiceTask),
    }
