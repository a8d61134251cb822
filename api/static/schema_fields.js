// Form controls from JSON Schema: the parts of POST /v1/jobs and the properties of its params
// object, as /openapi.json publishes them. No field is written by hand: a new parameter or
// file part of the API appears on the form by itself, as the kind of control its schema asks for.

let fieldCount = 0;

/** Follow $ref and drop a `null` branch of anyOf; `nullable` says whether null was one. */
export function resolve(spec, schema) {
  let nullable = false;
  for (let guard = 0; guard < 10; guard++) {
    if (schema.$ref) {
      const { $ref, ...rest } = schema;
      const name = $ref.split("/").pop();
      schema = { ...spec.components.schemas[name], ...rest };
    } else if (schema.anyOf) {
      const branches = schema.anyOf.filter((branch) => branch.type !== "null");
      nullable = nullable || branches.length < schema.anyOf.length;
      const { anyOf, ...rest } = schema;
      schema = branches.length === 1 ? { ...branches[0], ...rest } : { ...rest, anyOf: branches };
      if (branches.length !== 1) break;
    } else break;
  }
  return { ...schema, nullable };
}

const isBinary = (schema) => schema.type === "string" && ["binary", "byte"].includes(schema.format);

/** The kind of control a (resolved) schema needs. */
export function kindOf(spec, schema) {
  if (isBinary(schema)) return "file";
  if (schema.type === "array" && schema.items && isBinary(resolve(spec, schema.items))) return "files";
  if (schema.type === "boolean") return "boolean";
  if (schema.enum) return "choice";
  if (schema.type === "integer" || schema.type === "number") return "number";
  if (schema.type === "array" && schema.items) {
    const items = resolve(spec, schema.items);
    if (items.enum) return "choices";
    if (items.type === "integer" || items.type === "number") return "numbers";
    if (items.type === "string") return "strings";
  }
  if (schema.type === "string") return "text";
  return "json";  // objects, arrays of objects, unions: typed as JSON
}

/** "16 to 2048", "> 0.05, at most 4": the bounds a schema states, in words. */
export function boundsText(schema) {
  const low = schema.minimum != null ? `${schema.minimum}` : schema.exclusiveMinimum != null ? `> ${schema.exclusiveMinimum}` : null;
  const high = schema.maximum != null ? `${schema.maximum}` : schema.exclusiveMaximum != null ? `< ${schema.exclusiveMaximum}` : null;
  if (low && high) return low.startsWith(">") || high.startsWith("<") ? `${low}, ${high.startsWith("<") ? high : `at most ${high}`}` : `${low} to ${high}`;
  if (low) return low.startsWith(">") ? low : `at least ${low}`;
  if (high) return high.startsWith("<") ? high : `at most ${high}`;
  return "";
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value == null) continue;
    node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children);
  return node;
}

export { element };

const listText = (values) => (values || []).join(", ");
const splitList = (text) => text.split(/[\s,]+/).filter(Boolean);

/**
 * One field: {name, kind, schema, node (the wrapper), read() -> value or undefined (leave it out),
 * control (what gets focus), showError(message)}. `read` leaves out a value equal to the default.
 */
