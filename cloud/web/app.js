// xiaoqu web UI: the property manager's alarm board (/) and the grid worker's phone view (/worker).
// Plain ES module, no build step. Talks to the same API as everything else (docs/api.md); the access
// token lives in sessionStorage (per tab), live changes come from the WebSocket /api/ws?token=….
// All data is put into the page with textContent (never innerHTML), so device strings cannot inject markup.

const view = document.body.dataset.view;
const TOKEN_KEY = `xq.${view}.token`;
const SEVERITY_ORDER = { critical: 0, major: 1, minor: 2, warning: 3 };
const WORKER_STEPS = {
  assigned: { action: "accept", label: "Accept" },
  accepted: { action: "arrive", label: "Arrived" },
  arrived: { action: "resolve", label: "Resolve" },
};

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

function where(row) {
  const parts = [];
  if (row.building) parts.push(row.building);
  if (row.floor !== null && row.floor !== undefined) parts.push(`F${row.floor}`);
  if (row.unit) parts.push(row.unit);
  return parts.join(" / ") || "—";
}

// ---- API -------------------------------------------------------------------------------------------

let token = sessionStorage.getItem(TOKEN_KEY);

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 401) {
    logout("Session expired: log in again.");
    throw new ApiError(401, "not logged in");
  }
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try {
      const j = await r.json();
      if (typeof j.detail === "string") msg = j.detail;
      else if (j.detail) msg = JSON.stringify(j.detail);
    } catch (_) { /* not JSON */ }
    throw new ApiError(r.status, msg);
  }
  return r.json();
}

async function login(username, password) {
  const r = await fetch("/api/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ username, password }),
  });
  if (!r.ok) throw new ApiError(r.status, r.status === 401 ? "Wrong username or password." : `Login failed (${r.status}).`);
  return (await r.json()).access_token;
}

function showError(id, err) {
  const node = $(id);
  if (node) node.textContent = err ? (err.message || String(err)) : "";
}

// ---- live stream -----------------------------------------------------------------------------------

let socket = null;
let reconnectDelay = 500;
let pingTimer = null;
let onChange = () => {};
let onReconnect = () => {};

function setLive(on) {
  const badge = $("#live");
  badge.textContent = on ? "live" : "reconnecting…";
  badge.className = on ? "live on" : "live off";
}

