"""Checks for every decision table in workflows/ that the engine does not make itself.

SpiffWorkflow does not enforce the UNIQUE hit policy (when several rows match it silently takes the first), so
every UNIQUE table is checked here: each cell is evaluated in the script sandbox (app.engine.script_env) for
every combination of the values its column's cells name (and their neighbours), and no combination may match
two rows, while every row must be matched by some combination.

The engine also builds an operator cell (``>= 2``, ``in (...)``) by appending it to the input expression
as text, so an input ``case.get("x") or 0`` with a cell ``>= 2`` silently means ``case.get("x") or (0 >= 2)``.
Every operator cell of every table is checked to bind to the whole input expression.
"""

import ast
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from app.engine.script_env import RestrictedEnvironment, ScriptError
from tests.workflows.conftest import WORKFLOWS

DMN_FILES = sorted(WORKFLOWS.glob("*.dmn"))
#: "?" outside quotes stands for the input value (same rule as SpiffWorkflow's DMNEngine).
_QUESTION = re.compile(r"(\?)(?=(?:[^'\"]|['\"][^'\"]*['\"])*$)")
_INPUT = "dmninputexpr"
_MAX_COMBINATIONS = 500_000

_env = RestrictedEnvironment(time_limit=1.0)


@dataclass
class Table:
    file: str
    id: str
    hit_policy: str
    inputs: list[str]  # input expressions
    rules: list[tuple[str, list[str | None]]]  # rule id, cells (None for "-")


def read_tables(text: bytes, file: str) -> list[Table]:
    root = etree.fromstring(text)
    ns = {"dmn": etree.QName(root).namespace}
    tables = []
    for table in root.iterfind(".//dmn:decisionTable", ns):
        inputs = [
            (item.findtext("dmn:inputExpression/dmn:text", default="", namespaces=ns) or "").strip()
            for item in table.findall("dmn:input", ns)
        ]
        rules = []
        for rule in table.findall("dmn:rule", ns):
            cells = []
            for entry in rule.findall("dmn:inputEntry", ns):
                cell = (entry.findtext("dmn:text", default="", namespaces=ns) or "").strip()
                cells.append(None if cell in ("", "-") else cell)
            rules.append((rule.get("id"), cells))
        tables.append(Table(file, table.get("id"), table.get("hitPolicy", "UNIQUE").upper(), inputs, rules))
    return tables


ALL_TABLES = [t for path in DMN_FILES for t in read_tables(path.read_bytes(), path.name)]
UNIQUE_TABLES = [t for t in ALL_TABLES if t.hit_policy == "UNIQUE"]


def _is_expression(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return True


def cell_expression(cell: str, input_expression: str = _INPUT) -> str:
    """The Python expression ``cell`` stands for (see SpiffWorkflow's DMNEngine.evaluate)."""
    if _QUESTION.search(cell):
        return _QUESTION.sub(_INPUT, cell)
    if _is_expression(cell):
        return f"({input_expression}) == ({cell})"
    return f"({input_expression}) {cell}"  # the engine glues the two; see test_operator_cells_apply_...


def matches(cell: str | None, value) -> bool:
    if cell is None:
        return True
    expression = cell_expression(cell, _INPUT)
    try:
        return bool(_env.evaluate(expression, {_INPUT: value}))
    except ScriptError:  # e.g. None < 16, "red" >= 3: the row does not match this value
        return False


def candidates(cells: list[str | None]) -> list:
    """Values worth trying in one column: every constant its cells name, numbers ±1, and None."""
    values: list = [None]
    for cell in cells:
        if cell is None:
            continue
        source = _QUESTION.sub(_INPUT, cell)
        tree = None
        for text in (source, f"{_INPUT} {source}"):
            try:
                tree = ast.parse(text, mode="eval")
                break
            except SyntaxError:
                continue
        if tree is None:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant):
                continue
            value = node.value
            found = [value]
            if isinstance(value, int | float) and not isinstance(value, bool):
                # neighbours of a bound; a negative literal is -(Constant), so its negation too
                found += [value - 1, value + 1, -value, -value - 1, -value + 1]
            for item in found:
                if not any(item == v and type(item) is type(v) for v in values):
                    values.append(item)
    return values


def overlaps(table: Table) -> tuple[list[str], list[str]]:
    """(descriptions of input combinations matching two or more rows, ids of rows nothing matches)."""
    columns = [candidates([cells[i] for _, cells in table.rules]) for i in range(len(table.inputs))]
    size = 1
    for column in columns:
        size *= len(column)
    assert size <= _MAX_COMBINATIONS, f"{table.file}#{table.id}: {size} combinations, too many to check"
    # Evaluate each cell once per candidate value, then combine.
    hit = [
        [{v_index for v_index, value in enumerate(columns[i]) if matches(cells[i], value)} for i in range(len(cells))]
        for _, cells in table.rules
    ]
    problems, reached = [], set()
    for combination in itertools.product(*(range(len(c)) for c in columns)):
        matched = [
            rule_id
            for (rule_id, _), cells_hit in zip(table.rules, hit, strict=True)
            if all(index in cells_hit[i] for i, index in enumerate(combination))
        ]
        reached.update(matched)
        if len(matched) > 1:
            values = {table.inputs[i]: columns[i][index] for i, index in enumerate(combination)}
            problems.append(f"{values} matches {', '.join(matched)}")
    unreached = [rule_id for rule_id, _ in table.rules if rule_id not in reached]
    return problems, unreached


