// Self-Cascade web extension: a Self-Cascade KSampler or Self-Cascade Upscale shows its stage plan
// (sizes, steps per stage, K) while you edit, warns before queueing settings the planner rejects, and
// shows the per-stage report of its last run, also inside subgraphs. The plan comes from the one
// Python planner through GET /selfcascade/plan (nodes/routes.py), the size multiple of the connected
// model's family from GET /selfcascade/family; nothing about stages or families is computed here.
//
// No timers poll the graph: a change anywhere (a widget, a link, a node added or removed, a workflow
// loaded, any edit the frontend's change tracker sees) schedules one debounced refresh, and each
// panel asks the route only when its query changed. (One bounded wait: an image loader's picture,
// which arrives after the graph loads, for the upscaler's input size.)
const { app } = window.comfyAPI.app;
const { api } = window.comfyAPI.api;

const PANEL = "cascade_plan";
// Nodes that get a plan panel: the settings the plan depends on (sent to the route under the same
// names), the input whose latent sets the base size (or, for the upscaler, whose image is the
// encoded first pivot) and the input that carries the model.
const CASCADE_SETTINGS = ["scale_by", "target_width", "target_height", "k", "later_k", "steps", "scheduler", "stage_steps",
  "k_axis"];
const PANEL_NODES = {
  SelfCascadeKSampler: { settings: CASCADE_SETTINGS, latent: "latent_image", model: "model" },
  SelfCascadeUpscale: { settings: CASCADE_SETTINGS, image: "image", model: "model" },
};
const IMAGE_LOADERS = ["LoadImage", "LoadImageOutput"]; // nodes that show the picture they load (node.imgs)
const IMAGE_WAIT_MS = 250; // a loader's picture arrives after the graph loads: look again after this,
const IMAGE_WAITS = 20; // at most this often per file (a missing file never arrives)
// empty-latent nodes whose width/height widgets are the base size in pixels
const SIZED_LATENTS = ["EmptyLatentImage", "EmptySD3LatentImage", "EmptyHunyuanLatentVideo"];
const BASE_LATENT = "SelfCascadeBaseLatent";
// loaders the family route knows: node type -> the widget naming the file (or, for the demo model, which
// built-in model: unet or flow, sent as its file)
const FAMILY_LOADERS = {
  CheckpointLoaderSimple: "ckpt_name", ImageOnlyCheckpointLoader: "ckpt_name", unCLIPCheckpointLoader: "ckpt_name",
  UNETLoader: "unet_name", SelfCascadeDemoModel: "architecture",
};
const BUILT_IN_MODELS = new Set(["SelfCascadeDemoModel"]); // no file on disk: no memory estimate to ask for
const ASSUMED_MULTIPLE = 8;
// the memory plan: a frontend setting to plan for another device (GiB; 0: the server device's free memory)
const MEMORY_BUDGET_SETTING = "SelfCascade.MemoryBudgetGiB";
const DECODERS = ["VAEDecode"]; // nodes after the sampler whose whole-image decode the plan counts (not the tiled one)
// the host's sampling-shift nodes: the model sampling they give the model (a ModelType name, as the plan
// route takes it) and how to read their shift from their widgets
const SHIFT_NODES = {
  ModelSamplingSD3: { sampling: "FLOW", shift: (w) => w.shift, max: 100 },
  ModelSamplingAuraFlow: { sampling: "FLOW", shift: (w) => w.shift, max: 100 },
  // ModelSamplingFlux's own formula: the (log) shift grows linearly with the image's area in 16 px patches
  ModelSamplingFlux: {
    sampling: "FLUX",
    shift: (w) => w.base_shift + ((w.width * w.height) / 256 - 256) * ((w.max_shift - w.base_shift) / (4096 - 256)),
    max: Math.log(100),
  },
}; // max: the plan route's bound (ModelSamplingSD3's maximum, for Flux its log)
const BYPASS = 4; // LiteGraph's mode of a bypassed node
const MAX_HOPS = 64; // bound on every upstream walk (links can loop through bypassed or virtual nodes)
const DEBOUNCE_MS = 150;

