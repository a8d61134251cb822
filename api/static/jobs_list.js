// "Your jobs": a link per job (to /#/jobs/<id>), kept current while any job is unfinished.

import { apiJson } from "./api.js";

const FINISHED = new Set(["succeeded", "failed", "canceled"]);
const POLL_MS = 3000;  // while a job is queued or running: statuses change within seconds
const LIMIT = 30;

export class JobsList {
  constructor(list, onError) {
    this.list = list;
    this.onError = onError;
    this.timer = null;
    this.currentId = null;
  }

  clear() {
    clearTimeout(this.timer);
    this.timer = null;
    this.list.replaceChildren();
  }

  async load() {
    clearTimeout(this.timer);
    this.timer = null;
    let jobs;
    try {
      ({ jobs } = await apiJson(`/v1/jobs?limit=${LIMIT}`));
    } catch (error) {
      this.onError(error);
      return;
    }
    this.list.replaceChildren(...jobs.map((job) => this.row(job)));
    if (!jobs.length) {
      const empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = "No jobs yet.";
      this.list.append(empty);
    }
    this.markCurrent(this.currentId);
    if (jobs.some((job) => !FINISHED.has(job.status))) {
      this.timer = setTimeout(() => this.load(), POLL_MS);
    }
  }

  row(job) {
    const item = document.createElement("li");
    item.dataset.id = job.id;
    const link = document.createElement("a");
    link.href = `#/jobs/${job.id}`;
    const name = document.createElement("span");
    name.className = "job-name";
    name.textContent = `${job.id.slice(0, 8)} · ${job.params.size} px · ${new Date(job.created_at).toLocaleTimeString()}`;
    const status = document.createElement("span");
    status.className = `status ${job.status}`;
    status.textContent = job.status;
    link.append(name, status);
    link.setAttribute("aria-label", `job ${job.id.slice(0, 8)}, ${job.params.size} px, ${job.status}`);
    item.append(link);
    return item;
  }

  markCurrent(id) {
    this.currentId = id;
    for (const item of this.list.children) {
      const link = item.querySelector("a");
      if (!link) continue;
      if (item.dataset.id === id) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
    }
  }

  /** The job view saw a new status: show it in the row at once, and keep polling while it is unfinished. */
  setStatus(id, status) {
    const item = [...this.list.children].find((node) => node.dataset.id === id);
    if (!item) { this.load(); return; }
    const badge = item.querySelector(".status");
    badge.className = `status ${status}`;
    badge.textContent = status;
    const link = item.querySelector("a");
    link.setAttribute("aria-label", link.getAttribute("aria-label").replace(/[^,]+$/, ` ${status}`));
    if (!FINISHED.has(status) && !this.timer) this.timer = setTimeout(() => this.load(), POLL_MS);
  }
}
