// Flux dev viewer. Plain JavaScript, no build step, no dependencies.
//
// Every string that comes from a trace or a database is put into the page
// with text nodes (h() below), never parsed as HTML.
"use strict";

(function () {
  const SVGNS = "http://www.w3.org/2000/svg";
  const STATUSES = ["running", "waiting", "completed", "failed", "cancelled", "pending"];

  // ---------- DOM helpers ----------

  // h builds an element. attrs values go through setAttribute or are
  // properties for on* handlers; children are nodes or strings (text).
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVGNS, tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") {
        el.addEventListener(k.slice(2), v);
      } else if (k === "dataset") {
        for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv);
      } else {
        el.setAttribute(k, v === true ? "" : String(v));
      }
    }
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  function chip(status) {
    return h("span", { class: "chip " + cssToken(status), dataset: { status: status } }, status || "unknown");
  }

  // cssToken keeps a value usable as a class name.
  function cssToken(v) {
    return String(v || "").replace(/[^a-z0-9_-]/gi, "");
  }

  // ---------- formatting ----------

  function pad(n, w) {
    return String(n).padStart(w || 2, "0");
  }

  function fmtTime(ms) {
    if (!ms) return "—";
    const d = new Date(ms);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + pad(d.getMilliseconds(), 3);
  }

  function fmtDur(ms) {
    if (ms === undefined || ms === null || isNaN(ms)) return "—";
    if (ms < 1) return (Math.round(ms * 1000) / 1000) + " ms";
    if (ms < 1000) return (Math.round(ms * 10) / 10) + " ms";
    if (ms < 60000) return (Math.round(ms / 10) / 100) + " s";
    const m = Math.floor(ms / 60000);
    if (m < 60) return m + " m " + Math.round((ms % 60000) / 1000) + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " m";
  }

  // fmtRel tells how far time ms is from now: "in 3h 12m", "5m 2s ago".
  function fmtRel(ms, now) {
    if (!ms) return "";
    const d = ms - (now || Date.now());
    const sec = Math.floor(Math.abs(d) / 1000);
    const m = Math.floor(sec / 60), hr = Math.floor(m / 60), days = Math.floor(hr / 24);
    const span = sec < 60 ? sec + "s" : m < 60 ? m + "m " + (sec % 60) + "s" : hr < 24 ? hr + "h " + (m % 60) + "m" : days + "d " + (hr % 24) + "h";
    return d >= 0 ? "in " + span : span + " ago";
  }

  // KINDS are the node kinds drawn with a badge of their own.
  const KINDS = { step: "STEP", commit: "COMMIT", sleep: "SLEEP", wait: "WAIT", undo: "UNDO" };

  function kindLabel(kind) {
    return KINDS[kind] || String(kind || "step").toUpperCase();
  }

  function fmtInt(n) {
    return Number(n || 0).toLocaleString("en-US");
  }

  function clip(str, n) {
    str = String(str || "");
    return str.length > n ? str.slice(0, n - 1) + "…" : str;
  }

  // ---------- API ----------

  async function api(path) {
    const res = await fetch(path, { headers: { Accept: "application/json" } });
    let body;
    try {
      body = await res.json();
    } catch (e) {
      throw new Error(path + ": " + res.status + " " + res.statusText);
    }
    if (!res.ok) {
      const err = new Error(body && body.error ? body.error : res.statusText);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  // ---------- actions ----------
  //
  // When the server is mounted by fluxhttp with actions allowed for this
  // page, the run page shows "retry from this step", "resume" and "cancel"
  // buttons that post to the fluxhttp API at actions.base.

  const actions = api("./api/actions").catch(() => ({ enabled: false }));

  async function act(d, kind, step) {
    const ask = kind === "retry" ? "Retry run " + d.id + " from step " + step + "?" :
      kind === "resume" ? "Resume run " + d.id + " from where it stopped?" : "Cancel run " + d.id + "?";
    if (!window.confirm(ask)) return;
    const a = await actions;
    const url = a.base + "runs/" + encodeURIComponent(d.id) + "/" + kind +
      (kind === "retry" ? "?step=" + encodeURIComponent(step) : "");
    app.querySelectorAll("button[data-action]").forEach((b) => { b.disabled = true; });
    const what = kind === "retry" ? "Retry from " + step : kind === "resume" ? "Resume" : "Cancel";
    try {
      const res = await fetch(url, { method: "POST", headers: { Accept: "application/json" }, credentials: "same-origin" });
      let body = null;
      try { body = await res.json(); } catch (e) { /* not JSON */ }
      if (!res.ok) throw new Error((body && (body.detail || body.title)) || res.status + " " + res.statusText);
      const status = body && (body.status || (body.run && body.run.status));
      state.actionMsg = { run: d.id, error: false, text: what + ": " + ((body && body.detail) || (status ? "the run is " + status : "done")) };
    } catch (e) {
      state.actionMsg = { run: d.id, error: true, text: what + " failed: " + e.message };
    }
    render(true);
  }

  function actionBar(d) {
    const final = d.status === "completed" || d.status === "failed" || d.status === "cancelled";
    const button = (kind, label, step, title) => h("button", {
      type: "button", class: "act " + kind, title: title, dataset: step === undefined ? { action: kind } : { action: kind, step: step },
      onclick: () => act(d, kind, step),
    }, label);
    const main = [];
    if (d.status === "failed" || d.status === "cancelled") main.push(button("resume", "Resume", undefined, "Continue the run from where it stopped"));
    if (!final) main.push(button("cancel", "Cancel", undefined, "Cancel the run"));
    const retry = final ? (d.nodes || []).filter((n) => n.reached && (n.status === "completed" || n.status === "failed"))
      .map((n) => button("retry", "Retry from " + clip(n.name, 40), n.name, "Replay the run from " + n.name + " (the data before it is restored)")) : [];
    const m = state.actionMsg && state.actionMsg.run === d.id ? state.actionMsg : null;
    if (!main.length && !retry.length && !m) return null;
    return h("div", { class: "actions", id: "actions" }, main, retry,
      m ? h("p", { id: "action-result", class: m.error ? "error" : "muted", role: "status" }, m.text) : null);
  }

  // ---------- routing ----------
  //
  // #/?workflow=W&status=failed&q=text&cursor=C   runs list
  // #/run/ID                                       run page
  // #/schedules                                    schedules

  function route() {
    const hash = location.hash.replace(/^#/, "") || "/";
    if (hash.startsWith("/run/")) {
      return { view: "run", id: decodeURIComponent(hash.slice(5).split("?")[0]) };
    }
    if (hash === "/schedules" || hash.startsWith("/schedules?")) {
      return { view: "schedules" };
    }
    const q = hash.indexOf("?");
    const params = new URLSearchParams(q >= 0 ? hash.slice(q + 1) : "");
    return {
      view: "list",
      workflow: params.get("workflow") || "",
      status: params.get("status") || "",
      q: params.get("q") || "",
      cursor: params.get("cursor") || "",
    };
  }

  function listHash(p) {
    const params = new URLSearchParams();
    if (p.workflow) params.set("workflow", p.workflow);
    if (p.status) params.set("status", p.status);
    if (p.q) params.set("q", p.q);
    if (p.cursor) params.set("cursor", p.cursor);
    const qs = params.toString();
    return "#/" + (qs ? "?" + qs : "");
  }

  function runHash(id) {
    return "#/run/" + encodeURIComponent(id);
  }

  // ---------- app state ----------

  const app = document.getElementById("app");
  const state = {
    route: null,
    cursors: [], // cursors of the newer pages, for "Newer"
    lastListKey: "",
    source: null,
    refreshTimer: 0,
    inflight: false,
    again: false,
    openDetails: new Set(),
    highlight: "",
    changed: new Set(),
    problemCount: 0,
  };

  // ---------- header ----------

  function renderState(st) {
    if (!st) return;
    state.source = st;
    const src = document.getElementById("source");
    src.textContent = (st.kind === "storage" ? "store: " : "trace: ") + st.name;
    src.title = st.name;
    const idx = document.getElementById("indexing");
    if (st.indexing) {
      idx.hidden = false;
      idx.textContent = "indexing… " + Math.floor((st.progress || 0) * 100) + "%";
    } else {
      idx.hidden = true;
    }
    const notice = document.getElementById("notice");
    notice.hidden = !st.notice;
    notice.textContent = st.notice || "";
    const btn = document.getElementById("problems-btn");
    btn.hidden = !st.problemCount;
    btn.textContent = "⚠ " + fmtInt(st.problemCount) + (st.problemCount === 1 ? " malformed line" : " malformed lines");
    const panel = document.getElementById("problems");
    if (!st.problemCount) panel.hidden = true;
    if (!panel.hidden) {
      if (st.problems) renderProblems(st);
      else if (st.problemCount !== state.problemCount) api("./api/state").then(renderProblems).catch(() => {});
    }
    state.problemCount = st.problemCount;
  }

  function renderProblems(st) {
    const panel = document.getElementById("problems");
    clear(panel);
    const items = (st.problems || []).map((p) =>
      h("li", { dataset: { line: p.line || 0 } },
        h("span", { class: "where" }, p.line ? "line " + p.line : "byte " + p.offset),
        " ", p.reason));
    const more = st.problemCount > items.length ? h("p", { class: "muted" }, "…and " + fmtInt(st.problemCount - items.length) + " more.") : null;
    append(panel, [h("h3", null, "Lines that could not be read (the rest of the file was)"), h("ol", null, items), more]);
  }

  async function toggleProblems() {
    const panel = document.getElementById("problems");
    if (!panel.hidden) {
      panel.hidden = true;
      return;
    }
    panel.hidden = false;
    try {
      renderProblems(await api("./api/state"));
    } catch (e) {
      clear(panel);
      panel.appendChild(h("p", null, "Could not load the problems: " + e.message));
    }
  }

  // ---------- runs list ----------

  async function renderList(r, quiet) {
    const params = new URLSearchParams();
    if (r.workflow) params.set("workflow", r.workflow);
    if (r.status) params.set("status", r.status);
    if (r.q) params.set("q", r.q);
    if (r.cursor) params.set("cursor", r.cursor);
    params.set("limit", "50");
    let page;
    try {
      page = await api("./api/runs?" + params.toString());
    } catch (e) {
      if (!quiet) showError("Could not load the runs", e);
      return;
    }
    if (state.route !== r) return; // navigated away meanwhile

    const prevFocus = document.activeElement && document.activeElement.id;
    const prevSel = document.activeElement && document.activeElement.selectionStart;
    const view = h("div", { class: "list-view" });

    // Filters
    const counts = page.counts || {};
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const statusButtons = [h("button", {
      type: "button", class: r.status ? "" : "active", dataset: { status: "" },
      onclick: () => go({ ...r, status: "", cursor: "" }),
    }, "All", page.counts ? h("span", { class: "n" }, fmtInt(total)) : null)];
    const shown = new Set(STATUSES.filter((x) => x !== "pending"));
    Object.keys(counts).forEach((k) => shown.add(k));
    for (const st of shown) {
      statusButtons.push(h("button", {
        type: "button", class: r.status === st ? "active" : "", dataset: { status: st },
        onclick: () => go({ ...r, status: r.status === st ? "" : st, cursor: "" }),
      }, h("span", { class: "sw" }), st, page.counts ? h("span", { class: "n" }, fmtInt(counts[st] || 0)) : null));
    }
    const wfSelect = h("select", { id: "wf-filter", "aria-label": "Workflow", onchange: (e) => go({ ...r, workflow: e.target.value, cursor: "" }) },
      h("option", { value: "" }, "All workflows"),
      (page.workflows || []).map((wf) => h("option", { value: wf, selected: wf === r.workflow }, wf)));
    if (r.workflow && !(page.workflows || []).includes(r.workflow)) {
      wfSelect.appendChild(h("option", { value: r.workflow, selected: true }, r.workflow));
    }
    let searchTimer = 0;
    const search = h("input", {
      id: "search", type: "search", placeholder: "Search run ID, workflow, error, step…", value: r.q, "aria-label": "Search",
      oninput: (e) => {
        clearTimeout(searchTimer);
        const v = e.target.value;
        searchTimer = setTimeout(() => go({ ...r, q: v, cursor: "" }, true), 250);
      },
    });
    view.appendChild(h("div", { class: "filters" }, h("div", { class: "status-filter", role: "group", "aria-label": "Status" }, statusButtons), wfSelect, search));

    if (page.partial) {
      view.appendChild(h("div", { class: "banner" }, "Indexing the trace file: showing the newest runs found so far; the list completes itself."));
    }
    if (page.note) view.appendChild(h("div", { class: "banner" }, page.note));

    // Table
    const card = h("div", { class: "card" });
    if (!page.runs.length) {
      const filtered = r.workflow || r.status || r.q;
      card.appendChild(h("div", { class: "empty" }, filtered ? "No run matches these filters." :
        ["No runs yet. Run a workflow with a trace sink, e.g. ", h("code", null, 'tracefile.New("./.flux/trace.ndjson")'), ", and they appear here live."]));
    } else {
      const rows = page.runs.map((run) => {
        const link = runHash(run.id);
        const stats = run.steps + (run.steps === 1 ? " step" : " steps") + " · " + run.attempts + (run.attempts === 1 ? " attempt" : " attempts") +
          (run.retries ? " · " + run.retries + (run.retries === 1 ? " retry" : " retries") : "");
        return h("tr", {
          class: state.changed.has(run.id) ? "flash" : "", dataset: { run: run.id, status: run.status },
          onclick: (e) => { if (!e.target.closest("a")) location.hash = link; },
        },
        h("td", null, chip(run.status)),
        h("td", { class: "id" }, h("a", { href: link, title: run.id }, clip(run.id, 40))),
        h("td", { class: "wf" }, run.workflow),
        h("td", { class: "num" }, fmtTime(run.startedAt)),
        h("td", { class: "num" }, run.durationMs !== undefined ? fmtDur(run.durationMs) : run.status === "running" || run.status === "waiting" ? "…" : "—"),
        h("td", { class: "num muted" }, stats),
        run.wait && !run.error ? h("td", { class: "wait", title: waitText(run.wait) }, waitText(run.wait)) :
          h("td", { class: "err", title: run.error || "" }, run.failedStep ? run.failedStep + ": " : "", run.error || ""));
      });
      card.appendChild(h("table", { class: "runs" },
        h("thead", null, h("tr", null, ["Status", "Run", "Workflow", "Started", "Duration", "Steps", "Error or wait"].map((t) => h("th", null, t)))),
        h("tbody", null, rows)));
    }
    view.appendChild(card);
    state.changed.clear();

    // Pager
    const first = !r.cursor;
    const range = page.total >= 0 ? fmtInt(page.total) + (page.total === 1 ? " run" : " runs") : "";
    view.appendChild(h("div", { class: "pager" },
      h("button", {
        type: "button", id: "newer", disabled: first,
        onclick: () => go({ ...r, cursor: state.cursors.pop() || "" }),
      }, "← Newer"),
      h("span", null, range),
      h("button", {
        type: "button", id: "older", disabled: !page.next,
        onclick: () => { state.cursors.push(r.cursor); go({ ...r, cursor: page.next }); },
      }, "Older →")));

    clear(app);
    app.appendChild(view);
    if (prevFocus === "search") {
      const el = document.getElementById("search");
      el.focus();
      if (prevSel !== null && prevSel !== undefined) el.setSelectionRange(prevSel, prevSel);
    }
  }

  function go(r, replace) {
    const hash = listHash(r);
    if (replace) history.replaceState(null, "", hash);
    else location.hash = hash;
    if (replace) render();
  }

  // ---------- run page ----------

  async function renderRun(r, quiet) {
    const acts = await actions;
    let d;
    try {
      d = await api("./api/run?id=" + encodeURIComponent(r.id));
    } catch (e) {
      if (state.route !== r) return;
      if (quiet && e.status !== 404) return;
      clear(app);
      app.appendChild(h("div", { class: "card error-page" },
        h("p", null, e.status === 404 ? "This run is not in the source (yet). It appears here when its events arrive." : "Could not load the run: " + e.message),
        h("p", null, h("a", { href: "#/" }, "← All runs"))));
      return;
    }
    if (state.route !== r) return;
    // Keep open <details> and scroll position across live refreshes.
    app.querySelectorAll("details[data-key]").forEach((el) => {
      if (el.open) state.openDetails.add(el.dataset.key);
      else state.openDetails.delete(el.dataset.key);
    });
    const view = h("div", { class: "run-view", dataset: { run: d.id, status: d.status } });
    view.appendChild(h("div", { class: "crumbs" }, h("a", { href: "#/", onclick: backToList }, "← All runs")));
    view.appendChild(h("div", { class: "run-head" }, h("h1", null, d.workflow || "(unnamed workflow)"), chip(d.status),
      d.compensation ? h("span", {
        id: "compensation", class: "chip compensation " + cssToken(d.compensation), dataset: { compensation: d.compensation },
        title: "A node failed for good after commits with an undo completed: their undos run, latest commit first",
      }, d.compensation) : null,
      h("span", { class: "run-id", title: "Run ID" }, d.id)));
    view.appendChild(h("div", { class: "facts" },
      h("span", null, "Started ", h("b", null, fmtTime(d.startedAt))),
      h("span", null, "Duration ", h("b", null, d.durationMs !== undefined ? fmtDur(d.durationMs) : d.status === "running" ? "running…" : d.status === "waiting" ? "waiting…" : "—")),
      h("span", null, h("b", null, String(d.steps)), " nodes"),
      h("span", null, h("b", null, String(d.attempts)), " attempts"),
      h("span", null, h("b", null, String(d.retries)), " retries"),
      d.partial ? h("span", null, "(still indexing: more events may appear)") : null));
    if (d.status === "waiting") view.appendChild(waitBanner(d));
    if (acts.enabled) {
      const bar = actionBar(d);
      if (bar) view.appendChild(bar);
    }
    if (d.compensation) view.appendChild(compensationNote(d));
    if (d.error) {
      view.appendChild(h("div", { class: "run-error" },
        h("div", null, h("b", null, d.failedStep ? "Failed at " + d.failedStep : "Error")),
        h("div", { class: "msg" }, d.error),
        d.stack ? details("run-stack", "Stack", h("pre", { class: "stack" }, d.stack)) : null));
    }
    view.appendChild(block("Graph", "graph", h("div", { class: "card graph-wrap" }, graph(d), legend())));
    view.appendChild(block("Timeline", "timeline", h("div", { class: "card" }, timeline(d))));
    const failures = failedAttempts(d);
    if (failures) view.appendChild(block("Failed attempts", "failures", h("div", { class: "card" }, failures)));
    if (d.signals && d.signals.length) {
      view.appendChild(block("Signals (" + d.signals.length + ")", "signals", h("div", { class: "card" }, signalsTable(d))));
    }
    view.appendChild(block("Input and data", "io", h("div", { class: "io" },
      h("div", { class: "card" }, h("h3", null, "Input"), jsonView(d.input, "io-input")),
      h("div", { class: "card" }, h("h3", null, "Data"), jsonView(d.data, "io-data")),
      d.nodeData ? nodeDataCard(d) : null)));
    if (d.events && d.events.length) {
      view.appendChild(block("Raw events (" + d.events.length + ")", "events", h("div", { class: "card" }, rawEvents(d.events))));
    }
    if (d.raw) {
      view.appendChild(block("Stored run", "raw", h("div", { class: "card" }, details("stored-run", "Show the stored record", jsonView(d.raw, "raw-json")))));
    }
    const y = window.scrollY;
    clear(app);
    app.appendChild(view);
    fitLabels(view);
    if (quiet) window.scrollTo(0, y);
    if (state.highlight) highlightNode(state.highlight, false);
  }

  // nodeDataCard shows the data the run had after the node picked in its
  // menu, as the store rebuilds it from its snapshot and patches. The pick
  // survives the page's refreshes.
  function nodeDataCard(d) {
    const out = h("div", { class: "node-data" }, h("p", { class: "muted" }, "Pick a node to see the data it left."));
    const done = (d.nodes || []).filter((n) => n.status === "completed");
    const pick = h("select", { id: "node-data-pick", "aria-label": "Data after node" },
      h("option", { value: "" }, "Data after…"),
      ...done.map((n) => h("option", { value: String(n.index) }, n.name)));
    const load = async (index) => {
      try {
        const r = await api("./api/node-data?id=" + encodeURIComponent(d.id) + "&index=" + encodeURIComponent(index));
        if (pick.value !== index) return; // another pick since
        clear(out);
        out.appendChild(jsonView(r.data, "node-data-" + index));
      } catch (err) {
        clear(out);
        out.appendChild(h("p", { class: "error" }, String(err.message || err)));
      }
    };
    pick.addEventListener("change", () => {
      state.nodePick = pick.value === "" ? null : { run: d.id, index: pick.value };
      if (pick.value !== "") load(pick.value);
    });
    if (state.nodePick && state.nodePick.run === d.id && done.some((n) => String(n.index) === state.nodePick.index)) {
      pick.value = state.nodePick.index;
      load(pick.value);
    }
    return h("div", { class: "card" }, h("h3", null, "Data after a node"), done.length ? pick : h("p", { class: "muted" }, "No node has completed yet."), out);
  }

  // waitText says what a waiting run waits for, from its wait (see
  // viewer.Wait), with the time it ends both as a time and from now.
  function waitText(w) {
    const until = w.untilMs ? " until " + fmtTime(w.untilMs) + " (" + fmtRel(w.untilMs) + ")" : "";
    if (w.kind === "sleep" || (!w.kind && !w.signal)) return "sleeping at " + w.node + until;
    const what = w.signal ? " for " + (w.event ? "event " : "signal ") + w.signal + (w.event && w.key ? " key " + w.key : "") : "";
    return "waiting at " + w.node + what + (until || (w.signal ? " (no timeout)" : ""));
  }

  function waitBanner(d) {
    const w = d.wait;
    if (!w) {
      return h("div", { class: "wait-banner", id: "wait-banner", role: "status" },
        "Waiting: the run waits for a sleep's end, a signal or an event, holding no engine. A trace does not record which: open the store with flux dev --db or --postgres to see it.");
    }
    const text = waitText(w);
    const overdue = w.untilMs && w.untilMs < Date.now();
    return h("div", { class: "wait-banner", id: "wait-banner", role: "status", dataset: { node: w.node, kind: w.kind || "" } },
      text.charAt(0).toUpperCase() + text.slice(1) + ".",
      overdue ? " Its time has passed: an engine that registered " + (d.workflow || "the workflow") + " continues it." : "",
      w.sinceMs ? h("span", { class: "since" }, " Waiting since " + fmtTime(w.sinceMs) + ".") : null);
  }

  function compensationNote(d) {
    const undos = (d.nodes || []).filter((n) => n.kind === "undo" && n.status !== "pending" && n.status !== "skipped")
      .sort((a, b) => ((a.attempts[0] || {}).startMs || 0) - ((b.attempts[0] || {}).startMs || 0));
    const what = d.compensation === "compensating" ? "Compensating: a node failed for good, and the undos of the completed commits run, latest commit first: " :
      d.compensation === "compensation failed" ? "Compensation failed: an undo failed for good. Undos that ran: " :
      "Compensated: a node failed for good, so the undos of the completed commits ran, latest commit first: ";
    return h("div", { class: "comp-note", id: "compensation-note", dataset: { compensation: d.compensation } },
      what, undos.map((n) => n.undoes || n.name).join(" ← ") || "none yet", ".");
  }

  function signalsTable(d) {
    const rows = d.signals.map((g) => h("tr", { dataset: { seq: g.seq, name: g.name, node: g.node } },
      h("td", { class: "num muted" }, "#" + g.seq),
      h("td", { class: "sig-name" }, g.name),
      h("td", { class: "sig-key mono" }, g.key || "—"),
      h("td", { class: "num", title: fmtRel(g.sentAt) }, fmtTime(g.sentAt)),
      h("td", { class: "payload mono", title: g.payload + (g.payloadCut ? "… (" + fmtInt(g.payloadBytes) + " bytes)" : "") },
        g.payload ? clip(g.payload, 120) + (g.payloadCut && g.payload.length <= 120 ? "…" : "") : h("span", { class: "muted" }, "none")),
      h("td", { class: "consumed" }, g.node >= 0 ?
        h("a", { href: "#", onclick: (e) => { e.preventDefault(); highlightNode(g.nodeName, true); } }, g.nodeName || "#" + g.node) :
        h("span", { class: "chip inbox" }, "in inbox"))));
    return h("table", { class: "signals" },
      h("thead", null, h("tr", null, ["#", "Signal", "Key", "Sent at", "Payload", "Consumed by"].map((t) => h("th", null, t)))),
      h("tbody", null, rows));
  }

  function backToList(e) {
    if (state.lastListKey) {
      e.preventDefault();
      location.hash = state.lastListKey;
    }
  }

  function block(title, id, body) {
    return h("section", { class: "block", id: "block-" + id }, h("h2", null, title), body);
  }

  function details(key, summary, body) {
    const d = h("details", { dataset: { key: key } }, h("summary", null, summary), body);
    if (state.openDetails.has(key)) d.open = true;
    return d;
  }

  // ---------- graph ----------
  //
  // Nodes in order, left to right. Consecutive conditional nodes (a When
  // predicate: seen skipped) form one column of alternative branches, as in
  // the branching diagram: the branch that ran is highlighted, skipped ones
  // are greyed.

  const NW = 154, NH = 52, GX = 42, GY = 14, PAD = 16;

  function ranks(nodes) {
    const out = [];
    for (const n of nodes) {
      const last = out[out.length - 1];
      if (n.conditional && last && last.branch) last.nodes.push(n);
      else out.push({ branch: !!n.conditional, nodes: [n] });
    }
    return out;
  }

  function ran(n) {
    return n.status === "completed" || n.status === "failed" || n.status === "running" || n.status === "waiting";
  }

  // nodeSub is the line under a node's name in the graph.
  function nodeSub(n) {
    let sub = n.status;
    if (n.status === "pending" && !n.reached) sub = "not reached";
    if ((n.kind === "sleep" || n.kind === "wait") && n.waitMs !== undefined && n.waitMs !== null) {
      // A wait's status shows in its colour; the line says how long.
      sub = n.status === "waiting" ? sub + " · " + fmtDur(n.waitMs) : n.status === "completed" ? "waited " + fmtDur(n.waitMs) : sub;
    } else if (n.kind === "undo" && n.undoes) {
      // Its status shows in its colour; the line names its commit.
      sub = "undoes " + n.undoes + (n.status === "completed" ? "" : " · " + sub);
    } else if (n.attempts && n.attempts.length > 1) {
      sub += " · " + n.attempts.length + " attempts";
    }
    return sub;
  }

  function graph(d) {
    const nodes = d.nodes || [];
    if (!nodes.length) return h("p", { class: "muted" }, "No steps recorded yet.");
    const rs = ranks(nodes);
    const tallest = Math.max(...rs.map((r) => r.nodes.length));
    const height = PAD * 2 + tallest * NH + (tallest - 1) * GY + 14;
    const width = PAD * 2 + rs.length * NW + (rs.length - 1) * GX;
    const pos = new Map();
    rs.forEach((r, k) => {
      const colH = r.nodes.length * NH + (r.nodes.length - 1) * GY;
      const y0 = (height - colH) / 2;
      r.nodes.forEach((n, i) => pos.set(n.index, { x: PAD + k * (NW + GX), y: y0 + i * (NH + GY) }));
    });
    const svgEl = s("svg", { class: "graph", width: width, height: height, viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": "Workflow graph" });
    const edges = s("g", { class: "edges" });
    svgEl.appendChild(edges);
    const edge = (a, b, cls) => {
      const p = pos.get(a.index), q = pos.get(b.index);
      const x1 = p.x + NW, y1 = p.y + NH / 2, x2 = q.x, y2 = q.y + NH / 2, mx = (x1 + x2) / 2;
      edges.appendChild(s("path", { class: "edge " + cls, d: "M" + x1 + "," + y1 + " C" + mx + "," + y1 + " " + mx + "," + y2 + " " + x2 + "," + y2 }));
    };
    for (let k = 0; k + 1 < rs.length; k++) {
      for (const a of rs[k].nodes) {
        for (const b of rs[k + 1].nodes) {
          const cls = a.status === "skipped" || b.status === "skipped" ? "skip" : ran(a) && ran(b) ? "taken" : "";
          edge(a, b, cls);
        }
      }
      // A column of branches that all skipped: the run went around it.
      const r = rs[k + 1];
      if (r.nodes.every((n) => n.status === "skipped") && k + 2 < rs.length) {
        for (const a of rs[k].nodes) {
          for (const b of rs[k + 2].nodes) {
            const p = pos.get(a.index), q = pos.get(b.index);
            const top = Math.min(...r.nodes.map((n) => pos.get(n.index).y)) - 6;
            const x1 = p.x + NW, y1 = p.y + NH / 2, x2 = q.x, y2 = q.y + NH / 2;
            edges.appendChild(s("path", {
              class: "edge bypass " + (ran(a) && ran(b) ? "taken" : "skip"),
              d: "M" + x1 + "," + y1 + " C" + (x1 + GX) + "," + top + " " + (x2 - GX) + "," + top + " " + x2 + "," + y2,
            }));
          }
        }
      }
    }
    for (const n of nodes) {
      const p = pos.get(n.index);
      const commit = n.kind === "commit";
      const sub = nodeSub(n);
      const kind = KINDS[n.kind] ? n.kind : "step";
      const g = s("g", {
        class: "node " + cssToken(n.status) + (commit ? " commit" : " step") + " k-" + kind,
        transform: "translate(" + p.x + "," + p.y + ")",
        tabindex: "0", role: "button",
        dataset: { name: n.name, status: n.status, kind: n.kind, index: n.index },
      });
      g.addEventListener("click", () => highlightNode(n.name, true));
      g.addEventListener("keydown", (e) => { if (e.key === "Enter") highlightNode(n.name, true); });
      append(g, [
        s("title", null, n.name + " (" + n.kind + ", " + n.status + ")" +
          (n.undoes ? ": the compensation of commit " + n.undoes : "") +
          (n.untilMs ? ": until " + fmtTime(n.untilMs) + " (" + fmtRel(n.untilMs) + ")" : "")),
        s("rect", { class: "box", width: NW, height: NH, rx: commit ? 3 : 10 }),
        commit ? s("rect", { class: "inner", x: 4, y: 4, width: NW - 8, height: NH - 8, rx: 2 }) : null,
        s("text", { class: "kind " + kind, x: 12, y: 15 }, kindLabel(kind)),
        s("text", { class: "name", x: 12, y: 31 }, clip(n.name, 40)),
        s("text", { class: "sub", x: 12, y: 45 }, sub),
      ]);
      svgEl.appendChild(g);
    }
    return svgEl;
  }

  // fitLabels shortens node names that are wider than their box; the full
  // name stays in the node's title.
  function fitLabels(root) {
    root.querySelectorAll("svg.graph .node text.name, svg.graph .node text.sub").forEach((el) => {
      const full = el.textContent;
      let n = full.length;
      while (n > 1 && el.getComputedTextLength() > NW - 22) {
        n--;
        el.textContent = full.slice(0, n) + "…";
      }
    });
  }

  function legend() {
    return h("div", { class: "legend" },
      h("span", { class: "l-completed" }, "completed"),
      h("span", { class: "l-failed" }, "failed"),
      h("span", { class: "l-running" }, "running"),
      h("span", { class: "l-waiting" }, "waiting (a sleep, a signal, an event)"),
      h("span", { class: "l-skipped" }, "skipped (When was false)"),
      h("span", { class: "l-pending" }, "not reached"),
      h("span", { class: "l-commit" }, "commit (side effect, runs once)"),
      h("span", { class: "l-undo" }, "undo (a commit's compensation)"));
  }

  function highlightNode(name, scroll) {
    state.highlight = name;
    app.querySelectorAll(".node.hl, .tl-row.hl").forEach((el) => el.classList.remove("hl"));
    let first = null;
    app.querySelectorAll(".node, .tl-row").forEach((el) => {
      if (el.dataset.name === name) {
        el.classList.add("hl");
        if (!first && el.classList.contains("tl-row")) first = el;
      }
    });
    if (scroll && first) first.scrollIntoView({ block: "center", behavior: "smooth" });
  }

  // ---------- timeline ----------

  function timeline(d) {
    const rows = [];
    let t0 = d.startedAt || Infinity, t1 = d.endedAt || 0;
    const now = Date.now();
    for (const n of d.nodes || []) {
      for (const a of n.attempts || []) {
        if (a.startMs) t0 = Math.min(t0, a.startMs);
        const end = a.endMs || (unended(a) ? now : a.startMs + (a.durationMs || 0));
        t1 = Math.max(t1, end, a.startMs + (a.durationMs || 0));
      }
    }
    for (const m of d.marks || []) {
      if (m.at) { t0 = Math.min(t0, m.at); t1 = Math.max(t1, m.at); }
    }
    if (!isFinite(t0)) t0 = t1;
    if (d.status === "running" || d.status === "waiting") t1 = Math.max(t1, now);
    const span = Math.max(t1 - t0, 1);
    const pct = (v) => Math.max(0, Math.min(100, (v / span) * 100));
    let estimated = false;
    for (const n of d.nodes || []) {
      const badge = n.kind && n.kind !== "step" ? h("span", { class: "k " + cssToken(n.kind) }, kindLabel(n.kind)) : null;
      const label = (extra) => h("div", { class: "tl-label", title: n.name }, n.name, badge, extra);
      if (n.status === "skipped" && !(n.attempts || []).length) {
        rows.push(h("div", { class: "tl-row skipped", dataset: { name: n.name, status: "skipped", attempt: 0 } },
          label(null), h("div", { class: "tl-track" }, h("span", { class: "tl-skip" }, "skipped")), h("div", { class: "tl-dur" }, "—")));
        continue;
      }
      for (const a of n.attempts || []) {
        const end = a.endMs || (unended(a) ? now : a.startMs + (a.durationMs || 0));
        const dur = unended(a) && !a.endMs ? now - a.startMs : a.durationMs;
        estimated = estimated || a.estimated;
        const left = pct(a.startMs - t0);
        const width = Math.max(pct(end - a.startMs), 0.3);
        const title = n.name + " attempt " + a.number + ": " + a.status + ", " + fmtDur(dur) +
          (a.estimated ? " (start not traced: measured from the previous attempt's end, includes the backoff)" : "") +
          (a.status === "waiting" && n.untilMs ? " so far, until " + fmtTime(n.untilMs) + " (" + fmtRel(n.untilMs) + ")" : "") +
          (a.error ? "\n" + a.error : "");
        rows.push(h("div", { class: "tl-row " + cssToken(a.status), dataset: { name: n.name, status: a.status, attempt: a.number } },
          label(h("span", { class: "att" }, "#" + a.number)),
          h("div", { class: "tl-track" }, h("div", {
            class: "tl-bar " + cssToken(a.status) + (a.estimated ? " estimated" : ""),
            style: null, title: title, dataset: { left: left.toFixed(3), width: width.toFixed(3) },
          })),
          h("div", { class: "tl-dur" }, (a.estimated ? "≈ " : "") + fmtDur(dur))));
      }
    }
    for (const m of d.marks || []) {
      const what = m.type === "workflow:compensating" ? "compensating" : m.type === "workflow:waiting" ? "waiting" : m.type;
      const left = pct(m.at - t0);
      rows.push(h("div", { class: "tl-row mark " + cssToken(what), dataset: { type: m.type, at: m.at } },
        h("div", { class: "tl-label", title: m.type }, h("span", { class: "mark-label" }, (what === "compensating" ? "⟲ " : "⏸ ") + what)),
        h("div", { class: "tl-track" }, h("div", { class: "tl-mark", title: m.type + " at " + fmtTime(m.at), dataset: { left: left.toFixed(3) } })),
        h("div", { class: "tl-dur" }, "+" + fmtDur(m.at - t0))));
    }
    if (!rows.length) return h("p", { class: "muted" }, "No attempts recorded yet.");
    const ticks = h("div", { class: "ticks" }, [0, 0.25, 0.5, 0.75, 1].map((f) => {
      const el = h("span", { dataset: { left: (f * 100).toFixed(3) } }, fmtDur(span * f));
      return el;
    }));
    const wrap = h("div", { class: "timeline" },
      h("div", { class: "tl-axis" }, h("div", null, "node / attempt"), ticks, h("div", { style: null, class: "tl-dur" }, "duration")),
      rows,
      estimated ? h("p", { class: "tl-note" }, "≈ This trace (from the original engine) records one step:start per node: a retried attempt is drawn from the end of the previous one, so it includes the backoff.") : null);
    positionBars(wrap);
    return wrap;
  }

  // open reports whether attempt a has no end yet: it runs, or waits.
  function unended(a) {
    return a.status === "running" || a.status === "waiting";
  }

  // positionBars applies data-left/data-width as inline style through the
  // CSSOM (allowed by the page's CSP, unlike style attributes).
  function positionBars(root) {
    root.querySelectorAll("[data-left]").forEach((el) => {
      el.style.left = el.dataset.left + "%";
      if (el.dataset.width) el.style.width = el.dataset.width + "%";
    });
  }

  function failedAttempts(d) {
    const items = [];
    for (const n of d.nodes || []) {
      const total = n.maxRetries !== undefined && n.maxRetries !== null ? n.maxRetries + 1 : null;
      for (const a of n.attempts || []) {
        if (a.status !== "failed" && a.status !== "interrupted") continue;
        items.push(h("div", { class: "attempt-error", dataset: { name: n.name, attempt: a.number } },
          h("div", { class: "title" }, n.name, " — attempt " + a.number + (total ? " of " + total : "") + " " + a.status + " after " + fmtDur(a.durationMs)),
          h("div", { class: "msg" }, a.error || "(no error message)"),
          a.stack ? details("stack-" + n.index + "-" + a.number, "Stack", h("pre", null, a.stack)) : null));
      }
    }
    return items.length ? items : null;
  }

  // ---------- JSON ----------

  function jsonView(v, key) {
    if (v === undefined || v === null) return h("p", { class: "muted" }, "none");
    const pre = h("pre", { class: "json", dataset: { key: key } });
    jsonInto(pre, v, "");
    return pre;
  }

  function jsonInto(el, v, indent) {
    if (v === null) {
      el.appendChild(h("span", { class: "z" }, "null"));
    } else if (Array.isArray(v)) {
      if (!v.length) { el.appendChild(document.createTextNode("[]")); return; }
      el.appendChild(document.createTextNode("[\n"));
      v.forEach((x, i) => {
        el.appendChild(document.createTextNode(indent + "  "));
        jsonInto(el, x, indent + "  ");
        el.appendChild(document.createTextNode(i < v.length - 1 ? ",\n" : "\n"));
      });
      el.appendChild(document.createTextNode(indent + "]"));
    } else if (typeof v === "object") {
      const keys = Object.keys(v);
      if (!keys.length) { el.appendChild(document.createTextNode("{}")); return; }
      el.appendChild(document.createTextNode("{\n"));
      keys.forEach((k, i) => {
        el.appendChild(document.createTextNode(indent + "  "));
        el.appendChild(h("span", { class: "k" }, JSON.stringify(k)));
        el.appendChild(document.createTextNode(": "));
        jsonInto(el, v[k], indent + "  ");
        el.appendChild(document.createTextNode(i < keys.length - 1 ? ",\n" : "\n"));
      });
      el.appendChild(document.createTextNode(indent + "}"));
    } else if (typeof v === "string") {
      el.appendChild(h("span", { class: "s" }, JSON.stringify(v)));
    } else if (typeof v === "number") {
      el.appendChild(h("span", { class: "n" }, String(v)));
    } else {
      el.appendChild(h("span", { class: "b" }, String(v)));
    }
  }

  function rawEvents(events) {
    const rows = events.map((e) => h("tr", { dataset: { type: e.type, line: e.line || 0 } },
      h("td", { class: "ln", title: "byte offset " + e.offset }, e.line ? String(e.line) : "@" + e.offset),
      h("td", { class: "ty" }, e.type),
      h("td", { class: "raw" }, e.raw, e.cut ? h("span", { class: "muted" }, " … (cut for display)") : null)));
    return details("raw-events", "Show the " + events.length + " trace lines of this run", h("table", { class: "events" }, h("tbody", null, rows)));
  }

  // ---------- schedules ----------

  async function renderSchedules(r, quiet) {
    let list;
    try {
      list = await api("./api/schedules");
    } catch (e) {
      if (!quiet) showError("Could not load the schedules", e);
      return;
    }
    if (state.route !== r) return;
    const view = h("div", { class: "schedules-view" }, h("h1", { class: "view-title" }, "Schedules"));
    const card = h("div", { class: "card" });
    if (!list.supported) {
      card.appendChild(h("div", { class: "empty", id: "schedules-note" }, list.note || "Schedules need a database."));
    } else if (!list.schedules.length) {
      card.appendChild(h("div", { class: "empty", id: "schedules-note" }, "No schedules stored yet. Add one with ",
        h("code", null, "schedule.Add"), " (package schedule): its runs start on its cron spec."));
    } else {
      const now = Date.now();
      const rows = list.schedules.map((sc) => h("tr", { dataset: { schedule: sc.name, paused: sc.paused ? "1" : "0" } },
        h("td", { class: "name" }, sc.name),
        h("td", { class: "wf" }, h("a", { href: listHash({ workflow: sc.workflow }), title: "The runs of " + sc.workflow }, sc.workflow)),
        h("td", { class: "spec mono", title: sc.input ? "input: " + sc.input + (sc.inputCut ? "…" : "") : "" }, sc.spec),
        h("td", { class: "tz" }, sc.timeZone || "UTC"),
        h("td", { class: "catchup" }, sc.catchUp || "skip"),
        h("td", { class: "state" }, sc.paused ? h("span", { class: "chip paused" }, "paused") : h("span", { class: "chip active" }, "active")),
        h("td", { class: "num last", title: sc.lastTick ? fmtRel(sc.lastTick, now) : "" }, sc.lastTick ? fmtTime(sc.lastTick) : "—"),
        h("td", { class: "num next", title: inZone(sc.nextTick, sc.timeZone) }, sc.error ? h("span", { class: "err" }, sc.error) :
          sc.nextTick ? [fmtTime(sc.nextTick), " ", h("span", { class: "rel muted" }, "(" + fmtRel(sc.nextTick, now) + ")")] :
          h("span", { class: "muted" }, sc.paused ? "— (paused)" : "—"))));
      card.appendChild(h("table", { class: "runs schedules" },
        h("thead", null, h("tr", null, ["Name", "Workflow", "Spec", "Time zone", "Catch-up", "State", "Last tick", "Next tick"].map((t) => h("th", null, t)))),
        h("tbody", null, rows)));
    }
    view.appendChild(card);
    clear(app);
    app.appendChild(view);
  }

  // inZone tells time ms in time zone tz (an IANA name; "" is UTC).
  function inZone(ms, tz) {
    if (!ms) return "";
    try {
      return new Date(ms).toLocaleString("sv-SE", { timeZone: tz || "UTC" }) + " in " + (tz || "UTC");
    } catch (e) {
      return "";
    }
  }

  // ---------- errors ----------

  function showError(what, e) {
    clear(app);
    app.appendChild(h("div", { class: "card error-page" }, h("p", null, what + ": " + e.message), h("p", null, h("a", { href: "#/" }, "← All runs"))));
  }

  // ---------- rendering and live updates ----------

  async function render(quiet) {
    if (state.inflight) {
      state.again = true;
      return;
    }
    state.inflight = true;
    try {
      const r = route();
      if (!quiet || !state.route || state.route.view !== r.view || JSON.stringify(state.route) !== JSON.stringify(r)) {
        state.route = r;
      } else {
        state.route = r;
      }
      document.querySelectorAll(".tabs a").forEach((a) => {
        a.classList.toggle("active", a.dataset.view === (r.view === "schedules" ? "schedules" : "runs"));
      });
      if (r.view === "run") {
        document.title = "Run " + r.id + " · Flux dev";
        await renderRun(r, quiet);
      } else if (r.view === "schedules") {
        document.title = "Schedules · Flux dev";
        await renderSchedules(r, quiet);
      } else {
        state.lastListKey = location.hash || "#/";
        if (!r.cursor) state.cursors = [];
        document.title = "Runs · Flux dev";
        await renderList(r, quiet);
      }
      app.dataset.ready = "1";
    } finally {
      state.inflight = false;
      if (state.again) {
        state.again = false;
        render(true);
      }
    }
  }

  function scheduleRefresh() {
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(() => render(true), 120);
  }

  function connect() {
    const live = document.getElementById("live");
    const es = new EventSource("./api/events");
    es.addEventListener("hello", (e) => {
      live.className = "live on";
      live.title = "Live: the page updates as the source changes";
      try { renderState(JSON.parse(e.data)); } catch (err) { /* ignore */ }
      scheduleRefresh(); // after a reconnect, catch up
    });
    es.addEventListener("change", (e) => {
      let c;
      try { c = JSON.parse(e.data); } catch (err) { return; }
      renderState(c.state);
      const r = state.route || route();
      if (c.reset) state.cursors = [];
      if (r.view === "run") {
        if (c.all || c.reset || (c.runs || []).includes(r.id)) scheduleRefresh();
      } else {
        (c.runs || []).forEach((id) => state.changed.add(id));
        scheduleRefresh();
      }
    });
    es.onerror = () => {
      live.className = "live off";
      live.title = "Disconnected: retrying…";
    };
  }

  document.getElementById("problems-btn").addEventListener("click", toggleProblems);
  window.addEventListener("hashchange", () => {
    state.highlight = "";
    window.scrollTo(0, 0);
    render(false);
  });
  api("./api/state").then(renderState).catch(() => {});
  render(false);
  connect();
  // Times shown from now ("in 3h 12m") stay true.
  setInterval(() => {
    const r = state.route;
    if (r && (r.view === "schedules" || (r.view === "run" && app.querySelector(".run-view[data-status=waiting]")))) render(true);
  }, 30000);
})();
