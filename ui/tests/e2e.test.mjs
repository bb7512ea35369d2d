// End-to-end: the real app (target/debug/roxy-app) driven through tauri-driver (WebDriver, over
// WebKitWebDriver) on an X display (Xvfb: scripts/test-app-e2e starts one and this test).
// No npm dependencies: fetch() speaks the WebDriver protocol.
//   1. Settings: switch the preset, change a field, Save, and the config file on disk says so.
//   2. Statistics: a terminal `roxy run --input` turn into the app's data dir fills the table.
//   3. The hotkey: `xdotool key <shortcut>` makes the loop listen (panel + roxy://state events).
// Screenshots land in target/e2e-screenshots/ (look at them).
//   ROXY_APP, ROXY_BIN  the binaries (default: $CARGO_TARGET_DIR or target/, debug)
//   ROXY_MODELS_DIR     installed models (default: .roxy/models in this checkout)
//   TAURI_DRIVER, WEBKIT_WEBDRIVER  the drivers (default: from PATH)
//   DISPLAY             the X display the app and xdotool use (required)
//   E2E_KEEP=1          keep each app's temporary HOME/config/data dir (else removed)
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(here, "../..");
const TARGET = process.env.CARGO_TARGET_DIR ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR) : path.join(ROOT, "target");
const APP = process.env.ROXY_APP ?? path.join(TARGET, "debug/roxy-app");
const ROXY = process.env.ROXY_BIN ?? path.join(TARGET, "debug/roxy");
const MODELS = path.resolve(process.env.ROXY_MODELS_DIR ?? path.join(ROOT, ".roxy/models"));
const SHOTS = path.join(ROOT, "target/e2e-screenshots");
const TAURI_DRIVER = process.env.TAURI_DRIVER ?? "tauri-driver";
// tauri-driver wants the native driver's full path.
const NATIVE_DRIVER = process.env.WEBKIT_WEBDRIVER ?? onPath("WebKitWebDriver");