export function makeField(spec, name, rawSchema, required = false) {
  const schema = resolve(spec, rawSchema);
  const kind = kindOf(spec, schema);
  const id = `field-${++fieldCount}-${name}`;
  const help = [schema.description, boundsText(schema)];
  if (schema.default != null) help.push(`default ${Array.isArray(schema.default) ? listText(schema.default) : schema.default}`);
  if (["numbers", "strings"].includes(kind)) help.push("separate values with commas");
  if (kind === "json") help.push("JSON");
  const helpText = help.filter(Boolean).join(" · ");
  const wrapper = element("div", { class: `field field-${kind}`, "data-field": name });
  const helpNode = element("p", { class: "help", id: `${id}-help` }, helpText);
  const errorNode = element("p", { class: "field-error", id: `${id}-error`, hidden: true });
  const described = `${id}-help ${id}-error`;
  const field = { name, kind, schema, node: wrapper, required };
  const label = name.replace(/_/g, " ");

  if (kind === "choices") {
    const items = resolve(spec, schema.items);
    const chosen = new Set(schema.default || []);
    const boxes = items.enum.map((value) => element("input", {
      type: "checkbox", name, value, id: `${id}-${value}`, checked: chosen.has(value),
    }));
    const fieldset = element("fieldset", { "aria-describedby": described },
      element("legend", {}, label),
      element("div", { class: "choices" }, ...boxes.map((box) => element("label", { for: box.id }, box, ` ${box.value}`))));
    wrapper.append(fieldset, helpNode, errorNode);
    field.control = boxes[0];
    field.controls = boxes;
    field.read = () => {
      const values = boxes.filter((box) => box.checked).map((box) => box.value);
      return JSON.stringify(values) === JSON.stringify(schema.default) ? undefined : values;
    };
  } else {
    let control;
    if (kind === "file" || kind === "files") {
      const accept = schema.contentMediaType || "image/jpeg,image/png,image/webp";
      control = element("input", { type: "file", name, accept, multiple: kind === "files" });
    } else if (kind === "boolean") {
      control = element("input", { type: "checkbox", name, checked: schema.default === true });
    } else if (kind === "choice") {
      control = element("select", { name }, ...schema.enum.map((value) =>
        element("option", { value, selected: value === schema.default }, String(value))));
    } else if (kind === "number") {
      control = element("input", {
        type: "number", name, inputmode: schema.type === "integer" ? "numeric" : "decimal",
        step: schema.type === "integer" ? "1" : "any", min: schema.minimum, max: schema.maximum,
        value: schema.default, placeholder: schema.default == null ? "not set" : null,
      });
    } else if (kind === "json") {
      control = element("textarea", { name, rows: "2", spellcheck: "false" }, schema.default != null ? JSON.stringify(schema.default) : "");
    } else {
      const isUrl = schema.format === "uri";
      control = element("input", {
        type: isUrl ? "url" : "text", name, spellcheck: "false",
        value: Array.isArray(schema.default) ? listText(schema.default) : schema.default,
        placeholder: schema.default == null ? "not set" : null,
      });
    }
    control.id = id;
    control.setAttribute("aria-describedby", described);
    if (required) control.setAttribute("aria-required", "true");
    const labelNode = element("label", { for: id }, label);
    if (kind === "boolean") wrapper.append(element("div", { class: "check" }, control, labelNode), helpNode, errorNode);
    else wrapper.append(labelNode, control, helpNode, errorNode);
    field.control = control;
    field.controls = [control];
    field.read = () => readControl(kind, schema, control);
  }
  field.showError = (message) => {
    errorNode.textContent = message || "";
    errorNode.hidden = !message;
    wrapper.classList.toggle("invalid", Boolean(message));
    for (const control of field.controls) {
      if (message) control.setAttribute("aria-invalid", "true"); else control.removeAttribute("aria-invalid");
    }
  };
  return field;
}

/** A control's value as the API takes it; undefined when empty or the default. Throws on unreadable input. */
function readControl(kind, schema, control) {
  const same = (value) => JSON.stringify(value) === JSON.stringify(schema.default);
  if (kind === "file") return control.files[0];
  if (kind === "files") return control.files.length ? [...control.files] : undefined;
  if (kind === "boolean") return same(control.checked) || (!control.checked && schema.default == null) ? undefined : control.checked;
  const text = control.value.trim();
  if (!text) return undefined;
  let value;
  if (kind === "number") {
    value = Number(text);
    if (!Number.isFinite(value)) throw new Error("enter a number");
  } else if (kind === "numbers") {
    value = splitList(text).map(Number);
    if (value.some((number) => !Number.isFinite(number))) throw new Error("enter numbers separated by commas");
  } else if (kind === "strings") {
    value = splitList(text);
  } else if (kind === "json") {
    try { value = JSON.parse(text); } catch (_) { throw new Error("enter valid JSON"); }
  } else {
    value = kind === "choice" && schema.type !== "string" ? JSON.parse(text) : text;
  }
  return same(value) ? undefined : value;
}
