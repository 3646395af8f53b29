// The policy designers' modeler (/designer/drafts/<id>): bpmn-js with the Camunda properties panel, or dmn-js,
// on #modeler. Save, validate, deploy and download talk to the draft's endpoints named in #modeler's data-*
// attributes; every answer is JSON. Bundled by app/static/build.mjs into dist/modeler.js and dist/modeler.css.
import BpmnModeler from "bpmn-js/lib/Modeler";
import {
  BpmnPropertiesPanelModule,
  BpmnPropertiesProviderModule,
  CamundaPlatformPropertiesProviderModule,
} from "bpmn-js-properties-panel";
import CamundaBehaviorsModule from "camunda-bpmn-js-behaviors/lib/camunda-platform";
import camundaModdle from "camunda-bpmn-moddle/resources/camunda.json";
import DmnModeler from "dmn-js/lib/Modeler";

import "bpmn-js/dist/assets/diagram-js.css";
import "bpmn-js/dist/assets/bpmn-js.css";
import "bpmn-js/dist/assets/bpmn-font/css/bpmn.css";
import "@bpmn-io/properties-panel/dist/assets/properties-panel.css";
import "dmn-js/dist/assets/dmn-js-shared.css";
import "dmn-js/dist/assets/dmn-js-drd.css";
import "dmn-js/dist/assets/dmn-js-decision-table.css";
import "dmn-js/dist/assets/dmn-js-decision-table-controls.css";
import "dmn-js/dist/assets/dmn-js-literal-expression.css";
import "dmn-js/dist/assets/dmn-js-boxed-expression.css";
import "dmn-js/dist/assets/dmn-js-boxed-expression-controls.css";
import "dmn-js/dist/assets/dmn-font/css/dmn.css";

const PROBLEM = "rf-problem";

const root = document.getElementById("modeler");
if (root) {
  start(root);
}

function start(root) {
  const i18n = JSON.parse(root.dataset.i18n || "{}");
  const kind = root.dataset.kind === "dmn" ? "dmn" : "bpmn";
  const editor = kind === "dmn" ? dmnEditor() : bpmnEditor();
  const status = document.getElementById("modeler-status");
  const problems = problemList(document.getElementById("modeler-problems"), editor, root.dataset.fileName);
  const buttons = ["modeler-save", "modeler-validate", "modeler-deploy", "modeler-download"]
    .map((id) => document.getElementById(id))
    .filter(Boolean);
  // Every edit bumps the revision; a save clears the dirty flag only if nothing changed while it ran.
  let revision = 0;
  let savedRevision = 0;
  let busy = false;
  const enable = (on) => buttons.forEach((button) => { button.disabled = !on; });
  enable(false); // until the diagram is loaded: saving an empty editor would overwrite the draft

  window.rehabflowModeler = editor.modeler;
  editor.onChange(() => {
    revision += 1;
    say(i18n.unsaved, "unsaved");
  });

  function say(text, state) {
    status.textContent = text || "";
    status.dataset.state = state || "";
  }

  // Runs one request at a time with the buttons disabled; a network failure or an answer that is not JSON
  // leaves the editor as it was and says so. `saves`: a 2xx answer means the server stored the XML sent.
  async function send(url, busyText, saves, handle) {
    if (busy) {
      return;
    }
    busy = true;
    enable(false);
    say(busyText, "busy");
    try {
      const sent = revision;
      const { xml } = await editor.modeler.saveXML({ format: true });
      const answer = await postXml(url, xml);
      if ((saves && answer.ok) || answer.body.saved_at) {
        savedRevision = sent;
      }
      handle(answer);
    } catch (error) {
      console.error(error);
      say(i18n.network, "error");
    } finally {
      busy = false;
      enable(true);
    }
  }

  function showVerdict(answer) {
    problems.show(answer.body.problems || []);
    if (answer.body.ok) {
      say(answer.body.message || i18n.valid, "ok");
    } else {
      say(answer.body.message || answer.body.error || i18n.problems, "error");
    }
  }

  on("modeler-save", () => send(root.dataset.saveUrl, i18n.saving, true, (answer) => {
    say(answer.body.message || answer.body.error || (answer.ok ? i18n.saved : i18n.network), answer.ok ? "ok" : "error");
  }));
  on("modeler-validate", () => send(root.dataset.validateUrl, i18n.saving, true, showVerdict));
  on("modeler-deploy", () => send(root.dataset.deployUrl, i18n.deploying, false, (answer) => {
    if (answer.ok && answer.body.ok && answer.body.redirect) {
      savedRevision = revision; // deployed: nothing is left to lose
      say(answer.body.message, "ok");
      window.location.assign(answer.body.redirect);
      return;
    }
    showVerdict(answer);
  }));
  on("modeler-download", async () => {
    const { xml } = await editor.modeler.saveXML({ format: true });
    download(xml, root.dataset.fileName || `diagram.${kind}`);
  });

  window.addEventListener("beforeunload", (event) => {
    if (revision !== savedRevision) {
      event.preventDefault();
      event.returnValue = i18n.leave || ""; // browsers show their own text; the value only has to be set
    }
  });

  readText(root.dataset.xmlUrl)
    .then((xml) => editor.open(xml))
    .then((warnings) => {
      if (warnings.length) {
        console.warn("imported with warnings", warnings);
      }
      revision = savedRevision = 0;
      enable(true);
      root.dataset.ready = "1";
    })
    .catch((error) => {
      console.error(error);
      say(i18n.loadError, "error");
    });
}