function onPath(name) {
  const dir = (process.env.PATH ?? "").split(path.delimiter).find((d) => d && fs.existsSync(path.join(d, name)));
  return dir ? path.join(dir, name) : name;
}
// How long the engine may take to load its models (a debug build on 2 busy cores is slow).
const ENGINE_READY_MS = Number(process.env.E2E_ENGINE_READY_MS ?? 240_000);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, timeoutMs = 20_000, everyMs = 200) {
  const until = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
      last = value;
    } catch (e) {
      if (e.fatal) throw e;
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last?.stack ?? JSON.stringify(last)})`);
    await sleep(everyMs);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------- a tiny WebDriver client

// The process groups started here (tauri-driver, WebKitWebDriver, the app, its LLM worker): ended
// when the test ends, however it ends.
const groups = new Set();
function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {}
}
process.on("exit", () => groups.forEach((pid) => killGroup(pid, "SIGKILL")));
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(130));

class Driver {
  // Starts tauri-driver with `env` (the app inherits it through WebKitWebDriver), on a D-Bus
  // session bus of its own (the app is single-instance over D-Bus: a second app on a shared bus
  // would hand over to the first and exit) and in a process group of its own (stop() ends it all).
  static async start(env, logFile) {
    const port = await freePort();
    const nativePort = await freePort();
    const log = fs.openSync(logFile, "w");
    const proc = spawn("dbus-run-session", ["--", TAURI_DRIVER, "--port", String(port), "--native-port", String(nativePort), "--native-driver", NATIVE_DRIVER], {
      env,
      stdio: ["ignore", log, log],
      detached: true,
    });
    fs.closeSync(log);
    groups.add(proc.pid);
    const exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
    proc.on("error", () => {});
    const d = new Driver(`http://127.0.0.1:${port}`, proc, exited, logFile);
    await waitFor(`tauri-driver on port ${port} (log: ${logFile})`, async () => {
      if (proc.exitCode !== null) throw Object.assign(new Error(`tauri-driver exited (${proc.exitCode}): ${fs.readFileSync(logFile, "utf8")}`), { fatal: true });
      return (await fetch(`${d.base}/status`)).ok;
    }, 15_000);
    return d;
  }

  constructor(base, proc, exited, logFile) {
    Object.assign(this, { base, proc, exited, logFile, session: null });
  }

  async cmd(method, route, body) {
    const url = this.session && !route.startsWith("/session") ? `${this.base}/session/${this.session}${route}` : `${this.base}${route}`;
    const res = await fetch(url, { method, headers: { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
    const json = await res.json().catch(() => ({}));
    if (!res.ok || json.value?.error) throw new Error(`${method} ${route}: ${res.status} ${JSON.stringify(json.value ?? json)}`);
    return json.value;
  }

  async newSession(application) {
    const caps = { "tauri:options": { application } };
    const value = await this.cmd("POST", "/session", { capabilities: { alwaysMatch: caps }, desiredCapabilities: caps });
    this.session = value.sessionId;
    return value;
  }

  find(css) {
    return this.cmd("POST", "/element", { using: "css selector", value: css }).then((v) => Object.values(v)[0]);
  }
  click(el) {
    return this.cmd("POST", `/element/${el}/click`, {});
  }
  async type(el, text) {
    await this.cmd("POST", `/element/${el}/clear`, {});
    await this.cmd("POST", `/element/${el}/value`, { text, value: [...text] });
  }
  exec(script, args = []) {
    return this.cmd("POST", "/execute/sync", { script, args });
  }
  execAsync(script, args = []) {
    return this.cmd("POST", "/execute/async", { script, args });
  }
  // Calls an IPC command of the app from the page, as the UI does.
  invoke(command, args) {
    return this.execAsync(
      "const done = arguments[arguments.length - 1]; window.__TAURI__.core.invoke(arguments[0], arguments[1]).then((v) => done({ ok: v }), (e) => done({ err: String(e?.message ?? e) }));",
      [command, args ?? {}],
    ).then((r) => {
      if (r && "err" in r) throw new Error(`${command}: ${r.err}`);
      return r?.ok;
    });
  }
  async screenshot(name) {
    // After the page's latest changes are painted.
    await this.execAsync("const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));");
    const png = await this.cmd("GET", "/screenshot");
    fs.mkdirSync(SHOTS, { recursive: true });
    const file = path.join(SHOTS, `${name}.png`);
    fs.writeFileSync(file, Buffer.from(png, "base64"));
    return file;
  }
  // Switches to the settings window ("main") or the panel, told apart by their pages.
  async switchTo(which) {
    const probe = { settings: "return !!document.getElementById('settings-form')", panel: "return !!document.getElementById('loop-state')" }[which];
    return waitFor(`the ${which} window`, async () => {
      for (const handle of await this.cmd("GET", "/window/handles")) {
        await this.cmd("POST", "/window", { handle, name: handle });
        if (await this.exec(probe)) return handle;
      }
      return false;
    }, 20_000, 500);
  }

  async stop() {
    if (this.session) {
      await Promise.race([this.cmd("DELETE", `/session/${this.session}`).catch(() => {}), sleep(10_000)]);
      this.session = null;
    }
    killGroup(this.proc.pid, "SIGTERM");
    await Promise.race([this.exited, sleep(5_000)]);
    await sleep(500);
    killGroup(this.proc.pid, "SIGKILL");
    groups.delete(this.proc.pid);
  }
}

// ---------------------------------------------------------------- one app run

// A private HOME, config and data dir per run (as src-tauri/tests/smoke.rs isolates the app), an
// ALSA "microphone" that gives silence, and both windows shown: ROXY_APP_EXIT_AFTER_MS (the smoke
// test's hook) opens the settings window and the panel, keeps the panel up when it loses focus,
// and quits the app on its own should the test leave it behind.
async function startApp(name, { models, savedStats }) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `roxy-e2e-${name}-`));
  if (savedStats) {
    fs.mkdirSync(path.join(root, "data"), { recursive: true });
    fs.writeFileSync(path.join(root, "data/stats.json"), savedStats);
  }
  fs.writeFileSync(path.join(root, ".asoundrc"), "pcm.!default { type null }\n");
  // A free port for the app's local API, not the default one a running Roxy may hold.
  fs.writeFileSync(path.join(root, "config.toml"), `[app]\napi_port = ${await freePort()}\n`);
  const env = {
    ...process.env,
    HOME: root,
    ROXY_CONFIG: path.join(root, "config.toml"),
    ROXY_DATA_DIR: path.join(root, "data"),
    ROXY_MODELS_DIR: models ? MODELS : path.join(root, "no-models"),
    ROXY_LOG: "info",
    ROXY_APP_EXIT_AFTER_MS: "900000",
    NO_COLOR: "1",
  };
  for (const k of ["ROXY_PRESET", "ROXY_MANIFEST", "ROXY_APP_LISTEN_ONCE_THEN_QUIT"]) delete env[k];
  fs.mkdirSync(SHOTS, { recursive: true });
  const driver = await Driver.start(env, path.join(SHOTS, `${name}-driver.log`));
  await driver.newSession(APP);
  await driver.switchTo("settings");
  // The page has loaded the settings and the health checks over IPC and filled the form.
  await waitFor("the settings form to fill", () =>
    driver.exec("return !!document.querySelector('input[name=preset]:checked') && !!document.getElementById('llm.model').value && document.getElementById('state').textContent !== 'checking…'"), 60_000);
  return { root, env, driver };
}

