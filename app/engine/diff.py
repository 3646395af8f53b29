"""What changed between two versions of a BPMN or DMN file: elements added, removed and changed.

Only what runs is compared: flow nodes (subprocess contents included), sequence flows, lanes and pools of a
BPMN file; the inputs, outputs and rules of a DMN file. Diagram interchange (positions, waypoints, labels),
attribute order, whitespace and vendor decoration (Signavio's colours) are not changes.
"""

import textwrap
from bisect import bisect_left
from dataclasses import asdict, dataclass, field

from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
#: Attribute namespaces shown with a prefix; attributes in other namespaces (vendor decoration) are ignored.
_PREFIXES = {None: "", CAMUNDA_NS: "camunda:", ZEEBE_NS: "zeebe:"}
#: Children of a BPMN container that are not compared as elements of their own.
_CONTAINERS = {"process", "subProcess", "transaction", "adHocSubProcess"}
_IGNORED_CHILDREN = {
    "laneSet", "documentation", "extensionElements", "textAnnotation", "association", "group", "dataObject",
    "dataObjectReference", "dataStoreReference", "ioSpecification", "property", "incoming", "outgoing",
    "dataInputAssociation", "dataOutputAssociation", "standardLoopCharacteristics",
    "multiInstanceLoopCharacteristics", "completionCondition", "conditionExpression", "auditing", "monitoring",
}  # fmt: skip
#: Attributes compared on their own (or not at all) rather than as plain values.
_SPECIAL_ATTRIBUTES = {"id", "name", "sourceRef", "targetRef", "attachedToRef", "default"}


@dataclass
class ElementChange:
    """One element that was added, removed or changed; ``changes`` says how, in short phrases."""

    id: str
    name: str | None
    type: str
    changes: list[str] = field(default_factory=list)


@dataclass
class DefinitionDiff:
    added: list[ElementChange] = field(default_factory=list)
    removed: list[ElementChange] = field(default_factory=list)
    changed: list[ElementChange] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def to_dict(self) -> dict:
        return {
            "added": [asdict(e) for e in self.added],
            "removed": [asdict(e) for e in self.removed],
            "changed": [asdict(e) for e in self.changed],
        }


@dataclass(frozen=True)
class _Ref:
    """A reference to another element: equal when the id is, shown by the element's name."""

    id: str
    label: str = field(compare=False)


@dataclass
class _Element:
    """What is compared of one element: its identity and named aspects, each a comparable value."""

    id: str
    name: str | None
    type: str
    aspects: dict[str, object]


def diff_definitions(xml_a: str, xml_b: str) -> DefinitionDiff:
    """The differences from ``xml_a`` (the older version) to ``xml_b``, each list sorted by element id.

    Raises:
        ValueError: a file is not well-formed, or one is BPMN and the other DMN.
    """
    root_a, root_b = _parse(xml_a), _parse(xml_b)
    kind_a, kind_b = _kind(root_a), _kind(root_b)
    if kind_a != kind_b:
        raise ValueError(f"cannot compare a {kind_a} file with a {kind_b} file")
    if kind_a == "dmn":
        before, after = _dmn_elements(root_a), _dmn_elements(root_b)
        _mark_moved_rules(before, after)
        return _diff(before, after, _dmn_changes)
    return _diff(_bpmn_elements(root_a), _bpmn_elements(root_b), _bpmn_changes)


