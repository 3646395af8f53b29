"""The script sandbox: ordinary scripts work, escapes are refused with a clear reason, runaway scripts stop.

No Flask app needed: the BPMN/DMN checks run small diagrams through a real SpiffWorkflow engine.
"""

import json
import sys
import time
from datetime import datetime, timedelta
from xml.sax.saxutils import escape

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.util.task import TaskState

from app.engine.script_env import (
    RestrictedEnvironment,
    ScriptError,
    check_script,
    make_script_engine,
)


def run(script: str, data: dict | None = None, time_limit: float = 2.0) -> dict:
    """Execute ``script`` on a copy of ``data`` and return the resulting task data."""
    context = dict(data or {})
    RestrictedEnvironment(time_limit=time_limit).execute(script, context)
    return context


def refusal(script: str, data: dict | None = None, mode: str = "exec", time_limit: float = 2.0) -> ScriptError:
    """The ScriptError that running ``script`` raises (the test fails if it runs)."""
    env = RestrictedEnvironment(time_limit=time_limit)
    with pytest.raises(ScriptError) as info:
        if mode == "exec":
            env.execute(script, dict(data or {}))
        else:
            env.evaluate(script, dict(data or {}))
    return info.value


# --- ordinary scripts -------------------------------------------------------------------------------------------


def test_arithmetic_assignments_and_containers_update_task_data():
    data = run(
        "total = price * qty + 1\n"
        "items = [i * i for i in range(4)]\n"
        "by_name = {name: len(name) for name in names}\n"
        "first, second = names\n"
        "evens = sorted({n for n in items if n % 2 == 0})\n"
        "pairs = list(zip(names, range(2)))\n"
        "for index, name in enumerate(names):\n"
        "    last = f'{index}:{name}'\n",
        {"price": 2.5, "qty": 4, "names": ["ana", "bo"]},
    )
    assert data["total"] == 11.0
    assert data["items"] == [0, 1, 4, 9]
    assert data["by_name"] == {"ana": 3, "bo": 2}
    assert (data["first"], data["second"]) == ("ana", "bo")
    assert data["evens"] == [0, 4]
    assert data["pairs"] == [("ana", 0), ("bo", 1)]
    assert data["last"] == "1:bo"


def test_augmented_assignment_for_numbers_strings_and_lists():
    data = run(
        "n += 2\nn *= 3\nn -= 1\nn //= 2\ns += '!'\nitems += [3]\nitems *= 2\nd = {}\nd['k'] = n\n",
        {"n": 1, "s": "hi", "items": [1]},
    )
    assert data == {"n": 4, "s": "hi!", "items": [1, 3, 1, 3], "d": {"k": 4}}


def test_string_methods_and_helpers():
    data = run(
        "name = raw.strip().title()\n"
        "parts = 'a,b,c'.split(',')\n"
        "joined = '-'.join(parts).upper()\n"
        "label = '%s (%d)' % (name, len(parts))\n"
        "stats = [min(xs), max(xs), sum(xs), abs(-2), round(2.567, 1), any(xs), all(xs)]\n"
        "conv = [int('7'), float('1.5'), str(3), bool(0), tuple(parts), set('aa'), dict(a=1)]\n",
        {"raw": "  jane doe ", "xs": [3, 1, 2]},
    )
    assert data["name"] == "Jane Doe"
    assert data["joined"] == "A-B-C"
    assert data["label"] == "Jane Doe (3)"
    assert data["stats"] == [1, 3, 6, 2, 2.6, True, True]
    assert data["conv"] == [7, 1.5, "3", False, ("a", "b", "c"), {"a"}, {"a": 1}]


def test_datetime_helpers_give_aware_datetimes():
    data = run(
        "due = datetime.now(timezone.utc) + timedelta(days=15)\n"
        "due_text = due.isoformat()\n"
        "day = date(2024, 3, 1).strftime('%Y-%m-%d')\n"
        "parsed = datetime.strptime('2024-03-01', '%Y-%m-%d').date().isoformat()\n"
        "today = date.today()\n"
    )
    due = data["due"]
    assert due.tzinfo is not None and due.utcoffset() == timedelta(0)
    assert timedelta(days=14, hours=23) < due - datetime.now(due.tzinfo) <= timedelta(days=15)
    assert datetime.fromisoformat(data["due_text"]) == due
    assert data["day"] == data["parsed"] == "2024-03-01"