function appLog(app) {
  const dir = path.join(app.env.ROXY_DATA_DIR, "logs");
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).map((f) => path.join(dir, f)) : [];
  return [app.driver.logFile, ...files].map((f) => fs.readFileSync(f, "utf8")).join("\n");
}

function roxy(app, args, env = {}) {
  return execFileSync(ROXY, args, {
    env: { ...process.env, HOME: app.root, ROXY_DATA_DIR: app.env.ROXY_DATA_DIR, ROXY_MODELS_DIR: MODELS, ...env },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 300_000,
  });
}

// "Alt+Space" (the config's syntax) as xdotool's "alt+space".
function xdotoolKeys(shortcut) {
  const names = { alt: "alt", option: "alt", ctrl: "ctrl", control: "ctrl", cmdorctrl: "ctrl", commandorcontrol: "ctrl", shift: "shift", super: "super", meta: "super", cmd: "super", command: "super", space: "space", enter: "Return", return: "Return", tab: "Tab", escape: "Escape", esc: "Escape" };
  return shortcut.split("+").map((k) => {
    const key = k.trim();
    const lower = key.toLowerCase();
    if (names[lower]) return names[lower];
    if (/^key[a-z]$/.test(lower)) return lower.slice(3);
    if (/^digit[0-9]$/.test(lower)) return lower.slice(5);
    return key.length === 1 ? lower : key;
  }).join("+");
}

// A terminal `roxy run` of one spoken question into the app's data dir (the defaults, not the
// app's config file). The stats file it saved, for the second app.
let savedStats = null;
function oneTurn(app, input, reply) {
  const out = roxy(app, ["run", "--input", input, "--output", reply, "--json"], { ROXY_CONFIG: path.join(app.root, "cli-config.toml") });
  const report = JSON.parse(out);
  assert.equal(report.turns?.length, 1, `one turn: ${out}`);
  const stats = path.join(app.env.ROXY_DATA_DIR, "stats.json");
  assert.ok(fs.existsSync(stats), "roxy run saved no stats.json");
  savedStats = fs.readFileSync(stats, "utf8");
}

