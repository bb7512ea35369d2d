// The ui/ pages in headless Chromium, served on loopback, with window.__TAURI__ stubbed by the
// test (never shipped in ui/). The stub answers from fixtures/ — real engine output made by
// fixtures/make.sh — and records every IPC call. Screenshots go to target/ui-screenshots/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const UI = path.resolve(here, "..");
const SHOTS = path.resolve(here, "../../target/ui-screenshots");
const fixture = (name) => JSON.parse(fs.readFileSync(path.join(here, "fixtures", `${name}.json`), "utf8"));
const FIXTURES = { settings: fixture("settings"), models: fixture("models"), stats: fixture("stats"), doctor: fixture("doctor") };

function findChromium() {
  const candidates = [process.env.CHROMIUM, "/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome", "/Applications/Chromium.app/Contents/MacOS/Chromium"];
  const found = candidates.find((p) => p && fs.existsSync(p));
  if (!found) throw new Error("no Chromium found. Fix: sudo apt-get install -y chromium (scripts/deps --app), or set CHROMIUM=/path/to/chrome");
  return found;
}

// A static server for ui/ only: the tests folder (and anything outside ui/) is not served.
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png" };
function serve() {
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url, "http://x").pathname).replace(/^\/+/, "") || "index.html";
    const file = path.resolve(UI, rel);
    if (!file.startsWith(UI + path.sep) || file.startsWith(here) || !fs.existsSync(file)) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

// Runs in the page before its scripts: the shell's IPC surface, answering from fixtures.
function installStub(fixtures) {
  const clone = (v) => JSON.parse(JSON.stringify(v));
  const listeners = {};
  window.__calls = [];
  window.__saveError = null; // set by a test: what the engine rejects a save with
  window.__stats = clone(fixtures.stats);
  window.__emit = (name, payload) => (listeners[name] ?? []).forEach((cb) => cb({ event: name, payload }));
  // A download runs until the test ends it: the shell emits the final event, then returns it.
  window.__finishDownload = null;
  window.__unloadError = null;
  window.__TAURI__ = {
    core: {
      invoke: async (cmd, args) => {
        window.__calls.push({ cmd, args: clone(args ?? null) });
        switch (cmd) {
          case "settings": return clone(fixtures.settings);
          case "save_settings": if (window.__saveError) throw window.__saveError; return null;
          case "models": return clone(fixtures.models);
          case "stats": return clone(window.__stats);
          case "doctor": return clone(fixtures.doctor);
          case "loop_state": return { state: "idle", transcript: "", answer: "", detail: null };
          case "perform": return null;
          case "download_models":
            return new Promise((resolve) => {
              window.__finishDownload = (payload) => {
                window.__finishDownload = null;
                window.__emit("roxy://models-progress", payload);
                resolve(payload);
              };
            });
          case "cancel_download":
            setTimeout(() => window.__finishDownload?.({ kind: "cancelled", message: "the download was cancelled" }), 50);
            return window.__finishDownload != null;
          case "unload_models": if (window.__unloadError) throw window.__unloadError; return { freed_bytes: 187_432_960 };
          default: throw `unknown command ${cmd}`;
        }
      },
    },
    event: { listen: async (name, cb) => { (listeners[name] ??= []).push(cb); return () => {}; } },
  };
}

let server, browser, base;
before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  server = await serve();
  base = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({ executablePath: findChromium(), headless: true, args: ["--no-sandbox"] });
});
after(async () => {
  await browser?.close();
  server?.close();
});

async function open(pageName = "index.html", { colorScheme = "light" } = {}) {
  const context = await browser.newContext({ viewport: { width: 720, height: 900 }, colorScheme });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
  await page.addInitScript(installStub, FIXTURES);
  await page.goto(`${base}/${pageName}`);
  page.problems = problems;
  return page;
}

const calls = (page, cmd) => page.evaluate((c) => window.__calls.filter((x) => x.cmd === c), cmd);
const val = (page, key) => page.locator(`[data-key="${key}"]`).inputValue();

