"""Diagram interchange for BPMN files drawn without it: lanes as bands, flow nodes in columns by path depth.

bpmn-js (and every modeler) needs a shape for each flow node and an edge for each sequence flow; diagrams
written by hand or by generators often lack them. ``add_diagram`` lays out each process left to right.
"""

from collections import defaultdict

from lxml import etree

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"

SIZES = {"event": (36, 36), "gateway": (50, 50), "task": (100, 80)}
COLUMN, ROW, LANE_PAD, POOL_X, LANE_X, TOP = 160, 110, 20, 100, 130, 80
FLOW_NODE_TAGS = {
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
    "task", "userTask", "serviceTask", "scriptTask", "businessRuleTask", "manualTask", "sendTask",
    "receiveTask", "callActivity", "subProcess", "exclusiveGateway", "parallelGateway", "inclusiveGateway",
    "eventBasedGateway",
}  # fmt: skip


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _kind(tag: str) -> str:
    if tag.endswith("Event"):
        return "event"
    if tag.endswith("Gateway"):
        return "gateway"
    return "task"


def _depths(nodes: dict, flows: list, boundary_host: dict) -> dict[str, int]:
    """Column of each node: longest path from a start, ignoring edges that close a loop."""
    outgoing = defaultdict(list)
    for source, target in flows:
        outgoing[source].append(target)
    for boundary, host in boundary_host.items():
        outgoing[host].append(boundary)
    starts = [n for n, tag in nodes.items() if tag == "startEvent"] or list(nodes)[:1]
    depth: dict[str, int] = {}
    on_path: set[str] = set()

    def visit(node: str, d: int) -> None:
        if node in on_path or depth.get(node, -1) >= d:
            return
        depth[node] = d
        on_path.add(node)
        for nxt in outgoing[node]:
            visit(nxt, d if nxt in boundary_host else d + 1)
        on_path.discard(node)

    for start in starts:
        visit(start, 0)
    for node in nodes:
        depth.setdefault(node, 0)
    return depth