// The statistics pane shows that one turn: a row per stage it went through, counts > 0.
async function checkStatsTable(d, app, shot) {
  await d.click(await d.find("#tab-stats"));
  let rows;
  try {
    rows = await waitFor("the turn's rows in the statistics table", async () => {
      rows = await d.exec(
        "return [...document.querySelectorAll('#stats-table tbody tr')].map((tr) => ({ stage: tr.dataset.stage, count: Number(tr.cells[1].textContent) }))",
      );
      return rows.some((x) => x.stage === "e2e") && rows;
    }, 8_000);
  } finally {
    await d.exec("document.getElementById('pane-stats').scrollIntoView()");
    await d.screenshot(shot);
  }
  const count = Object.fromEntries(rows.map((r) => [r.stage, r.count]));
  for (const stage of ["wake", "vad_endpoint", "stt", "intent", "tts_first_audio", "e2e"]) assert.ok(count[stage] > 0, `${stage}: ${JSON.stringify(count)}`);
  assert.equal(count.e2e, 1, JSON.stringify(count));
  const note = await d.exec("return document.getElementById('stats-note').textContent");
  assert.ok(note.includes(path.join(app.env.ROXY_DATA_DIR, "stats.json")), note);
}

before(() => {
  assert.ok(process.env.DISPLAY, "DISPLAY is not set: run this through scripts/test-app-e2e (it starts Xvfb)");
  for (const bin of [APP, ROXY]) assert.ok(fs.existsSync(bin), `${bin} is missing. Fix: cargo build -j2 -p roxy -p roxy-app --bins`);
  assert.ok(fs.existsSync(path.join(MODELS, "vad")), `no models in ${MODELS}. Fix: roxy models fetch --tier default (or set ROXY_MODELS_DIR)`);
  fs.rmSync(SHOTS, { recursive: true, force: true });
  fs.mkdirSync(SHOTS, { recursive: true });
});

// ---------------------------------------------------------------- settings and statistics
// Without models the engine stays unloaded, so the statistics pane shows the saved figures.

describe("settings and statistics (engine not loaded)", { concurrency: false }, () => {
  let app;
  before(async () => {
    app = await startApp("settings", { models: false });
  });
  after(async () => {
    await app?.driver.stop();
    if (app && !process.env.E2E_KEEP) fs.rmSync(app.root, { recursive: true, force: true });
  });

  test("switching the preset and a field, then Save, writes the config file", async () => {
    const d = app.driver;
    const config = app.env.ROXY_CONFIG;
    assert.equal(await d.exec("return document.querySelector('#config-path').textContent"), config);
    const before = await d.exec("return document.querySelector('input[name=preset]:checked')?.value");
    assert.equal(before, "auto", "a fresh config shows the auto preset");
    const to = (await d.invoke("settings")).detected === "32gb" ? "8gb" : "32gb";
    await d.screenshot("01-settings-loaded");
    await d.click(await d.find(`input[name="preset"][value="${to}"]`));
    await waitFor(`the ${to} preset to be checked`, () => d.exec(`return document.querySelector('input[name=preset][value="${to}"]').checked`));
    const expectedModel = await d.exec(`return document.getElementById('llm.model').value`);
    await d.type(await d.find('[id="vad.end_silence_ms"]'), "750");
    await d.click(await d.find("#save"));
    const saved = await waitFor("the saved banner", () => d.exec("const b = document.getElementById('form-saved'); return !b.hidden && b.textContent"));
    assert.match(saved, /Saved to /);
    // The banner and the preset at the top of the form (Save scrolled to the bottom).
    await d.exec("document.getElementById('form-saved').scrollIntoView({ block: 'start', behavior: 'instant' })");
    await sleep(300);
    await d.screenshot("02-settings-saved");
    const text = await waitFor(`${config} on disk`, () => fs.existsSync(config) && fs.readFileSync(config, "utf8"));
    assert.match(text, new RegExp(`^preset = "${to}"$`, "m"), text);
    assert.match(text, /^\[vad\]\s*\nend_silence_ms = 750$/m, text);
    // The app reads it back as saved.
    const view = await d.invoke("settings");
    assert.equal(view.config.preset, to);
    assert.equal(view.config.vad.end_silence_ms, 750);
    assert.equal(view.config.llm.model, expectedModel);
    assert.ok(appLog(app).includes("settings saved"), "no 'settings saved' in the log");
  });

  test("a terminal `roxy run --input` turn fills the statistics table", async () => {
    const d = app.driver;
    const wav = path.join(app.root, "say.wav");
    const input = path.join(app.root, "in.wav");
    const reply = path.join(app.root, "reply.wav");
    // The wake word model answers to Piper's voice; sox pads silence around it (as tests/ do).
    const cli = { ROXY_CONFIG: path.join(app.root, "cli-config.toml") }; // the defaults, not the app's 32 GB file
    roxy(app, ["say", "Hey Jarvis, what time is it?", "--output", wav], cli);
    execFileSync("sox", [wav, input, "pad", "0.5", "1.5"]);
    oneTurn(app, input, reply);
    await checkStatsTable(d, app, "03-statistics");
  });
});

