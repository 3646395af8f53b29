// Process monitoring: draws a deployed diagram with bpmn-js (NavigatedViewer, window.BpmnJS) and marks it from the
// page's <script type="application/json" id="diagram-data"> block (data, not code: the CSP allows no inline script).
//   data-mode="heat": counts per element (open, completed, incidents) as badges, busy elements tinted.
//   data-mode="path": the completed path, the current tokens and incidents; a click shows the element's events.
(() => {
  "use strict";

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function showError(container, error) {
    console.warn("diagram:", error);
    container.replaceChildren(el("p", "text-danger small m-2", container.dataset.error || "The diagram could not be drawn."));
  }

  // --- heat map ----------------------------------------------------------------------------------------------------

  function drawHeat(viewer, data) {
    const registry = viewer.get("elementRegistry");
    const canvas = viewer.get("canvas");
    const overlays = viewer.get("overlays");
    const heat = data.heat || {};
    const busiest = Math.max(1, ...Object.values(heat).map((c) => c.active || 0));
    for (const [elementId, counts] of Object.entries(heat)) {
      if (!registry.get(elementId)) continue;  // an element of a called process or of another version
      const badges = el("div", "rf-badges");
      for (const kind of ["active", "completed", "incidents"]) {
        if (counts[kind]) badges.append(el("span", `rf-badge rf-heat-${kind}`, counts[kind]));
      }
      if (badges.childElementCount) overlays.add(elementId, "rf-heat", { position: { bottom: 8, left: -6 }, scale: { min: 1 }, html: badges });
      if (counts.active) canvas.addMarker(elementId, `rf-heat-${Math.ceil((counts.active / busiest) * 3)}`);
      if (counts.incidents) canvas.addMarker(elementId, "rf-incident");
    }
  }

  // --- one instance's path -----------------------------------------------------------------------------------------

  function drawPath(viewer, data) {
    const registry = viewer.get("elementRegistry");
    const canvas = viewer.get("canvas");
    const overlays = viewer.get("overlays");
    const completed = data.completed || {};
    const current = new Set([...(data.active || []), ...(data.waiting || [])]);
    const mark = (id, cls) => { if (registry.get(id)) canvas.addMarker(id, cls); };

    for (const [id, passes] of Object.entries(completed)) {
      mark(id, "rf-completed");
      if (passes > 1 && registry.get(id)) {
        overlays.add(id, "rf-passes", { position: { top: -10, right: 10 }, scale: { min: 1 }, html: el("span", "rf-badge rf-heat-completed", `×${passes}`) });
      }
    }
    (data.active || []).forEach((id) => mark(id, "rf-active"));
    (data.waiting || []).forEach((id) => mark(id, "rf-waiting"));
    (data.incidents || []).forEach((id) => mark(id, "rf-incident"));
    // A sequence flow was taken when it leads from a completed element to a completed or current one.
    registry.filter((e) => e.waypoints && e.source && e.target).forEach((flow) => {
      if (completed[flow.source.id] && (completed[flow.target.id] || current.has(flow.target.id))) {
        canvas.addMarker(flow.id, "rf-completed-flow");
      }
    });
    const detail = document.getElementById("element-detail");
    if (detail) {
      viewer.get("eventBus").on("element.click", (event) => showElement(detail, event.element, data));
    }
  }

  function dataTable(values) {
    const table = el("table", "table table-sm small mb-0");
    const body = table.createTBody();
    for (const [key, value] of Object.entries(values)) {
      const row = body.insertRow();
      row.append(el("th", "fw-normal text-body-secondary", key));
      row.append(el("td", "text-break", typeof value === "string" ? value : JSON.stringify(value)));
    }
    return table;
  }

  function showElement(detail, element, data) {
    const id = element.id;
    const name = (element.businessObject && element.businessObject.name) || (data.names || {})[id] || id;
    const text = data.text || {};
    const parts = [el("h3", "h6 mb-1", name), el("div", "small text-body-secondary font-monospace mb-2", id)];
    const passes = (data.completed || {})[id];
    if (passes) parts.push(el("div", "small mb-2", (text.passes || "%(count)s").replace("%(count)s", passes)));
    if ((data.active || []).includes(id) || (data.waiting || []).includes(id)) {
      parts.push(el("div", "badge rf-status-running mb-2", text.current || "current"));
    }
    const events = (data.events || {})[id] || [];
    if (!events.length) parts.push(el("p", "small text-body-secondary mb-0", text.noEvents || ""));
    const list = el("ol", "timeline mb-0");
    for (const event of events) {
      const item = el("li");
      item.dataset.type = event.type;
      const when = el("div", "small text-body-secondary");
      const time = el("time", "", event.when || event.at);  // formatted by the server, in China's time
      time.dateTime = event.at;
      when.append(time, ` · ${event.actor}`);
      item.append(when, el("div", "fw-semibold", event.label));
      if (event.reason) item.append(el("div", "small", event.reason));
      if (event.error) item.append(el("pre", "rf-error small mb-0", event.error));
      if (event.data && Object.keys(event.data).length) {
        item.append(el("div", "small mt-1", text.data || ""), dataTable(event.data));
      }
      list.append(item);
    }
    if (events.length) parts.push(list);
    detail.replaceChildren(...parts);
  }

  // --- drawing ------------------------------------------------------------------------------------------------------

  async function draw(container) {
    const dataNode = document.getElementById("diagram-data");
    const data = dataNode ? JSON.parse(dataNode.textContent) : {};
    const response = await fetch(container.dataset.xmlUrl, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const viewer = new window.BpmnJS({ container });
    await viewer.importXML(await response.text());
    viewer.get("canvas").zoom("fit-viewport", "auto");
    if (container.dataset.mode === "heat") drawHeat(viewer, data);
    else drawPath(viewer, data);
    container.dataset.rendered = "yes";  // for tests and screenshots: the diagram and its markers are drawn
  }

  document.addEventListener("DOMContentLoaded", () => {
    const container = document.getElementById("diagram");
    if (!container || !container.dataset.xmlUrl) return;
    if (!window.BpmnJS) {
      showError(container, new Error("bpmn-js is not loaded"));
      return;
    }
    draw(container).catch((error) => showError(container, error));
  });
})();
