// The job view: status (announced), progress bar, the image, the loss chart, the snapshots, the
// job's details, cancel and download. Fed by the job JSON, then by the job's event stream.

import { ApiError, apiJson, blobUrl, previewUrl, readEvents } from "./api.js";
import { formatSeconds, refreshTiming, runSeconds, showDetails } from "./job_details.js";
import { LossChart } from "./loss_chart.js";

const $ = (id) => document.getElementById(id);
const FINISHED = new Set(["succeeded", "failed", "canceled"]);
const RANK = { queued: 0, running: 1, canceling: 1, succeeded: 2, failed: 2, canceled: 2 };

export class JobView {
  constructor(onStatus) {
    this.onStatus = onStatus;  // (job id, status): the job list follows
    this.chart = new LossChart($("loss"), $("loss-caption"));
    this.current = null;  // {id, abort, owned: blob URLs, snapshots: Map iteration -> blob URL, status, iteration, job}
    $("cancel").addEventListener("click", () => this.cancel());
    $("download").addEventListener("click", () => this.download());
  }

  /** Show job `id`: its JSON at once, then its events (from the first one retained: the whole loss curve). */
  async open(id) {
    if (this.current && this.current.id === id) return;
    this.close();
    const mine = { id, abort: new AbortController(), owned: [], snapshots: new Map(), status: null, iteration: -1, job: null };
    this.current = mine;
    $("job").hidden = false;
    $("job-title").textContent = `Job ${id}`;
    $("job-status").textContent = "loading";
    $("job-status").className = "status";
    this.showError(null);
    this.showImage(null, "");
    $("strip").replaceChildren();
    $("job-details").replaceChildren();
    $("cancel").disabled = true;
    this.setDownload(null);
    this.setBar(0, "");
    this.chart.reset();
    try {
      const job = await apiJson(`/v1/jobs/${encodeURIComponent(id)}`);
      if (mine !== this.current) return;
      await this.render(job, true);
      await readEvents(`/v1/jobs/${encodeURIComponent(id)}/events?from=start`, mine.abort.signal, (event, data) => this.onEvent(mine, event, data));
    } catch (error) {
      if (mine !== this.current || mine.abort.signal.aborted) return;
      if (error instanceof ApiError && error.status === 404) {
        $("job-status").textContent = "not found";
        this.showError("No job with this id for your key: it may belong to another key, or be deleted.");
      } else if (!(error instanceof ApiError && error.status === 401)) {
        this.showError(error.message);
      }
    }
  }

  close() {
    if (!this.current) return;
    this.current.abort.abort();
    this.current.owned.forEach((url) => URL.revokeObjectURL(url));
    this.current = null;
    $("job").hidden = true;
  }

  /** Move the reader to the job view: focused, and scrolled into sight unless its top is in the upper half
   * of the screen already (on a phone it sits under the form; on a desktop beside it). */
  focus() {
    const top = $("job").getBoundingClientRect().top;
    if (top < 0 || top > window.innerHeight / 2) $("job").scrollIntoView({ block: "start" });
    $("job").focus({ preventScroll: true });
  }

  async onEvent(mine, event, data) {
    if (mine !== this.current) return true;
    if (event === "status") {
      if (data.job) await this.render(data.job);
      // A replayed history repeats old statuses: only a step forward (or a hand-back) is news.
      else if (RANK[data.status] >= RANK[mine.status] || data.reason) this.setStatus(data.status, data.error);
    } else if (event === "progress") {
      this.showProgress(data);
    } else if (event === "snapshot") {
      await this.addSnapshot(data.iteration, data.url);
    } else if (event === "completed") {
      await this.render(data);
      return true;
    } else if (event === "error" && data.error) {
      this.showError(data.error.message);
      return true;
    }
    return false;
  }

  async render(job, first = false) {
    const mine = this.current;
    mine.job = job;
    const status = job.cancel_requested && !FINISHED.has(job.status) ? "canceling" : job.status;
    this.setStatus(status, job.error);
    this.showProgress(job.progress, job);
    if (first) await showDetails($("job-details"), job, mine.owned);
    else refreshTiming($("job-details"), job);
    for (const snap of job.outputs.intermediates) await this.addSnapshot(snap.iteration, snap.url);
    if (mine !== this.current) return;
    if (job.outputs.final) {
      const url = await blobUrl(previewUrl(job.outputs.final), mine.owned);
      this.showImage(url, "final image");
      this.setDownload({ url: job.outputs.final, name: `${job.id}.png`, label: "Download image" });
    } else if (job.expired) {
      this.showImage(null, "The images of this job were deleted after the retention period.");
    }
  }

