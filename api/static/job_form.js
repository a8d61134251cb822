// The "New job" form: built from the POST /v1/jobs request schema of /openapi.json, with
// thumbnails of the chosen images, one blend weight per style, errors beside their fields, and
// the same request as curl or Python.

import { ApiError, apiJson } from "./api.js";
import { element, makeField, resolve } from "./schema_fields.js";
import { curlCommand, pythonCode } from "./snippets.js";

// Shown first, in this order; every other part and parameter of the schema goes under "Advanced".
const COMMON = ["content", "style", "size", "iterations", "style_weight", "content_weight", "preserve_color", "snapshot_every"];
const PER_STYLE = "style_blend_weights";  // one weight per chosen style image, shown with the styles
const STYLE_PART = "style";

/** The multipart schema of POST /v1/jobs. */
function submissionSchema(spec) {
  const body = spec.paths["/v1/jobs"].post.requestBody.content["multipart/form-data"];
  return resolve(spec, body.schema);
}

// Pydantic's wording of the common bounds, said plainly.
const PLAIN = [
  [/^Input should be greater than or equal to (.+)$/, "must be at least $1"],
  [/^Input should be less than or equal to (.+)$/, "must be at most $1"],
  [/^Input should be greater than (.+)$/, "must be more than $1"],
  [/^Input should be less than (.+)$/, "must be less than $1"],
  [/^Input should be a valid integer.*$/, "must be a whole number"],
  [/^Input should be a valid number.*$/, "must be a number"],
];

function plainMessage(message) {
  const rule = PLAIN.find(([pattern]) => pattern.test(message));
  return rule ? message.replace(rule[0], rule[1]) : message;
}

/** The blend weights: a number input per chosen style image, all named style_blend_weights. */
function blendField(spec, schema) {
  const resolved = resolve(spec, schema);
  const list = element("div", { class: "blend-list" });
  const errorNode = element("p", { class: "field-error", id: "blend-error", hidden: true });
  const help = element("p", { class: "help", id: "blend-help" },
    `${resolved.description || ""} · relative weights, empty means 1 · shown for two or more styles`);
  const fieldset = element("fieldset", { "aria-describedby": "blend-help blend-error" }, element("legend", {}, "style blend weights"), list);
  const node = element("div", { class: "field field-blend", "data-field": PER_STYLE }, fieldset, help, errorNode);
  const field = { name: PER_STYLE, kind: "blend", schema: resolved, node, controls: [] };
  field.setStyles = (files) => {
    const inputs = files.length < 2 ? [] : files.map((file, index) => element("input", {
      type: "number", name: PER_STYLE, step: "any", min: "0", placeholder: "1", inputmode: "decimal",
      id: `blend-${index}`, "aria-label": `blend weight of style ${index + 1}, ${file.name}`,
    }));
    list.replaceChildren(...inputs.map((input, index) =>
      element("label", { class: "blend", for: input.id }, `${index + 1}. ${files[index].name}`, input)));
    node.hidden = inputs.length === 0;
    field.controls = inputs;
    field.control = inputs[0];
  };
  field.read = () => {
    const texts = field.controls.map((input) => input.value.trim());
    if (texts.every((text) => !text)) return undefined;
    const values = texts.map((text) => (text ? Number(text) : 1));
    if (values.some((value) => !Number.isFinite(value))) throw new Error("enter a number for each style");
    return values;
  };
  field.showError = (message) => {
    errorNode.textContent = message || "";
    errorNode.hidden = !message;
    node.classList.toggle("invalid", Boolean(message));
    field.controls.forEach((input) => (message ? input.setAttribute("aria-invalid", "true") : input.removeAttribute("aria-invalid")));
  };
  field.setStyles([]);
  return field;
}

/** Thumbnails of a file input's chosen images, remade on every change. */
function withThumbnails(field, onChange) {
  const strip = element("ul", { class: "thumbs", "aria-label": `chosen ${field.name} images` });
  let urls = [];
  field.node.append(strip);
  const refresh = () => {
    urls.forEach((url) => URL.revokeObjectURL(url));
    const files = [...field.control.files];
    urls = files.map((file) => URL.createObjectURL(file));
    strip.replaceChildren(...files.map((file, index) => element("li", {}, element("img", { src: urls[index], alt: file.name }))));
    onChange(files);
  };
  field.control.addEventListener("change", refresh);
  // Dropping files on the field is choosing them.
  field.node.classList.add("drop");
  field.node.addEventListener("dragover", (event) => { event.preventDefault(); field.node.classList.add("over"); });
  field.node.addEventListener("dragleave", () => field.node.classList.remove("over"));
  field.node.addEventListener("drop", (event) => {
    event.preventDefault();
    field.node.classList.remove("over");
    field.control.files = event.dataTransfer.files;
    refresh();
  });
}

