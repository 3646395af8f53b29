"""Sandboxed Python for scriptTasks, gateway conditions, timer/due-date expressions and DMN cells.

SpiffWorkflow's default script engine runs plain ``exec``/``eval``: any diagram could ``import os``. Here every
script is compiled with RestrictedPython (imports, class statements and ``_``-names refused at compile time),
run with a small set of builtins and guarded attribute access, and stopped after a time limit. Everything a
script or its compilation raises comes out as :class:`ScriptError` with a one-line reason for the designer.

Time limit. ``sys.settrace`` was tried first and rejected: CPython unsets a trace function the moment it
raises, so a script that catches the timeout (``try: while True: pass`` / ``except Exception: while True: pass``)
runs forever. Instead the compiler starts every ``while`` body and every ``def`` body with a call to a per-run
clock, and ``_getiter_`` (every ``for`` and comprehension) checks the same clock per item. Once the deadline has
passed, each of those points raises again, so a script that swallows the error cannot loop or recurse any
further, and the run is reported as timed out even if the script then ends normally. Code without loops or
functions (most conditions and DMN cells) gets no clock at all, and debuggers and coverage keep their tracer.
No pure-Python limit stops one long C-level operation (``10**10**8``, ``[0] * 10**9``, ``xs.extend(zip(xs))``);
``range`` keeps RestrictedPython's 1,000-item cap for that reason, and the worker timeout remains the backstop.
"""

import ast
import builtins
import logging
import operator
import re
import time
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from types import CodeType, TracebackType
from typing import Any, NamedTuple

from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    raise_,
    safe_builtins,
    safer_getattr,
)
from RestrictedPython.Limits import limited_builtins
from RestrictedPython.PrintCollector import PrintCollector
from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer
from RestrictedPython.Utilities import utility_builtins
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import TaskDataEnvironment

__all__ = ["RestrictedEnvironment", "RestrictedScriptEngine", "ScriptError", "check_script", "make_script_engine"]

logger = logging.getLogger(__name__)

#: Filename of compiled scripts; used to find the script's own line in a traceback.
SCRIPT_FILENAME = "<script>"

_TICK = "_tick_"
_GETITER = "_getiter_"

#: Attributes refused besides ``_``-names: frame/code internals, and ``mro`` (a route to ``object`` and
#: ``BaseException`` from any class).
_DENIED_ATTRIBUTES = INSPECT_ATTRIBUTES | {"mro"}