def test_functions_run_and_are_removed_with_all_helpers_afterwards():
    data = run(
        "def double(v):\n"
        "    return v * 2\n"
        "print('debug output')\n"
        "result = [double(v) for v in values]\n"
        "shout = lambda s: s.upper()\n"
        "loud = shout('x')\n",
        {"values": [1, 2]},
    )
    assert data == {"values": [1, 2], "result": [2, 4], "loud": "X"}
    json.dumps(data)  # nothing left that the serializer would choke on


def test_extra_globals_are_visible_then_removed():
    env = RestrictedEnvironment(extra_globals={"greet": lambda name: f"hello {name}", "LIMIT": 10})
    context = {"who": "ana"}
    env.execute("message = greet(who)\nover = 12 > LIMIT", context)
    assert context == {"who": "ana", "message": "hello ana", "over": True}
    assert env.evaluate("greet(who) + '!'", {"who": "bo"}) == "hello bo!"


def test_evaluate_returns_the_value_and_leaves_the_context_alone():
    env = RestrictedEnvironment()
    context = {"x": 5, "tags": ["a", "b"]}
    assert env.evaluate("x > 3", context) is True
    assert env.evaluate("[t.upper() for t in tags if t != 'b']", context) == ["A"]
    assert env.evaluate("v * 2", context, external_context={"v": 21}) == 42
    assert env.evaluate("\n    x > 3\n  ", context) is True  # XML text around an expression
    assert context == {"x": 5, "tags": ["a", "b"]}


def test_task_data_cannot_replace_the_guards():
    env = RestrictedEnvironment()
    # In evaluate task data shadows builtins (as in Spiff) but never the guard functions.
    assert env.evaluate("date", {"date": "2024-01-01"}) == "2024-01-01"
    assert env.evaluate("d.get('k')", {"d": {"k": 1}, "_getattr_": getattr}) == 1
    with pytest.raises(ScriptError, match="overwrites a predefined"):
        env.execute("x = 1", {"_getattr_": "oops"})


# --- escapes ---------------------------------------------------------------------------------------------------

ESCAPES = [
    ("import os", "imports are not allowed"),
    ("from os import path", "imports are not allowed"),
    ("__import__('os')", "imports are not allowed"),
    ("f = open('/etc/passwd')", "open() is not allowed"),
    ("x = ().__class__.__base__.__subclasses__()", "access to '__class__' is not allowed"),
    ("x = getattr(1, '__class__')", "access to '__class__' is not allowed"),
    ("f = getattr\nx = f(1, '__globals__')", "access to '__globals__' is not allowed"),
    ("eval('1')", "eval() is not allowed"),
    ("exec('1')", "exec() is not allowed"),
    ("f = eval\nf('1')", "eval() is not allowed"),
    ("compile('1', '<s>', 'eval')", "compile() is not allowed"),
    ("g = globals()", "globals() is not allowed"),
    ("v = vars()", "vars() is not allowed"),
    ("x = type(1).__mro__", "access to '__mro__' is not allowed"),
    ("x = type(1)", "type() is not allowed"),
    ("x = int.mro()", "access to 'mro' is not allowed"),
    ("x = value._private", "access to '_private' is not allowed"),
    ("x = __builtins__", "access to '__builtins__' is not allowed"),
    ("x = '{0.__class__}'.format(1)", "str.format() is not allowed"),
    ("x = f'{value.__class__}'", "access to '__class__' is not allowed"),
    ("g = (i for i in [1])\nx = g.gi_frame", "access to 'gi_frame' is not allowed"),
    ("class A:\n    pass", "class definitions are not allowed"),
    ("setattr(value, 'x', 1)", "setattr() is not allowed"),
    ("raise SystemExit", "name 'SystemExit' is not defined"),
]


@pytest.mark.parametrize(("script", "reason"), ESCAPES)
def test_escape_is_refused_with_a_clear_reason(script, reason):
    error = refusal(script, {"value": 1})
    assert reason in error.reason
    assert str(error) == error.reason
    assert error.expression == script


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os').system('true')", "imports are not allowed"),
        ("().__class__.__bases__[0].__subclasses__()", "access to '__class__' is not allowed"),
        ("open('/etc/passwd').read()", "open() is not allowed"),
        ("'{0.__globals__}'.format(value)", "str.format() is not allowed"),
    ],
)
def test_escape_in_an_expression_is_refused(expression, reason):
    assert reason in refusal(expression, {"value": 1}, mode="eval").reason


