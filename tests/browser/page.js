// Page-side helpers of the browser tests and of scripts/build_workflows.py, installed as
// window.selfcascadeTest by frontend.py. Everything goes through the frontend's own objects (app, api,
// LiteGraph), as a user's clicks would.
() => {
  const { app } = window.comfyAPI.app;
  const { api } = window.comfyAPI.api;
  const COLUMN_GAP = 60;
  const ROW_GAP = 50;

  function nodeById(id) {
    const node = app.graph.getNodeById(Number(id));
    if (!node) throw new Error(`no node ${id} in the graph`);
    return node;
  }

  function innerNode(subgraphNodeId, id) {
    const node = nodeById(subgraphNodeId).subgraph?.getNodeById(Number(id));
    if (!node) throw new Error(`no node ${id} inside subgraph node ${subgraphNodeId}`);
    return node;
  }

  function widget(node, name) {
    const found = node.widgets?.find((w) => w.name === name);
    if (!found) throw new Error(`${node.type} #${node.id} has no widget '${name}'`);
    return found;
  }

  function slotIndex(slots, nameOrIndex, what) {
    if (typeof nameOrIndex === "number") return nameOrIndex;
    const index = slots.findIndex((slot) => slot.name === nameOrIndex);
    if (index < 0) throw new Error(`no ${what} '${nameOrIndex}' among ${slots.map((s) => s.name)}`);
    return index;
  }

  // Columns by longest path from the sources; each column stacked top to bottom.
  function layOut(nodes, depthOf) {
    const columns = [];
    for (const node of nodes) (columns[depthOf.get(node)] ??= []).push(node);
    let x = 20;
    for (const column of columns.filter(Boolean)) {
      let y = 60;
      for (const node of column) {
        node.pos = [x, y];
        y += node.size[1] + LiteGraph.NODE_TITLE_HEIGHT + ROW_GAP;
      }
      x += Math.max(...column.map((node) => node.size[0])) + COLUMN_GAP;
    }
  }

  window.selfcascadeTest = {
    // Build a workflow from {nodes: [{key, type, title?, size?, widgets: {name: value},
    // links: {input: [key, output name or index]}}]}; returns the UI-format JSON the frontend saves.
    build(spec) {
      app.graph.clear();
      const byKey = new Map();
      for (const item of spec.nodes) {
        const node = LiteGraph.createNode(item.type);
        if (!node) throw new Error(`unknown node type ${item.type}`);
        if (item.title) node.title = item.title;
        app.graph.add(node);
        for (const [name, value] of Object.entries(item.widgets ?? {})) widget(node, name).value = value;
        // examples reproduce what their notes describe: seeds stay fixed after a run
        for (const control of node.widgets ?? []) if (control.name === "control_after_generate") control.value = "fixed";
        if (item.size) node.setSize(item.size);
        byKey.set(item.key, node);
      }
      const depthOf = new Map();
      const depth = (item) => {
        if (!depthOf.has(byKey.get(item.key))) {
          const origins = Object.values(item.links ?? {}).map(([key]) => spec.nodes.find((n) => n.key === key));
          depthOf.set(byKey.get(item.key), origins.length ? 1 + Math.max(...origins.map(depth)) : 0);
        }
        return depthOf.get(byKey.get(item.key));
      };
      for (const item of spec.nodes) {
        depth(item);
        const target = byKey.get(item.key);
        for (const [input, [key, output]] of Object.entries(item.links ?? {})) {
          const origin = byKey.get(key);
          if (!origin) throw new Error(`${item.key}.${input} links unknown node ${key}`);
          const link = origin.connect(slotIndex(origin.outputs, output, `output of ${origin.type}`), target,
            slotIndex(target.inputs, input, `input of ${target.type}`));
          if (!link) throw new Error(`${key}.${output} -> ${item.key}.${input} was refused (type mismatch?)`);
        }
      }
      layOut(spec.nodes.map((item) => byKey.get(item.key)), depthOf);
      window.selfcascadeTest.frame(); // saved with the workflow: it opens showing the whole graph
      const workflow = app.graph.serialize();
      const { scale, offset } = app.canvas.ds;
      workflow.extra = { ...workflow.extra, ds: { scale: Number(scale.toFixed(3)), offset: offset.map(Math.round) } };
      return workflow;
    },

    // Load a UI-format workflow as the Open dialog does; report what the frontend flagged.
    async load(workflow, name) {
      // what the file says, before the frontend loads (and may write into) it; 1.5x gives nodes string ids
      const saved = new Map(workflow.nodes.map((n) => [String(n.id), structuredClone(n.widgets_values)]));
      const missing = [];
      const missingModels = [];
      const { showMissingNodesError, showMissingModelsError } = app;
      app.showMissingNodesError = (types) => missing.push(...types.map((t) => t.type ?? t));
      app.showMissingModelsError = (models) => missingModels.push(...models.map((m) => m.name ?? m));
      try {
        await app.loadGraphData(workflow, true, true, name);
      } finally {
        Object.assign(app, { showMissingNodesError, showMissingModelsError });
      }
      // the frontend's own rule (1.5x no longer calls showMissingNodesError when loading)
      const unknown = app.graph.nodes.filter((n) => !(n.type in LiteGraph.registered_node_types) && !n.isSubgraphNode?.());
      for (const type of unknown.map((n) => n.type)) if (!missing.includes(type)) missing.push(type);
      const widgetMismatches = [];
      for (const node of app.graph.nodes) {
        const values = saved.get(String(node.id));
        if (!Array.isArray(values)) continue;
        // every saved value where it was; a widget added after them (a newer optional input) takes its default
        const loaded = (node.widgets ?? []).filter((w) => w.serialize !== false).map((w) => w.value);
        if (JSON.stringify(loaded.slice(0, values.length)) !== JSON.stringify(values)) {
          widgetMismatches.push(`${node.type} #${node.id}: saved ${JSON.stringify(values)}, loaded ${JSON.stringify(loaded)}`);
        }
      }
      // 1.4x-1.5x flag a node naming a file the server lacks (has_errors, like a real error): such a node has
      // a combo whose value is not among its choices; it is a missing file, not a node error
      const choices = (w) => (typeof w.options?.values === "function" ? w.options.values() : w.options?.values);
      const lacksFile = (n) => (n.widgets ?? []).some((w) => Array.isArray(choices(w)) && !choices(w).includes(w.value));
      const flagged = app.graph.nodes.filter((n) => n.has_errors);
      return {
        missing, missingModels, widgetMismatches,
        nodeErrors: flagged.filter((n) => !lacksFile(n)).map((n) => `${n.type} #${n.id}`),
        missingFiles: flagged.filter(lacksFile).map((n) => `${n.type} #${n.id}`),
        types: app.graph.nodes.map((n) => n.type),
      };
    },

    // What the Run button would send.
    async exportPrompt() {
      const { output, workflow } = await app.graphToPrompt();
      return { output, workflow };
    },

    // Queue an API prompt from this page, so its executed events reach this page's nodes.
    async queue(output, workflow) {
      return (await api.queuePrompt(0, { output, workflow })).prompt_id;
    },

    // Queue as the Run button does (app.queuePrompt calls each widget's beforeQueued first).
    async runButton() {
      await app.queuePrompt(0, 1);
    },

    // Set a widget as the canvas does when a user edits it (value, callback, node.onWidgetChanged).
    setWidget(id, name, value, subgraphNodeId) {
      const node = subgraphNodeId === undefined ? nodeById(id) : innerNode(subgraphNodeId, id);
      const w = widget(node, name);
      if (w.setValue) {
        w.setValue(value, { node, canvas: app.canvas });
      } else {
        w.value = value;
        w.callback?.(value, app.canvas, node);
      }
    },

    widgetValue(id, name) {
      return widget(nodeById(id), name).value;
    },

    nodeIdsOfType(type) {
      return app.graph.nodes.filter((n) => n.type === type).map((n) => n.id);
    },

    // Select the nodes and run the frontend's "Convert to Subgraph" command; the new subgraph node's id.
    async toSubgraph(ids) {
      app.canvas.deselectAll();
      for (const id of ids) app.canvas.select(nodeById(id));
      await app.extensionManager.command.execute("Comfy.Graph.ConvertToSubgraph");
      const created = app.graph.nodes.filter((n) => n.isSubgraphNode?.());
      if (created.length !== 1) throw new Error(`expected one subgraph node, found ${created.length}`);
      return created[0].id;
    },

    // Ids of the nodes of a type inside the subgraph of subgraph node `subgraphNodeId`.
    innerNodeIdsOfType(subgraphNodeId, type) {
      return nodeById(subgraphNodeId).subgraph.nodes.filter((n) => n.type === type).map((n) => n.id);
    },

    innerWidgetValue(subgraphNodeId, id, name) {
      return widget(innerNode(subgraphNodeId, id), name).value;
    },

    // Watch what the page asks the server through the frontend's api (the server still answers).
    watchRequests() {
      if (!api.fetchApi.selfcascadeWatched) {
        const fetchApi = api.fetchApi.bind(api);
        api.fetchApi = Object.assign((route, options) => {
          window.selfcascadeRequests.push(route);
          return fetchApi(route, options);
        }, { selfcascadeWatched: true });
      }
      window.selfcascadeRequests = [];
    },

    requests() {
      return window.selfcascadeRequests;
    },

    // Stacks of every setInterval the page set up (recorded from the start by driver.mjs).
    intervalStacks() {
      return window.selfcascadeIntervals ?? null;
    },

    // URLs of every script, style and fetch the page loaded.
    loadedResources() {
      return performance.getEntriesByType("resource").map((entry) => entry.name);
    },

    // Whether the panel widget's element is on screen, and the text it shows there.
    shownPanel(id, name) {
      const element = widget(nodeById(id), name).element;
      const { width, height } = element.getBoundingClientRect();
      return { shown: element.isConnected && element.checkVisibility() && width > 0 && height > 0, text: element.innerText };
    },

    // Page point over the label of widget `name` of node `id`, where a user hovers for its tooltip:
    // the label element with Nodes 2.0, the widget's row on the classic canvas (as last drawn). `onTop`:
    // what the page has at that point, when it is not the label or the canvas (a toast, a dialog).
    widgetLabelPoint(id, name) {
      const node = nodeById(id);
      const element = document.querySelector(`[data-node-id="${id}"]`);
      let target;
      let point;
      if (element) {
        target = [...element.querySelectorAll("*")].find((e) => !e.children.length && e.textContent.trim() === name);
        if (!target) throw new Error(`no label '${name}' on node ${id}`);
        const r = target.getBoundingClientRect();
        point = { x: r.x + r.width / 2, y: r.y + r.height / 2 };
      } else {
        app.canvas.draw(true, true); // the widgets' rows as of now
        const w = widget(node, name);
        target = app.canvas.canvas;
        const rect = target.getBoundingClientRect();
        const { scale, offset } = app.canvas.ds;
        const rowY = (w.y ?? w.last_y) + (w.computedHeight ?? LiteGraph.NODE_WIDGET_HEIGHT) / 2;
        point = { x: rect.left + (node.pos[0] + 30 + offset[0]) * scale, y: rect.top + (node.pos[1] + rowY + offset[1]) * scale };
      }
      const top = document.elementFromPoint(point.x, point.y);
      const onTop = top === target || target.contains(top) ? null : `${top?.tagName}.${top?.className}`;
      return { ...point, onTop };
    },

    // Whether a visible element shows `text` (a tooltip, whatever draws it).
    showsText(text) {
      return [...document.querySelectorAll("body *")].some((e) => e.textContent.includes(text)
        && ![...e.children].some((child) => child.textContent.includes(text)) && e.checkVisibility());
    },

    toasts() { // PrimeVue's toasts (1.3x), the frontend's own (1.5x)
      return [...document.querySelectorAll(".p-toast-message, [data-testid=toast]")].map((el) => el.innerText);
    },

    // Screen rectangle of nodes (title bar included), for screenshots.
    screenRect(ids, margin = 12) {
      const rect = app.canvas.canvas.getBoundingClientRect();
      const { scale, offset } = app.canvas.ds;
      const boxes = ids.map(nodeById).map((n) => [n.pos[0], n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT,
        n.pos[0] + n.size[0], n.pos[1] + n.size[1]]);
      const [x0, y0] = [Math.min(...boxes.map((b) => b[0])), Math.min(...boxes.map((b) => b[1]))];
      const [x1, y1] = [Math.max(...boxes.map((b) => b[2])), Math.max(...boxes.map((b) => b[3]))];
      const x = Math.max(0, rect.left + (x0 + offset[0]) * scale - margin);
      const y = Math.max(0, rect.top + (y0 + offset[1]) * scale - margin);
      return { x, y, width: (x1 - x0) * scale + 2 * margin, height: (y1 - y0) * scale + 2 * margin };
    },

    // Show the whole graph, or the given nodes, in the part of the viewport the side bar and the
    // run toolbar leave free.
    frame(ids) {
      const [left, top] = [70, 100];
      const nodes = ids?.length ? ids.map(nodeById) : app.graph.nodes;
      const x0 = Math.min(...nodes.map((n) => n.pos[0]));
      const y0 = Math.min(...nodes.map((n) => n.pos[1])) - LiteGraph.NODE_TITLE_HEIGHT;
      const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]));
      const y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]));
      const { width, height } = app.canvas.canvas.getBoundingClientRect();
      const scale = Math.min(1.25, (width - left - 20) / (x1 - x0), (height - top - 20) / (y1 - y0));
      app.canvas.ds.scale = scale;
      app.canvas.ds.offset = [left / scale - x0, top / scale - y0];
      app.canvas.setDirty(true, true);
      app.canvas.draw(true, true);
    },
  };
}