test("presets: the detected tier is shown, switching moves untouched fields and keeps the user's changes", async () => {
  const page = await open();
  const s = FIXTURES.settings;
  await page.waitForFunction(() => document.getElementById("llm.model").value !== "");
  assert.ok(await page.locator('input[name="preset"][value="8gb"]').isChecked());
  const gib = (s.memory.total / 2 ** 30).toFixed(1);
  assert.equal(await page.locator("#detected").textContent(), `— this Mac: ${s.detected === "8gb" ? "8 GB" : "32 GB"} (${gib} GiB RAM)`);
  assert.equal(await val(page, "llm.model"), s.presets["8gb"].llm.model);
  assert.equal(await val(page, "llm.temperature"), "0.5", "the user's own value from the file");
  assert.match(await page.locator("#preset-note").textContent(), /8 GB preset, 2 settings changed/);
  assert.ok(await page.locator(".field:has(#llm\\.temperature)").evaluate((e) => e.classList.contains("changed")));

  await page.locator('input[name="preset"][value="32gb"]').check();
  assert.equal(await val(page, "llm.model"), s.presets["32gb"].llm.model);
  assert.equal(await val(page, "llm.max_tokens"), String(s.presets["32gb"].llm.max_tokens));
  assert.equal(await val(page, "llm.context_size"), String(s.presets["32gb"].llm.context_size));
  assert.equal(await val(page, "tts.voice"), s.presets["32gb"].tts.voice);
  assert.equal(await val(page, "llm.temperature"), "0.5", "a changed field is kept");
  assert.equal(await val(page, "vad.end_silence_ms"), "600");
  await page.screenshot({ path: path.join(SHOTS, "settings-32gb.png"), fullPage: true });

  await page.locator('input[name="preset"][value="custom"]').check();
  assert.equal(await val(page, "llm.model"), s.presets["32gb"].llm.model, "custom starts from the form");
  assert.match(await page.locator("#preset-note").textContent(), /Custom/);

  await page.locator('input[name="preset"][value="auto"]').check();
  await page.locator("#save").click();
  await page.waitForSelector("#form-saved:not([hidden])");
  const [saved] = await calls(page, "save_settings");
  assert.equal(saved.args.config.preset, "auto");
  assert.equal(saved.args.config.llm.temperature, 0.5);
  assert.equal(saved.args.config.llm.max_tokens, s.presets["32gb"].llm.max_tokens, "custom then auto keeps custom's values as changes");
  assert.equal(saved.args.config.stt.beam_size, s.config.stt.beam_size, "keys without a field are sent back unchanged");
  assert.deepEqual(page.problems, []);
});