// ---- where a value comes from, across reroutes, bypassed nodes and subgraph boundaries ----------
// `path` lists the subgraph nodes from the root graph down to the graph that holds `node`.

// Connectivity through the node's own accessors: newer frontends (1.58) deprecate reading `input.link`,
// the step before removing it. A subgraph node overrides getInputLink to mean the link inside that
// feeds its *output*, so the link into one of its inputs comes from the base class's method. A
// frontend without the accessors (no ComfyUI frontend so far: LiteGraph has had both from the start)
// would get `input.link`, which is all it would have.
function connected(node, slot) {
  if (!(slot >= 0 && slot < (node.inputs?.length ?? 0))) return false;
  return node.isInputConnected ? node.isInputConnected(slot) : node.inputs[slot].link != null;
}

function inputLink(node, slot) {
  if (!connected(node, slot)) return null;
  const ownInputLink = window.LiteGraph?.LGraphNode?.prototype.getInputLink;
  return ownInputLink ? ownInputLink.call(node, slot) : node.graph.getLink(node.inputs[slot].link);
}

// The origin of input `slot`: {node, slot, path} of an output, {value} of a subgraph node's own
// widget, or null when nothing is connected.
function source(node, slot, path, hops = 0) {
  const link = hops > MAX_HOPS ? null : inputLink(node, slot);
  if (!link) return null;
  if (link.originIsIoNode) { // a subgraph input: continue outside, on the subgraph node
    const outer = path.at(-1);
    const outerInput = outer?.inputs[link.origin_slot];
    if (!outerInput) return null;
    if (!connected(outer, link.origin_slot)) {
      const widget = outer.getWidgetFromSlot(outerInput);
      return widget ? { value: widget.value } : null;
    }
    return source(outer, link.origin_slot, path.slice(0, -1), hops + 1);
  }
  return origin(node.graph.getNodeById(link.origin_id), link.origin_slot, path, hops + 1);
}

// The node that really produces output `slot` of `node` (what the prompt will use).
function origin(node, slot, path, hops) {
  if (!node || hops > MAX_HOPS) return null;
  if (node.mode === BYPASS) {
    const through = node.inputs?.findIndex((input) => input.type === node.outputs[slot]?.type) ?? -1;
    return through >= 0 ? source(node, through, path, hops + 1) : null;
  }
  if (node.isSubgraphNode?.()) { // into the subgraph, to what feeds its output
    const linkId = node.subgraph.outputs[slot]?.linkIds[0];
    const link = linkId == null ? null : node.subgraph.getLink(linkId);
    if (!link) return null;
    if (link.originIsIoNode) return source(node, link.origin_slot, path, hops + 1);
    return origin(node.subgraph.getNodeById(link.origin_id), link.origin_slot, [...path, node], hops + 1);
  }
  if (node.isVirtualNode && connected(node, 0)) return source(node, 0, path, hops + 1); // reroute
  return { node, slot, path };
}

// The value feeding input `name`: the node's own widget, or the widget behind a link (a node whose
// widget is named like the linked output, e.g. Self-Cascade Base Latent's target_width, or a
// primitive's value), followed as far as it is linked.
function settingValue(node, name, path, hops = 0) {
  const slot = node.inputs?.findIndex((input) => input.name === name) ?? -1;
  const from = slot >= 0 && hops <= MAX_HOPS ? source(node, slot, path) : null;
  if (!from) return node.widgets?.find((w) => w.name === name)?.value;
  if ("value" in from) return from.value;
  const outputName = from.node.outputs?.[from.slot]?.name;
  if (from.node.widgets?.some((w) => w.name === outputName)) return settingValue(from.node, outputName, from.path, hops + 1);
  return from.node.widgets?.find((w) => w.name === "value")?.value;
}