# --- the checks -----------------------------------------------------------------------------------------------


def test_library_has_unique_tables_to_check():
    """The check below is not vacuous: test_schedule.dmn is UNIQUE (one interval per tier and year, 法35)."""
    assert any(t.file == "test_schedule.dmn" for t in UNIQUE_TABLES)


@pytest.mark.parametrize("table", UNIQUE_TABLES, ids=lambda t: f"{t.file}#{t.id}")
def test_unique_table_rows_never_overlap(table):
    """UNIQUE (not enforced by the engine): no input matches two rows, and every row can be matched."""
    problems, unreached = overlaps(table)
    assert problems == [], f"{table.file}#{table.id}: rows overlap:\n" + "\n".join(problems[:10])
    assert unreached == [], f"{table.file}#{table.id}: rows no tried input matches: {unreached}"


OPERATOR_CELLS = [
    (t, rule_id, t.inputs[i], cell)
    for t in ALL_TABLES
    for rule_id, cells in t.rules
    for i, cell in enumerate(cells)
    if cell is not None and not _QUESTION.search(cell) and not _is_expression(cell)
]


@pytest.mark.parametrize(
    ("table", "rule_id", "input_expression", "cell"),
    OPERATOR_CELLS,
    ids=[f"{t.file}#{rule}:{cell}" for t, rule, _, cell in OPERATOR_CELLS],
)
def test_operator_cells_apply_to_the_whole_input(table, rule_id, input_expression, cell):
    """``input + cell`` (what the engine evaluates) must mean ``(input) cell``, e.g. not ``x or (0 >= 2)``."""
    glued = input_expression + cell
    intended = f"({input_expression}) {cell}"
    assert _is_expression(glued), f"{table.file}#{rule_id}: {glued!r} is not an expression; write the cell with ?"
    assert ast.dump(ast.parse(glued, mode="eval")) == ast.dump(ast.parse(intended, mode="eval")), (
        f"{table.file}#{rule_id}: {glued!r} does not mean {intended!r}: put the input expression in parentheses"
    )


# --- the checker itself -----------------------------------------------------------------------------------------

OVERLAPPING = b"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="d" namespace="x">
  <decision id="bad" name="bad"><decisionTable id="bad_table" hitPolicy="UNIQUE">
    <input id="i1"><inputExpression id="e1"><text>tier</text></inputExpression></input>
    <input id="i2"><inputExpression id="e2"><text>year</text></inputExpression></input>
    <output id="o" name="interval_days"/>
    <rule id="r_year_1_2"><inputEntry id="a1"><text>"blue"</text></inputEntry>
      <inputEntry id="a2"><text>&lt;= 2</text></inputEntry>
      <outputEntry id="a3"><text>30</text></outputEntry></rule>
    <rule id="r_year_2_up"><inputEntry id="b1"><text>-</text></inputEntry>
      <inputEntry id="b2"><text>? &gt;= 2</text></inputEntry>
      <outputEntry id="b3"><text>60</text></outputEntry></rule>
    <rule id="r_never"><inputEntry id="c1"><text>"red"</text></inputEntry>
      <inputEntry id="c2"><text>? &gt; 5 and ? &lt; 3</text></inputEntry>
      <outputEntry id="c3"><text>10</text></outputEntry></rule>
  </decisionTable></decision>
</definitions>"""


def test_checker_finds_overlapping_and_unreachable_rows():
    [table] = read_tables(OVERLAPPING, "bad.dmn")
    problems, unreached = overlaps(table)
    assert problems == ["{'tier': 'blue', 'year': 2} matches r_year_1_2, r_year_2_up"]
    assert unreached == ["r_never"]


def test_checker_reads_cells_like_the_engine():
    assert matches('"red"', "red") and not matches('"red"', "blue")
    assert matches(">= 3", 3) and not matches(">= 3", 2)
    assert matches('in ("missed", "refused")', "missed") and not matches('in ("missed", "refused")', "negative")
    assert matches("? is not None and ? < 16", 15) and not matches("? is not None and ? < 16", None)
    assert not matches(">= 3", None)  # a TypeError is no match
    assert matches(None, "anything")


def test_operator_check_catches_a_precedence_trap():
    glued = 'case.get("refusals") or 0' + ">= 2"
    assert ast.dump(ast.parse(glued, mode="eval")) != ast.dump(
        ast.parse('(case.get("refusals") or 0) >= 2', mode="eval")
    )


def test_every_dmn_file_was_read():
    assert {t.file for t in ALL_TABLES} == {p.name for p in DMN_FILES}
    assert all(isinstance(p, Path) for p in DMN_FILES)