test("validation: clear messages at the field, nothing saved until fixed; the engine's errors shown too", async () => {
  const page = await open();
  await page.waitForFunction(() => document.getElementById("llm.model").value !== "");
  await page.fill('[data-key="llm.temperature"]', "3");
  await page.fill('[data-key="llm.max_tokens"]', "5000");
  await page.fill('[data-key="llm.model"]', "");
  await page.check('[data-key="cloud.enabled"]');
  await page.fill('[data-key="cloud.base_url"]', "api.example.com");
  await page.locator("#save").click();

  const err = (key) => page.locator(`[id="${key}-error"]`).textContent();
  assert.equal(await err("llm.temperature"), "Must be between 0 and 2.");
  assert.equal(await err("llm.max_tokens"), "Must be smaller than the context (4096 tokens).");
  assert.equal(await err("llm.model"), "Enter a model id (see the Models tab).");
  assert.match(await err("cloud.base_url"), /http:\/\/ or https:\/\/ URL/);
  assert.match(await err("cloud.model"), /cloud model's name/);
  assert.equal(await page.locator("#form-error").textContent(), "5 settings need fixing before saving.");
  assert.equal(await page.locator('[data-key="llm.temperature"]').getAttribute("aria-invalid"), "true");
  assert.equal(await page.locator('[data-key="llm.temperature"]').getAttribute("aria-describedby"), "llm.temperature-error");
  assert.equal(await page.evaluate(() => document.activeElement.id), "llm.model", "focus goes to the first problem");
  await page.screenshot({ path: path.join(SHOTS, "settings-validation.png"), fullPage: true });
  assert.equal((await calls(page, "save_settings")).length, 0, "an invalid form is not sent");

  await page.fill('[data-key="llm.temperature"]', "1.2");
  await page.fill('[data-key="llm.max_tokens"]', "300");
  await page.fill('[data-key="llm.model"]', "qwen3-1.7b-q4_k_m");
  await page.uncheck('[data-key="cloud.enabled"]');
  // The shell reports a taken hotkey (or any engine validation error) against its key.
  await page.evaluate(() => {
    window.__saveError = { key: "hotkey.shortcut", message: "Alt+Space could not be registered: already in use. Another app probably uses it already; pick another shortcut" };
  });
  await page.locator("#save").click();
  await page.waitForSelector('[id="hotkey.shortcut-error"]');
  assert.match(await err("hotkey.shortcut"), /could not be registered/);
  assert.equal(await page.locator("#form-error").textContent(), "1 setting needs fixing before saving.");
  assert.equal(await page.locator("#form-saved").isHidden(), true);
  const [sent] = await calls(page, "save_settings");
  assert.equal(sent.args.config.llm.temperature, 1.2);
  assert.equal(sent.args.config.llm.max_tokens, 300);

  await page.evaluate(() => { window.__saveError = { key: null, message: "cannot write config file /x/config.toml: Permission denied" }; });
  await page.fill('[data-key="hotkey.shortcut"]', "CmdOrCtrl+Shift+R");
  await page.locator("#save").click();
  await page.waitForFunction(() => document.getElementById("form-error").textContent.includes("Permission denied"));
  await page.evaluate(() => { window.__saveError = null; });
  await page.locator("#save").click();
  await page.waitForSelector("#form-saved:not([hidden])");
  assert.match(await page.locator("#form-saved").textContent(), /^Saved to .*config\.toml\.$/);
  assert.deepEqual(page.problems, []);
});

test("statistics: the per-stage table from real stats, a live e2e chart, memory, cache hit rates", async () => {
  const page = await open();
  await page.locator("#tab-stats").click();
  const stages = FIXTURES.stats.stages;
  await page.waitForSelector("#stats-table tbody tr");
  assert.equal(await page.locator("#stats-table tbody tr").count(), stages.length);
  const row = async (stage) => page.locator(`tr[data-stage="${stage}"] > *`).allTextContents();
  const e2e = stages.find((s) => s.stage === "e2e");
  const fmt = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
  assert.deepEqual(await row("e2e"), [
    "End to end", String(e2e.count), fmt(e2e.avg), fmt(e2e.min), fmt(e2e.max), fmt(e2e.p50), fmt(e2e.p90), fmt(e2e.p99), "4000",
    e2e.within_target ? "within" : "over",
  ]);
  for (const s of stages) {
    const cells = await row(s.stage);
    assert.equal(cells[9], s.within_target === null ? "–" : s.within_target ? "within" : "over", s.stage);
    assert.equal(cells[8], s.target_ms === null ? "–" : fmt(s.target_ms), s.stage);
  }
  assert.equal(await page.locator("#e2e-chart svg rect.box").count(), 1, "before new turns: the saved spread");
  assert.match(await page.locator('#memory dd[data-field="Roxy app (RSS)"]').textContent(), /^179 MiB$/);
  assert.equal(await page.locator('#memory dd[data-field="Mode"]').textContent(), "FULL");
  const caches = await page.locator("#caches-table tbody tr").evaluateAll((rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  assert.deepEqual(caches, [
    ["intent question vectors", "6", "10", "60 %"],
    ["recall question vectors", "1", "4", "25 %"],
    ["response cache: tts audio", "3", "4", "75 %"],
    ["response cache: llm text", "0", "0", "–"],
  ]);

  // Two turns happen while the window is open; each refresh adds a point.
  for (const turnMs of [2500, 5200]) {
    await page.evaluate((t) => {
      const s = window.__stats.stages.find((x) => x.stage === "e2e");
      s.avg = (s.avg * s.count + t) / (s.count + 1);
      s.count += 1;
    }, turnMs);
    const n = await page.locator("#e2e-chart circle").count();
    await page.waitForFunction((k) => document.querySelectorAll("#e2e-chart circle").length === k, n + 1, { timeout: 6000 });
  }
  const titles = await page.locator("#e2e-chart circle title").allTextContents();
  assert.deepEqual(titles, ["2500 ms", "5200 ms"]);
  assert.equal(await page.locator("#e2e-chart circle.over").count(), 1, "the turn over the 4 s target is marked");
  assert.match(await page.locator("#e2e-chart figcaption").textContent(), /Last 2 turns.*latest 5200 ms/);
  await page.screenshot({ path: path.join(SHOTS, "statistics-light.png"), fullPage: true });

  // Polling stops when the pane is left.
  await page.locator("#tab-models").click();
  const before = (await calls(page, "stats")).length;
  await page.waitForTimeout(2500);
  assert.equal((await calls(page, "stats")).length, before);
  assert.deepEqual(page.problems, []);
});

test("statistics render in dark mode too", async () => {
  const page = await open("index.html", { colorScheme: "dark" });
  await page.locator("#tab-stats").click();
  await page.waitForSelector("#stats-table tbody tr");
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, "rgb(30, 30, 32)");
  await page.screenshot({ path: path.join(SHOTS, "statistics-dark.png"), fullPage: true });
});

test("models: installed, missing and corrupt per model, with the fix", async () => {
  const page = await open();
  await page.locator("#tab-models").click();
  await page.waitForSelector('tr[data-model="hey_mycroft"]');
  const status = (id) => page.locator(`tr[data-model="${id}"] .badge`).textContent();
  assert.equal(await status("hey_mycroft"), "corrupt");
  assert.match(await page.locator('tr[data-model="hey_mycroft"]').textContent(), /found 1000 bytes.*Fix: roxy models fetch --tier default/);
  assert.equal(await status("smollm2-135m-instruct-q4_1"), "installed");
  assert.equal(await status("qwen3-1.7b-q4_k_m"), "missing");
  assert.match(await page.locator('tr[data-model="qwen3-1.7b-q4_k_m"]').textContent(), /Fix: roxy models fetch --tier 8gb/);
  assert.equal(await status("kokoro-v1.0"), "missing");
  const counts = FIXTURES.models.length;
  assert.equal(await page.locator("#models-table tbody tr").count(), counts);
  assert.match(await page.locator("#models-note").textContent(), /13 installed, 1 corrupt, 5 missing/);
  // Installed ids are offered in the model fields.
  assert.ok((await page.locator("#llm-models option").evaluateAll((o) => o.map((x) => x.value))).includes("qwen3-8b-q4_k_m"));
  await page.screenshot({ path: path.join(SHOTS, "models.png"), fullPage: true });
  assert.deepEqual(page.problems, []);
});

const progress = (page, bytes, total, phase = "downloading") =>
  page.evaluate(([bytes, total, phase]) => window.__emit("roxy://models-progress",
    { kind: "progress", model: "hey_mycroft", file: "wake/hey_mycroft_v0.1.onnx", phase, index: 1, count: 1, bytes, total }), [bytes, total, phase]);

test("models: a download shows its progress; Cancel stops it and the pane returns to idle", async () => {
  const page = await open();
  await page.locator("#tab-models").click();
  await page.waitForSelector('tr[data-model="hey_mycroft"]');
  assert.equal(await page.locator('tr[data-model="smollm2-135m-instruct-q4_1"] button').count(), 0, "installed models have no Download button");
  assert.equal(await page.locator("#download").isVisible(), false);

  await page.getByRole("button", { name: "Download hey_mycroft" }).click();
  assert.deepEqual((await calls(page, "download_models")).map((c) => c.args), [{ tier: "default", models: ["hey_mycroft"] }]);
  assert.ok(await page.locator("#download").isVisible());
  assert.ok(await page.locator("#download-cancel").evaluate((b) => b === document.activeElement), "focus moves to Cancel");
  assert.ok(await page.getByRole("button", { name: "Download qwen3-1.7b-q4_k_m" }).isDisabled(), "one download at a time");
  const bar = page.getByRole("progressbar", { name: /hey_mycroft/ });

  await progress(page, 0, 860_000, "checking");
  await progress(page, 430_000, 860_000);
  assert.equal(await bar.evaluate((p) => [p.value, p.max].join("/")), "430000/860000");
  assert.match(await page.locator("#download-bytes").textContent(), /^420 KiB of 840 KiB \(50%\)$/);
  assert.match(await page.locator("#download-label").textContent(), /Downloading hey_mycroft \(file 1 of 1: hey_mycroft_v0\.1\.onnx\)/);
  assert.equal(await bar.getAttribute("aria-valuetext"), "420 KiB of 840 KiB (50%)");
  await progress(page, 774_000, 860_000);
  assert.match(await page.locator("#download-bytes").textContent(), /\(90%\)$/);
  await page.screenshot({ path: path.join(SHOTS, "models-downloading.png"), fullPage: true });

  // Cancel by keyboard: focus is already on it.
  await page.keyboard.press("Enter");
  await page.waitForSelector("#download", { state: "hidden" });
  assert.equal((await calls(page, "cancel_download")).length, 1);
  assert.match(await page.locator("#download-result").textContent(), /cancelled; what arrived is kept/);
  assert.equal(await page.locator("#download-error").isVisible(), false);
  await page.waitForFunction(() => window.__calls.filter((c) => c.cmd === "models").length === 2);
  assert.equal(await page.getByRole("button", { name: "Download hey_mycroft" }).isEnabled(), true, "back to idle");
  // A late progress event after the end changes nothing.
  await progress(page, 800_000, 860_000);
  assert.equal(await page.locator("#download").isVisible(), false);
  assert.deepEqual(page.problems, []);
});

test("models: a failed download is shown clearly, a finished one refreshes the list; Unload now shows its result", async () => {
  const page = await open();
  await page.locator("#tab-models").click();
  await page.waitForSelector('tr[data-model="qwen3-1.7b-q4_k_m"]');

  await page.getByRole("button", { name: "Download qwen3-1.7b-q4_k_m" }).click();
  assert.deepEqual((await calls(page, "download_models"))[0].args, { tier: "8gb", models: ["qwen3-1.7b-q4_k_m"] });
  await page.evaluate(() => window.__finishDownload({ kind: "error", message: "download of https://huggingface.co/x failed: HTTP 404. Fix: check that the URL in models/manifest.toml still exists" }));
  const alert = page.getByRole("alert").filter({ hasText: "HTTP 404" });
  await alert.waitFor();
  assert.match(await alert.textContent(), /^Download of qwen3-1\.7b-q4_k_m failed: .*HTTP 404\. Fix:/);
  assert.equal(await page.locator("#download").isVisible(), false);
  await page.screenshot({ path: path.join(SHOTS, "models-download-error.png"), fullPage: true });

  // A second try clears the error, and success refreshes the list.
  await page.getByRole("button", { name: "Download qwen3-1.7b-q4_k_m" }).click();
  assert.equal(await page.locator("#download-error").isVisible(), false);
  await page.evaluate(() => window.__finishDownload({ kind: "done", files: [{ model: "qwen3-1.7b-q4_k_m", path: "/m/llm/q.gguf", action: "installed", bytes: 1, ms: 1 }] }));
  // The list is checked again after each end: the error, then this success.
  await page.waitForFunction(() => window.__calls.filter((c) => c.cmd === "models").length === 3, null, { timeout: 5000 });
  assert.match(await page.locator("#download-result").textContent(), /qwen3-1\.7b-q4_k_m: 1 file installed and verified/);

  await page.getByRole("button", { name: "Unload now" }).click();
  await page.waitForFunction(() => /freed/.test(document.getElementById("unload-result").textContent));
  assert.equal(await page.locator("#unload-result").textContent(), "Unloaded the language model: 178.8 MiB freed.");
  assert.equal((await calls(page, "unload_models")).length, 1);
  await page.evaluate(() => (window.__unloadError = "the voice engine has not loaded, so there is no model to unload"));
  await page.getByRole("button", { name: "Unload now" }).click();
  await page.waitForFunction(() => /Could not/.test(document.getElementById("unload-result").textContent));
  assert.match(await page.locator("#unload-result").textContent(), /Could not unload: the voice engine has not loaded/);
  assert.ok(await page.locator("#unload-result").evaluate((e) => e.classList.contains("error")));
  await page.screenshot({ path: path.join(SHOTS, "models-unload.png"), fullPage: true });
  assert.deepEqual(page.problems, []);
});

test("keyboard: tabs by arrow keys, fields by Tab, presets by arrows, Enter saves", async () => {
  const page = await open();
  await page.waitForFunction(() => document.getElementById("llm.model").value !== "");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "tab-settings");
  await page.keyboard.press("ArrowRight");
  assert.equal(await page.evaluate(() => document.activeElement.id), "tab-models");
  assert.equal(await page.locator("#pane-models").isVisible(), true);
  assert.equal(await page.locator("#pane-settings").isVisible(), false);
  await page.keyboard.press("End");
  assert.equal(await page.evaluate(() => document.activeElement.id), "tab-health");
  await page.waitForSelector('#checks li[data-check="memory"]');
  await page.keyboard.press("ArrowRight"); // wraps
  assert.equal(await page.evaluate(() => document.activeElement.id), "tab-settings");
  assert.equal(await page.locator("#tab-settings").getAttribute("aria-selected"), "true");

  // Tab leaves the tab list (only the selected tab is in the tab order) into the preset group.
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.value), "8gb");
  await page.keyboard.press("ArrowDown");
  assert.equal(await page.evaluate(() => document.activeElement.value), "32gb");
  assert.equal(await val(page, "llm.model"), FIXTURES.settings.presets["32gb"].llm.model);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "llm.model");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "llm.max_tokens");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#form-saved:not([hidden])");
  const [saved] = await calls(page, "save_settings");
  assert.equal(saved.args.config.preset, "32gb");
  // Every control has an accessible name.
  const unnamed = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, button")].filter((el) => !(el.labels?.length || el.getAttribute("aria-label") || el.textContent.trim())).map((el) => el.id || el.name),
  );
  assert.deepEqual(unnamed, []);
  await page.screenshot({ path: path.join(SHOTS, "settings-keyboard.png") });
  assert.deepEqual(page.problems, []);
});