function connect() {
  if (!token) return;
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/api/ws?token=${encodeURIComponent(token)}`);
  socket = ws;
  let opened = false;
  ws.onopen = () => {
    opened = true;
    reconnectDelay = 500;
    setLive(true);
    onReconnect(); // anything missed while disconnected: reload
    pingTimer = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send("ping"), 20000);
  };
  ws.onmessage = (msg) => {
    try {
      onChange(JSON.parse(msg.data));
    } catch (err) {
      console.error("bad change message", err, msg.data);
    }
  };
  ws.onclose = (ev) => {
    clearInterval(pingTimer);
    if (socket !== ws) return; // replaced or logged out
    setLive(false);
    if (ev.code === 1008 && !opened) {
      logout("Your session is not allowed on the live stream: log in again.");
      return;
    }
    // A refused handshake usually shows up as 1006: if the token has expired, the API call logs out.
    if (!opened) api("GET", "/api/auth/me").catch(() => {});
    setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 10000);
  };
}

// ---- session ---------------------------------------------------------------------------------------

function logout(message) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  const ws = socket;
  socket = null;
  if (ws) ws.close();
  $("#main").hidden = true;
  $("#logout").hidden = true;
  $("#who").textContent = "";
  $("#login").hidden = false;
  $("#live").textContent = "offline";
  $("#live").className = "live off";
  showError("#login-error", message ? new Error(message) : null);
}

async function start(init) {
  $("#logout").addEventListener("click", () => logout());
  $("#login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    showError("#login-error", null);
    try {
      token = await login(form.get("username"), form.get("password"));
      sessionStorage.setItem(TOKEN_KEY, token);
      ev.target.reset();
      await enter(init);
    } catch (err) {
      showError("#login-error", err);
    }
  });
  if (token) {
    try {
      await enter(init);
      return;
    } catch (_) { /* stale token: fall through to the form */ }
  }
  logout();
}

async function enter(init) {
  const me = await api("GET", "/api/auth/me");
  $("#who").textContent = `${me.username} (${me.role}${me.grid_id ? `, grid ${me.grid_id}` : ""})`;
  $("#login").hidden = true;
  $("#main").hidden = false;
  $("#logout").hidden = false;
  await init(me);
  connect();
}

// ---- property manager: alarm board -----------------------------------------------------------------

const alarms = new Map(); // id → alarm row
let selected = null;

function sortedAlarms() {
  return [...alarms.values()].sort(
    (a, b) => (SEVERITY_ORDER[a.severity] ?? 9) - (SEVERITY_ORDER[b.severity] ?? 9) || b.id - a.id,
  );
}

function renderBoard() {
  const tbody = $("#alarms tbody");
  const rows = sortedAlarms().map((a) =>
    el(
      "tr",
      {
        "data-id": a.id,
        class: `sev-${a.severity}${a.acknowledged ? " acked" : ""}${a.id === selected ? " selected" : ""}`,
        onclick: () => showDetail(a.id),
      },
      el("td", {}, el("span", { class: `sev sev-${a.severity}` }, a.severity)),
      el("td", { class: "type" }, a.type),
      el("td", {}, a.device_id),
      el("td", {}, where(a)),
      el("td", {}, fmtTime(a.last_ts), a.occurrence_count > 1 ? el("span", { class: "muted" }, ` ×${a.occurrence_count}`) : null),
      el("td", { class: "status" }, a.acknowledged ? `acknowledged by ${a.acked_by ?? "?"}` : "unacknowledged"),
      el(
        "td",
        {},
        a.acknowledged
          ? null
          : el("button", { type: "button", class: "ack", onclick: (ev) => { ev.stopPropagation(); ack(a.id); } }, "Acknowledge"),
      ),
    ),
  );
  tbody.replaceChildren(...rows);
  $("#count").textContent = String(alarms.size);
  $("#empty").hidden = alarms.size > 0;
}

async function loadAlarms() {
  try {
    const rows = await api("GET", "/api/alarms?active=true");
    alarms.clear();
    for (const a of rows) alarms.set(a.id, a);
    showError("#board-error", null);
    renderBoard();
  } catch (err) {
    showError("#board-error", err);
  }
}

async function ack(id) {
  try {
    const row = await api("POST", `/api/alarms/${id}/ack`);
    alarms.set(row.id, row);
    showError("#board-error", null);
    renderBoard();
    if (selected === id) showDetail(id);
  } catch (err) {
    showError("#board-error", err);
  }
}

function feed(change) {
  const list = $("#feed");
  const d = change.data || {};
  const what = d.type || d.command || d.kind || d.title || "";
  list.prepend(
    el("li", {}, el("span", { class: "muted" }, new Date().toLocaleTimeString()), ` ${change.kind} #${change.id} ${change.op} `, what),
  );
  while (list.children.length > 20) list.lastChild.remove();
}

function onAlarmChange(change) {
  feed(change);
  if (change.kind !== "alarm") return;
  const row = change.data;
  if (row.active) alarms.set(row.id, row);
  else alarms.delete(row.id);
  renderBoard();
  if (selected === row.id) showDetail(row.id);
}

function evidenceRefs(alarm) {
  const refs = new Set();
  const add = (e) => {
    if (typeof e === "string") refs.add(e);
    else if (e && typeof e.ref === "string") refs.add(e.ref);
  };
  (alarm.evidence || []).forEach(add);
  for (const t of alarm.timeline || []) ((t.detail && t.detail.evidence) || []).forEach(add);
  return [...refs];
}

async function openEvidence(ref, holder) {
  // GET /api/evidence/{ref} needs the bearer token, so fetch it and show it from a blob URL.
  try {
    const r = await fetch(`/api/evidence/${encodeURIComponent(ref)}`, { headers: { Authorization: `Bearer ${token}` } });
    if (!r.ok) throw new Error(`evidence ${ref}: ${r.status}`);
    const blob = await r.blob();
    const url = URL.createObjectURL(blob);
    const media = blob.type.startsWith("video/") ? el("video", { src: url, controls: true }) : el("img", { src: url, alt: ref });
    holder.replaceChildren(media, el("a", { href: url, target: "_blank", rel: "noopener" }, "open full size"));
  } catch (err) {
    holder.textContent = err.message;
  }
}

