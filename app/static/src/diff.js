// The version diff (/designer/diff?a=..&b=..): both BPMN versions side by side, elements removed from A, added in B
// and changed in both marked from the server's diff.json. A DMN diff is only the server's table (data-kind="dmn").
// Bundled by app/static/build.mjs into dist/diff.js and dist/diff.css.
import NavigatedViewer from "bpmn-js/lib/NavigatedViewer";

import "bpmn-js/dist/assets/diagram-js.css";
import "bpmn-js/dist/assets/bpmn-js.css";
import "bpmn-js/dist/assets/bpmn-font/css/bpmn.css";

const FOCUS = "rf-diff-focus";

const root = document.getElementById("diff");
if (root && root.dataset.kind !== "dmn") {
  start(root).catch((error) => {
    console.error(error);
    root.dataset.error = "1";
  });
}

async function start(root) {
  const a = new NavigatedViewer({ container: "#diff-a" });
  const b = new NavigatedViewer({ container: "#diff-b" });
  window.rehabflowDiff = { a, b };
  const [xmlA, xmlB, diff] = await Promise.all([
    fetchOk(root.dataset.aUrl).then((r) => r.text()),
    fetchOk(root.dataset.bUrl).then((r) => r.text()),
    fetchOk(root.dataset.diffUrl).then((r) => r.json()),
  ]);
  await a.importXML(xmlA);
  await b.importXML(xmlB);
  for (const viewer of [a, b]) {
    viewer.get("canvas").zoom("fit-viewport");
  }
  mark(a, diff.removed, "rf-diff-removed");
  mark(a, diff.changed, "rf-diff-changed");
  mark(b, diff.added, "rf-diff-added");
  mark(b, diff.changed, "rf-diff-changed");

  // The server's change table names elements with data-diff-element (focusable rows): a click, Enter or Space
  // shows that element in both versions.
  const follow = (event) => {
    const row = event.target.closest("[data-diff-element]");
    if (!row || (event.type === "keydown" && event.key !== "Enter" && event.key !== " ")) {
      return;
    }
    event.preventDefault();
    [a, b].forEach((viewer) => show(viewer, row.dataset.diffElement));
  };
  document.addEventListener("click", follow);
  document.addEventListener("keydown", follow);
  root.dataset.ready = "1";
}

async function fetchOk(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) {
    throw new Error(`GET ${url}: ${response.status}`);
  }
  return response;
}

function mark(viewer, entries, marker) {
  const registry = viewer.get("elementRegistry");
  const canvas = viewer.get("canvas");
  for (const { id } of entries || []) {
    const element = registry.get(id);
    if (!element) { // ids outside the diagram (messages, data objects without a shape) stay in the table
      continue;
    }
    canvas.addMarker(element, marker);
    if (element.type === "bpmn:Participant" || element.type === "bpmn:Lane") {
      canvas.addMarker(element, "rf-diff-container");
    }
  }
}

// Selects the element and centres the view on it, zoomed in to a readable scale if the overview was smaller; a
// viewer without the element clears its selection so the two sides never disagree.
const READABLE_ZOOM = 0.8;

function show(viewer, id) {
  const canvas = viewer.get("canvas");
  const selection = viewer.get("selection");
  const registry = viewer.get("elementRegistry");
  registry.forEach((element) => canvas.removeMarker(element, FOCUS));
  const element = registry.get(id);
  if (!element) {
    selection.select(null);
    return;
  }
  const elementRoot = canvas.findRoot(element);
  if (elementRoot && elementRoot !== canvas.getRootElement()) {
    canvas.setRootElement(elementRoot);
  }
  const box = bounds(element);
  const { outer } = canvas.viewbox();
  const zoom = Math.max(canvas.zoom(), READABLE_ZOOM);
  const width = outer.width / zoom;
  const height = outer.height / zoom;
  canvas.viewbox({ x: box.x + box.width / 2 - width / 2, y: box.y + box.height / 2 - height / 2, width, height });
  selection.select(element);
  canvas.addMarker(element, FOCUS);
}

function bounds(element) {
  if (!element.waypoints) {
    return element;
  }
  const xs = element.waypoints.map((p) => p.x);
  const ys = element.waypoints.map((p) => p.y);
  const x = Math.min(...xs);
  const y = Math.min(...ys);
  return { x, y, width: Math.max(...xs) - x, height: Math.max(...ys) - y };
}
