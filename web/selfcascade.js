// Self-Cascade web extension: the Self-Cascade KSampler shows its stage plan (sizes, steps per stage,
// K) while you edit it, warns before queueing settings the planner rejects, and shows the per-stage
// report of its last run. The plan comes from the one Python planner through GET /selfcascade/plan
// (nodes/routes.py); nothing about stages is computed here.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const SAMPLER = "SelfCascadeKSampler";
const BASE_LATENT = "SelfCascadeBaseLatent";
const PANEL = "cascade_plan";
// the sampler's settings the plan depends on, sent to the route under the same names
const PLAN_SETTINGS = ["scale_by", "target_width", "target_height", "k", "later_k", "steps", "scheduler", "stage_steps"];
// empty-latent nodes whose width/height widgets are the base size in pixels
const SIZED_LATENTS = ["EmptyLatentImage", "EmptySD3LatentImage", "EmptyHunyuanLatentVideo"];
// settings can change anywhere upstream (a latent's width, a linked primitive); a cheap check of
// each sampler's query finds that without hooking every node type
const REFRESH_MS = 250;

// The value feeding a sampler input: its widget, or the widget behind a link (a node whose widget
// is named like the linked output, e.g. Self-Cascade Base Latent's target_width, or a primitive's value).
function settingValue(node, name) {
  const index = node.inputs?.findIndex((input) => input.name === name) ?? -1;
  const origin = index >= 0 ? node.getInputNode(index) : null;
  if (!origin) return node.widgets?.find((w) => w.name === name)?.value;
  const outputName = origin.outputs?.[node.getInputLink(index).origin_slot]?.name;
  return (origin.widgets?.find((w) => w.name === outputName) ?? origin.widgets?.find((w) => w.name === "value"))?.value;
}

// Base size from the latent's node when it says so; otherwise a sentence for the panel.
function baseSize(node) {
  const index = node.inputs.findIndex((input) => input.name === "latent_image");
  const latent = node.getInputNode(index);
  if (latent && SIZED_LATENTS.includes(latent.type)) {
    const size = (name) => latent.widgets.find((w) => w.name === name)?.value;
    return { width: size("width"), height: size("height") };
  }
  if (latent?.type === BASE_LATENT) return { from: "the model's native size" };
  return { from: "the latent's size" };
}

function planQuery(node) {
  const base = baseSize(node);
  const query = new URLSearchParams();
  if (base.width && base.height) {
    query.set("base_width", base.width);
    query.set("base_height", base.height);
  }
  for (const name of PLAN_SETTINGS) {
    const value = settingValue(node, name);
    if (value !== undefined && value !== null) query.set(name, value);
  }
  return { query: query.toString(), baseFrom: base.from };
}

function planText(answer, baseFrom) {
  if (answer.error) return `⚠ ${answer.error}`;
  const lines = ["Plan:"];
  if (answer.stages) {
    answer.stages.forEach((stage, index) => lines.push(index === 0
      ? `  base     ${stage.width}x${stage.height}  ${stage.steps} steps`
      : `  stage ${index}  ${stage.width}x${stage.height}  K ${stage.k.toFixed(2)}  ${stage.steps} steps`));
  } else {
    lines.push(`  base     ${baseFrom} (sizes planned at run time)`);
    answer.high_res.forEach((stage, index) => lines.push(
      `  ${index === 0 ? "stage 1" : "later stages"}  K ${stage.k.toFixed(2)}  ${stage.steps} steps`));
  }
  return [...lines, ...answer.notes.map((note) => `  note: ${note}`)].join("\n");
}

function addPanel(node) {
  const element = document.createElement("div");
  element.className = "selfcascade-panel";
  Object.assign(element.style, {
    font: "11px monospace", whiteSpace: "pre-wrap", overflow: "auto", padding: "4px 6px", borderRadius: "4px",
    color: "var(--input-text)", background: "var(--comfy-input-bg)", boxSizing: "border-box",
  });
  const plan = element.appendChild(document.createElement("div"));
  const report = element.appendChild(document.createElement("div"));
  report.style.marginTop = "6px";

  const state = { query: null, error: null };
  const panel = node.addDOMWidget(PANEL, "selfcascade-plan", element, {
    serialize: false, // shown, never saved nor sent: the route and the run fill it
    getValue: () => [plan.textContent, report.textContent].filter(Boolean).join("\n"),
    setValue: () => {},
    getMinHeight: () => 180,
  });
  panel.serialize = false;

  panel.refresh = async () => {
    const { query, baseFrom } = planQuery(node);
    if (query === state.query) return;
    state.query = query;
    let answer;
    try {
      answer = await (await api.fetchApi(`/selfcascade/plan?${query}`)).json();
    } catch (error) {
      answer = { error: `no plan from the server (${error.message}); it is checked again when a setting changes` };
    }
    if (state.query !== query) return; // the settings changed while this answer was on its way
    state.error = answer.error ?? null;
    plan.textContent = planText(answer, baseFrom);
    element.title = answer.schedule ?? "";
  };

  // the frontend calls this on every widget right before it queues the prompt
  panel.beforeQueued = () => {
    if (!state.error) return;
    app.extensionManager.toast.add({
      severity: "warn", summary: `${node.title} #${node.id}: the cascade cannot be planned`,
      detail: state.error, life: 10000,
    });
  };

  panel.showReport = (text) => {
    report.textContent = text ? `Last run:\n${text.replace(/^/gm, "  ")}` : "";
  };
  return panel;
}

app.registerExtension({
  name: "selfcascade.plan",

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== SAMPLER) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      addPanel(this);
      return result;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      this.widgets.find((w) => w.name === PANEL).showReport((output?.text ?? []).join("\n"));
    };
  },

  async setup() {
    setInterval(() => {
      for (const node of app.graph?.nodes ?? []) {
        if (node.type === SAMPLER) node.widgets?.find((w) => w.name === PANEL)?.refresh();
      }
    }, REFRESH_MS);
  },
});