async function showDetail(id) {
  selected = id;
  renderBoard();
  const body = $("#detail-body");
  $("#detail").hidden = false;
  let a;
  try {
    a = await api("GET", `/api/alarms/${id}`);
  } catch (err) {
    body.replaceChildren(el("p", { class: "error" }, err.message));
    return;
  }
  if (selected !== id) return;
  const fields = [
    ["Severity", el("span", { class: `sev sev-${a.severity}` }, a.severity)],
    ["Device", a.device_id],
    ["Where", `${a.site_id ?? ""} ${where(a)}`],
    ["State", `${a.active ? "active" : "cleared"}, ${a.acknowledged ? `acknowledged by ${a.acked_by} at ${fmtTime(a.acked_at)}` : "unacknowledged"}`],
    ["First / last", `${fmtTime(a.first_ts)} / ${fmtTime(a.last_ts)}`],
    ["Occurrences", a.occurrence_count],
    ["Assignee", a.assignee ?? "—"],
    ["Incident", a.incident_id ?? "—"],
  ];
  const refs = evidenceRefs(a);
  const evidence = refs.length
    ? el(
        "ul",
        { class: "evidence" },
        ...refs.map((ref) => {
          const holder = el("div", { class: "media" });
          return el(
            "li",
            {},
            el("a", { href: `/api/evidence/${encodeURIComponent(ref)}`, onclick: (ev) => { ev.preventDefault(); openEvidence(ref, holder); } }, ref),
            holder,
          );
        }),
      )
    : el("p", { class: "muted" }, "No evidence attached.");
  const parts = [
    el("h2", {}, `#${a.id} ${a.type}`),
    el("dl", {}, ...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    a.acknowledged || !a.active ? null : el("button", { type: "button", class: "ack", onclick: () => ack(a.id) }, "Acknowledge"),
    el("h3", {}, "Evidence"),
    evidence,
    el("h3", {}, "Timeline"),
    el(
      "ol",
      { class: "timeline" },
      ...(a.timeline || []).map((t) =>
        el("li", {}, el("span", { class: "muted" }, fmtTime(t.ts)), " ", el("b", {}, t.kind), ` by ${t.actor}`),
      ),
    ),
    el("h3", {}, "Comments"),
    (a.comments || []).length
      ? el("ul", {}, ...a.comments.map((c) => el("li", {}, el("b", {}, c.author), ` ${fmtTime(c.ts)}: `, c.text)))
      : el("p", { class: "muted" }, "No comments."),
  ];
  body.replaceChildren(...parts.filter((p) => p !== null));
}

async function dashboard() {
  $("#detail-close").addEventListener("click", () => {
    selected = null;
    $("#detail").hidden = true;
    renderBoard();
  });
  onChange = onAlarmChange;
  onReconnect = loadAlarms;
  await start(async () => {
    await loadAlarms();
  });
}

// ---- grid worker: my work orders -------------------------------------------------------------------

let me = null;

async function loadOrders() {
  try {
    const rows = await api("GET", "/api/orders");
    showError("#board-error", null);
    renderOrders(rows);
  } catch (err) {
    showError("#board-error", err);
  }
}

async function step(order, action, body) {
  try {
    await api("POST", `/api/orders/${order.id}/${action}`, body);
    showError("#board-error", null);
    await loadOrders();
  } catch (err) {
    showError("#board-error", err);
  }
}

function orderCard(o) {
  const next = o.assignee === me.username ? WORKER_STEPS[o.state] : undefined;
  let actions = null;
  if (next && next.action === "resolve") {
    const note = el("textarea", { name: "note", rows: 3, placeholder: "What did you find and do?", required: true });
    actions = el(
      "form",
      {
        class: "resolve",
        onsubmit: (ev) => {
          ev.preventDefault();
          if (note.value.trim()) step(o, "resolve", { note: note.value.trim() });
        },
      },
      note,
      el("button", { type: "submit", class: "step" }, next.label),
    );
  } else if (next) {
    actions = el("button", { type: "button", class: "step", onclick: () => step(o, next.action, next.action === "arrive" ? {} : undefined) }, next.label);
  }
  return el(
    "li",
    { class: `order state-${o.state}`, "data-id": o.id },
    el("div", { class: "title" }, el("b", {}, o.title), el("span", { class: `state state-${o.state}` }, o.state)),
    el("div", { class: "muted" }, `#${o.id} · ${o.type} · ${where(o)}`),
    el("div", { class: "muted" }, o.state === "assigned" ? `accept by ${fmtTime(o.dispatch_due)}` : o.state === "accepted" ? `arrive by ${fmtTime(o.arrival_due)}` : ""),
    o.assignee && o.assignee !== me.username ? el("div", { class: "muted" }, `assigned to ${o.assignee}`) : null,
    o.resolution_note ? el("div", {}, `Note: ${o.resolution_note}`) : null,
    actions,
  );
}

function renderOrders(rows) {
  const mine = rows.filter((o) => o.state !== "closed");
  $("#orders").replaceChildren(...mine.map(orderCard));
  $("#empty").hidden = mine.length > 0;
}

async function worker() {
  onChange = (change) => {
    if (change.kind === "work_order") loadOrders();
  };
  onReconnect = loadOrders;
  await start(async (who) => {
    me = who;
    await loadOrders();
  });
}

if (view === "worker") worker();
else dashboard();
