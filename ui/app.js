// The window talks to the engine only through the shell's IPC commands.
"use strict";

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
  document.getElementById("state").textContent = errors ? `${errors} problem(s)` : "ready";
}

async function refresh() {
  const tauri = window.__TAURI__;
  if (!tauri) {
    document.getElementById("state").textContent = "not running inside the Roxy app";
    return;
  }
  try {
    renderChecks(await tauri.core.invoke("doctor"));
  } catch (error) {
    document.getElementById("state").textContent = `error: ${error}`;
  }
}

if (typeof module !== "undefined") module.exports = { renderChecks };
else refresh();