export class JobForm {
  /** Build the fields of `spec` into `form` (whose #form-fields it fills); onCreated(job) after a 202. */
  constructor(spec, form, onCreated) {
    this.form = form;
    this.onCreated = onCreated;
    this.parts = [];  // [{name, kind: "file"|"files"|"params"|"text", field?, fields?}]
    this.fields = new Map();  // parameter or part name -> field
    const submission = submissionSchema(spec);
    const required = new Set(submission.required || []);
    for (const [name, raw] of Object.entries(submission.properties || {})) {
      const schema = resolve(spec, raw);
      if (schema.type === "object" || schema.properties) {
        const params = Object.entries(schema.properties || {}).map(([param, paramSchema]) =>
          param === PER_STYLE ? blendField(spec, paramSchema) : makeField(spec, param, paramSchema));
        params.forEach((field) => this.fields.set(field.name, field));
        this.parts.push({ name, kind: "params", fields: params });
      } else {
        const field = makeField(spec, name, raw, required.has(name));
        this.fields.set(name, field);
        this.parts.push({ name, kind: ["file", "files"].includes(field.kind) ? field.kind : "text", field });
      }
    }
    for (const field of this.fields.values()) {
      if (field.kind === "file" || field.kind === "files") {
        withThumbnails(field, (files) => { if (field.name === STYLE_PART) this.fields.get(PER_STYLE)?.setStyles(files); });
      }
    }
    this.layOut(form.querySelector("#form-fields"));
    form.addEventListener("submit", (event) => { event.preventDefault(); this.submit(); });
    form.querySelector("#copy-curl").addEventListener("click", () => this.copy("curl"));
    form.querySelector("#copy-python").addEventListener("click", () => this.copy("python"));
  }

  layOut(container) {
    const common = [], advanced = [];
    for (const field of this.fields.values()) (COMMON.includes(field.name) ? common : advanced).push(field);
    common.sort((a, b) => COMMON.indexOf(a.name) - COMMON.indexOf(b.name));
    const blend = this.fields.get(PER_STYLE);
    if (blend) {  // right after the style images it weighs
      advanced.splice(advanced.indexOf(blend), 1);
      common.splice(common.findIndex((field) => field.name === STYLE_PART) + 1, 0, blend);
    }
    const details = element("details", { class: "advanced" },
      element("summary", {}, `Advanced (${advanced.length} more)`), ...advanced.map((field) => field.node));
    container.replaceChildren(...common.map((field) => field.node), details);
  }

  /** The request the form describes: {files, texts, params}; marks unreadable fields and throws. Before a
   * submit the marks start afresh; a copy keeps the API's marks of the last submit. */
  request(fresh = true) {
    if (fresh) this.clearErrors();
    const request = { files: [], texts: [], params: null };
    const invalid = [];
    for (const part of this.parts) {
      if (part.kind === "params") {
        const values = {};
        for (const field of part.fields) {
          try {
            const value = field.read();
            if (value !== undefined) values[field.name] = value;
          } catch (error) { field.showError(error.message); invalid.push(field); }
        }
        if (Object.keys(values).length) request.params = values;
        continue;
      }
      const value = part.field.read();
      if (value === undefined) {
        if (part.field.required) { part.field.showError("choose a file"); invalid.push(part.field); }
      } else if (part.kind === "text") {
        request.texts.push([part.name, Array.isArray(value) ? value.join(",") : String(value)]);
      } else {
        for (const file of [].concat(value)) request.files.push([part.name, file]);
      }
    }
    if (invalid.length) {
      this.showGeneral("Please correct the marked fields.");
      invalid[0].control?.focus();
      throw new Error("invalid form");
    }
    return request;
  }

  async submit() {
    let request;
    try { request = this.request(); } catch (_) { return; }
    const body = new FormData();
    for (const [part, file] of request.files) body.append(part, file, file.name);
    if (request.params) body.append("params", JSON.stringify(request.params));
    for (const [part, text] of request.texts) body.append(part, text);
    const button = this.form.querySelector("#submit-button");
    button.disabled = true;
    try {
      const job = await apiJson("/v1/jobs", { method: "POST", body });
      this.onCreated(job);
    } catch (error) {
      this.showApiError(error);
    } finally { button.disabled = false; }
  }

  clearErrors() {
    for (const field of this.fields.values()) field.showError("");
    this.showGeneral("");
  }

  showGeneral(message) {
    const node = this.form.querySelector("#form-error");
    node.textContent = message;
    node.hidden = !message;
  }

  /** An API error beside the fields it names ("size", "style_layer_weights.2"); the rest below the form. */
  showApiError(error) {
    this.clearErrors();
    const details = error instanceof ApiError ? error.details : [];
    const unplaced = [];
    let first = null;
    for (const detail of details) {
      const field = this.fields.get(String(detail.field).split(".")[0]) || this.namedIn(detail);
      if (!field) { unplaced.push(detail.field && detail.field !== "params" ? `${detail.field}: ${detail.message}` : detail.message); continue; }
      field.showError(plainMessage(detail.message));
      first = first || field;
    }
    if (first && !unplaced.length) this.showGeneral("Please correct the marked fields.");
    else if (unplaced.length) this.showGeneral(unplaced.join("; "));
    else this.showGeneral(error.message);
    (first?.control || this.form.querySelector("#submit-button")).focus();
  }

  /** A whole-object error ("params") that starts with a field's name ("style_layer_weights needs ...") is that field's. */
  namedIn(detail) {
    const first = /^[a-z_]+/.exec(detail.message || "");
    return first && ["params", "body", ""].includes(String(detail.field || "")) ? this.fields.get(first[0]) : undefined;
  }

  copy(kind) {
    let request;
    try { request = this.request(false); } catch (_) { return; }
    const text = kind === "curl" ? curlCommand(location.origin, request) : pythonCode(location.origin, request);
    const output = this.form.querySelector("#snippet");
    output.value = text;
    output.hidden = false;
    output.setAttribute("aria-label", kind === "curl" ? "the job as a curl command" : "the job as Python code");
    const done = this.form.querySelector("#copy-status");
    const say = (message) => { done.textContent = message; };
    if (navigator.clipboard) navigator.clipboard.writeText(text).then(() => say(`Copied as ${kind}.`), () => say("Select the text below to copy it."));
    else say("Select the text below to copy it.");
  }
}
