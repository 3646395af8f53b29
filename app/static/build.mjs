// Copies the front-end packages installed from npm (package-lock.json) into app/static/dist,
// the only place templates load them from. Run by `npm run build` (make run / make test do it).
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const out = join(root, "app", "static", "dist");
const files = {
  "bootstrap/dist/css/bootstrap.min.css": "bootstrap.min.css",
  "bootstrap/dist/js/bootstrap.bundle.min.js": "bootstrap.bundle.min.js",
  "bootstrap-icons/font/bootstrap-icons.min.css": "bootstrap-icons.min.css",
  "bootstrap-icons/font/fonts": "fonts",
  "htmx.org/dist/htmx.min.js": "htmx.min.js",
  "chart.js/dist/chart.umd.min.js": "chart.umd.min.js",
  "bpmn-js/dist/bpmn-navigated-viewer.production.min.js": "bpmn-navigated-viewer.min.js",
  "bpmn-js/dist/assets": "bpmn-js-assets",
};

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const [from, to] of Object.entries(files)) {
  cpSync(join(root, "node_modules", from), join(out, to), { recursive: true });
}
console.log(`front-end assets copied to ${out}`);