// Base size from the latent's node when it says so (the upscaler's: the size of the picture its image
// loader shows); otherwise a phrase for the panel.
function baseSize(node, spec, path) {
  if (spec.image) return imageSize(node, spec, path);
  const from = inputSource(node, spec.latent, path);
  const latent = from?.node;
  if (latent && SIZED_LATENTS.includes(latent.type)) {
    return { width: settingValue(latent, "width", from.path), height: settingValue(latent, "height", from.path) };
  }
  if (latent?.type === BASE_LATENT) return { from: "the model's native size" };
  return { from: "the latent's size" };
}

function imageSize(node, spec, path) {
  const loader = inputSource(node, spec.image, path)?.node;
  const picture = loader?.imgs?.[0];
  if (picture?.naturalWidth) return { width: picture.naturalWidth, height: picture.naturalHeight };
  if (IMAGE_LOADERS.includes(loader?.type)) waitForPicture(loader);
  return { from: "the image's size" };
}

const pictureWaits = new WeakMap(); // image loader node -> {file, tries}

function waitForPicture(loader) {
  const file = loader.widgets?.find((w) => w.name === "image")?.value;
  const waited = pictureWaits.get(loader);
  const tries = waited?.file === file ? waited.tries + 1 : 1;
  pictureWaits.set(loader, { file, tries });
  if (tries <= IMAGE_WAITS) setTimeout(scheduleRefresh, IMAGE_WAIT_MS);
}

// The loader behind the model input, through MODEL pass-through nodes (LoRA loaders, ModelSampling*,
// model patches: each followed by its MODEL input): {loader, file, shift}, or null when no loader is
// known; `shift` ({sampling, shift} or null) is the sampling-shift node nearest the sampler, the one
// whose model sampling the sampler gets (also given without a known loader).
function modelLoader(node, spec, path) {
  let [current, currentPath, shift] = [node, path, null];
  let slot = current.inputs?.findIndex((input) => input.name === spec.model) ?? -1;
  for (let hop = 0; hop < MAX_HOPS && slot >= 0; hop++) {
    const from = source(current, slot, currentPath);
    if (!from?.node) break;
    if (from.node.type in FAMILY_LOADERS) {
      const fileWidget = FAMILY_LOADERS[from.node.type];
      return { loader: from.node.type, file: fileWidget ? settingValue(from.node, fileWidget, from.path) : null, shift };
    }
    if (!shift && from.node.type in SHIFT_NODES) shift = shiftOf(from.node, from.path);
    [current, currentPath] = [from.node, from.path];
    slot = current.inputs?.findIndex((input) => input.type === "MODEL") ?? -1;
  }
  return shift ? { loader: null, file: null, shift } : null;
}

function shiftOf(node, path) {
  const rule = SHIFT_NODES[node.type];
  const widgets = Object.fromEntries((node.widgets ?? []).map((w) => [w.name, Number(settingValue(node, w.name, path))]));
  const shift = rule.shift(widgets);
  // outside the route's bounds (or unreadable): the plan falls back to SD's schedule and says so
  return Number.isFinite(shift) && shift > 0 && shift <= rule.max ? { sampling: rule.sampling, shift } : null;
}

// The model sampling to plan with: a shift node's, else the family's own (null: not known).
function samplingOf(loader, family) {
  if (loader?.shift) return loader.shift;
  return family?.sampling ? { sampling: family.sampling, shift: family.shift ?? 0 } : null;
}

// ---- the model's family, asked once per (loader, file) ------------------------------------------

const families = new Map(); // "loader|file" -> Promise of the route's answer, null when not known

