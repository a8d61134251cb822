// The v1 API as the page uses it: the key, errors with their per-field details, images as blob:
// URLs, and event streams read with fetch (EventSource cannot send Authorization).

const KEY_STORAGE = "impasto-key";
// sessionStorage: the key lives as long as the tab, not on disk for every later visitor.
let apiKey = sessionStorage.getItem(KEY_STORAGE) || "";
let onUnauthorized = () => {};

/** An error answer of the API: HTTP status, code, message and the invalid fields, if any. */
export class ApiError extends Error {
  constructor(status, code, message, details = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || [];
  }
}

export function currentKey() { return apiKey; }

export function storeKey(key) {
  apiKey = key.trim();
  if (apiKey) sessionStorage.setItem(KEY_STORAGE, apiKey); else sessionStorage.removeItem(KEY_STORAGE);
}

/** What to do when the API answers 401 (a wrong or revoked key). */
export function whenUnauthorized(handler) { onUnauthorized = handler; }

async function errorOf(response) {
  try {
    const { error } = await response.json();
    if (error) return new ApiError(response.status, error.code, error.message, error.details);
  } catch (_) { /* not JSON: the status line says it */ }
  return new ApiError(response.status, "http_error", `${response.status} ${response.statusText}`);
}

/** fetch with the key; an error answer is thrown as an ApiError. */
export async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (apiKey) headers.set("Authorization", `Bearer ${apiKey}`);
  const response = await fetch(path, { ...options, headers });
  if (response.ok) return response;
  const error = await errorOf(response);
  if (response.status === 401) onUnauthorized(error);
  throw error;
}

export async function apiJson(path, options = {}) {
  return (await api(path, options)).json();
}

/** The job URLs name the API's public address; the page asks its own origin for the same path. */
export function localPath(url) {
  const { pathname, search } = new URL(url, location.href);
  return pathname + search;
}

/** The small JPEG form of an image URL of the API (?preview=true): for every <img> the page shows. The full
 * image (a print-size PNG is tens of MB) is fetched only to be downloaded. */
export function previewUrl(url) {
  const parsed = new URL(url, location.href);
  parsed.searchParams.set("preview", "true");
  return parsed.href;
}

/** An authenticated image as a blob: URL (an <img> cannot send Authorization); `owned` collects it for revoking. */
export async function blobUrl(url, owned) {
  const blob = await (await api(localPath(url))).blob();
  const objectUrl = URL.createObjectURL(blob);
  if (owned) owned.push(objectUrl);
  return objectUrl;
}

/** The API's OpenAPI document (public: no key needed). */
export async function openApiSpec() {
  const response = await fetch("/openapi.json");
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

/** Trade the one-time token of `impasto up`'s login link for the stack's local key. */
export async function redeemLoginToken(token) {
  const response = await fetch("/web/login", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token }),
  });
  if (!response.ok) throw await errorOf(response);
  return (await response.json()).api_key;
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

/**
 * Read a job's event stream, calling onEvent(name, data) until it returns true; a dropped
 * connection resumes with Last-Event-ID, as EventSource would. `path` may ask for the retained
 * history first (?from=start), which fills the loss chart of a job opened late.
 */
export async function readEvents(path, signal, onEvent) {
  let lastId = null;
  for (let attempt = 0; attempt < 20 && !signal.aborted; attempt++) {
    const headers = lastId ? { "Last-Event-ID": lastId } : {};
    try {
      const response = await api(path, { headers, signal });
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
          if (await onEvent(message.event, message.data)) return;
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && [400, 401, 404].includes(error.status)) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}