def _parse(xml: str):
    try:
        return etree.fromstring(xml.encode("utf-8"), etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from exc


def _kind(root) -> str:
    namespace = etree.QName(root).namespace or ""
    if namespace == BPMN_NS:
        return "bpmn"
    if "DMN" in namespace.upper():
        return "dmn"
    raise ValueError(f"neither BPMN 2.0 nor DMN: namespace {namespace!r}")


def _diff(before: dict[str, _Element], after: dict[str, _Element], describe) -> DefinitionDiff:
    result = DefinitionDiff()
    for element_id in sorted(before.keys() | after.keys()):
        a, b = before.get(element_id), after.get(element_id)
        if a is None:
            result.added.append(ElementChange(b.id, b.name, b.type))
        elif b is None:
            result.removed.append(ElementChange(a.id, a.name, a.type))
        else:
            changes = describe(a, b)
            if changes:
                result.changed.append(ElementChange(b.id, b.name, b.type, changes))
    return result


# --- shared helpers -------------------------------------------------------------------------------------------------


def _local(element) -> str:
    return etree.QName(element).localname


def _one_line(text: str | None) -> str | None:
    """Text with its whitespace collapsed, None when empty."""
    text = " ".join((text or "").split())
    return text or None


def _code(text: str | None) -> str | None:
    """Script text with the indentation of the XML around it and trailing blanks removed."""
    if not text or not text.strip():
        return None
    lines = [line.rstrip() for line in textwrap.dedent(text.strip("\n")).splitlines()]
    return "\n".join(lines).strip("\n")


def _quoted(value) -> str:
    if isinstance(value, _Ref):
        return repr(value.label)
    return repr(value) if isinstance(value, str) else str(value)


def _value_change(label: str, old, new) -> str:
    if old is None:
        return f"{label} set to {_quoted(new)}"
    if new is None:
        return f"{label} removed"
    return f"{label}: {_quoted(old)} → {_quoted(new)}"


# --- BPMN -----------------------------------------------------------------------------------------------------------


def _bpmn_elements(root) -> dict[str, _Element]:
    ns = {"bpmn": BPMN_NS}
    messages = {m.get("id"): m.get("name") for m in root.iterfind("bpmn:message", ns)}
    refs = {
        el.get("id"): el.get("name") or el.get("id")
        for tag in ("signal", "error", "escalation")
        for el in root.iterfind(f"bpmn:{tag}", ns)
    }
    labels = {el.get("id"): _one_line(el.get("name")) or el.get("id") for el in root.iter() if el.get("id")}
    elements: dict[str, _Element] = {}
    for participant in root.iterfind("bpmn:collaboration/bpmn:participant", ns):
        aspects = {"name": _one_line(participant.get("name")), "process": participant.get("processRef")}
        elements[participant.get("id")] = _Element(participant.get("id"), aspects["name"], "participant", aspects)
    for process in root.iterfind("bpmn:process", ns):
        lanes = {}
        for lane in process.iter(f"{{{BPMN_NS}}}lane"):
            name = _one_line(lane.get("name"))
            elements[lane.get("id")] = _Element(lane.get("id"), name, "lane", {"name": name})
            for ref in lane.iterfind("bpmn:flowNodeRef", ns):
                lanes[(ref.text or "").strip()] = _Ref(lane.get("id"), name or lane.get("id"))
        elements[process.get("id")] = _bpmn_element(process, None, messages, refs, labels)
        todo = [process]
        while todo:
            container = todo.pop()
            for child in container:
                if not isinstance(child.tag, str) or etree.QName(child).namespace != BPMN_NS or not child.get("id"):
                    continue
                if _local(child) in _IGNORED_CHILDREN:
                    continue
                lane = lanes.get(child.get("id"))
                elements[child.get("id")] = _bpmn_element(child, lane, messages, refs, labels)
                if _local(child) in _CONTAINERS:
                    todo.append(child)
    return elements


def _bpmn_element(element, lane: "_Ref | None", messages: dict, refs: dict, labels: dict) -> _Element:
    ns = {"bpmn": BPMN_NS, "camunda": CAMUNDA_NS}
    tag = _local(element)
    name = _one_line(element.get("name"))
    aspects: dict[str, object] = {
        "name": name,
        "documentation": _one_line(" ".join(d.text or "" for d in element.iterfind("bpmn:documentation", ns))),
        "lane": lane,
        "attributes": _attributes(element),
    }
    for attribute, label in (("sourceRef", "source"), ("targetRef", "target"), ("attachedToRef", "attached to")):
        if element.get(attribute):
            aspects[label] = _Ref(element.get(attribute), labels.get(element.get(attribute), element.get(attribute)))
    if element.get("default"):
        aspects["default flow"] = _Ref(
            element.get("default"), labels.get(element.get("default"), element.get("default"))
        )
    condition = element.find("bpmn:conditionExpression", ns)
    if condition is not None:
        aspects["condition"] = _code(condition.text)
    script = element.find("bpmn:script", ns)
    if script is not None:
        aspects["script"] = _code(script.text)
    aspects["trigger"] = _trigger(element, messages, refs)
    loops = [c for c in element if isinstance(c.tag, str) and _local(c).endswith("LoopCharacteristics")]
    aspects["loop"] = _canonical(loops[0]) if loops else None
    aspects["form"] = _form(element)
    aspects["properties"] = {
        p.get("name"): p.get("value") for p in element.iterfind("bpmn:extensionElements/camunda:properties/*", ns)
    }
    aspects["extensions"] = {
        f"{_PREFIXES[etree.QName(ext).namespace]}{_local(ext)}": _canonical(ext)
        for ext in element.iterfind("bpmn:extensionElements/*", ns)
        if isinstance(ext.tag, str)
        and etree.QName(ext).namespace in (CAMUNDA_NS, ZEEBE_NS)
        and _local(ext) not in {"formData", "properties"}
    }
    return _Element(element.get("id"), name, tag, aspects)


def _attributes(element) -> dict[str, str]:
    """Plain attributes that change how an element runs, by prefixed name."""
    found = {}
    for key, value in element.attrib.items():
        qname = etree.QName(key)
        if qname.namespace not in _PREFIXES or (qname.namespace is None and qname.localname in _SPECIAL_ATTRIBUTES):
            continue
        found[_PREFIXES[qname.namespace] + qname.localname] = value
    return found


def _trigger(element, messages: dict, refs: dict) -> tuple | None:
    """(kind, detail) of an event's definition, e.g. ("timer", '"P15D"') or ("message", "'violation_reported'")."""
    definitions = [c for c in element if isinstance(c.tag, str) and _local(c).endswith("EventDefinition")]
    if not definitions:
        return None
    parts = []
    for definition in definitions:
        kind = _local(definition).removesuffix("EventDefinition")
        if kind == "timer":
            timer = next((c for c in definition if isinstance(c.tag, str)), None)
            kind_of_timer = _local(timer).removeprefix("time").lower() if timer is not None else ""
            detail = (kind_of_timer, _one_line(timer.text if timer is not None else None) or "")
        elif kind == "message":
            detail = (
                messages.get(definition.get("messageRef"), definition.get("messageRef")),
                definition.get(f"{{{CAMUNDA_NS}}}expression"),
                definition.get(f"{{{CAMUNDA_NS}}}resultVariable"),
            )
        elif kind == "conditional":
            detail = (_code(definition.findtext(f"{{{BPMN_NS}}}condition")),)
        else:
            ref = next((v for k, v in definition.attrib.items() if k.endswith("Ref")), None)
            detail = (refs.get(ref, ref),)
        parts.append((kind, detail))
    return tuple(parts)


def _canonical(element) -> str:
    """An element's XML in a form where attribute order and indentation do not matter (c14n sorts attributes)."""
    copy = etree.fromstring(etree.tostring(element))
    for el in copy.iter():
        el.text = (el.text or "").strip() or None
        el.tail = None
    return etree.tostring(copy, method="c14n").decode()


def _form(element) -> dict[str, dict]:
    ns = {"bpmn": BPMN_NS, "camunda": CAMUNDA_NS}
    fields = {}
    for form_field in element.iterfind("bpmn:extensionElements/camunda:formData/camunda:formField", ns):
        fields[form_field.get("id")] = {
            "label": form_field.get("label"),
            "type": form_field.get("type"),
            "default": form_field.get("defaultValue"),
            "options": [(v.get("id"), v.get("name")) for v in form_field.iterfind("camunda:value", ns)],
            "rules": {c.get("name"): c.get("config") for c in form_field.iterfind("camunda:validation/*", ns)},
            "properties": {p.get("id"): p.get("value") for p in form_field.iterfind("camunda:properties/*", ns)},
        }
    return fields


def _bpmn_changes(a: _Element, b: _Element) -> list[str]:
    before, after = a.aspects, b.aspects
    changes = []
    if a.type != b.type:
        changes.append(f"type: {a.type} → {b.type}")
    if before.get("name") != after.get("name"):
        changes.append(_value_change("name", before.get("name"), after.get("name")))
    if before.get("lane") != after.get("lane") and after.get("lane") is not None:
        changes.append(f"moved to lane {after['lane'].label!r}")
    elif before.get("lane") != after.get("lane"):
        changes.append("taken out of its lane")
    for label in ("source", "target", "attached to", "default flow"):
        if before.get(label) != after.get(label):
            changes.append(_value_change(label, before.get(label), after.get(label)))
    for label in ("condition", "script"):
        if before.get(label) != after.get(label):
            if before.get(label) is None or after.get(label) is None:
                changes.append(f"{label} {'added' if before.get(label) is None else 'removed'}")
            else:
                changes.append(f"{label} changed")
    changes.extend(_trigger_changes(before.get("trigger"), after.get("trigger")))
    old_attributes, new_attributes = before.get("attributes", {}), after.get("attributes", {})
    for key in sorted(old_attributes.keys() | new_attributes.keys()):
        if old_attributes.get(key) != new_attributes.get(key):
            changes.append(_value_change(key, old_attributes.get(key), new_attributes.get(key)))
    changes.extend(_form_changes(before.get("form", {}), after.get("form", {})))
    old_properties, new_properties = before.get("properties", {}), after.get("properties", {})
    for key in sorted(old_properties.keys() | new_properties.keys(), key=str):
        if old_properties.get(key) != new_properties.get(key):
            changes.append(_value_change(f"property {key!r}", old_properties.get(key), new_properties.get(key)))
    if before.get("loop") != after.get("loop"):
        changes.append("loop changed")
    old_extensions, new_extensions = before.get("extensions", {}), after.get("extensions", {})
    for key in sorted(old_extensions.keys() | new_extensions.keys()):
        if old_extensions.get(key) != new_extensions.get(key):
            changes.append(f"{key} changed")
    if before.get("documentation") != after.get("documentation"):
        changes.append("documentation changed")
    if before.get("process") != after.get("process"):
        changes.append(_value_change("process", before.get("process"), after.get("process")))
    return changes


def _trigger_changes(old, new) -> list[str]:
    if old == new:
        return []
    if old is None or new is None or len(old) != 1 or len(new) != 1:
        describe = lambda t: " + ".join(kind for kind, _ in t) if t else "none"  # noqa: E731
        return [f"trigger: {describe(old)} → {describe(new)}"]
    (old_kind, old_detail), (new_kind, new_detail) = old[0], new[0]
    if old_kind != new_kind:
        return [f"trigger: {old_kind} → {new_kind}"]
    if old_kind == "timer":
        if old_detail[:1] != new_detail[:1]:
            return [f"timer: {' '.join(old_detail)} → {' '.join(new_detail)}"]
        return [f"timer: {old_detail[1]} → {new_detail[1]}"]
    if old_kind == "message":
        changes = []
        if old_detail[0] != new_detail[0]:
            changes.append(_value_change("message", old_detail[0], new_detail[0]))
        if old_detail[1] != new_detail[1]:
            changes.append("message payload changed")
        if old_detail[2] != new_detail[2]:
            changes.append(_value_change("message variable", old_detail[2], new_detail[2]))
        return changes
    if old_kind == "conditional":
        return ["event condition changed"]
    return [_value_change(old_kind, old_detail[0], new_detail[0])]


def _form_changes(old: dict, new: dict) -> list[str]:
    changes = []
    for field_id in sorted(old.keys() | new.keys(), key=str):
        if field_id not in new:
            changes.append(f"form field {field_id!r} removed")
        elif field_id not in old:
            changes.append(f"form field {field_id!r} added")
        else:
            changes.extend(_field_changes(f"form field {field_id!r}", old[field_id], new[field_id]))
    return changes


def _field_changes(what: str, a: dict, b: dict) -> list[str]:
    changes = [
        _value_change(f"{what} {key}", a[key], b[key]) for key in ("label", "type", "default") if a[key] != b[key]
    ]
    if a["options"] != b["options"]:
        changes.append(f"{what} options changed")
    for rule in sorted(a["rules"].keys() | b["rules"].keys(), key=str):
        old, new = a["rules"].get(rule), b["rules"].get(rule)
        if rule not in b["rules"]:
            changes.append(f"{what} no longer {rule}")
        elif rule not in a["rules"]:
            changes.append(f"{what} now {rule}" + (f" {new}" if new else ""))
        elif old != new:
            changes.append(_value_change(f"{what} {rule}", old, new))
    if a["properties"] != b["properties"]:
        changes.append(f"{what} properties changed")
    return changes


# --- DMN ------------------------------------------------------------------------------------------------------------


def _dmn_elements(root) -> dict[str, _Element]:
    """Decisions, their input and output columns and rules, by id (by position where a tool wrote no id)."""
    elements: dict[str, _Element] = {}
    for number, decision in enumerate(root.iterfind("{*}decision"), start=1):
        decision_id = decision.get("id") or f"decision {number}"
        table = decision.find("{*}decisionTable")
        aspects = {
            "name": _one_line(decision.get("name")),
            "documentation": _one_line(decision.findtext("{*}description")),
            "hit policy": table.get("hitPolicy", "UNIQUE") if table is not None else None,
            "aggregation": table.get("aggregation") if table is not None else None,
        }
        elements[decision_id] = _Element(decision_id, aspects["name"], "decision", aspects)
        if table is None:
            continue
        inputs = [(c.get("id") or f"{decision_id} input {n}", c) for n, c in enumerate(table.findall("{*}input"), 1)]
        outputs = [(c.get("id") or f"{decision_id} output {n}", c) for n, c in enumerate(table.findall("{*}output"), 1)]
        for column_id, column in inputs:
            expression = column.find("{*}inputExpression")
            aspects = {
                "label": _one_line(column.get("label")),
                "expression": _code(expression.findtext("{*}text")) if expression is not None else None,
                "type": expression.get("typeRef") if expression is not None else None,
            }
            name = aspects["label"] or aspects["expression"]
            elements[column_id] = _Element(column_id, name, "input", aspects)
        for column_id, column in outputs:
            aspects = {
                "label": _one_line(column.get("label")),
                "name": column.get("name"),
                "type": column.get("typeRef"),
            }
            elements[column_id] = _Element(column_id, column.get("name"), "output", aspects)
        input_names = [(column_id, _column_name(c)) for column_id, c in inputs]
        output_names = [(column_id, c.get("name") or c.get("label") or column_id) for column_id, c in outputs]
        for position, rule in enumerate(table.iterfind("{*}rule"), start=1):
            cells = {}
            for (column_id, column_name), entry in zip(input_names, rule.findall("{*}inputEntry"), strict=False):
                cells[("input", column_id)] = (column_name, _one_line(entry.findtext("{*}text")) or "-")
            for (column_id, column_name), entry in zip(output_names, rule.findall("{*}outputEntry"), strict=False):
                cells[("output", column_id)] = (column_name, _one_line(entry.findtext("{*}text")) or "")
            aspects = {
                "position": position,
                "description": _one_line(rule.findtext("{*}description")),
                "cells": cells,
            }
            rule_id = rule.get("id") or f"{decision_id} rule {position}"
            elements[rule_id] = _Element(rule_id, f"rule {position}", "rule", aspects)
    return elements


def _mark_moved_rules(before: dict[str, _Element], after: dict[str, _Element]) -> None:
    """Mark the rules whose order changed, fewest first: those outside the longest run kept in the same order.

    (Adding or removing a rule shifts the positions of the rules below it; that is not a move.)"""
    kept = [e for e in after.values() if e.type == "rule" and before.get(e.id, e).type == "rule" and e.id in before]
    kept.sort(key=lambda e: e.aspects["position"])
    ranks = [before[e.id].aspects["position"] for e in kept]
    # Longest increasing subsequence of the old positions, in the new order (patience sorting).
    tails, tail_index, previous = [], [], [None] * len(ranks)
    for i, rank in enumerate(ranks):
        j = bisect_left(tails, rank)
        if j:
            previous[i] = tail_index[j - 1]
        if j == len(tails):
            tails.append(rank)
            tail_index.append(i)
        else:
            tails[j], tail_index[j] = rank, i
    in_order, i = set(), tail_index[-1] if tail_index else None
    while i is not None:
        in_order.add(i)
        i = previous[i]
    for i, rule in enumerate(kept):
        rule.aspects["moved"] = i not in in_order


def _column_name(column) -> str:
    label = _one_line(column.get("label"))
    if label:
        return label
    expression = column.find("{*}inputExpression")
    return (_one_line(expression.findtext("{*}text")) if expression is not None else None) or column.get("id")


def _dmn_changes(a: _Element, b: _Element) -> list[str]:
    before, after = a.aspects, b.aspects
    if a.type != b.type:
        return [f"type: {a.type} → {b.type}"]
    if a.type != "rule":
        changes = []
        for key in after:
            if before.get(key) != after.get(key):
                if key == "documentation":
                    changes.append("documentation changed")
                elif key == "expression" and before.get(key) and after.get(key):
                    changes.append(f"expression: {before[key]} → {after[key]}")
                else:
                    changes.append(_value_change(key, before.get(key), after.get(key)))
        return changes
    prefix = f"rule {after['position']}"
    changes = []
    if after.get("moved"):
        changes.append(f"{prefix}: moved (was rule {before['position']})")
    for key, (column_name, new_text) in after["cells"].items():
        old = before["cells"].get(key)
        if old is not None and old[1] != new_text:
            changes.append(f"{prefix}: {key[0]} {column_name!r} {old[1] or '(empty)'} → {new_text or '(empty)'}")
    if before["description"] != after["description"]:
        changes.append(f"{prefix}: description changed")
    return changes