function on(id, handler) {
  const button = document.getElementById(id);
  if (button) {
    button.addEventListener("click", handler);
  }
}

// The token from <meta name="csrf-token">, sent with every POST (Flask-WTF reads X-CSRFToken).
function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content || "";
}

async function readText(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) {
    throw new Error(`GET ${url}: ${response.status}`);
  }
  return response.text();
}

// POSTs {"xml": ...}; resolves with the status and the JSON body, rejects when the answer is not JSON.
async function postXml(url, xml) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify({ xml }),
  });
  const body = await response.json(); // an HTML error or login page throws here: reported as a network failure
  if (body === null || typeof body !== "object") {
    throw new Error(`POST ${url}: not a JSON object`);
  }
  return { ok: response.ok, status: response.status, body };
}

function download(text, fileName) {
  const url = URL.createObjectURL(new Blob([text], { type: "application/xml" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = fileName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// --- BPMN ---------------------------------------------------------------------------------------------------

function bpmnEditor() {
  const modeler = new BpmnModeler({
    container: "#modeler-canvas",
    propertiesPanel: { parent: "#modeler-properties" },
    additionalModules: [
      BpmnPropertiesPanelModule,
      BpmnPropertiesProviderModule,
      CamundaPlatformPropertiesProviderModule,
      CamundaBehaviorsModule,
    ],
    moddleExtensions: { camunda: camundaModdle },
  });
  return {
    modeler,
    async open(xml) {
      const { warnings } = await modeler.importXML(xml);
      showStart(modeler.get("canvas"));
      return warnings;
    },
    onChange(listener) {
      modeler.on("commandStack.changed", (event) => { if (event.trigger !== "clear") listener(); });
    },
    // The diagram viewers of this editor (one for BPMN), for pinning problems.
    diagrams: () => [modeler],
    focus(id) {
      const element = shapeFor(modeler, id);
      if (!element) {
        return false;
      }
      const canvas = modeler.get("canvas");
      const elementRoot = canvas.findRoot(element);
      if (elementRoot && elementRoot !== canvas.getRootElement()) {
        canvas.setRootElement(elementRoot);
      }
      canvas.scrollToElement(element);
      modeler.get("selection").select(element);
      return true;
    },
  };
}

// The whole diagram if it fits at a readable zoom; otherwise (our stage diagrams are long and wide) its start,
// left of the palette, at that zoom.
const READABLE_ZOOM = 0.8;
const PALETTE_WIDTH = 140;

function showStart(canvas) {
  canvas.zoom("fit-viewport");
  const { inner, outer } = canvas.viewbox();
  if (canvas.zoom() >= READABLE_ZOOM || !outer.width) {
    return;
  }
  canvas.viewbox({
    x: inner.x - PALETTE_WIDTH / READABLE_ZOOM,
    y: inner.y - 20 / READABLE_ZOOM,
    width: outer.width / READABLE_ZOOM,
    height: outer.height / READABLE_ZOOM,
  });
}

// A process id stands for the pool that shows it; everything else is looked up by its own id.
function shapeFor(viewer, id) {
  const registry = viewer.get("elementRegistry");
  return registry.get(id) || registry.find((e) => e.type === "bpmn:Participant" && e.businessObject.processRef?.id === id);
}

// --- DMN ----------------------------------------------------------------------------------------------------

function dmnEditor() {
  const modeler = new DmnModeler({ container: "#modeler-canvas" });
  const listeners = [];
  modeler.on("viewer.created", ({ viewer }) => {
    viewer.on("commandStack.changed", (event) => {
      if (event.trigger !== "clear") listeners.forEach((listener) => listener());
    });
  });
  // Problems live on table rows and columns: mark the cells dmn-js renders with their ids.
  const tableCells = (id) => {
    const selector = ["data-row-id", "data-col-id", "data-element-id"].map((a) => `[${a}="${CSS.escape(id)}"]`);
    return [...document.querySelectorAll(`#modeler-canvas :is(${selector.join(",")})`)];
  };
  return {
    modeler,
    async open(xml) {
      const { warnings } = await modeler.importXML(xml);
      const table = modeler.getViews().find((view) => view.type === "decisionTable");
      if (table) {
        await modeler.open(table);
      }
      return warnings;
    },
    onChange(listener) {
      listeners.push(listener);
    },
    diagrams() {
      const viewer = modeler.getActiveViewer();
      return modeler.getActiveView()?.type === "drd" && viewer ? [viewer] : [];
    },
    tableCells,
    async focus(id) {
      // A decision opens its own view; a row, column or cell is looked for in the table shown.
      const view = modeler.getViews().find((v) => v.id === id);
      if (view && view !== modeler.getActiveView()) {
        await modeler.open(view);
      }
      const [cell] = tableCells(id);
      if (cell) {
        cell.scrollIntoView({ block: "center", inline: "nearest" });
        return true;
      }
      return Boolean(view);
    },
  };
}

// --- Problems -----------------------------------------------------------------------------------------------

function problemList(section, editor, fileName) {
  const list = section ? section.querySelector("ul") : null;
  let pinned = [];

  // The designer may have deleted a pinned element since: only elements still drawn lose their marker.
  function clear() {
    for (const { viewer, id } of pinned) {
      const element = viewer.get("elementRegistry").get(id);
      if (element) {
        viewer.get("canvas").removeMarker(element, PROBLEM);
      }
      viewer.get("overlays").remove({ type: PROBLEM });
    }
    document.querySelectorAll(`#modeler-canvas .${PROBLEM}`).forEach((cell) => cell.classList.remove(PROBLEM));
    pinned = [];
  }

  // One red marker and one "!" badge per element, the badge's title listing that element's messages.
  function pin(found) {
    const messages = new Map();
    for (const problem of found) {
      if (problem.element) {
        messages.set(problem.element, [...(messages.get(problem.element) || []), problem.message]);
      }
    }
    for (const viewer of editor.diagrams()) {
      for (const [id, texts] of messages) {
        const element = viewer.get("elementRegistry").get(id) || shapeFor(viewer, id);
        if (!element) {
          continue;
        }
        viewer.get("canvas").addMarker(element, PROBLEM);
        pinned.push({ viewer, id: element.id });
        const badge = document.createElement("span");
        badge.className = "rf-problem-badge";
        badge.textContent = "!";
        badge.title = texts.join("\n");
        viewer.get("overlays").add(element, PROBLEM, { position: { top: -10, right: 10 }, html: badge });
      }
    }
    if (editor.tableCells) {
      for (const id of messages.keys()) {
        editor.tableCells(id).forEach((cell) => cell.classList.add(PROBLEM));
      }
    }
  }

  function item(problem) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "rf-problem-item btn btn-link text-start p-0";
    button.append(problem.message);
    if (problem.element) {
      const code = document.createElement("code");
      code.textContent = problem.element;
      button.append(" ", code);
      button.dataset.element = problem.element;
      button.addEventListener("click", () => editor.focus(problem.element));
    } else {
      button.disabled = true;
    }
    if (problem.file && problem.file !== fileName) {
      const file = document.createElement("span");
      file.className = "text-body-secondary";
      file.textContent = ` (${problem.file})`;
      button.append(file);
    }
    li.append(button);
    return li;
  }

  return {
    show(found) {
      clear();
      if (!section || !list) {
        return;
      }
      list.replaceChildren(...found.map(item));
      section.hidden = found.length === 0;
      pin(found);
    },
  };
}
