// impasto's web page: calls the v1 API with the user's key; no framework, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const FINISHED = new Set(["succeeded", "failed", "canceled"]);
// sessionStorage: the key lives as long as the tab, not on disk for every later visitor.
let apiKey = sessionStorage.getItem("impasto-key") || "";
let current = null; // {id, abort: AbortController, losses: number[], blobs: string[]}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// fetch with the key; an error body is thrown as the API words it.
async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  headers.set("Authorization", `Bearer ${apiKey}`);
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body.error) message = `${body.error.code}: ${body.error.message}`;
    } catch (_) { /* not JSON: keep the status line */ }
    throw new Error(message);
  }
  return response;
}

// <img> cannot send Authorization, so images are fetched and shown as blob: URLs. The job's
// URLs name the API's public address; the page asks its own origin for the same path.
async function blobUrl(url) {
  const { pathname, search } = new URL(url, location.href);
  const response = await api(pathname + search);
  const blob = URL.createObjectURL(await response.blob());
  if (current) current.blobs.push(blob);
  return blob;
}

function setKey(key) {
  apiKey = key.trim();
  if (apiKey) sessionStorage.setItem("impasto-key", apiKey); else sessionStorage.removeItem("impasto-key");
  $("forget-key").hidden = !apiKey;
  $("key").value = "";
  $("key").placeholder = apiKey ? `key …${apiKey.slice(-4)} in use` : "API key (imp_…)";
  showError("");
  if (apiKey) loadJobs();
}

// `impasto up` prints a one-time link, /#token=…: the fragment never reaches a server or a
// Referer. The token is traded once for the stack's local key, which the tab then keeps.
async function loginFromLink() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (!token) return;
  history.replaceState(null, "", location.pathname + location.search);  // out of history and bookmarks
  try {
    const response = await fetch("/web/login", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(`${body.error.code}: ${body.error.message}`);
    setKey(body.api_key);
  } catch (error) { showError(error.message); }
}

async function loadJobs() {
  try {
    const { jobs } = await (await api("/v1/jobs?limit=30")).json();
    const list = $("jobs");
    list.replaceChildren(...jobs.map((job) => {
      const item = document.createElement("li");
      item.dataset.id = job.id;
      item.classList.toggle("current", current && current.id === job.id);
      const name = document.createElement("span");
      name.textContent = `${job.id.slice(0, 8)} · ${job.params.size}px`;
      const status = document.createElement("span");
      status.className = `status ${job.status}`;
      status.textContent = job.status;
      item.append(name, status);
      item.onclick = () => openJob(job.id);
      return item;
    }));
  } catch (error) { showError(error.message); }
}

async function submitJob(event) {
  event.preventDefault();
  const form = new FormData();
  form.append("content", $("content").files[0]);
  for (const style of $("styles").files) form.append("style", style);
  const params = { size: +$("size").value, iterations: +$("iterations").value, snapshot_every: +$("snapshot-every").value };
  if ($("style-weight").value) params.style_weight = +$("style-weight").value;
  form.append("params", JSON.stringify(params));
  $("submit-button").disabled = true;
  try {
    const job = await (await api("/v1/jobs", { method: "POST", body: form })).json();
    showError("");
    await loadJobs();
    openJob(job.id);
  } catch (error) { showError(error.message); } finally { $("submit-button").disabled = false; }
}

function closeJob() {
  if (!current) return;
  current.abort.abort();
  current.blobs.forEach((url) => URL.revokeObjectURL(url));
  current = null;
}

async function openJob(id) {
  closeJob();
  current = { id, abort: new AbortController(), losses: [], blobs: [], snapshots: new Set() };
  const mine = current;
  $("job").hidden = false;
  $("job-title").textContent = id;
  $("image").removeAttribute("src");
  $("image-caption").textContent = "";
  $("strip").replaceChildren();
  $("job-error").hidden = true;
  drawLoss([]);
  document.querySelectorAll("#jobs li").forEach((li) => li.classList.toggle("current", li.dataset.id === id));
  watch(mine).catch((error) => { if (mine === current) showError(error.message); });
}

