// Builds app/static/dist, the only place templates load front-end code from, out of the packages npm installed
// from package-lock.json: copies the prebuilt ones and bundles our modeler and diff pages with esbuild.
// Run by `npm run build` (make run / make test do it).
import { cpSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

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

// The app's Content-Security-Policy has style-src 'self': the browser refuses style="" attributes in parsed markup
// (also in inert documents) and <style> elements, but lets scripts set element.style and constructed style sheets.
// Three spots in the libraries break that rule; they are fixed here while bundling, without touching node_modules.
// Each patch fails the build when its pattern is gone, so an upgrade that changes the code is looked at again.
const cspPatches = {
  name: "csp-patches",
  setup(build) {
    // 1. domify (min-dom re-exports it; diagram-js, the properties panel and dmn-js build their DOM with it): markup
    //    such as the properties panel's <div style="height: 100%"> and dmn-js's bpmn.io watermark (a file its
    //    licence forbids changing: it is rendered exactly as written) is parsed with the style attribute renamed,
    //    then the declarations are applied through element.style.
    build.onResolve({ filter: /^domify$/ }, () => ({ path: "domify", namespace: "csp-domify" }));
    build.onLoad({ filter: /.*/, namespace: "csp-domify" }, () => ({
      resolveDir: root,
      contents: `
        import domify from ${JSON.stringify(join(root, "node_modules", "domify", "index.js"))};
        const STYLE = /(<[a-zA-Z][^<>]*?\\s)style=("[^"]*"|'[^']*')/g;
        export default function domifyWithoutStyleAttributes(html, document = globalThis.document) {
          const safe = typeof html === "string" ? html.replace(STYLE, "$1data-csp-style=$2") : html;
          const node = domify(safe, document);
          if (safe === html) return node;
          const styled = node.querySelectorAll ? [...node.querySelectorAll("[data-csp-style]")] : [];
          if (node.nodeType === 1 && node.hasAttribute("data-csp-style")) styled.unshift(node);
          for (const element of styled) {
            element.style.cssText = element.getAttribute("data-csp-style");
            element.removeAttribute("data-csp-style");
          }
          return node;
        }`,
    }));
    // 2. bpmn-js's align/distribute icons go into popup menus through innerHTML, not domify: their SVG style
    //    attributes become the equivalent presentation attributes.
    patch(build, /bpmn-js[\\/]lib[\\/]features[\\/](align|distribute)-elements[\\/]\w+Icons\.js$/, (code) =>
      code.replace(/style="([^"]*)"/g, (_, declarations) => svgAttributes(declarations)));
    // 3. style-mod (CodeMirror's styles, in dmn-js cells and the properties panel's FEEL fields) adds a <style>
    //    element to documents and a constructed sheet only to shadow roots: use the constructed sheet everywhere.
    patch(build, /style-mod[\\/]src[\\/]style-mod\.js$/, (code) =>
      code.replace("if (!root.head && root.adoptedStyleSheets && win.CSSStyleSheet)",
        "if (root.adoptedStyleSheets && win.CSSStyleSheet)"));
  },
};

function patch(build, filter, change) {
  build.onLoad({ filter }, ({ path }) => {
    const code = readFileSync(path, "utf8");
    const patched = change(code);
    if (patched === code) {
      throw new Error(`csp-patches: ${relative(root, path)} no longer has the code this patch expects`);
    }
    return { contents: patched, loader: "js" };
  });
}

const PRESENTATION = new Set(["fill", "stroke", "stroke-width", "stroke-linecap", "stroke-linejoin", "opacity"]);

function svgAttributes(declarations) {
  return declarations.split(";").filter((d) => d.trim()).map((declaration) => {
    const [name, value] = declaration.split(":").map((part) => part.trim());
    if (!PRESENTATION.has(name)) {
      throw new Error(`csp-patches: no SVG presentation attribute for "${name}"`);
    }
    return `${name}="${value}"`;
  }).join(" ");
}

// Each entry imports the CSS it needs, so esbuild writes dist/<entry>.css next to dist/<entry>.js. Fonts are
// emitted as files: the Content-Security-Policy allows fonts from 'self' only, not data: URLs.
const result = await build({
  entryPoints: {
    modeler: join(root, "app", "static", "src", "modeler.js"),
    diff: join(root, "app", "static", "src", "diff.js"),
  },
  absWorkingDir: root,
  outdir: out,
  bundle: true,
  format: "iife",
  minify: true,
  target: "es2020",
  loader: { ".woff": "file", ".woff2": "file", ".ttf": "file", ".eot": "file", ".svg": "file" },
  assetNames: "assets/[name]-[hash]",
  define: { "process.env.NODE_ENV": '"production"' },
  plugins: [cspPatches],
  metafile: true,
  logLevel: "warning",
});
for (const file of Object.keys(result.metafile.outputs).filter((f) => /\.(js|css)$/.test(f)).sort()) {
  const kib = (statSync(join(root, file)).size / 1024).toFixed(0);
  console.log(`  ${relative(out, join(root, file))}  ${kib} KiB`);
}
