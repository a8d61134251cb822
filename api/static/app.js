// impasto's web page: the key, the router (a job's address is /#/jobs/<id>) and the parts wired
// together. No framework, no build step; each part is a module of its own.

import { ApiError, apiJson, currentKey, openApiSpec, redeemLoginToken, storeKey, whenUnauthorized } from "./api.js";
import { JobForm } from "./job_form.js";
import { JobView } from "./job_view.js";
import { JobsList } from "./jobs_list.js";

const $ = (id) => document.getElementById(id);
const JOB_ROUTE = /^#\/jobs\/([0-9a-fA-F-]{1,64})$/;
const NO_KEY_HELP = "Paste an API key to start. No key yet? On the server run `impasto keys create --name you` " +
  "(it prints the key once; see the README), or, under `impasto up`, open the login link it printed.";

const jobs = new JobsList($("jobs"), (error) => showError(error));
const view = new JobView((id, status) => jobs.setStatus(id, status));

function showError(error) {
  const message = error instanceof ApiError && error.status === 401 ? "" : error ? error.message || String(error) : "";
  $("error").textContent = message;
  $("error").hidden = !message;
}

function showNotice(message) {
  $("notice").textContent = message;
  $("notice").hidden = !message;
}

function showKeyState() {
  const key = currentKey();
  $("forget-key").hidden = !key;
  $("key").value = "";
  $("key").placeholder = key ? `key …${key.slice(-4)} in use` : "API key (imp_…)";
  if (!key) showNotice(NO_KEY_HELP);
}

/** Forget everything the last key showed: its jobs and the open job. The address stays: with the
 * right key it opens the job again, and another key's job is a 404, as the API answers it. */
function clearPage() {
  view.close();
  jobs.clear();
}

/** Check a key with the API before using it: a refused one clears the page and says why. */
async function useKey(key) {
  clearPage();
  storeKey(key);
  showError(null);
  showKeyState();
  if (!currentKey()) return;
  try {
    await apiJson("/v1/jobs?limit=1");
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) showError(error);
    return;
  }
  showNotice("");
  jobs.load();
  route();
}

// A 401 anywhere: the key is wrong or revoked. Nothing it showed stays on the page.
whenUnauthorized((error) => {
  clearPage();
  storeKey("");
  showKeyState();
  showNotice(`The API refused the key (${error.message}). Check it and paste it again. ${NO_KEY_HELP.replace("Paste an API key to start. ", "")}`);
});

function route() {
  const match = JOB_ROUTE.exec(location.hash);
  if (!match || !currentKey()) {
    view.close();
    jobs.markCurrent(null);
    return;
  }
  const id = match[1].toLowerCase();
  jobs.markCurrent(id);
  view.open(id);
  view.focus();
}

// `impasto up` prints a one-time link, /#token=…: the fragment never reaches a server or a
// Referer. The token is traded once for the stack's local key, which the tab then keeps.
async function loginFromLink() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (!token) return false;
  history.replaceState(null, "", location.pathname + location.search);  // out of history and bookmarks
  try {
    await useKey(await redeemLoginToken(token));
  } catch (error) { showError(error instanceof ApiError ? new Error(`${error.code}: ${error.message}`) : error); }
  return true;
}

async function buildForm() {
  try {
    const spec = await openApiSpec();
    new JobForm(spec, $("submit-form"), (job) => {
      jobs.load();
      if (location.hash === `#/jobs/${job.id}`) route(); else location.hash = `#/jobs/${job.id}`;
    });
  } catch (error) {
    $("form-fields").textContent = `The form could not be built: /openapi.json failed (${error.message}).`;
  }
}

window.addEventListener("hashchange", route);
$("key-form").addEventListener("submit", (event) => { event.preventDefault(); useKey($("key").value); });
$("forget-key").addEventListener("click", () => { clearPage(); storeKey(""); showKeyState(); });
$("refresh").addEventListener("click", () => jobs.load());
buildForm();
showKeyState();
loginFromLink().then((loggedIn) => { if (!loggedIn && currentKey()) useKey(currentKey()); });
