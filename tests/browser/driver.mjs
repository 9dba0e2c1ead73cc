// One headless Chromium page on the real ComfyUI frontend, driven over stdin/stdout by frontend.py.
//
// Requests and answers are JSON lines: {"op": ..., ...} -> {"ok": true, "value": ...} or
// {"ok": false, "error": "..."}. Ops: open {url, watch} (watch: the URL path prefix of the extension
// under test), evaluate {js, arg} (js is a function's source, called with arg in the page), hover {x, y}
// (the mouse, in page pixels), press {key} (a key, as a user types it), screenshot {path, clip?,
// quality?}, problems (since the last call: console errors, page errors, any console warning whose
// stack names a script under `watch` -- the frontend's deprecation warnings among them -- and any 404
// under `watch`), close. Debian's Chromium;
// playwright-core never downloads a browser. Every page records the stack of each setInterval call
// (window.selfcascadeIntervals).
import { createInterface } from "node:readline";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const READY_TIMEOUT_MS = 60000;
const FIRST_WORKFLOW_TIMEOUT_MS = 10000;
// noise the frontend makes on every load (see shared notes): not our problems
const KNOWN_NOISE = [/user\.css/, /comfy\.templates\.json/, /Failed to load resource: .*404/,
  /reading 'id'\)\s+at onChange/, /api\.comfy\.org/, /huggingface\.co/,
  // frontends from about 1.35 list jobs through /api/jobs, which servers before 0.4 lack: their own
  // queue and history panels fail, nothing else does
  /JobsApiError: Failed to fetch jobs: 404/,
  // frontend 1.49 (ComfyUI 0.33's pin): its own Vue watchers read app.rootGraph before the first graph
  // exists (the stack is the frontend's settingStore and vueuse only; the pack reads app.graph)
  /ComfyApp graph accessed before initialization/];
// online look-ups the page makes (releases, node packs, model files of missing-model checks)
const OFFLINE = /api\.comfy\.org|huggingface\.co/;

let context;
let page;
let userDataDir;
const problems = [];

function record(text) {
  if (!KNOWN_NOISE.some((pattern) => pattern.test(text))) problems.push(text);
}

async function open({ url, watch }) {
  userDataDir = mkdtempSync(join(tmpdir(), "selfcascade-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1600, height: 1000 },
  });
  // the page looks up releases and node packs online; nothing outside this machine is reachable
  await context.route(OFFLINE, (route) => route.abort());
  await context.addInitScript((watched) => {
    localStorage.setItem("vueNodesBannerDismissed", "true");
    performance.setResourceTimingBufferSize(100000); // every resource the page loads (page.js loadedResources)
    // record who sets up repeating timers (the extension must not poll): page.js intervalStacks()
    window.selfcascadeIntervals = [];
    const setInterval = window.setInterval;
    window.setInterval = function (...args) {
      window.selfcascadeIntervals.push(new Error().stack ?? "");
      return setInterval.apply(this, args);
    };
    // warnings raised while the extension's code runs (LiteGraph's deprecation warnings go to
    // console.warn): kept with their stack, which the console event does not carry
    window.selfcascadeWarnings = [];
    const warn = console.warn;
    console.warn = function (...args) {
      const stack = new Error().stack ?? "";
      if (stack.includes(watched)) window.selfcascadeWarnings.push(`${args.filter((a) => a !== undefined).join(" ")}\n${stack}`);
      return warn.apply(this, args);
    };
  }, watch);
  page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (message) => message.type() === "error"
    && record(`console: ${message.text()} (${message.location().url})`));
  page.on("pageerror", (error) => record(`page error: ${error.stack ?? error.message}`));
  page.on("response", (response) => response.status() === 404 && new URL(response.url()).pathname.startsWith(watch)
    && problems.push(`404: ${response.url()}`));
  await page.goto(url);
  // `window.app` is set once the canvas is in the frontend's stores (1.58 sets them after
  // `app.canvas`, and loading a workflow before that fails); then the first workflow opens
  await page.waitForFunction(() => {
    const app = window.comfyAPI?.app?.app;
    return Boolean(app?.vueAppReady && app.graph && app.canvas && window.app === app
      && Object.keys(window.LiteGraph?.registered_node_types ?? {}).length);
  }, null, { timeout: READY_TIMEOUT_MS, polling: 100 });
  await page.waitForFunction(() => window.app.graph.nodes.length || document.querySelector(".p-dialog"), null,
    { timeout: FIRST_WORKFLOW_TIMEOUT_MS, polling: 100 }).catch(() => null); // an empty workflow opens too
  // LiteGraph (1.5x) says each deprecation once per page; say it every time, so the frontend's own
  // use of an API cannot hide the extension's
  await page.evaluate(() => { window.LiteGraph.alwaysRepeatWarnings = true; });
  return null;
}

async function hover({ x, y }) {
  await page.mouse.move(x, y, { steps: 2 });
  return null;
}

async function press({ key }) {
  await page.keyboard.press(key);
  return null;
}

async function takeProblems() {
  const warnings = await page.evaluate(() => window.selfcascadeWarnings.splice(0));
  return [...problems.splice(0), ...new Set(warnings.map((text) => `warning: ${text}`))];
}

async function evaluate({ js, arg }) {
  return page.evaluate(([source, value]) => (0, eval)(`(${source})`)(value), [js, arg ?? null]);
}

async function screenshot({ path, clip, quality }) {
  await page.screenshot({ path, clip: clip ?? undefined, quality: quality ?? undefined, type: path.endsWith(".png") ? "png" : "jpeg" });
  return path;
}

async function close() {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  return null;
}

// "close" only ends the loop below, which closes the browser (as does the end of stdin)
const OPS = { open, evaluate, hover, press, screenshot, problems: takeProblems, close: async () => null };

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const request = JSON.parse(line);
  let answer;
  try {
    answer = { ok: true, value: (await OPS[request.op](request)) ?? null };
  } catch (error) {
    answer = { ok: false, error: String(error?.stack ?? error) };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
  if (request.op === "close") break;
}
await close();