def test_compile_errors_become_script_errors_with_the_original_as_cause():
    error = refusal("x = (", {})
    assert error.reason.startswith("SyntaxError")
    assert isinstance(error.__cause__, SyntaxError)
    assert error.line_number == 1

    error = refusal("a = 1\nb = 2\nimport os\n")
    assert error.reason == "line 3: imports are not allowed"
    assert error.line_number == 3


def test_runtime_errors_become_script_errors_with_the_original_as_cause():
    error = refusal("a = 1\nb = missing + a\n")
    assert error.reason == "NameError: name 'missing' is not defined"
    assert isinstance(error.__cause__, NameError)
    assert error.line_number == 2
    assert refusal("1 / 0", mode="eval").reason == "ZeroDivisionError: division by zero"
    assert "object has no attribute 'nope'" in refusal("value.nope", {"value": 1}, mode="eval").reason


def test_bad_input_never_crashes_the_converter():
    env = RestrictedEnvironment()
    for source in ("\x00", "x = " + "(" * 500 + ")" * 500, "x = 'unterminated", "def f(:\n  pass"):
        with pytest.raises(ScriptError):
            env.execute(source, {})
    with pytest.raises(ScriptError):
        env.evaluate("", {})
    with pytest.raises(ScriptError, match="must be text"):
        env.evaluate(None, {})


def test_check_script_compiles_without_running():
    assert check_script("x = 1\ny = [v for v in range(x)]") is None
    assert check_script("dmninputexpr < 18", "eval") is None
    assert check_script("while True: pass") is None  # fine to deploy; the clock stops it at run time
    assert check_script("import os") == "imports are not allowed"
    assert check_script("x.__class__", "eval") == "access to '__class__' is not allowed"
    assert check_script("x = ", "exec").startswith("SyntaxError")
    assert check_script("x = 1", "eval").startswith("SyntaxError")  # a statement is not an expression
    with pytest.raises(ValueError):
        check_script("x", "single")


# --- time limit -------------------------------------------------------------------------------------------------

RUNAWAYS = [
    "while True: pass",
    "xs = [1]\nfor x in xs:\n    xs.append(x)",
    "xs = [1]\nys = [xs.append(x) for x in xs]",
    "def forever():\n    while True:\n        yield 1\ntotal = sum(forever())",
    # The script catches the timeout and carries on: the next loop pass or call raises again.
    "while True:\n    try:\n        while True:\n            pass\n    except Exception:\n        pass",
    "try:\n    while True:\n        pass\nexcept Exception:\n    while True:\n        pass",
    # Exponential recursion that swallows RecursionError (and the timeout).
    "def f():\n    try:\n        f()\n    except Exception:\n        f()\nf()",
    "def f(n):\n    return sum(f(n + 1) for i in range(2))\ny = f(0)",
]


@pytest.mark.parametrize("script", RUNAWAYS)
def test_runaway_script_times_out_within_the_limit(script):
    started = time.monotonic()
    error = refusal(script, time_limit=0.2)
    elapsed = time.monotonic() - started
    assert error.reason == "script timed out after 0.2 s" or error.reason.startswith(
        "RecursionError: maximum recursion depth exceeded"
    )
    assert elapsed < 1.0


def test_timeout_is_reported_even_when_the_script_swallows_it_and_finishes():
    script = "try:\n    while True:\n        pass\nexcept Exception:\n    pass\ndone = 1"
    assert refusal(script, time_limit=0.2).reason == "script timed out after 0.2 s"


def test_infinite_recursion_is_stopped():
    error = refusal("def f():\n    return f()\nf()")
    assert "maximum recursion depth exceeded" in error.reason
    assert isinstance(error.__cause__, RecursionError)


def test_runaway_expression_times_out():
    error = refusal("[1 for a in range(999) for b in range(999) for c in range(999)]", mode="eval", time_limit=0.2)
    assert error.reason == "script timed out after 0.2 s"


def test_the_time_limit_is_per_call_and_short_work_is_unaffected():
    env = RestrictedEnvironment(time_limit=0.2)
    context = {}
    for _ in range(3):
        env.execute("i = 0\nwhile i < 10000:\n    i += 1", context)
    assert context["i"] == 10000


def test_the_sandbox_leaves_an_installed_tracer_alone():
    def tracer(frame, event, arg):
        return None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        refusal("while True: pass", time_limit=0.05)
        run("x = [i for i in range(3)]")
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(previous)


def test_time_limit_must_be_positive():
    with pytest.raises(ValueError):
        RestrictedEnvironment(time_limit=0)