// EventSource cannot send Authorization, so the stream is read with fetch() and parsed here;
// a dropped connection resumes with Last-Event-ID, as EventSource would.
async function watch(job) {
  let lastId = null;
  for (let attempt = 0; attempt < 20 && job === current; attempt++) {
    const headers = lastId ? { "Last-Event-ID": lastId } : {};
    try {
      const response = await api(`/v1/jobs/${job.id}/events`, { headers, signal: job.abort.signal });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const message = parseMessage(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (!message) continue;
          if (message.id) lastId = message.id;
          if (await onEvent(job, message.event, message.data)) return;
        }
      }
    } catch (error) {
      if (job.abort.signal.aborted) return;
      if (/^(404|not_found|unauthorized)/.test(error.message)) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function parseMessage(text) {
  let event = "message", data = "", id = null;
  for (const line of text.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "event") event = value;
    else if (name === "data") data += (data ? "\n" : "") + value;
    else if (name === "id") id = value;
  }
  return data ? { event, data: JSON.parse(data), id } : null;
}

// One event; true once the stream is complete.
async function onEvent(job, event, data) {
  if (job !== current) return true;
  if (event === "status") {
    setStatus(data.status);
    if (data.job) showJob(data.job);
  } else if (event === "progress") {
    showProgress(data);
  } else if (event === "snapshot") {
    await addSnapshot(data.iteration, data.url);
  } else if (event === "completed") {
    showJob(data);
    setStatus(data.status);
    loadJobs();
    return true;
  }
  return false;
}

function setStatus(status) {
  $("job-status").className = `status ${status}`;
  $("job-status").textContent = status;
  $("cancel").disabled = FINISHED.has(status);
  const item = document.querySelector(`#jobs li[data-id="${current.id}"] .status`);
  if (item) { item.className = `status ${status}`; item.textContent = status; }
}

async function showJob(job) {
  setStatus(job.status);
  showProgress(job.progress);
  for (const snap of job.outputs.intermediates) await addSnapshot(snap.iteration, snap.url);
  if (job.outputs.final) {
    $("image").src = await blobUrl(job.outputs.final);
    $("image-caption").textContent = "final image";
    $("download").disabled = false;
    $("download").onclick = () => download(job.outputs.final, `${job.id}.png`);
  } else {
    $("download").disabled = true;
  }
  if (job.error) {
    $("job-error").textContent = `${job.error.code}: ${job.error.message}`;
    $("job-error").hidden = false;
  }
}

function showProgress(progress) {
  const percent = progress.percent ?? (100 * progress.iteration / progress.iterations);
  $("bar").style.width = `${percent}%`;
  const loss = progress.loss && progress.loss.total;
  const eta = progress.eta_seconds == null ? "" : ` · ETA ${formatSeconds(progress.eta_seconds)}`;
  $("progress-text").textContent =
    `iteration ${progress.iteration} of ${progress.iterations} (${percent.toFixed(1)}%)${eta}` +
    (loss != null ? ` · loss ${loss.toPrecision(4)}` : "");
  if (loss != null && current && current.losses[current.losses.length - 1]?.[0] !== progress.iteration) {
    current.losses.push([progress.iteration, loss]);
    drawLoss(current.losses);
  }
}

function formatSeconds(seconds) {
  return seconds >= 90 ? `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s` : `${Math.round(seconds)} s`;
}

async function addSnapshot(iteration, url) {
  if (!current || current.snapshots.has(iteration)) return;
  current.snapshots.add(iteration);
  const src = await blobUrl(url);
  const figure = document.createElement("figure");
  const img = document.createElement("img");
  img.src = src;
  img.alt = `iteration ${iteration}`;
  img.onclick = () => { $("image").src = src; $("image-caption").textContent = `iteration ${iteration}`; };
  const caption = document.createElement("figcaption");
  caption.textContent = iteration;
  figure.append(img, caption);
  $("strip").append(figure);
  if ($("download").disabled) {  // no final image yet: the newest snapshot is the picture
    $("image").src = src;
    $("image-caption").textContent = `iteration ${iteration}`;
  }
}

function drawLoss(points) {
  const canvas = $("loss");
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  const pad = 28;
  ctx.clearRect(0, 0, width, height);
  ctx.strokeStyle = "#e2e4ea";
  ctx.strokeRect(pad, 8, width - pad - 8, height - pad - 8);
  if (points.length < 2) return;
  // Log scale: Gatys losses fall by orders of magnitude in the first iterations.
  const xs = points.map((p) => p[0]), ys = points.map((p) => Math.log10(Math.max(p[1], 1e-12)));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x) => pad + (x - x0) / ((x1 - x0) || 1) * (width - pad - 8);
  const sy = (y) => 8 + (1 - (y - y0) / ((y1 - y0) || 1)) * (height - pad - 8);
  ctx.strokeStyle = "#c2410c";
  ctx.lineWidth = 2;
  ctx.beginPath();
  points.forEach((_, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, sx(xs[i]), sy(ys[i])));
  ctx.stroke();
  ctx.fillStyle = "#6b7080";
  ctx.font = "11px system-ui";
  ctx.fillText(points[0][1].toPrecision(3), 2, 18);
  ctx.fillText(points[points.length - 1][1].toPrecision(3), 2, height - pad);
  ctx.fillText(`it ${x0}`, pad, height - 8);
  ctx.fillText(`it ${x1}`, width - 48, height - 8);
}

async function download(url, name) {
  try {
    const link = document.createElement("a");
    link.href = await blobUrl(url);
    link.download = name;
    link.click();
  } catch (error) { showError(error.message); }
}

async function cancelJob() {
  if (!current) return;
  try {
    const job = await (await api(`/v1/jobs/${current.id}/cancel`, { method: "POST" })).json();
    setStatus(job.cancel_requested && !FINISHED.has(job.status) ? "canceling" : job.status);
    $("cancel").disabled = true;
  } catch (error) { showError(error.message); }
}

function dropTarget(label, input) {
  label.addEventListener("dragover", (event) => { event.preventDefault(); label.classList.add("over"); });
  label.addEventListener("dragleave", () => label.classList.remove("over"));
  label.addEventListener("drop", (event) => {
    event.preventDefault();
    label.classList.remove("over");
    input.files = event.dataTransfer.files;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").onsubmit = (event) => { event.preventDefault(); setKey($("key").value); };
  $("forget-key").onclick = () => { closeJob(); setKey(""); $("jobs").replaceChildren(); $("job").hidden = true; };
  $("submit-form").onsubmit = submitJob;
  $("refresh").onclick = loadJobs;
  $("cancel").onclick = cancelJob;
  dropTarget($("content-drop"), $("content"));
  dropTarget($("style-drop"), $("styles"));
  setKey(apiKey);
  loginFromLink();
});