function familyOf(loader) {
  if (!loader?.loader || (FAMILY_LOADERS[loader.loader] && !loader.file)) return Promise.resolve(null);
  const key = `${loader.loader}|${loader.file ?? ""}`;
  if (!families.has(key)) {
    const query = new URLSearchParams({ loader: loader.loader, ...(loader.file ? { file: loader.file } : {}) });
    families.set(key, api.fetchApi(`/selfcascade/family?${query}`)
      .then(async (response) => { // a missing route (older server) or an error: not known
        const answer = response.ok ? await response.json() : null;
        return answer?.known && answer.size_multiple > 0 ? answer : null;
      })
      .catch(() => {
        families.delete(key); // the server was unreachable: ask again at the next change
        return null;
      }));
  }
  return families.get(key);
}

// ---- the memory plan: what the route needs to estimate each stage's memory ----------------------

// The settings the plan route's memory plan takes: the model's loader and file, the latent's batch and
// video length (where its node says them), whether the pivots go through the VAE (the vae input),
// whether the result is decoded whole (a VAE Decode right after the node), the VAE Loader's file behind
// either, and a device budget.
function memoryQuery(node, spec, path) {
  const loader = modelLoader(node, spec, path);
  if (!loader?.loader || !loader.file || BUILT_IN_MODELS.has(loader.loader)) return {}; // nothing to ask
  const query = { loader: loader.loader, file: loader.file };
  const latent = spec.latent ? inputSource(node, spec.latent, path) : null;
  for (const [widget, name] of [["batch_size", "batch"], ["length", "length"]]) {
    const value = latent?.node ? Number(settingValue(latent.node, widget, latent.path)) : NaN;
    if (Number.isInteger(value) && value > 0) query[name] = value;
  }
  const vaeSlot = node.inputs?.findIndex((input) => input.name === "vae") ?? -1;
  const decoder = spec.image ? null : decoderAfter(node);
  if (!spec.image && connected(node, vaeSlot)) query.pixel_pivots = 1;
  if (decoder) query.final_decode = 1;
  // the VAE: the node's own, else the decoder's; a VAE Loader's file is read, a checkpoint's VAE is the model file's
  const vae = connected(node, vaeSlot) ? source(node, vaeSlot, path) : decoder && inputSource(decoder, "vae", path);
  const vaeFile = vae?.node?.type === "VAELoader" ? settingValue(vae.node, "vae_name", vae.path) : null;
  if (vaeFile) query.vae_file = vaeFile;
  const budget = Number(app.extensionManager?.setting?.get(MEMORY_BUDGET_SETTING) ?? 0);
  if (budget > 0) query.memory_budget = budget;
  return query;
}

// The whole-image VAE Decode that takes the node's output (in the node's own graph), or null; read through
// the node's accessor (newer frontends deprecate reading `output.links`; LiteGraph has always had it).
function decoderAfter(node) {
  return (node.getOutputNodes?.(0) ?? []).find((target) => DECODERS.includes(target?.type)) ?? null;
}

// What feeds input `name` of `node` ({node, slot, path} or a value; null: no such input, or nothing linked).
function inputSource(node, name, path) {
  const slot = node.inputs?.findIndex((input) => input.name === name) ?? -1;
  return slot >= 0 ? source(node, slot, path) : null;
}