// ---------------------------------------------------------------- the hotkey
// With the models the engine loads and its live loop listens on the (silent) microphone.

describe("the hotkey (engine loaded)", { concurrency: false }, () => {
  let app;
  before(async () => {
    // With the stats file the terminal turn saved (as if `roxy run` had run in this data dir).
    app = await startApp("hotkey", { models: true, savedStats });
    await waitFor("the engine to load and the microphone to be ready", async () => {
      const s = await app.driver.invoke("loop_state");
      if (/could not load|cannot start|could not start/.test(s.detail ?? "")) throw Object.assign(new Error(`the engine did not start: ${s.detail}`), { fatal: true });
      return s.status?.startsWith("Listening on") && s;
    }, ENGINE_READY_MS, 1000);
  });
  after(async () => {
    await app?.driver.stop();
    if (app && !process.env.E2E_KEEP) fs.rmSync(app.root, { recursive: true, force: true });
  });

  // Loading the engine records model_load; that alone must not hide the terminal turn's
  // figures: the live registry is shown once this session has a turn of its own.
  test("with the engine loaded, a terminal turn still shows until the app has a turn of its own", async () => {
    assert.ok(savedStats, "the settings suite saved no statistics");
    await checkStatsTable(app.driver, app, "04-statistics-engine-loaded");
    await app.driver.click(await app.driver.find("#tab-settings"));
  });

  test("pressing the hotkey (xdotool) makes the loop listen", async () => {
    const d = app.driver;
    const shortcut = await d.exec("return document.getElementById('hotkey.shortcut').value");
    assert.ok(shortcut, "no hotkey in the settings form");
    assert.ok(appLog(app).includes("hotkey registered"), "the hotkey was not registered");

    await d.switchTo("panel");
    // The panel records every roxy://state event from here on. (The silent ALSA "microphone" may
    // have put the loop in the error state, "the microphone has given only silence": the loop
    // runs on, and the hotkey still starts it listening.)
    await d.execAsync(
      "const done = arguments[0]; window.__e2eStates = []; window.__TAURI__.event.listen('roxy://state', (e) => window.__e2eStates.push(e.payload.state)).then(() => done(true), (e) => done(String(e)));",
    );
    const before = await d.exec("return document.getElementById('loop-state').dataset.state");
    assert.notEqual(before, "listening");
    await d.screenshot("05-panel-before-hotkey");

    const keys = xdotoolKeys(shortcut);
    execFileSync("xdotool", ["key", keys], { env: process.env });
    // The panel shows it until the silent microphone times the turn out (or reports silence).
    // State and text are read together: the silent microphone's report can replace the
    // listening state a moment later.
    const shown = await waitFor(`listening after ${keys}`, () =>
      d.exec(
        "const el = document.getElementById('loop-state'); return el.dataset.state === 'listening' ? el.textContent : window.__e2eStates.includes('listening') && 'event'",
      ), 15_000, 100);
    await d.screenshot("06-panel-after-hotkey");
    const states = await d.exec("return window.__e2eStates");
    assert.ok(states.includes("listening"), `roxy://state events: ${JSON.stringify(states)}`);
    if (shown !== "event") assert.equal(shown, "listening…");
    else console.log(`# the panel moved on before it was seen listening: ${JSON.stringify(states)}`);

    const log = appLog(app);
    assert.ok(log.includes("HotkeyPressed"), "no HotkeyPressed action in the log");
    assert.ok(log.includes('"state":"listening"'), "no listening state in the log");
  });
});