def add_diagram(xml: str, force: bool = False) -> str:
    """Return ``xml`` with a BPMNDiagram for its process (unchanged if it has one, unless ``force``)."""
    root = etree.fromstring(xml.encode("utf-8"))
    existing = root.findall(_q(BPMNDI, "BPMNDiagram"))
    if existing and not force:
        return xml
    for diagram in existing:
        root.remove(diagram)
    process = root.find(_q(BPMN, "process"))
    if process is None:
        return xml
    participant = root.find(f"{_q(BPMN, 'collaboration')}/{_q(BPMN, 'participant')}")

    elements = [el for el in process if isinstance(el.tag, str)]  # skip comments and processing instructions
    nodes = {el.get("id"): etree.QName(el).localname for el in elements if etree.QName(el).localname in FLOW_NODE_TAGS}
    flows = [
        (el.get("id"), el.get("sourceRef"), el.get("targetRef")) for el in process.findall(_q(BPMN, "sequenceFlow"))
    ]
    boundary_host = {el.get("id"): el.get("attachedToRef") for el in process.findall(_q(BPMN, "boundaryEvent"))}
    lanes = process.findall(f"{_q(BPMN, 'laneSet')}/{_q(BPMN, 'lane')}")
    lane_of = {}
    for index, lane in enumerate(lanes):
        for ref in lane.findall(_q(BPMN, "flowNodeRef")):
            lane_of[(ref.text or "").strip()] = index
    for boundary, host in boundary_host.items():
        lane_of[boundary] = lane_of.get(host, 0)
    depth = _depths(nodes, [(s, t) for _, s, t in flows], boundary_host)

    # Stack nodes that share a lane and a column.
    slots: dict[tuple[int, int], list[str]] = defaultdict(list)
    for node in nodes:
        if node not in boundary_host:
            slots[(lane_of.get(node, 0), depth[node])].append(node)
    lane_rows = defaultdict(lambda: 1)
    for (lane, _), members in slots.items():
        lane_rows[lane] = max(lane_rows[lane], len(members))
    lane_count = max(len(lanes), 1)
    lane_top, y = {}, TOP
    for lane in range(lane_count):
        lane_top[lane] = y
        y += lane_rows[lane] * ROW + 2 * LANE_PAD
    pool_height = y - TOP
    width = (max(depth.values(), default=0) + 1) * COLUMN + 120

    bounds: dict[str, tuple[float, float, float, float]] = {}
    for (lane, column), members in slots.items():
        for row, node in enumerate(members):
            w, h = SIZES[_kind(nodes[node])]
            cx = LANE_X + 80 + column * COLUMN
            cy = lane_top[lane] + LANE_PAD + row * ROW + ROW / 2
            bounds[node] = (cx - w / 2, cy - h / 2, w, h)
    per_host: dict[str, int] = defaultdict(int)
    for boundary, host in boundary_host.items():
        hx, hy, hw, hh = bounds.get(host, (LANE_X, TOP, 100, 80))
        k = per_host[host]
        per_host[host] += 1
        bounds[boundary] = (hx + hw - 36 - k * 40, hy + hh - 18, 36, 36)

    nsmap = {"bpmndi": BPMNDI, "dc": DC, "di": DI}
    diagram = etree.SubElement(root, _q(BPMNDI, "BPMNDiagram"), nsmap=nsmap, id=f"{process.get('id')}_diagram")
    plane_ref = participant.getparent().get("id") if participant is not None else process.get("id")
    plane = etree.SubElement(diagram, _q(BPMNDI, "BPMNPlane"), id=f"{process.get('id')}_plane", bpmnElement=plane_ref)

    def shape(element_id: str, x: float, y: float, w: float, h: float, horizontal: bool = False) -> None:
        attrs = {"id": f"{element_id}_di", "bpmnElement": element_id}
        if horizontal:
            attrs["isHorizontal"] = "true"
        el = etree.SubElement(plane, _q(BPMNDI, "BPMNShape"), **attrs)
        etree.SubElement(el, _q(DC, "Bounds"), x=f"{x:g}", y=f"{y:g}", width=f"{w:g}", height=f"{h:g}")

    if participant is not None:
        shape(participant.get("id"), POOL_X, TOP, width + (LANE_X - POOL_X), pool_height, horizontal=True)
    for index, lane in enumerate(lanes):
        height = lane_rows[index] * ROW + 2 * LANE_PAD
        shape(lane.get("id"), LANE_X, lane_top[index], width, height, horizontal=True)
    for node, (x, y, w, h) in bounds.items():
        shape(node, x, y, w, h)
    for flow_id, source, target in flows:
        if source not in bounds or target not in bounds:
            continue
        sx, sy, sw, sh = bounds[source]
        tx, ty, tw, th = bounds[target]
        if source in boundary_host:
            start = (sx + sw / 2, sy + sh)
            points = [start, (start[0], ty + th / 2), (tx, ty + th / 2)]
        else:
            start, end = (sx + sw, sy + sh / 2), (tx, ty + th / 2)
            if tx <= sx:  # a loop back: go below the nodes
                low = max(sy + sh, ty + th) + 20
                points = [(sx + sw / 2, sy + sh), (sx + sw / 2, low), (tx + tw / 2, low), (tx + tw / 2, ty + th)]
            elif abs(start[1] - end[1]) < 1:
                points = [start, end]
            else:
                mid = (start[0] + end[0]) / 2
                points = [start, (mid, start[1]), (mid, end[1]), end]
        edge = etree.SubElement(plane, _q(BPMNDI, "BPMNEdge"), id=f"{flow_id}_di", bpmnElement=flow_id)
        for px, py in points:
            etree.SubElement(edge, _q(DI, "waypoint"), x=f"{px:g}", y=f"{py:g}")

    etree.indent(diagram, space="  ", level=1)
    text = etree.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n"


def missing_diagram_elements(xml: str) -> list[str]:
    """Ids of flow nodes and sequence flows that have no shape or edge (bpmn-js could not draw them)."""
    root = etree.fromstring(xml.encode("utf-8"))
    drawn = {el.get("bpmnElement") for el in root.iter(_q(BPMNDI, "BPMNShape"), _q(BPMNDI, "BPMNEdge"))}
    missing = []
    for process in root.iter(_q(BPMN, "process")):
        for el in process.iter():
            if not isinstance(el.tag, str):
                continue
            qname = etree.QName(el)
            if qname.namespace != BPMN:  # vendor extensions such as zeebe:userTask are not drawn
                continue
            if (qname.localname in FLOW_NODE_TAGS or qname.localname == "sequenceFlow") and el.get("id") not in drawn:
                missing.append(el.get("id"))
    return missing