# --- through SpiffWorkflow ------------------------------------------------------------------------------------

BPMN_HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'id="defs" targetNamespace="http://bpmn.io/schema/bpmn">'
)


def script_process(script: str) -> str:
    """start -> scriptTask(script) -> end."""
    return f"""{BPMN_HEADER}
  <bpmn:process id="script_process" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
    <bpmn:scriptTask id="work" name="Work" scriptFormat="python">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>{escape(script)}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""


def gateway_process(setup: str, condition: str) -> str:
    """start -> scriptTask(setup) -> gateway --condition--> route='high' / default route='low' -> end."""
    return f"""{BPMN_HEADER}
  <bpmn:process id="gateway_process" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="setup" />
    <bpmn:scriptTask id="setup" scriptFormat="python">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>{escape(setup)}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="setup" targetRef="decide" />
    <bpmn:exclusiveGateway id="decide" default="to_low">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>to_high</bpmn:outgoing><bpmn:outgoing>to_low</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="to_high" sourceRef="decide" targetRef="high">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{escape(condition)}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="to_low" sourceRef="decide" targetRef="low" />
    <bpmn:scriptTask id="high" scriptFormat="python">
      <bpmn:incoming>to_high</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:script>route = 'high'</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:scriptTask id="low" scriptFormat="python">
      <bpmn:incoming>to_low</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:script>route = 'low'</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f3" sourceRef="high" targetRef="end_high" />
    <bpmn:sequenceFlow id="f4" sourceRef="low" targetRef="end_low" />
    <bpmn:endEvent id="end_high"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end_low"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""


def start(bpmn: str, process_id: str, dmn: str | None = None, **engine_options) -> BpmnWorkflow:
    parser = CamundaParser()
    parser.add_bpmn_str(bpmn.encode())
    if dmn is not None:
        parser.add_dmn_str(dmn.encode())
    return BpmnWorkflow(parser.get_spec(process_id), script_engine=make_script_engine(**engine_options))


def only_task(workflow: BpmnWorkflow, spec_name: str):
    (task,) = workflow.get_tasks(spec_name=spec_name)
    return task


def test_script_task_sets_task_data():
    workflow = start(
        script_process(
            "score = 3 * 4\nflags = [f for f in ['a', 'b'] if f != 'b']\ndue = (datetime.now(timezone.utc)"
            " + timedelta(days=15)).isoformat()"
        ),
        "script_process",
    )
    workflow.do_engine_steps()
    assert workflow.is_completed()
    assert workflow.data["score"] == 12
    assert workflow.data["flags"] == ["a"]
    assert datetime.fromisoformat(workflow.data["due"]).tzinfo is not None


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("x = 1\nimport os", "line 2: imports are not allowed"),
        ("x = ().__class__.__base__.__subclasses__()", "access to '__class__' is not allowed"),
        ("data = open('/etc/passwd').read()", "open() is not allowed"),
        ("a = 1\nb = a + missing", "NameError: name 'missing' is not defined"),
    ],
)
def test_bad_script_task_fails_with_the_reason_and_is_not_completed(script, reason):
    workflow = start(script_process(script), "script_process")
    with pytest.raises(WorkflowTaskException) as info:
        workflow.do_engine_steps()
    assert reason in str(info.value)
    assert info.value.error_type == "ScriptError"
    assert isinstance(info.value.__cause__, ScriptError)
    assert info.value.line_number == len(script.splitlines())
    assert info.value.error_line == script.splitlines()[-1]
    task = only_task(workflow, "work")
    assert task.state == TaskState.ERROR
    assert not workflow.is_completed()


def test_runaway_script_task_times_out():
    workflow = start(script_process("n = 0\nwhile True:\n    n += 1"), "script_process", time_limit=0.2)
    started = time.monotonic()
    with pytest.raises(WorkflowTaskException, match="script timed out after 0.2 s"):
        workflow.do_engine_steps()
    assert time.monotonic() - started < 1.0
    assert only_task(workflow, "work").state == TaskState.ERROR


def test_name_error_keeps_spiffs_did_you_mean_hint():
    workflow = start(script_process("scores = 1\ntotal = scorse + 1"), "script_process")
    with pytest.raises(WorkflowTaskException, match="Did you mean 'scores'"):
        workflow.do_engine_steps()


