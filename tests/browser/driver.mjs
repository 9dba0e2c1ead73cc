// One headless Chromium page on the real ComfyUI frontend, driven over stdin/stdout by frontend.py.
//
// Requests and answers are JSON lines: {"op": ..., ...} -> {"ok": true, "value": ...} or
// {"ok": false, "error": "..."}. Ops: open {url}, evaluate {js, arg} (js is a function's source,
// called with arg in the page), screenshot {path, clip?, quality?}, problems (console errors and page
// errors since the last call), close. Debian's Chromium; playwright-core never downloads a browser.
// Every page records the stack of each setInterval call (window.selfcascadeIntervals).
import { createInterface } from "node:readline";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const READY_TIMEOUT_MS = 60000;
// noise the frontend makes on every load (see shared notes): not our problems
const KNOWN_NOISE = [/user\.css/, /comfy\.templates\.json/, /Failed to load resource: .*404/,
  /reading 'id'\)\s+at onChange/, /api\.comfy\.org/];

let context;
let page;
let userDataDir;
const problems = [];

function record(text) {
  if (!KNOWN_NOISE.some((pattern) => pattern.test(text))) problems.push(text);
}

async function open({ url }) {
  userDataDir = mkdtempSync(join(tmpdir(), "selfcascade-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1600, height: 1000 },
  });
  // the page looks up releases and node packs online; nothing outside this machine is reachable
  await context.route(/api\.comfy\.org/, (route) => route.abort());
  await context.addInitScript(() => {
    localStorage.setItem("vueNodesBannerDismissed", "true");
    performance.setResourceTimingBufferSize(100000); // every resource the page loads (page.js loadedResources)
    // record who sets up repeating timers (the extension must not poll): page.js intervalStacks()
    window.selfcascadeIntervals = [];
    const setInterval = window.setInterval;
    window.setInterval = function (...args) {
      window.selfcascadeIntervals.push(new Error().stack ?? "");
      return setInterval.apply(this, args);
    };
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (message) => message.type() === "error"
    && record(`console: ${message.text()} (${message.location().url})`));
  page.on("pageerror", (error) => record(`page error: ${error.message}`));
  await page.goto(url);
  await page.waitForFunction(() => {
    const app = window.comfyAPI?.app?.app;
    return Boolean(app?.vueAppReady && app.graph && app.canvas
      && Object.keys(window.LiteGraph?.registered_node_types ?? {}).length);
  }, null, { timeout: READY_TIMEOUT_MS, polling: 100 });
  return null;
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
const OPS = { open, evaluate, screenshot, problems: async () => problems.splice(0), close: async () => null };

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
