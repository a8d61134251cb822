// "Copy as curl" and "Copy as Python": the same request as the form would send, as a command.
// The key is never written into them: both read IMPASTO_API_KEY from the environment.

/** A word for a POSIX shell, single-quoted when it needs quoting. */
function shellWord(text) {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/** A JSON value as a Python literal. */
function pythonLiteral(value) {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(pythonLiteral).join(", ")}]`;
  return `{${Object.entries(value).map(([key, item]) => `${JSON.stringify(key)}: ${pythonLiteral(item)}`).join(", ")}}`;
}

/**
 * The request as curl. `request` is {files: [[part, File]], texts: [[part, string]], params: object|null}.
 */
export function curlCommand(origin, request) {
  const lines = [`curl --fail-with-body -X POST ${shellWord(`${origin}/v1/jobs`)}`, `-H "Authorization: Bearer $IMPASTO_API_KEY"`];
  for (const [part, file] of request.files) lines.push(`-F ${shellWord(`${part}=@${file.name}`)}`);
  if (request.params) lines.push(`-F ${shellWord(`params=${JSON.stringify(request.params)}`)}`);
  for (const [part, text] of request.texts) lines.push(`-F ${shellWord(`${part}=${text}`)}`);
  return lines.join(" \\\n  ");
}

// Client.submit's keyword for a text part whose name differs from the part's.
const CLIENT_KEYWORDS = { webhook_events_filter: "webhook_events" };

/** The request with the Python client (`from impasto import Client`). */
export function pythonCode(origin, request) {
  const content = request.files.find(([part]) => part === "content");
  const styles = request.files.filter(([part]) => part === "style").map(([, file]) => file.name);
  const args = [pythonLiteral(content ? content[1].name : "content.jpg"), pythonLiteral(styles)];
  if (request.params) args.push(pythonLiteral(request.params));
  // Other file parts (masks, say) are keywords of submit named as the part.
  const others = new Map();
  for (const [part, file] of request.files) {
    if (part === "content" || part === "style") continue;
    others.set(part, [...(others.get(part) || []), file.name]);
  }
  for (const [part, names] of others) args.push(`${part}=${pythonLiteral(names.length === 1 ? names[0] : names)}`);
  for (const [part, text] of request.texts) {
    const keyword = CLIENT_KEYWORDS[part] || part;
    args.push(`${keyword}=${pythonLiteral(keyword === part ? text : text.split(","))}`);
  }
  return [
    "from impasto import Client",
    "",
    `client = Client(${pythonLiteral(origin)})  # the key from IMPASTO_API_KEY`,
    `job = client.submit(${args.join(", ")})`,
    'print(job["id"], job["status"])',
  ].join("\n");
}