@pytest.mark.parametrize(("score", "route"), [(5, "high"), (2, "low")])
def test_gateway_condition_is_evaluated(score, route):
    workflow = start(
        gateway_process(f"score = {score}", "score > 3 and len([s for s in [score] if s]) == 1"), "gateway_process"
    )
    workflow.do_engine_steps()
    assert workflow.is_completed()
    assert workflow.data["route"] == route


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ("__import__('os').system('true') == 0", "imports are not allowed"),
        ("score.__class__ is int", "access to '__class__' is not allowed"),
        ("scroe > 3", "NameError: name 'scroe' is not defined"),
    ],
)
def test_bad_gateway_condition_fails_with_the_reason(condition, reason):
    workflow = start(gateway_process("score = 5", condition), "gateway_process")
    with pytest.raises(WorkflowTaskException) as info:
        workflow.do_engine_steps()
    message = str(info.value)
    assert reason in message
    assert condition in message
    assert "route" not in workflow.data
    assert not workflow.is_completed()
    assert only_task(workflow, "decide").state == TaskState.ERROR


# --- DMN --------------------------------------------------------------------------------------------------------

DMN = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="risk_defs" name="Risk"
             namespace="http://camunda.org/schema/1.0/dmn">
  <decision id="risk_level" name="Risk level">
    <decisionTable id="risk_table" hitPolicy="FIRST">
      <input id="in_colour" label="Colour">
        <inputExpression id="in_colour_expr" typeRef="string"><text>colour</text></inputExpression>
      </input>
      <input id="in_age" label="Age">
        <inputExpression id="in_age_expr" typeRef="integer"><text>age</text></inputExpression>
      </input>
      <output id="out_level" label="Level" name="level" typeRef="string" />
      <rule id="r1">
        <inputEntry id="r1_colour"><text>"red"</text></inputEntry>
        <inputEntry id="r1_age"><text>&lt; 18</text></inputEntry>
        <outputEntry id="r1_out"><text>"urgent"</text></outputEntry>
      </rule>
      <rule id="r2">
        <inputEntry id="r2_colour"><text>"red"</text></inputEntry>
        <inputEntry id="r2_age"><text>-</text></inputEntry>
        <outputEntry id="r2_out"><text>"high"</text></outputEntry>
      </rule>
      <rule id="r3">
        <inputEntry id="r3_colour"><text>-</text></inputEntry>
        <inputEntry id="r3_age"><text>60 &lt;= ? &lt; 200</text></inputEntry>
        <outputEntry id="r3_out"><text>"senior " + colour</text></outputEntry>
      </rule>
      <rule id="r4">
        <inputEntry id="r4_colour"><text>"black"</text></inputEntry>
        <inputEntry id="r4_age"><text>-</text></inputEntry>
        <outputEntry id="r4_out"><text>__import__('os').getcwd()</text></outputEntry>
      </rule>
      <rule id="r5">
        <inputEntry id="r5_colour"><text>-</text></inputEntry>
        <inputEntry id="r5_age"><text>-</text></inputEntry>
        <outputEntry id="r5_out"><text>"normal"</text></outputEntry>
      </rule>
    </decisionTable>
  </decision>
</definitions>"""

DMN_PROCESS = f"""{BPMN_HEADER}
  <bpmn:process id="dmn_process" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="decide" />
    <bpmn:businessRuleTask id="decide" name="Decide" camunda:decisionRef="risk_level">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:businessRuleTask>
    <bpmn:sequenceFlow id="f2" sourceRef="decide" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""


def run_decision(colour: str, age: int) -> BpmnWorkflow:
    workflow = start(DMN_PROCESS, "dmn_process", dmn=DMN)
    workflow.get_tasks(state=TaskState.READY)[0].data.update(colour=colour, age=age)
    workflow.do_engine_steps()
    return workflow


@pytest.mark.parametrize(
    ("colour", "age", "level"),
    [("red", 12, "urgent"), ("red", 40, "high"), ("green", 70, "senior green"), ("green", 30, "normal")],
)
def test_dmn_table_runs_under_the_restricted_engine(colour, age, level):
    workflow = run_decision(colour, age)
    assert workflow.is_completed()
    assert workflow.data["level"] == level


def test_dmn_cell_escape_is_refused():
    workflow = start(DMN_PROCESS, "dmn_process", dmn=DMN)
    workflow.get_tasks(state=TaskState.READY)[0].data.update(colour="black", age=30)
    with pytest.raises(WorkflowTaskException, match="imports are not allowed"):
        workflow.do_engine_steps()
    assert not workflow.is_completed()
    assert "level" not in workflow.data
