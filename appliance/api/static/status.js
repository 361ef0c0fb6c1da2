// Polls /status/summary (public, same origin) and fills the page; no external scripts, fonts or images.
"use strict";

const $ = (id) => document.getElementById(id);
const fmt = (value, digits) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
}

function render(s) {
  const anyDown = s.workers.some((w) => ["failed", "stalled"].includes(w.state));
  document.body.dataset.state = s.ready ? "ready" : anyDown ? "down" : "degraded";
  $("health").textContent = s.ready ? "READY" : anyDown ? "FAULT" : "NOT READY";
  $("profile").textContent = s.profile;
  $("temperature").textContent = fmt(s.thermal.temperature_c, 1);
  $("band").textContent = s.thermal.band + (s.thermal.unmanaged ? ` (${s.thermal.unmanaged})` : "")
    + (s.thermal.admission_paused ? " (LLM paused)" : "");
  $("band").className = "band-" + s.thermal.band;
  const latency = s.dehaze.latency || {};
  $("dehaze-p50").textContent = fmt(latency.p50_ms, 1);
  $("dehaze-p99").textContent = fmt(latency.p99_ms, 1);
  $("dehaze-dropped").textContent = s.dehaze.dropped === null ? "–" : String(s.dehaze.dropped);
  const body = $("models");
  body.replaceChildren();
  for (const m of s.models) {
    const row = document.createElement("tr");
    cell(row, m.id);
    cell(row, m.role);
    cell(row, m.quant_type || "–");
    cell(row, m.sha256.slice(0, 16) + "…", "sha");
    cell(row, m.ready ? "ready" : "not ready", m.ready ? "state-ready" : "state-failed");
    row.dataset.sha256 = m.sha256;
    body.appendChild(row);
  }
  const workers = $("workers");
  workers.replaceChildren();
  for (const w of s.workers) {
    const span = document.createElement("span");
    span.className = "worker state-" + w.state;
    span.textContent = `${w.name}: ${w.state}` + (w.restarts ? ` (${w.restarts} restarts)` : "");
    workers.appendChild(span);
  }
  $("problems").textContent = s.problems.join("; ");
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

async function poll() {
  try {
    const response = await fetch("/status/summary", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
    document.body.dataset.loaded = "1";
  } catch (err) {
    document.body.dataset.state = "down";
    $("health").textContent = "NO CONNECTION";
  }
}

const preview = $("preview");
preview.addEventListener("load", () => { document.body.dataset.preview = "ok"; });
preview.addEventListener("error", () => {
  document.body.dataset.preview = "missing";
  setTimeout(() => { preview.src = "/status/preview.mjpeg?t=" + Date.now(); }, 2000);
});
preview.src = "/status/preview.mjpeg";
poll();
setInterval(poll, 1000);