test("panel: live state and exchange from shell events; buttons send typed actions", async () => {
  const context = await browser.newContext({ viewport: { width: 360, height: 240 } });
  const page = await context.newPage();
  await page.addInitScript(installStub, FIXTURES);
  await page.goto(`${base}/panel.html`);
  await page.waitForFunction(() => window.__calls.some((c) => c.cmd === "loop_state"));
  assert.equal(await page.locator("#loop-state").textContent(), "idle");
  assert.equal(await page.locator("#status").isVisible(), false);
  await page.evaluate(() => window.__emit("roxy://state", { state: "idle", transcript: "", answer: "", detail: null, status: "Loading models…" }));
  assert.equal(await page.locator("#status").textContent(), "Loading models…");
  await page.evaluate(() => window.__emit("roxy://state", { state: "speaking", transcript: "What time is it in Tokyo?", answer: "It's 5:30 in the morning in Tokyo.", detail: null, status: "Listening on default (44100 Hz, 2 ch)" }));
  assert.equal(await page.locator("#status").isVisible(), true);
  assert.equal(await page.locator("#loop-state").textContent(), "speaking");
  assert.equal(await page.locator("#transcript").textContent(), "What time is it in Tokyo?");
  assert.equal(await page.locator("#answer").textContent(), "It's 5:30 in the morning in Tokyo.");
  await page.screenshot({ path: path.join(SHOTS, "panel.png") });
  await page.locator("#listen").click();
  await page.locator("#stop").click();
  const acts = await calls(page, "perform");
  assert.deepEqual(acts.map((c) => c.args), [{ action: { action: "listen_now" } }, { action: { action: "stop_speaking" } }]);
  await page.evaluate(() => window.__emit("roxy://state", { state: "error", transcript: "", answer: "", detail: "The microphone gives only silence. Fix: allow Roxy in System Settings → Privacy → Microphone." }));
  assert.equal(await page.locator("#detail").isVisible(), true);
  await context.close();
});
