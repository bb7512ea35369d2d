// The panel under the tray icon: the loop's state and the current exchange, live from the
// shell's `roxy://state` events (the engine's live loop: listening, thinking, speaking, the last
// turn's transcript and answer, microphone problems). Listen / Stop go to the loop as commands.
"use strict";

const STATE_TEXT = {
  idle: "idle",
  listening: "listening…",
  thinking: "thinking…",
  speaking: "speaking",
  muted: "wake word muted",
  error: "needs attention",
};

function renderState(event) {
  const state = document.getElementById("loop-state");
  state.dataset.state = event.state;
  state.textContent = STATE_TEXT[event.state] ?? event.state;
  const transcript = document.getElementById("transcript");
  transcript.textContent = event.transcript || "Say the wake word or press the hotkey.";
  transcript.classList.toggle("placeholder", !event.transcript);
  document.getElementById("answer").textContent = event.answer;
  const detail = document.getElementById("detail");
  detail.hidden = !event.detail;
  detail.textContent = event.detail ?? "";
  const status = document.getElementById("status");
  status.hidden = !event.status;
  status.textContent = event.status ?? "";
}

async function start() {
  const tauri = window.__TAURI__;
  if (!tauri) {
    document.getElementById("loop-state").textContent = "not running inside the Roxy app";
    return;
  }
  const act = (action) => tauri.core.invoke("perform", { action: { action } });
  document.getElementById("listen").addEventListener("click", () => act("listen_now"));
  document.getElementById("stop").addEventListener("click", () => act("stop_speaking"));
  await tauri.event.listen("roxy://state", (e) => renderState(e.payload));
  renderState(await tauri.core.invoke("loop_state"));
}

start().catch((error) => {
  document.getElementById("loop-state").textContent = `error: ${error}`;
});
