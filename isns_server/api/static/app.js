// The fabric page: reads the management API with the tab's token, follows
// /api/v1/events, and changes discovery domains only after a zoning preview.
"use strict";

const TOKEN_KEY = "isns-api-token"; // sessionStorage: this tab only
const PAGE = 1000; // nodes listed per kind; more exist at a large site
const MATRIX_ROWS = 300; // nodes in the membership matrix
const MATRIX_COLUMNS = 60; // discovery domains in the matrix
const REFRESH_DELAY = 300; // ms: changes arriving together cause one reload
const SESSIONS_EVERY = 10000; // ms: sessions are the portal's, not registry changes
const RECONNECT_DELAY = 5000; // ms before the event stream is opened again
const NEW_DD = "new";

const $ = (id) => document.getElementById(id);
const state = { dds: [], pending: null, stream: null, timers: [], refreshTimer: null };

class ApiError extends Error {
  constructor(status, body) {
    const field = body && body.field ? ` (${body.field})` : "";
    super(`${(body && body.error) || `the server answered ${status}`}${field}`);
    this.status = status;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${token()}`, ...(options.headers || {}) };
  let body = options.body;
  if (body !== undefined && typeof body !== "string") {
    body = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, { ...options, headers, body });
  if (response.status === 401) {
    logout("The server refused the token (401): it may have been replaced. Log in again.");
    throw new ApiError(401, { error: "not logged in" });
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return { data, etag: response.headers.get("ETag") };
}

// --- small DOM helpers (text only: nothing from the server is parsed as HTML) ---------

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function fillTable(id, items, columns) {
  const body = $(id).tBodies[0];
  body.replaceChildren();
  for (const item of items) {
    const row = body.insertRow();
    for (const column of columns) cell(row, column(item));
  }
}

function fillList(id, items, empty) {
  const list = $(id);
  list.replaceChildren();
  for (const text of items.length ? items : [empty]) {
    const li = document.createElement("li");
    li.textContent = text;
    list.append(li);
  }
}

function ddNames(ids) {
  const byId = new Map(state.dds.map((dd) => [dd.id, dd.name]));
  return ids.map((id) => byId.get(id) || `#${id}`).join(", ");
}

// --- the fabric -----------------------------------------------------------------------

async function loadFabric() {
  const [targets, initiators, dds, sessions] = await Promise.all([
    api(`/api/v1/nodes?type=target&limit=${PAGE}`),
    api(`/api/v1/nodes?type=initiator&limit=${PAGE}`),
    api(`/api/v1/dds?limit=${PAGE}`),
    api("/api/v1/sessions"),
  ]);
  state.dds = dds.data.items;
  renderSummary(targets.data, initiators.data, dds.data, sessions.data.items);
  fillTable("targets", targets.data.items, [
    (n) => n.name, (n) => n.alias || "", (n) => n.entity,
    (n) => n.portals.join(", "), (n) => ddNames(n.dds) || "none",
  ]);
  $("targets-note").textContent = targets.data.next_cursor
    ? `Only the first ${PAGE} targets are listed; the API (GET /api/v1/nodes?type=target&prefix=...) has them all.`
    : "";
  fillTable("initiators", initiators.data.items, [
    (n) => n.name, (n) => n.alias || "", (n) => n.entity, (n) => ddNames(n.dds) || "none",
  ]);
  $("initiators-note").textContent = initiators.data.next_cursor
    ? `Only the first ${PAGE} initiators are listed.`
    : "";
  renderMatrix(targets.data.items, initiators.data.items);
  renderSessions(sessions.data.items);
  renderEditorChoices(targets.data.items, initiators.data.items);
  $("problem").textContent = "";
}

function renderSummary(targets, initiators, dds, sessions) {
  const more = (page) => (page.next_cursor ? "+" : "");
  const enabled = dds.items.filter((dd) => dd.enabled).length;
  fillList("summary", [
    `${targets.items.length}${more(targets)} targets`,
    `${initiators.items.length}${more(initiators)} initiators`,
    `${dds.items.length}${more(dds)} discovery domains (${enabled} enabled)`,
    `${sessions.length} iSCSI sessions on this portal`,
  ], "");
}

function renderMatrix(targets, initiators) {
  const table = $("matrix");
  const dds = state.dds.slice(0, MATRIX_COLUMNS);
  const kinds = new Map();
  for (const n of targets) kinds.set(n.name, "target");
  for (const n of initiators) kinds.set(n.name, kinds.has(n.name) ? "target, initiator" : "initiator");
  // Members first (registered or not), then other nodes up to the row cap.
  const names = [];
  const seen = new Set();
  for (const dd of dds) for (const m of dd.members) if (!seen.has(m)) { seen.add(m); names.push(m); }
  for (const name of kinds.keys()) if (!seen.has(name)) { seen.add(name); names.push(name); }
  const rows = names.slice(0, MATRIX_ROWS);

  const head = table.tHead;
  head.replaceChildren();
  const header = head.insertRow();
  const th = (text, className) => {
    const element = document.createElement("th");
    element.textContent = text;
    if (className) element.className = className;
    header.append(element);
  };
  th("Node");
  th("Kind");
  for (const dd of dds) th(dd.enabled ? dd.name : `${dd.name} (disabled)`, dd.enabled ? "" : "disabled");
  const body = table.tBodies[0];
  body.replaceChildren();
  const members = dds.map((dd) => new Set(dd.members));
  for (const name of rows) {
    const row = body.insertRow();
    row.dataset.node = name;
    cell(row, name);
    const portal = /\/(tcp|udp)$/.test(name);
    cell(row, kinds.get(name) || (portal ? "portal" : "not registered (or a control node)"));
    members.forEach((set, i) => {
      const td = cell(row, set.has(name) ? "✓" : "", set.has(name) ? "member" : "");
      td.title = set.has(name) ? `${name} is a member of ${dds[i].name}` : "";
    });
  }
  const notes = [];
  if (!state.dds.length) notes.push("No discovery domains yet: create one below.");
  if (names.length > rows.length) notes.push(`Showing ${rows.length} of ${names.length} nodes.`);
  if (state.dds.length > dds.length) notes.push(`Showing ${dds.length} of ${state.dds.length} domains.`);
  $("matrix-note").textContent = notes.join(" ");
}

function renderSessions(sessions) {
  fillTable("sessions", sessions, [
    (s) => s.initiator, (s) => s.target || "(discovery)", (s) => s.type, (s) => String(s.tsih),
    (s) => `${s.header_digest}, ${s.data_digest}`,
  ]);
  $("sessions-note").textContent = sessions.length ? "" : "No sessions (or the portal is not running).";
}

async function refreshSessions() {
  try {
    renderSessions((await api("/api/v1/sessions")).data.items);
  } catch (error) {
    showProblem(error);
  }
}

function scheduleRefresh() {
  if (state.refreshTimer !== null) return;
  state.refreshTimer = setTimeout(async () => {
    state.refreshTimer = null;
    try {
      await loadFabric();
    } catch (error) {
      showProblem(error);
    }
  }, REFRESH_DELAY);
}

function showProblem(error) {
  if (error.status === 401) return;
  $("problem").textContent = `Could not read the fabric: ${error.message}. The page keeps trying.`;
}

// --- live updates: server-sent events read with fetch (EventSource cannot send the token)

function setLive(text, ok) {
  const live = $("live");
  live.textContent = text;
  live.className = ok ? "status live" : "status down";
}

async function followEvents() {
  const controller = new AbortController();
  state.stream = controller;
  try {
    const response = await fetch("/api/v1/events", {
      headers: { Authorization: `Bearer ${token()}` },
      signal: controller.signal,
    });
    if (response.status === 401) {
      logout("The server refused the token (401). Log in again.");
      return;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      throw new ApiError(response.status, body);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        handleEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
    setLive("live updates stopped; reconnecting…", false);
  } catch (error) {
    if (controller.signal.aborted) return;
    setLive(`live updates lost (${error.message}); reconnecting…`, false);
  }
  if (state.stream === controller) {
    state.timers.push(setTimeout(followEvents, RECONNECT_DELAY));
  }
}

function handleEvent(text) {
  let name = "message";
  for (const line of text.split("\n")) {
    if (line.startsWith("event: ")) name = line.slice(7);
  }
  if (name === "hello") {
    setLive("live", true);
    scheduleRefresh(); // anything missed while disconnected
  } else if (name === "change") {
    scheduleRefresh();
  } else if (name === "overflow") {
    setLive("too many changes at once; reloading…", false);
    scheduleRefresh();
  }
}

// --- changing a discovery domain: preview, then apply ---------------------------------

function renderEditorChoices(targets, initiators) {
  const select = $("dd-select");
  const chosen = select.value;
  select.replaceChildren();
  for (const dd of state.dds) {
    select.add(new Option(`${dd.name} (ID ${dd.id}${dd.enabled ? "" : ", disabled"})`, String(dd.id)));
  }
  select.add(new Option("New discovery domain…", NEW_DD));
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
  const names = $("node-names");
  names.replaceChildren();
  for (const n of [...initiators, ...targets]) names.append(new Option(n.name));
  updateForm();
}

function updateForm() {
  const creating = $("dd-select").value === NEW_DD;
  $("new-dd-label").hidden = $("new-dd-name").hidden = !creating;
  const action = $("action");
  if (creating) action.value = "add";
  for (const option of action.options) option.disabled = creating && option.value !== "add";
  const deleting = action.value === "delete";
  $("member").hidden = $("member-label").hidden = deleting;
}

function proposal() {
  const selected = $("dd-select").value;
  const action = $("action").value;
  const member = $("member").value.trim();
  if (action !== "delete" && !member) throw new Error("name the member: an iSCSI name (iqn.…, eui.…) or address:port");
  if (selected === NEW_DD) {
    const name = $("new-dd-name").value.trim();
    if (!name) throw new Error("give the new discovery domain a name");
    return {
      preview: { action: "create_dd", name, members: [member] },
      apply: { path: "/api/v1/dds", method: "POST", body: { name, members: [member] } },
    };
  }
  const dd = Number(selected);
  const path = `/api/v1/dds/${dd}`;
  if (action === "delete") {
    return { dd, preview: { action: "delete_dd", dd }, apply: { path, method: "DELETE" } };
  }
  const members = [member];
  if (action === "remove") {
    return {
      dd,
      preview: { action: "remove_members", dd, members },
      apply: { path: `${path}/members/remove`, method: "POST", body: { members } },
    };
  }
  return {
    dd,
    preview: { action: "add_members", dd, members },
    apply: { path: `${path}/members`, method: "POST", body: { members } },
  };
}

function pairs(list, count) {
  const shown = list.map((p) => `${p.initiator} → ${p.target}`);
  if (count > list.length) shown.push(`… and ${count - list.length} more`);
  return shown;
}

async function preview(event) {
  event.preventDefault();
  clearPreview();
  let change;
  try {
    change = proposal();
    // The ETag read now guards the apply: if someone changes the domain meanwhile,
    // the apply is refused (412) instead of overwriting their change.
    const etag = change.dd === undefined ? null : (await api(`/api/v1/dds/${change.dd}`)).etag;
    const { data } = await api("/api/v1/zoning/preview", { method: "POST", body: change.preview });
    state.pending = { ...change, etag };
    $("preview-what").textContent = `Proposed: ${data.what}.`;
    fillList("preview-added", pairs(data.added, data.added_count), "none");
    fillList("preview-removed", pairs(data.removed, data.removed_count), "none");
    fillList(
      "preview-sessions",
      data.sessions_losing_access.map((p) => `${p.initiator} → ${p.target}`),
      "none",
    );
    $("preview").hidden = false;
    $("apply-button").focus();
  } catch (error) {
    result(`Cannot preview: ${error.message}.`, false);
  }
}

async function apply() {
  const change = state.pending;
  if (!change) return;
  $("apply-button").disabled = true;
  try {
    const headers = change.etag ? { "If-Match": change.etag } : {};
    await api(change.apply.path, { method: change.apply.method, body: change.apply.body, headers });
    clearPreview();
    $("member").value = "";
    result(`Applied: ${$("preview-what").textContent.replace(/^Proposed: /, "")} It is saved, and subscribed hosts were notified.`, true);
    scheduleRefresh();
  } catch (error) {
    const hint = error.status === 412
      ? "Someone changed this discovery domain after your preview. Preview again to see the current effect."
      : error.status === 403
        ? "This token may only read. Log in with an admin token to change zoning."
        : "Nothing was changed.";
    result(`Not applied: ${error.message}. ${hint}`, false);
  } finally {
    $("apply-button").disabled = false;
  }
}

function clearPreview() {
  state.pending = null;
  $("preview").hidden = true;
  result("", true);
}

function result(text, ok) {
  const line = $("change-result");
  line.textContent = text;
  line.className = ok ? "ok" : "error";
}

// --- logging in and out ---------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  const value = $("token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, value);
  $("login-error").textContent = "";
  try {
    await api("/api/v1/nodes?limit=1");
  } catch (error) {
    if (error.status !== 401) $("login-error").textContent = `Cannot reach the API: ${error.message}.`;
    sessionStorage.removeItem(TOKEN_KEY);
    return;
  }
  $("token").value = "";
  await start();
}

async function start() {
  $("login-view").hidden = true;
  $("fabric-view").hidden = false;
  $("logout").hidden = false;
  setLive("connecting…", false);
  try {
    await loadFabric();
  } catch (error) {
    showProblem(error);
  }
  followEvents();
  state.timers.push(setInterval(refreshSessions, SESSIONS_EVERY));
}

function logout(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (state.stream) state.stream.abort();
  state.stream = null;
  for (const timer of state.timers) clearTimeout(timer);
  state.timers = [];
  clearPreview();
  $("fabric-view").hidden = true;
  $("logout").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = typeof reason === "string" ? reason : "";
  setLive("not connected", false);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => logout("Logged out; the token was forgotten."));
  $("change-form").addEventListener("submit", preview);
  $("change-form").addEventListener("input", () => { clearPreview(); updateForm(); });
  $("apply-button").addEventListener("click", apply);
  $("cancel-button").addEventListener("click", clearPreview);
  if (token()) start();
});
