"""Service tasks: a BPMN serviceTask names a topic (camunda:topic); a Python function registered here runs it.

Adding a service means adding a function with ``@service("topic")``, not editing the engine.
A service gets a copy of the task data and the task's ``camunda:properties`` (params), and returns a dict
merged into the task data; raising fails the step (incident). Services run inside the engine's transaction,
so what they write to the database commits or rolls back with the step.
"""

from collections.abc import Callable

from SpiffWorkflow.bpmn.specs.defaults import ServiceTask as _SpiffServiceTask

ServiceFn = Callable[[dict, dict], dict | None]
_registry: dict[str, ServiceFn] = {}


def service(topic: str) -> Callable[[ServiceFn], ServiceFn]:
    """Register ``fn`` as the implementation of service topic ``topic``."""

    def register(fn: ServiceFn) -> ServiceFn:
        _registry[topic] = fn
        return fn

    return register


def known_topics() -> set[str]:
    return set(_registry)


class ServiceError(Exception):
    pass


class TopicServiceTask(_SpiffServiceTask):
    """A serviceTask that calls the registered function for its ``topic`` extension."""

    def _execute(self, task):
        topic = self.extensions.get("topic")
        fn = _registry.get(topic)
        if fn is None:
            raise ServiceError(f"no service is registered for topic {topic!r}")
        params = {k: v for k, v in self.extensions.items() if k != "topic"}
        result = fn(dict(task.data), params)
        if result:
            task.data.update(result)
        return True


@service("noop")
def _noop(data: dict, params: dict) -> dict:
    """Does nothing; useful in diagrams under construction and in tests."""
    return {}


@service("fail_if_flag")
def _fail_if_flag(data: dict, params: dict) -> dict:
    """Fails while ``data['service_down']`` is true: shows incidents and retries (tests, demos)."""
    if data.get("service_down"):
        raise ServiceError("the external service is unavailable")
    return {"service_called": True}