  setStatus(status, error) {
    const mine = this.current;
    const changed = mine.status !== status;
    mine.status = status;
    $("job-status").className = `status ${status}`;
    $("job-status").textContent = status;
    $("cancel").disabled = FINISHED.has(status) || status === "canceling";
    if (error) this.showError(`${error.code}: ${error.message}`);
    if (changed) {
      // The live region reads changes aloud; the badge itself is not live, so nothing is said twice.
      $("announce").textContent = `Job ${mine.id.slice(0, 8)}: ${status}.`;
      this.onStatus(mine.id, status);
    }
  }

  showError(message) {
    $("job-error").textContent = message || "";
    $("job-error").hidden = !message;
  }

  setBar(percent, text) {
    $("progress").setAttribute("aria-valuenow", String(Math.round(percent)));
    $("progress").setAttribute("aria-valuetext", text || `${Math.round(percent)}%`);
    $("bar").style.width = `${percent}%`;
    $("progress-text").textContent = text;
  }

  showProgress(progress, job = this.current.job) {
    const mine = this.current;
    const loss = progress.loss && progress.loss.total;
    this.chart.add(progress.iteration, loss);  // a replayed, older value belongs on the curve too
    if (progress.iteration < mine.iteration) return;  // but not on the bar
    mine.iteration = progress.iteration;
    const percent = progress.percent ?? (100 * progress.iteration / progress.iterations);
    const lossText = loss != null ? ` · loss ${loss.toPrecision(4)}` : "";
    const run = job && FINISHED.has(job.status) ? runSeconds(job) : null;
    let text;
    if (mine.status === "queued" && progress.iteration === 0) text = "queued: waiting for a worker";
    else if (job && job.status === "succeeded") text = `done: ${progress.iterations} iterations${run != null ? ` · took ${formatSeconds(run)}` : ""}${lossText}`;
    else if (job && FINISHED.has(job.status)) text = `${job.status} at iteration ${progress.iteration} of ${progress.iterations}${run != null ? ` after ${formatSeconds(run)}` : ""}${lossText}`;
    else {
      const eta = progress.eta_seconds == null ? "" : ` · ETA ${formatSeconds(progress.eta_seconds)}`;
      text = `iteration ${progress.iteration} of ${progress.iterations} (${percent.toFixed(1)}%)${eta}${lossText}`;
    }
    this.setBar(job && job.status === "succeeded" ? 100 : percent, text);
  }

  showImage(url, caption) {
    $("image").hidden = !url;
    if (url) $("image").src = url; else $("image").removeAttribute("src");
    $("image").alt = url ? `the job's ${caption}` : "";
    $("image-placeholder").hidden = Boolean(url);
    if (!url) $("image-placeholder").textContent = caption || "No image yet: the first snapshot shows here.";
    $("image-caption").textContent = url ? caption : "";
  }

  async addSnapshot(iteration, url) {
    const mine = this.current;
    if (!mine || mine.snapshots.has(iteration)) return;
    mine.snapshots.set(iteration, null);
    let src;
    try { src = await blobUrl(previewUrl(url), mine.owned); } catch (_) { mine.snapshots.delete(iteration); return; }
    if (mine !== this.current) return;
    mine.snapshots.set(iteration, src);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "snapshot";
    button.dataset.iteration = iteration;
    button.setAttribute("aria-label", `show the snapshot at iteration ${iteration}`);
    const img = document.createElement("img");
    img.src = src;
    img.alt = `snapshot at iteration ${iteration}`;
    const caption = document.createElement("span");
    caption.textContent = iteration;
    button.append(img, caption);
    button.addEventListener("click", () => this.showImage(src, `iteration ${iteration}`));
    const later = [...$("strip").children].find((node) => +node.dataset.iteration > iteration);
    $("strip").insertBefore(button, later || null);
    if (!mine.job || !mine.job.outputs.final) {  // no final image yet: the newest snapshot is the picture
      const newest = Math.max(...[...mine.snapshots.entries()].filter(([, value]) => value).map(([key]) => key));
      if (newest === iteration) {
        this.showImage(src, `iteration ${iteration}`);
        this.setDownload({ url, name: `${mine.id}-${iteration}.png`, label: `Download snapshot ${iteration}` });
      }
    }
  }

  setDownload(target) {
    this.downloadTarget = target;
    $("download").disabled = !target;
    $("download").textContent = target ? target.label : "Download";
  }

  async download() {
    const target = this.downloadTarget;
    if (!target) return;
    try {
      const link = document.createElement("a");
      link.href = await blobUrl(target.url, this.current.owned);  // the full image: what a download is for
      link.download = target.name;
      link.click();
    } catch (error) { this.showError(error.message); }
  }

  async cancel() {
    const mine = this.current;
    if (!mine) return;
    try {
      const job = await apiJson(`/v1/jobs/${mine.id}/cancel`, { method: "POST" });
      if (mine === this.current) this.setStatus(job.cancel_requested && !FINISHED.has(job.status) ? "canceling" : job.status);
    } catch (error) { this.showError(error.message); }
  }
}