function gib(bytes) {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

// A stage's memory column: its need by ComfyUI's estimate and whether it fits.
function memoryColumn(memory) {
  const verdict = { fits: "fits", offloads: "offloads weights", no: "⚠ won't fit" }[memory.fits] ?? memory.fits;
  return `${gib(memory.peak)} ${verdict}`;
}

function memoryLines(memory) {
  if (!memory) return [];
  if (memory.error) return [`  memory: ${memory.error}`];
  return [`  memory: ${memory.includes}; ${memory.model}, ${memory.dtype}; against ${gib(memory.free)} `
    + `(${memory.free_is})`, ...memory.warnings.map((warning) => `  ⚠ ${warning}`)];
}

// ---- the panel ----------------------------------------------------------------------------------

// One line per stage of the route's answer: a label, then the stage's own columns (size, K, steps).
function stageLine(label, stage, upscale) {
  const columns = [];
  if (stage.width) columns.push(`${stage.width}x${stage.height}`);
  if (stage.k != null) columns.push(`K ${stage.k.toFixed(2)}`);
  columns.push(stage.k == null && upscale ? "(encoded)" : `${stage.steps} steps`); // the upscaler's input is encoded
  // where the stage re-noises its pivot, for the connected model (the route knows its sampling)
  if (stage.sigma != null) columns.push(`sigma ${stage.sigma.toPrecision(3)}  SNR ${stage.snr.toPrecision(2)}`);
  if (stage.memory) columns.push(memoryColumn(stage.memory));
  return `  ${label.padEnd(7)}  ${columns.join("  ")}`;
}

function planText(answer, baseFrom, family, notes, upscale) {
  if (answer.error) return `⚠ ${answer.error}`;
  const lines = [family ? `Plan (${family.family}, sizes in multiples of ${family.size_multiple} px):` : "Plan:"];
  const base = upscale ? "input" : "base";
  if (answer.stages) {
    answer.stages.forEach((stage, index) => lines.push(stageLine(index === 0 ? base : `stage ${index}`, stage, upscale)));
  } else {
    lines.push(`  ${base.padEnd(7)}  ${baseFrom} (sizes planned at run time)`);
    answer.high_res.forEach((stage, index) => lines.push(stageLine(index === 0 ? "stage 1" : "later stages", stage, upscale)));
  }
  lines.push(...memoryLines(answer.memory));
  return [...lines, ...[...answer.notes, ...notes].map((note) => `  note: ${note}`)].join("\n");
}

function addPanel(node, spec) {
  const element = document.createElement("div");
  element.className = "selfcascade-panel";
  Object.assign(element.style, {
    font: "11px monospace", whiteSpace: "pre-wrap", overflow: "auto", padding: "4px 6px", borderRadius: "4px",
    color: "var(--input-text)", background: "var(--comfy-input-bg)", boxSizing: "border-box",
  });
  const plan = element.appendChild(document.createElement("div"));
  const report = element.appendChild(document.createElement("div"));
  report.style.marginTop = "6px";

  // key: the query shown or being asked; latest, asked: the newest refresh and plan request (older ones give way)
  const state = { key: null, error: null, memoryWarnings: [], latest: 0, asked: 0 };
  const panel = node.addDOMWidget(PANEL, "selfcascade-plan", element, {
    serialize: false, // shown, never saved nor sent: the routes and the run fill it
    getValue: () => [plan.textContent, report.textContent].filter(Boolean).join("\n"),
    setValue: () => {},
    getMinHeight: () => 200,
  });
  panel.serialize = false;

  // `path`: the subgraph nodes leading to this node's graph; `uses`: how many such paths exist
  panel.refresh = async (path, uses) => {
    const ticket = ++state.latest;
    const base = baseSize(node, spec, path);
    const loader = modelLoader(node, spec, path);
    const family = await familyOf(loader);
    if (ticket !== state.latest) return;
    const query = new URLSearchParams();
    if (base.width && base.height) {
      query.set("base_width", base.width);
      query.set("base_height", base.height);
    }
    for (const name of spec.settings) {
      const value = settingValue(node, name, path);
      if (value !== undefined && value !== null) query.set(name, value);
    }
    query.set("multiple", family?.size_multiple ?? ASSUMED_MULTIPLE);
    if (spec.image) query.set("upscale", 1);
    for (const [name, value] of Object.entries(memoryQuery(node, spec, path))) query.set(name, value);
    const sampling = samplingOf(loader, family);
    if (sampling) {
      query.set("sampling", sampling.sampling);
      query.set("shift", sampling.shift);
    }
    const notes = [];
    if (!family) notes.push(`model family unknown here: planned in multiples of ${ASSUMED_MULTIPLE} px; `
      + "the run uses the model's own (Flux, SD3, Wan: 16)");
    if (uses > 1) notes.push(`planned with the values of the first of the ${uses} uses of this subgraph`);
    const key = `${query}|${notes.join("|")}`;
    if (key === state.key) return;
    state.key = key;
    const request = ++state.asked;
    let answer;
    try {
      answer = await (await api.fetchApi(`/selfcascade/plan?${query}`)).json();
    } catch (error) {
      answer = { error: `no plan from the server (${error.message}); it is asked again when a setting changes` };
    }
    if (request !== state.asked) return; // the settings changed while this answer was on its way
    state.error = answer.error ?? null;
    state.memoryWarnings = answer.memory?.warnings ?? [];
    plan.textContent = planText(answer, base.from, family, notes, Boolean(spec.image));
    element.title = answer.schedule ?? "";
  };

  // the frontend calls this on every widget right before it queues the prompt
  panel.beforeQueued = () => {
    if (state.error) {
      app.extensionManager.toast.add({
        severity: "warn", summary: `${node.title} #${node.id}: the cascade cannot be planned`,
        detail: state.error, life: 10000,
      });
    } else if (state.memoryWarnings.length) {
      app.extensionManager.toast.add({
        severity: "warn", summary: `${node.title} #${node.id}: a stage will not fit in memory`,
        detail: state.memoryWarnings.join("\n"), life: 10000,
      });
    }
  };

  panel.showReport = (text) => {
    report.textContent = text ? `Last run:\n${text.replace(/^/gm, "  ")}` : "";
  };
  return panel;
}

// ---- refreshing: every panel node of the root graph and of every subgraph in use ----------------

// Each graph in use with the subgraph-node paths that lead to it from the root graph.
function graphsInUse(root) {
  const uses = new Map([[root, [[]]]]);
  const visit = (graph, path) => {
    if (path.length > MAX_HOPS) return;
    for (const node of graph.nodes) {
      if (!node.isSubgraphNode?.()) continue;
      const innerPath = [...path, node];
      if (!uses.has(node.subgraph)) uses.set(node.subgraph, []);
      uses.get(node.subgraph).push(innerPath);
      visit(node.subgraph, innerPath);
    }
  };
  visit(root, []);
  return uses;
}

function refreshAll() {
  if (!app.graph) return;
  for (const [graph, paths] of graphsInUse(app.graph)) {
    for (const node of graph.nodes) {
      if (node.type in PANEL_NODES) node.widgets?.find((w) => w.name === PANEL)?.refresh(paths[0], paths.length);
    }
  }
}

let scheduled = null;
function scheduleRefresh() {
  clearTimeout(scheduled);
  scheduled = setTimeout(refreshAll, DEBOUNCE_MS);
}

// Call `scheduleRefresh` after the node's own `method` (widget, link and removal changes).
function refreshAfter(node, method) {
  const own = node[method];
  node[method] = function (...args) {
    const result = own?.apply(this, args);
    scheduleRefresh();
    return result;
  };
}

app.registerExtension({
  name: "selfcascade.plan",

  settings: [{
    id: MEMORY_BUDGET_SETTING, category: ["Self-Cascade", "Memory plan", "Budget"], type: "number", defaultValue: 0,
    name: "Plan memory for a device of this many GiB (0: the server device's free memory)",
    attrs: { min: 0, max: 1000000, step: 1 }, onChange: () => scheduleRefresh(),
  }],

  async beforeRegisterNodeDef(nodeType, nodeData) {
    const spec = PANEL_NODES[nodeData.name];
    if (!spec) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      addPanel(this, spec);
      return result;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      this.widgets.find((w) => w.name === PANEL).showReport((output?.text ?? []).join("\n"));
    };
  },

  // every node, inside subgraphs too: a setting can come from anywhere upstream
  nodeCreated(node) {
    for (const method of ["onWidgetChanged", "onConnectionsChange", "onRemoved"]) refreshAfter(node, method);
    scheduleRefresh();
  },

  afterConfigureGraph() {
    scheduleRefresh();
  },

  async setup() {
    api.addEventListener("graphChanged", scheduleRefresh); // any edit the change tracker records
  },
});