class ScriptError(Exception):
    """A script or expression was refused or failed; ``reason`` says why in one line.

    ``expression`` is the source that failed and ``line_number`` the 1-based line in it, when known. The
    original exception, if any, is kept as ``__cause__``.
    """

    def __init__(self, reason: str, expression: str | None = None, line_number: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.expression = expression
        self.line_number = line_number


# --- compiling ------------------------------------------------------------------------------------------------


def _tick_statement(anchor: ast.stmt) -> ast.stmt:
    statement = ast.Expr(ast.Call(func=ast.Name(_TICK, ast.Load()), args=[], keywords=[]))
    ast.copy_location(statement, anchor)
    return ast.fix_missing_locations(statement)


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's rules, plus: no imports, no classes, plainer messages, clock checks.

    ``while`` and ``def`` bodies start with ``_tick_()``; ``for`` loops and comprehensions already iterate
    through ``_getiter_``, which checks the clock per item (see :class:`_Clock`).
    """

    def check_name(self, node, name, allow_magic_methods=False):
        if name == "__import__":
            self.error(node, "imports are not allowed")
        elif name and name.startswith("_") and name != "_":
            self.error(node, f"access to '{name}' is not allowed")
        else:
            super().check_name(node, name, allow_magic_methods)

    def visit_Attribute(self, node):
        if (node.attr.startswith("_") and node.attr != "_") or node.attr in _DENIED_ATTRIBUTES:
            self.error(node, f"access to '{node.attr}' is not allowed")
            return self.node_contents_visit(node)  # keep looking for further problems
        return super().visit_Attribute(node)

    def visit_Import(self, node):
        self.error(node, "imports are not allowed")
        return node

    visit_ImportFrom = visit_Import

    def visit_ClassDef(self, node):
        # A class body could define dunder methods (``__iter__``, ``__del__``...) that run outside the clock.
        self.error(node, "class definitions are not allowed")
        return node

    def visit_While(self, node):
        node = super().visit_While(node)
        node.body.insert(0, _tick_statement(node.body[0]))
        return node

    def visit_FunctionDef(self, node):
        node = super().visit_FunctionDef(node)
        node.body.insert(0, _tick_statement(node.body[0]))
        return node


class _Compiled(NamedTuple):
    code: CodeType
    needs_clock: bool


_ERROR_LINE = re.compile(r"^Line (\d+|None): (.*)$", re.DOTALL)
_PLAINER = {
    "Eval calls are not allowed.": "eval() is not allowed",
    "Exec calls are not allowed.": "exec() is not allowed",
}


def _summarize(errors: tuple[str, ...], source: str) -> tuple[str, int | None]:
    """Turn RestrictedPython's ``Line N: ...`` errors into one reason and the first line number."""
    multiline = "\n" in source.strip()
    reasons: list[str] = []
    first_line = None
    for text in errors:
        match = _ERROR_LINE.match(text)
        line = int(match[1]) if match and match[1].isdigit() else None
        message = match[2] if match else text
        message = _PLAINER.get(message, message.rstrip("."))
        if multiline and line:
            message = f"line {line}: {message}"
        if message not in reasons:
            reasons.append(message)
        first_line = first_line or line
    return "; ".join(reasons), first_line


def _uses_clock(code: CodeType) -> bool:
    if _TICK in code.co_names or _GETITER in code.co_names:
        return True
    return any(isinstance(const, CodeType) and _uses_clock(const) for const in code.co_consts)


# Compiled code of an immutable string is itself immutable, so a process-wide cache is safe. Failures are not
# cached (lru_cache never stores exceptions); they are rare once the deploy validator has run check_script.
@lru_cache(maxsize=4096)
def _compile_cached(source: str, mode: str) -> _Compiled:
    # compile_restricted_eval/exec are compile_restricted for one mode, but return the errors instead of
    # raising them and do not send "prints but never reads 'printed'" through the (process-wide) warnings.
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    try:
        result = compiler(source, filename=SCRIPT_FILENAME, policy=_Policy)
    except Exception as exc:  # e.g. ValueError for NUL bytes, RecursionError for absurdly nested source
        raise ScriptError(_describe(exc), source) from exc
    if result.errors:
        reason, line = _summarize(result.errors, source)
        # The SyntaxError is what compile_restricted itself would have raised.
        raise ScriptError(reason, source, line) from SyntaxError(result.errors)
    return _Compiled(result.code, _uses_clock(result.code))


def _compile(source: str, mode: str) -> _Compiled:
    if mode not in ("eval", "exec"):
        raise ValueError(f"mode must be 'eval' or 'exec', not {mode!r}")
    if not isinstance(source, str):
        raise ScriptError(f"a script must be text, not {type(source).__name__}", None)
    if mode == "eval":
        # Builtin eval() ignores leading blanks, and XML/DMN text often has them; ast.parse does not.
        source = source.strip()
    return _compile_cached(source, mode)


def check_script(source: str, mode: str = "exec") -> str | None:
    """Compile ``source`` without running it: None if it is acceptable, else the reason it is refused.

    ``mode`` is ``"exec"`` for scriptTask bodies and ``"eval"`` for expressions (conditions, timers, DMN cells).
    """
    try:
        _compile(source, mode)
    except ScriptError as err:
        return err.reason
    return None


# --- what a script can see ------------------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ScriptError):
        return exc.reason
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _script_line(tb: TracebackType | None) -> int | None:
    """The innermost line of the script itself in a traceback (frames of our helpers are skipped)."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == SCRIPT_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _guarded_getattr(obj: Any, name: str, default: Any = raise_) -> Any:
    """``getattr`` for scripts: no ``_`` names, no frame internals, no ``str.format``.

    Unlike RestrictedPython's ``safer_getattr`` default, a missing attribute raises instead of giving None.
    """
    if type(name) is not str:
        raise TypeError("attribute name must be a string")
    if name.startswith("_") or name in _DENIED_ATTRIBUTES:
        raise ScriptError(f"access to '{name}' is not allowed")
    try:
        return safer_getattr(obj, name, default)
    except NotImplementedError as exc:  # str.format and string.Formatter: '{0.__class__}'.format(x) reads anything
        if name in ("format", "format_map"):
            raise ScriptError(f"str.{name}() is not allowed; use an f-string") from exc
        raise ScriptError(f"access to '{name}' is not allowed") from exc


_INPLACE = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
    "@=": operator.imatmul,
}


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    """``x += y`` and friends (RestrictedPython rewrites them to ``x = _inplacevar_('+=', x, y)``)."""
    return _INPLACE[op](target, value)


def _apply(function, *args, **kwargs):
    """Calls written with ``*args``/``**kwargs``; the arguments are plain values, nothing to guard."""
    return function(*args, **kwargs)


def _refuse(reason: str):
    def refused(*args, **kwargs):
        raise ScriptError(reason)

    return refused


# C code imports through the running frame's ``__import__``: date.today() and strftime() need ``time``,
# strptime() needs ``_strptime``. Scripts themselves cannot reach ``__import__`` (compile-time refusal).
_INTERNAL_IMPORTS = frozenset({"time", "_strptime"})


def _internal_import(name, *args, **kwargs):
    if name in _INTERNAL_IMPORTS:
        return builtins.__import__(name, *args, **kwargs)
    raise ScriptError("imports are not allowed")


def _build_builtins() -> dict[str, Any]:
    names = dict(safe_builtins)
    # No classes (see _Policy), no attribute writes, and no BaseException family: a script has no business
    # raising SystemExit in a web worker, and nothing it can catch should be beyond ``except Exception``.
    for name in (
        "__build_class__",
        "setattr",
        "delattr",
        "_getattr_",
        "BaseException",
        "SystemExit",
        "KeyboardInterrupt",
        "GeneratorExit",
    ):
        names.pop(name, None)
    names.update(limited_builtins)
    # random/whrandom would let a script reseed the process-wide generator, and scripts should be repeatable.
    names.update({k: v for k, v in utility_builtins.items() if k not in ("random", "whrandom")})
    names.update(
        datetime=datetime,
        timedelta=timedelta,
        timezone=timezone,
        date=date,
        min=min,
        max=max,
        sum=sum,
        len=len,
        abs=abs,
        round=round,
        sorted=sorted,
        any=any,
        all=all,
        int=int,
        float=float,
        str=str,
        bool=bool,
        dict=dict,
        set=set,
        enumerate=enumerate,
        zip=zip,
        # The real list/tuple: limited_builtins' versions only refuse strings, which protects nothing here.
        list=list,
        tuple=tuple,
        getattr=_guarded_getattr,
    )
    # range stays limited_range (at most 1,000 items): sum(range(10**12)) would run in C, beyond the clock.
    # Stubs instead of absent names, so the reason is clear rather than "name 'open' is not defined". Task data
    # with the same name still shadows them, as task data shadows any builtin.
    names["__import__"] = _internal_import
    for name in (
        "open",
        "compile",
        "eval",
        "exec",
        "globals",
        "locals",
        "vars",
        "dir",
        "input",
        "breakpoint",
        "help",
        "exit",
        "quit",
        "type",
        "object",
        "super",
        "memoryview",
        "setattr",
        "delattr",
    ):
        names[name] = _refuse(f"{name}() is not allowed")
    return names


#: Names RestrictedPython's compiled code calls; re-applied after task data so data can never replace them.
_GUARDS: dict[str, Any] = {
    "__builtins__": _build_builtins(),
    "_getattr_": _guarded_getattr,
    "_getitem_": operator.getitem,  # plain indexing: scripts only hold task data and values they built
    "_write_": full_write_guard,  # item writes to dict/list; attribute writes refused
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_print_": PrintCollector,
    "_inplacevar_": _inplacevar,
    "_apply_": _apply,
}

#: Everything a run may leave in the context besides the script's own variables.
_HELPER_NAMES = frozenset(_GUARDS) | {_TICK, _GETITER, "_print"}


class _Clock:
    """Deadline of one run; ``tick`` runs at the top of every ``while`` body and function body."""

    __slots__ = ("deadline", "limit", "expired")

    def __init__(self, limit: float):
        self.limit = limit
        self.deadline = time.monotonic() + limit
        self.expired = False

    @property
    def reason(self) -> str:
        return f"script timed out after {self.limit} s"

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            self.expired = True
            raise ScriptError(self.reason)

    def getiter(self, iterable):
        """``_getiter_``: every ``for`` and comprehension iterates through this, one clock check per item.

        Per item rather than once per loop: ``[xs.append(x) for x in xs]`` never ends and has no body to tick.
        """
        self.tick()
        return self._ticking(iter(iterable))

    def _ticking(self, iterator):
        deadline, monotonic = self.deadline, time.monotonic
        for item in iterator:
            if monotonic() > deadline:
                self.expired = True
                raise ScriptError(self.reason)
            yield item


# --- the environment ------------------------------------------------------------------------------------------


class RestrictedEnvironment(TaskDataEnvironment):
    """A ``TaskDataEnvironment`` that runs scripts under RestrictedPython with a time limit.

    Same data semantics as the parent: ``execute`` runs with the task data as globals, so assignments update
    the task data, and afterwards removes builtins, functions and injected names; ``evaluate`` leaves the task
    data alone. ``extra_globals`` (e.g. a clock-aware ``datetime``) are visible to every script.
    """

    def __init__(self, extra_globals: dict | None = None, time_limit: float = 2.0):
        if not time_limit or time_limit <= 0:
            raise ValueError("time_limit must be a positive number of seconds")
        super().__init__(environment_globals={**_GUARDS, **(extra_globals or {})})
        self.time_limit = time_limit

    def evaluate(self, expression, context, external_context=None):
        """Return the value of ``expression`` with the task data ``context``; raises :class:`ScriptError`."""
        compiled = _compile(expression, "eval")
        scope = {**self.globals, **(external_context or {}), **context, **_GUARDS}
        return self._run(compiled, scope, expression, "eval")

    def execute(self, script, context, external_context=None):
        """Run ``script`` with the task data ``context`` as its globals; raises :class:`ScriptError`."""
        compiled = _compile(script, "exec")
        external_context = external_context or {}
        try:
            self.check_for_overwrite(context, external_context)
        except ValueError as exc:
            raise ScriptError(str(exc), script) from exc
        context.update(self.globals)
        context.update(external_context)
        context.update(_GUARDS)
        try:
            self._run(compiled, context, script, "exec")
        finally:
            printed = context.get("_print")
            self._remove_globals_and_functions_from_context(context, external_context)
            for name in _HELPER_NAMES.intersection(context):
                del context[name]
            if printed is not None and logger.isEnabledFor(logging.DEBUG):
                logger.debug("script printed: %s", printed())
        return True

    def _run(self, compiled: _Compiled, scope: dict, source: str, mode: str):
        clock = None
        if compiled.needs_clock:
            clock = _Clock(self.time_limit)
            scope[_TICK] = clock.tick
            scope[_GETITER] = clock.getiter
        try:
            if mode == "eval":
                result = eval(compiled.code, scope)
            else:
                exec(compiled.code, scope)
                result = None
        except Exception as exc:
            line = _script_line(exc.__traceback__)
            if clock is not None and clock.expired:  # whatever the script did after its time was up
                raise ScriptError(clock.reason, source, line) from exc
            if isinstance(exc, ScriptError):  # refused by a guard inside the script
                exc.expression = exc.expression or source
                exc.line_number = exc.line_number or line
                raise
            raise ScriptError(_describe(exc), source, line) from exc
        if clock is not None and clock.expired:  # the script caught the timeout and carried on
            raise ScriptError(clock.reason, source)
        return result


# --- the engine -----------------------------------------------------------------------------------------------


def _task_exception(task, message: str, err: ScriptError, source: str) -> WorkflowTaskException:
    line = err.line_number
    lines = source.splitlines()
    error_line = lines[line - 1] if line and 0 < line <= len(lines) else ""
    wrapped = WorkflowTaskException(message, task=task, exception=err, line_number=line, error_line=error_line)
    wrapped.__cause__ = err  # PythonScriptEngine.execute raises it inside its except block, without "from"
    if isinstance(err.__cause__, NameError):  # keep Spiff's "Did you mean ...?" hint
        hint = WorkflowTaskException.did_you_mean_from_name_error(err.__cause__, list(task.data))
        if hint:
            wrapped.add_note(hint.strip())
    return wrapped


class RestrictedScriptEngine(PythonScriptEngine):
    """``PythonScriptEngine`` whose task errors carry the :class:`ScriptError` reason in their message.

    The parent reports a failed expression only as "Error evaluating expression '...'" and builds a script
    error message from ``args[0]``; here both say why, and keep the script's line number.
    """

    def evaluate(self, task, expression, external_context=None):
        """Evaluate ``expression`` against ``task.data``; failures raise ``WorkflowTaskException``."""
        try:
            return self.environment.evaluate(expression, task.data, external_context)
        except ScriptError as err:
            message = f"Error evaluating expression '{expression}': {err.reason}"
            raise _task_exception(task, message, err, str(expression)) from err

    def create_task_exec_exception(self, task, script, err):
        """Wrap a failed scriptTask in a ``WorkflowTaskException`` (called by ``PythonScriptEngine.execute``)."""
        if not isinstance(err, ScriptError):
            return super().create_task_exec_exception(task, script, err)
        return _task_exception(task, f"Error executing script: {err.reason}", err, script)


def make_script_engine(extra_globals: dict | None = None, time_limit: float = 2.0) -> RestrictedScriptEngine:
    """A script engine for ``BpmnWorkflow(spec, script_engine=...)`` that runs everything in the sandbox.

    ``time_limit`` (seconds) applies to each evaluate/execute call separately.
    """
    return RestrictedScriptEngine(environment=RestrictedEnvironment(extra_globals, time_limit))
