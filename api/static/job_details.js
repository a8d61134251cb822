// What a job was asked and how it went: its input images, every parameter, its timing.

import { blobUrl, previewUrl } from "./api.js";
import { element } from "./schema_fields.js";

/** "12 s", "3 min 5 s". */
export function formatSeconds(seconds) {
  return seconds >= 90 ? `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s` : `${Math.round(seconds)} s`;
}

/** How long the job ran: the worker's run seconds, else finished minus started. */
export function runSeconds(job) {
  if (job.metrics.run_seconds != null) return job.metrics.run_seconds;
  if (job.started_at && job.finished_at) return (Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000;
  return null;
}

function when(text) {
  return text ? new Date(text).toLocaleString() : "—";
}

function definitionList(rows) {
  return element("dl", {}, ...rows.flatMap(([term, value]) => [element("dt", {}, term), element("dd", {}, value)]));
}

function timingRows(job) {
  const metrics = job.metrics;
  const run = runSeconds(job);
  return [
    ["created", when(job.created_at)],
    ["started", when(job.started_at)],
    ["finished", when(job.finished_at)],
    ["queued for", metrics.queue_seconds == null ? "—" : `${metrics.queue_seconds.toFixed(2)} s`],
    ["ran for", run == null ? "—" : `${run.toFixed(1)} s`],
    ["iterations per second", metrics.iterations_per_second == null ? "—" : metrics.iterations_per_second.toFixed(2)],
    ["device", metrics.device || "—"],
    ["attempts", String(job.attempts)],
    ["worker", job.worker || "—"],
  ];
}

function paramValue(value) {
  if (value === null || value === undefined) return "default";
  return Array.isArray(value) ? value.join(", ") : typeof value === "object" ? JSON.stringify(value) : String(value);
}

/** Thumbnail figures of the job's input images (every part the API lists: content, styles, any other). */
async function inputFigures(job, owned) {
  const entries = [];  // [caption, url]
  for (const [part, value] of Object.entries(job.inputs || {})) {
    const urls = Array.isArray(value) ? value : value ? [value] : [];
    for (const [index, url] of urls.entries()) {
      try { entries.push([urls.length > 1 ? `${part} ${index + 1}` : part, await blobUrl(previewUrl(url), owned)]); }
      catch (_) { /* expired or gone: left out */ }
    }
  }
  return entries.map(([caption, url]) => element("figure", {},
    element("img", { src: url, alt: `input image, ${caption}` }), element("figcaption", {}, caption)));
}

/** Fill `root` with the job's inputs, parameters and timing. */
export async function showDetails(root, job, owned) {
  const figures = await inputFigures(job, owned);
  const inputs = figures.length ? element("div", { class: "inputs" }, ...figures)
    : element("p", { class: "muted" }, "The input images are not available here.");
  const params = Object.entries(job.params).map(([name, value]) => [name, paramValue(value)]);
  if (job.webhook) params.push(["webhook", job.webhook]);
  root.replaceChildren(
    element("h3", {}, "Inputs"), inputs,
    element("h3", {}, "Parameters"), definitionList(params),
    element("h3", {}, "Timing"), definitionList(timingRows(job)),
  );
}

/** Only the timing part changes while a job runs. */
export function refreshTiming(root, job) {
  const lists = root.querySelectorAll("dl");
  if (lists.length === 2) lists[1].replaceWith(definitionList(timingRows(job)));
}
