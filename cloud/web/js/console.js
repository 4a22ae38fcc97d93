// The property manager's console (/): live alarm board with sound / title flash / banner for new critical
// alarms, alarm detail (evidence, readings chart, timeline, comments, assign, dispatch), compound map →
// building → floor, incidents with their linkage commands, work orders with SLA state, device health and
// the audit log. Hash routes: #/alarms[/ID], #/map[/B[/F]], #/incidents[/ID], #/orders, #/devices, #/audit.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import {
  $, actorLabel, alarmLabel, api, commandLabel, deviceProfiles, el, evidenceUrl, fmtAgo, fmtTime,
  onLive, pointLabel, setTimeZone, sevLabel, showError, start, t, where,
} from "./core.js";
import { buildingSvg, compoundSvg, floorSvg, legend, worstFirst } from "./plan.js";
import { slaText } from "./sla.js";

const alarms = new Map(); // active alarms, id → row
const orders = new Map(); // open work orders, id → row
let site = null;
let layout = null;
let workers = [];
const filters = { building: "", severity: "", state: "active" };
let cleared = [];
let route = [];
const BASE_TITLE = document.title;

// ---- alerting: sound, title flash, banner -----------------------------------------------------------------

const siren = $("#siren");
let flashTimer = null;
siren.addEventListener("playing", () => { document.body.dataset.siren = "playing"; });
siren.addEventListener("pause", () => { document.body.dataset.siren = "paused"; });
$("#banner-sound").addEventListener("click", () => siren.play().then(() => { $("#banner-sound").hidden = true; }));

function unackedCritical() {
  return [...alarms.values()].filter((a) => a.active && a.severity === "critical" && !a.acknowledged).sort(worstFirst);
}

function alert() {
  const pending = unackedCritical();
  const banner = $("#banner");
  if (!pending.length) {
    banner.hidden = true;
    siren.pause();
    siren.currentTime = 0;
    clearInterval(flashTimer);
    flashTimer = null;
    document.title = BASE_TITLE;
    return;
  }
  const a = pending[0];
  const text = `${alarmLabel(a)} · ${where(a)} · ${a.device_id}`;
  $("#banner-text").textContent = `${t("banner.new")}：${text}${pending.length > 1 ? ` (+${pending.length - 1})` : ""}`;
  $("#banner-ack").onclick = () => ack(a.id);
  $("#banner-open").onclick = () => { location.hash = `#/alarms/${a.id}`; };
  banner.hidden = false;
  if (siren.paused) {
    siren.play().then(() => { $("#banner-sound").hidden = true; }).catch(() => { $("#banner-sound").hidden = false; });
  }
  if (!flashTimer) {
    let on = false;
    flashTimer = setInterval(() => {
      on = !on;
      const first = unackedCritical()[0];
      document.title = on && first ? `【${alarmLabel(first)}】${where(first)}` : BASE_TITLE;
    }, 800);
  }
}

// ---- data ------------------------------------------------------------------------------------------------------

async function loadAlarms() {
  const rows = await api("GET", "/api/alarms?active=true&limit=1000");
  alarms.clear();
  for (const a of rows) alarms.set(a.id, a);
}

async function loadOrders() {
  const rows = await api("GET", "/api/orders?open_only=false&limit=300");
  orders.clear();
  for (const o of rows) orders.set(o.id, o);
}

async function loadLayout() {
  if (!site) return;
  layout = await api("GET", `/api/sites/${encodeURIComponent(site.id)}/layout`);
  setTimeZone(layout.site.timezone);
  for (const d of layout.devices) deviceProfiles.set(d.id, d.profile_id);
}

let layoutTimer = null;
function refreshLayoutSoon() {
  clearTimeout(layoutTimer);
  layoutTimer = setTimeout(async () => {
    await loadLayout().catch(() => {});
    if (route[0] === "map") render();
  }, 150);
}

async function reloadAll() {
  try {
    await Promise.all([loadAlarms(), loadOrders(), loadLayout()]);
    showError("#view-error", null);
  } catch (err) {
    showError("#view-error", err);
  }
  alert();
  render();
}

const feedItems = [];
function onChange(change) {
  const d = change.data || {};
  if (change.kind === "alarm") {
    if (d.active) alarms.set(d.id, d);
    else alarms.delete(d.id);
    refreshLayoutSoon();
    alert();
  } else if (change.kind === "work_order") {
    orders.set(d.id, d);
  }
  feedItems.unshift({ at: new Date(), change });
  feedItems.length = Math.min(feedItems.length, 20);
  if (route[0] === "alarms" || route[0] === undefined) {
    renderBoardRows();
    renderFeed();
    if (change.kind === "alarm" && Number(route[1]) === d.id) renderAlarmDetail(d.id);
  } else if (route[0] === "orders" && change.kind === "work_order") render();
  else if (route[0] === "incidents" && route[1] && ["command", "incident", "work_order"].includes(change.kind)) render();
}

// ---- actions -----------------------------------------------------------------------------------------------

async function act(fn) {
  try {
    const out = await fn();
    showError("#view-error", null);
    return out;
  } catch (err) {
    showError("#view-error", err);
    return null;
  }
}

async function ack(id) {
  const row = await act(() => api("POST", `/api/alarms/${id}/ack`));
  if (!row) return;
  alarms.set(row.id, row);
  alert();
  renderBoardRows();
  if (Number(route[1]) === id) renderAlarmDetail(id);
}

// ---- views ---------------------------------------------------------------------------------------------------

const view = () => $("#view");

function setNav() {
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.route === (route[0] || "alarms"));
}

function render() {
  route = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  setNav();
  const name = route[0] || "alarms";
  const pages = { alarms: alarmsPage, map: mapPage, incidents: incidentsPage, orders: ordersPage, devices: devicesPage, audit: auditPage };
  (pages[name] || alarmsPage)();
}

// -- alarm board

function sevBadge(s) {
  return el("span", { class: `sev sev-${s}` }, sevLabel(s));
}

function visibleAlarms() {
  let rows = filters.state === "cleared" ? cleared : [...alarms.values()];
  if (filters.state === "unacked") rows = rows.filter((a) => !a.acknowledged);
  if (filters.state === "acked") rows = rows.filter((a) => a.acknowledged);
  if (filters.building) rows = rows.filter((a) => a.building === filters.building);
  if (filters.severity) rows = rows.filter((a) => a.severity === filters.severity);
  return rows.sort(worstFirst);
}

function select(name, options, value, onchange) {
  return el("select", { name, onchange: (ev) => onchange(ev.target.value) },
    ...options.map(([v, label]) => el("option", { value: v, selected: v === value }, label)));
}

function alarmsPage() {
  const buildings = layout ? layout.buildings.map((b) => [b.id, b.name]) : [];
  const bar = el("div", { class: "filters" },
    el("label", {}, t("filter.building"), select("building", [["", t("filter.all")], ...buildings], filters.building, (v) => { filters.building = v; renderBoardRows(); })),
    el("label", {}, t("filter.severity"), select("severity", [["", t("filter.all")], ...["critical", "major", "minor", "warning"].map((s) => [s, sevLabel(s)])], filters.severity, (v) => { filters.severity = v; renderBoardRows(); })),
    el("label", {}, t("filter.state"), select("state", [["active", t("state.active")], ["unacked", t("state.unacked")], ["acked", t("state.acked")], ["cleared", t("state.cleared")]], filters.state, async (v) => {
      filters.state = v;
      if (v === "cleared") cleared = (await act(() => api("GET", "/api/alarms?active=false&limit=200"))) || [];
      renderBoardRows();
    })),
  );
  const table = el("table", { id: "alarms" },
    el("thead", {}, el("tr", {}, ...["col.severity", "col.alarm", "col.device", "col.where", "col.time", "col.state", "col.actions"].map((k) => el("th", {}, t(k))))),
    el("tbody"));
  const board = el("section", { class: "board" },
    el("h2", {}, t("alarms.title"), " ", el("span", { id: "count", class: "count" }, "0")),
    bar, table, el("p", { id: "empty", class: "muted" }, t("alarms.empty")),
    el("h3", {}, t("feed.title")), el("ul", { id: "feed", class: "feed" }));
  const detail = el("aside", { id: "detail", class: "detail", hidden: !route[1] });
  view().replaceChildren(el("div", { class: "split" }, board, detail));
  renderBoardRows();
  renderFeed();
  if (route[1]) renderAlarmDetail(Number(route[1]));
}

function renderBoardRows() {
  const tbody = $("#alarms tbody");
  if (!tbody) return;
  const rows = visibleAlarms();
  tbody.replaceChildren(...rows.map((a) => el("tr", {
    "data-id": a.id,
    class: `sev-${a.severity}${a.acknowledged ? " acked" : ""}${a.active ? "" : " cleared"}${Number(route[1]) === a.id ? " selected" : ""}`,
    onclick: () => { location.hash = `#/alarms/${a.id}`; },
  },
    el("td", {}, sevBadge(a.severity)),
    el("td", { class: "type" }, alarmLabel(a)),
    el("td", {}, a.device_id),
    el("td", {}, where(a)),
    el("td", {}, fmtTime(a.last_ts), a.occurrence_count > 1 ? el("span", { class: "muted" }, ` ×${a.occurrence_count}`) : null),
    el("td", { class: "status" }, !a.active ? t("alarm.cleared") : a.acknowledged ? t("alarm.ackedBy", { who: a.acked_by ?? "?" }) : t("alarm.unacked")),
    el("td", {}, a.acknowledged || !a.active ? null
      : el("button", { type: "button", class: "ack", onclick: (ev) => { ev.stopPropagation(); ack(a.id); } }, t("alarm.ack"))),
  )));
  $("#count").textContent = String(rows.length);
  $("#empty").hidden = rows.length > 0;
}

function renderFeed() {
  const list = $("#feed");
  if (!list) return;
  list.replaceChildren(...feedItems.map(({ at, change }) => {
    const d = change.data || {};
    let what = "";
    if (change.kind === "alarm") what = `${alarmLabel(d)} ${where(d)}`;
    else if (change.kind === "command") what = `${commandLabel(deviceProfiles.get(d.device_id), d.command)} → ${d.device_id} ${t(`cmd.state.${d.state}`)}`;
    else if (change.kind === "work_order") what = `${t(`order.type.${d.type}`)} #${d.id} ${t(`order.state.${d.state}`)}`;
    else if (change.kind === "incident") what = `${t(`incident.kind.${d.kind}`)} ${d.building ?? ""}`;
    return el("li", {}, el("span", { class: "muted" }, fmtTime(at, { date: false })), " ", what, el("span", { class: "muted" }, ` (${change.op})`));
  }));
}

function evidenceRefs(a) {
  const refs = new Set();
  const add = (e) => { if (typeof e === "string") refs.add(e); else if (e && typeof e.ref === "string") refs.add(e.ref); };
  (a.evidence || []).forEach(add);
  for (const x of a.timeline || []) ((x.detail && x.detail.evidence) || []).forEach(add);
  return [...refs];
}

async function showEvidence(ref, holder) {
  try {
    const { url, type } = await evidenceUrl(ref);
    holder.replaceChildren(type.startsWith("video/") ? el("video", { src: url, controls: true }) : el("img", { src: url, alt: ref }),
      el("a", { href: url, target: "_blank", rel: "noopener" }, ref));
  } catch (err) {
    holder.textContent = err.message;
  }
}

async function drawReadings(alarmId, holder) {
  let data;
  try {
    data = await api("GET", `/api/alarms/${alarmId}/readings?minutes=30`);
  } catch (err) {
    holder.replaceChildren(el("p", { class: "muted" }, err.status === 403 ? "" : err.message));
    return;
  }
  const series = data.series.filter((s) => s.avg.some((v) => v !== null)).slice(0, 3);
  if (!series.length) {
    holder.replaceChildren(el("p", { class: "muted" }, t("alarm.noReadings")));
    return;
  }
  holder.replaceChildren();
  const eventX = new Date(data.event_ts).getTime() / 1000;
  for (const s of series) {
    const { label, unit } = pointLabel(data.profile_id, s.point);
    const xs = s.ts.map((x) => new Date(x).getTime() / 1000);
    const box = el("div", { class: "chart", "data-point": s.point });
    holder.append(box);
    new uPlot({
      width: 380, height: 150, title: `${label}${unit ? ` (${unit})` : ""}`,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), layout?.site.timezone || "Asia/Shanghai"),
      fmtDate: () => (d) => fmtTime(d, { date: false }).slice(0, 5),
      series: [{}, { label: "avg", stroke: "#2563eb", width: 2 }, { label: "max", stroke: "#c81e1e", dash: [4, 3] }],
      axes: [{ values: (u, vals) => vals.map((v) => fmtTime(new Date(v * 1000), { date: false }).slice(0, 5)) }, {}],
      hooks: {
        draw: [(u) => {
          const x = u.valToPos(eventX, "x", true);
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = "#c81e1e";
          ctx.setLineDash([2, 2]);
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.restore();
        }],
      },
    }, [xs, s.avg, s.max], box);
  }
}

function ordersFor(a) {
  return [...orders.values()].filter((o) => (o.alarm_id === a.id || (a.incident_id && o.incident_id === a.incident_id)) && o.state !== "closed");
}

function workerOptions(selected) {
  return [["", t("none")], ...workers.map((w) => [w.username, `${w.full_name || w.username}${w.grid_id ? ` · ${w.grid_id}` : ""}${w.on_duty ? ` · ${t("dispatch.onDuty")}` : ""}`])]
    .map(([v, l]) => el("option", { value: v, selected: v === selected }, l));
}

function defaultOrderType(a) {
  if (a.type === "fire.alarm" || a.type === "smoke.alarm") return "fire";
  if (a.type === "elevator.entrapment") return "entrapment";
  if (a.type === "fire_lane.blocked") return "fire_lane";
  return "inspection";
}

function dispatchBlock(a) {
  const existing = ordersFor(a);
  if (existing.length) {
    return el("div", { class: "dispatch" }, ...existing.map((o) => {
      const who = el("select", { name: "assignee" }, ...workerOptions(o.assignee));
      return el("form", {
        class: "assign-order", "data-order": o.id,
        onsubmit: async (ev) => {
          ev.preventDefault();
          if (!who.value) return;
          const row = await act(() => api("POST", `/api/orders/${o.id}/assign`, { assignee: who.value }));
          if (row) { orders.set(row.id, row); renderAlarmDetail(a.id); }
        },
      },
        el("div", {}, `#${o.id} ${t(`order.type.${o.type}`)} · `, el("span", { class: `state state-${o.state}` }, t(`order.state.${o.state}`)),
          o.assignee ? ` · ${t("order.assignedTo", { who: o.assignee })}` : ""),
        el("div", { class: "row" }, who, el("button", { type: "submit" }, t("alarm.dispatch"))));
    }));
  }
  const who = el("select", { name: "assignee", required: true }, ...workerOptions(""));
  const type = el("select", { name: "type" }, ...["fire", "entrapment", "fire_lane", "security_check", "inspection", "repair"]
    .map((x) => el("option", { value: x, selected: x === defaultOrderType(a) }, t(`order.type.${x}`))));
  const text = el("input", { name: "title", value: `${alarmLabel(a)} ${where(a)}` });
  return el("form", {
    class: "dispatch new-order",
    onsubmit: async (ev) => {
      ev.preventDefault();
      const row = await act(() => api("POST", "/api/orders", {
        site_id: a.site_id, type: type.value, title: text.value || alarmLabel(a), building: a.building, floor: a.floor,
        alarm_id: a.id, assignee: who.value || null,
      }));
      if (row) { orders.set(row.id, row); renderAlarmDetail(a.id); }
    },
  }, el("label", {}, t("dispatch.worker"), who), el("label", {}, t("dispatch.type"), type), el("label", {}, t("dispatch.text"), text),
  el("button", { type: "submit" }, t("dispatch.submit")));
}

async function renderAlarmDetail(id) {
  const box = $("#detail");
  if (!box) return;
  box.hidden = false;
  let a;
  try {
    a = await api("GET", `/api/alarms/${id}`);
  } catch (err) {
    box.replaceChildren(el("p", { class: "error" }, err.message));
    return;
  }
  if (Number(route[1]) !== id) return;
  const refs = evidenceRefs(a);
  const snap = el("div", { class: "evidence" });
  const chart = el("div", { class: "readings" });
  const comment = el("input", { name: "comment", placeholder: t("alarm.comment.placeholder") });
  const assignee = el("select", { name: "alarm-assignee" }, ...workerOptions(a.assignee));
  box.replaceChildren(
    el("button", { type: "button", class: "close", "aria-label": "close", onclick: () => { location.hash = "#/alarms"; } }, "×"),
    el("h2", {}, sevBadge(a.severity), " ", alarmLabel(a), ` #${a.id}`),
    el("dl", {},
      el("dt", {}, t("col.device")), el("dd", {}, a.device_id),
      el("dt", {}, t("col.where")), el("dd", {}, where(a), " ",
        a.building ? el("a", { href: `#/map/${encodeURIComponent(a.building)}${a.floor != null ? `/${a.floor}` : ""}` }, t("alarm.onMap")) : null),
      el("dt", {}, t("col.state")), el("dd", { class: "status" }, !a.active ? t("alarm.cleared") : a.acknowledged ? `${t("alarm.ackedBy", { who: a.acked_by })} ${fmtTime(a.acked_at)}` : t("alarm.unacked")),
      el("dt", {}, t("alarm.firstLast")), el("dd", {}, `${fmtTime(a.first_ts)} / ${fmtTime(a.last_ts)}`),
      el("dt", {}, t("alarm.occurrences")), el("dd", {}, a.occurrence_count),
      el("dt", {}, t("alarm.assignee")), el("dd", {}, a.assignee ?? t("none")),
      el("dt", {}, t("alarm.incident")), el("dd", {}, a.incident_id ? el("a", { href: `#/incidents/${a.incident_id}` }, `#${a.incident_id}`) : t("none")),
    ),
    el("div", { class: "actions" },
      a.active && !a.acknowledged ? el("button", { type: "button", class: "ack", onclick: () => ack(a.id) }, t("alarm.ack")) : null,
      a.active ? el("button", { type: "button", class: "clear", onclick: async () => { const r = await act(() => api("POST", `/api/alarms/${a.id}/clear`, {})); if (r) { alarms.delete(r.id); alert(); renderBoardRows(); renderAlarmDetail(a.id); } } }, t("alarm.clear")) : null,
      el("form", { class: "row", onsubmit: async (ev) => { ev.preventDefault(); if (!assignee.value) return; const r = await act(() => api("POST", `/api/alarms/${a.id}/assign`, { assignee: assignee.value })); if (r) renderAlarmDetail(a.id); } },
        assignee, el("button", { type: "submit", class: "assign" }, t("alarm.assign"))),
    ),
    el("h3", {}, t("alarm.dispatch")), dispatchBlock(a),
    el("h3", {}, t("alarm.evidence")), refs.length ? snap : el("p", { class: "muted" }, t("alarm.noEvidence")),
    el("h3", {}, t("alarm.readings")), chart,
    el("h3", {}, t("alarm.timeline")),
    el("ol", { class: "timeline" }, ...(a.timeline || []).map((x) => el("li", {}, el("span", { class: "muted" }, fmtTime(x.ts)), " ",
      el("b", {}, t(`tl.${x.kind}`)), " ", t("tl.by", { who: actorLabel(x.actor) })))),
    el("h3", {}, t("alarm.comments")),
    (a.comments || []).length ? el("ul", { class: "comments" }, ...a.comments.map((c) => el("li", {}, el("b", {}, c.author), ` ${fmtTime(c.ts)}：`, c.text)))
      : el("p", { class: "muted" }, t("alarm.noComments")),
    el("form", { class: "row comment", onsubmit: async (ev) => { ev.preventDefault(); if (!comment.value.trim()) return; const r = await act(() => api("POST", `/api/alarms/${a.id}/comments`, { text: comment.value.trim() })); if (r) renderAlarmDetail(a.id); } },
      comment, el("button", { type: "submit" }, t("alarm.comment"))),
  );
  if (refs.length) showEvidence(refs[0], snap);
  drawReadings(a.id, chart);
  renderBoardRows();
}

// -- map

function mapPage() {
  const [, building, floor] = route;
  if (!layout) { view().replaceChildren(el("p", { class: "muted" }, "…")); return; }
  const crumbs = el("nav", { class: "crumbs" }, el("a", { href: "#/map" }, layout.site.name || t("map.compound")));
  let body;
  const b = layout.buildings.find((x) => x.id === building);
  if (!b) {
    body = compoundSvg(layout, (id) => { location.hash = `#/map/${encodeURIComponent(id)}`; });
  } else {
    const devs = layout.devices.filter((d) => d.building === b.id);
    const pins = (layout.remote_alarms || []).filter((a) => a.building === b.id)
      .map((a) => ({ ...a, profile_id: deviceProfiles.get(a.device_id) }));
    crumbs.append(" › ", el("a", { href: `#/map/${encodeURIComponent(b.id)}` }, b.name));
    if (floor === undefined) {
      body = buildingSvg(b, devs, (f) => { location.hash = `#/map/${encodeURIComponent(b.id)}/${f}`; }, pins);
    } else {
      const f = Number(floor);
      crumbs.append(" › ", f < 0 ? t("map.floorB", { n: -f }) : t("map.floor", { n: f }));
      const info = el("div", { class: "device-info" });
      body = el("div", {}, floorSvg(b, f, devs, { onDevice: (d) => showDevice(d, info), pins }), info);
    }
  }
  view().replaceChildren(el("section", { class: "map-page" }, crumbs, legend(), body));
}

function showDevice(d, holder) {
  const active = [...alarms.values()].filter((a) => a.device_id === d.id);
  holder.replaceChildren(el("h3", {}, d.name || d.id),
    el("dl", {}, el("dt", {}, t("devices.profile")), el("dd", {}, d.profile_id),
      el("dt", {}, t("col.state")), el("dd", {}, t(`state.${d.state}`)),
      el("dt", {}, t("devices.lastSeen")), el("dd", {}, `${fmtTime(d.last_seen)} (${fmtAgo(d.last_seen)})`)),
    ...active.map((a) => el("p", {}, el("a", { href: `#/alarms/${a.id}` }, sevBadge(a.severity), " ", alarmLabel(a)))));
}

// -- incidents

async function incidentsPage() {
  if (route[1]) return incidentPage(Number(route[1]));
  const rows = (await act(() => api("GET", "/api/incidents"))) || [];
  view().replaceChildren(el("section", {}, el("h2", {}, t("incidents.title")),
    rows.length ? el("table", { id: "incidents" }, el("thead", {}, el("tr", {}, ...["#", t("col.alarm"), t("col.where"), t("col.time"), t("col.state")].map((x) => el("th", {}, x)))),
      el("tbody", {}, ...rows.map((i) => el("tr", { "data-id": i.id, onclick: () => { location.hash = `#/incidents/${i.id}`; } },
        el("td", {}, `#${i.id}`), el("td", {}, t(`incident.kind.${i.kind}`)), el("td", {}, where(i)), el("td", {}, fmtTime(i.opened_at)),
        el("td", {}, t(i.state === "open" ? "incident.open" : "incident.closed"))))))
      : el("p", { class: "muted" }, t("incidents.empty"))));
}

async function incidentPage(id) {
  const inc = await act(() => api("GET", `/api/incidents/${id}`));
  if (!inc || route[0] !== "incidents" || Number(route[1]) !== id) return;
  const events = [{ ts: inc.opened_at, text: t("incident.opened") }];
  for (const a of inc.alarms) events.push({ ts: a.first_ts, text: `${alarmLabel(a)} · ${a.device_id} · ${where(a)}` });
  for (const c of inc.commands) {
    const label = commandLabel(deviceProfiles.get(c.device_id), c.command);
    if (c.sent_at) events.push({ ts: c.sent_at, text: `${label} → ${c.device_id} ${t("cmd.state.sent")}` });
    if (c.finished_at) events.push({ ts: c.finished_at, text: `${label} → ${c.device_id} ${t(`cmd.state.${c.state}`)}` });
  }
  for (const o of inc.work_orders) {
    events.push({ ts: o.created_at, text: `${t(`order.type.${o.type}`)} #${o.id}` });
    for (const [k, s] of [["accepted_at", "accepted"], ["arrived_at", "arrived"], ["resolved_at", "resolved"], ["closed_at", "closed"]]) {
      if (o[k]) events.push({ ts: o[k], text: `#${o.id} ${t(`order.state.${s}`)}${o.assignee ? ` · ${o.assignee}` : ""}` });
    }
  }
  if (inc.closed_at) events.push({ ts: inc.closed_at, text: t("incident.closed") });
  events.sort((x, y) => new Date(x.ts) - new Date(y.ts));
  view().replaceChildren(el("section", { class: "incident", "data-id": inc.id },
    el("h2", {}, `${t(`incident.kind.${inc.kind}`)} #${inc.id} · ${where(inc)} · `, el("span", { class: "state" }, t(inc.state === "open" ? "incident.open" : "incident.closed")),
      inc.state === "open" ? el("button", { type: "button", onclick: async () => { if (await act(() => api("POST", `/api/incidents/${id}/close`))) render(); } }, t("incident.close")) : null),
    el("h3", {}, t("incident.signals")),
    el("table", { id: "signals" }, el("tbody", {}, ...inc.alarms.map((a) => el("tr", { onclick: () => { location.hash = `#/alarms/${a.id}`; } },
      el("td", {}, sevBadge(a.severity)), el("td", {}, alarmLabel(a)), el("td", {}, a.device_id), el("td", {}, where(a)), el("td", {}, fmtTime(a.first_ts)))))),
    el("h3", {}, t("incident.commands")),
    el("table", { id: "commands" }, el("tbody", {}, ...inc.commands.map((c) => el("tr", { class: `cmd-${c.state}`, "data-device": c.device_id },
      el("td", {}, commandLabel(deviceProfiles.get(c.device_id), c.command)), el("td", {}, c.device_id),
      el("td", { class: "cmd-state" }, el("span", { class: `state cmd-${c.state}` }, t(`cmd.state.${c.state}`))),
      el("td", { class: "muted" }, t("cmd.attempts", { n: c.attempts })), el("td", {}, fmtTime(c.finished_at || c.sent_at)), el("td", { class: "muted" }, c.reason ?? ""))))),
    el("h3", {}, t("incident.orders")),
    el("ul", {}, ...inc.work_orders.map((o) => el("li", {}, `#${o.id} ${t(`order.type.${o.type}`)} · ${t(`order.state.${o.state}`)}${o.assignee ? ` · ${o.assignee}` : ""}`))),
    el("h3", {}, t("incident.timeline")),
    el("ol", { class: "timeline" }, ...events.map((e) => el("li", {}, el("span", { class: "muted" }, fmtTime(e.ts)), " ", e.text)))));
}

// -- work orders

function photos(o) {
  const refs = [o.arrival_photo, ...(o.evidence || [])].filter(Boolean);
  const box = el("div", { class: "photos" });
  for (const ref of refs) {
    const holder = el("span", { class: "thumb" });
    box.append(holder);
    evidenceUrl(ref).then(({ url }) => holder.replaceChildren(el("img", { src: url, alt: ref }))).catch((err) => { holder.textContent = err.message; });
  }
  return box;
}

function ordersPage() {
  const rows = [...orders.values()].sort((a, b) => b.id - a.id);
  view().replaceChildren(el("section", {}, el("h2", {}, t("orders.title")),
    rows.length ? el("table", { id: "orders" },
      el("thead", {}, el("tr", {}, ...["#", t("dispatch.type"), t("col.where"), t("order.assignee"), t("col.state"), t("order.sla"), t("order.note"), ""].map((x) => el("th", {}, x)))),
      el("tbody", {}, ...rows.map((o) => {
        const sla = slaText(o);
        const who = el("select", { name: "assignee" }, ...workerOptions(o.assignee));
        return el("tr", { "data-id": o.id, class: `state-${o.state}` },
          el("td", {}, `#${o.id}`), el("td", {}, t(`order.type.${o.type}`)), el("td", {}, where(o)),
          el("td", {}, o.state === "closed" || o.state === "resolved" ? (o.assignee ?? t("none")) : el("form", { class: "row", onsubmit: async (ev) => { ev.preventDefault(); if (!who.value) return; const r = await act(() => api("POST", `/api/orders/${o.id}/assign`, { assignee: who.value })); if (r) { orders.set(r.id, r); render(); } } }, who, el("button", { type: "submit" }, t("alarm.dispatch")))),
          el("td", {}, el("span", { class: `state state-${o.state}` }, t(`order.state.${o.state}`))),
          el("td", { class: `sla${sla.late ? " late" : ""}` }, sla.text),
          el("td", {}, o.resolution_note ?? "", photos(o)),
          el("td", {}, o.state === "resolved" ? el("button", { type: "button", class: "close-order", onclick: async () => { const r = await act(() => api("POST", `/api/orders/${o.id}/close`)); if (r) { orders.set(r.id, r); render(); } } }, t("order.close")) : null,
            o.state === "resolved" || o.state === "closed" ? el("button", { type: "button", class: "reopen", onclick: async () => { const reason = prompt(t("order.reopenReason")); if (!reason) return; const r = await act(() => api("POST", `/api/orders/${o.id}/reopen`, { reason })); if (r) { orders.set(r.id, r); render(); } } }, t("order.reopen")) : null));
      })))
      : el("p", { class: "muted" }, t("orders.empty"))));
}

// -- devices

async function devicesPage() {
  const h = await act(() => api("GET", `/api/console/health${site ? `?site_id=${encodeURIComponent(site.id)}` : ""}`));
  if (!h || route[0] !== "devices") return;
  const depth = (g) => {
    const o = g.health?.outbox_depth;
    return o ? `${o.alarm ?? 0} / ${o.event ?? 0} / ${o.telemetry ?? 0}` : t("none");
  };
  view().replaceChildren(el("section", {},
    el("h2", {}, t("devices.gateways")),
    el("table", { id: "gateways" },
      el("thead", {}, el("tr", {}, ...["#", t("col.state"), t("devices.lastSeen"), t("devices.uplink"), t("devices.outbox"), t("devices.count"), t("devices.health"), t("devices.software"), t("devices.config")].map((x) => el("th", {}, x)))),
      el("tbody", {}, ...h.gateways.map((g) => el("tr", { "data-id": g.id, class: `st-${g.state}` },
        el("td", {}, g.id), el("td", {}, el("span", { class: `state st-${g.state}` }, t(`state.${g.state}`))),
        el("td", {}, fmtTime(g.last_seen), el("div", { class: "muted" }, fmtAgo(g.last_seen))),
        el("td", { class: "uplink" }, g.health ? t(g.health.uplink_connected ? "uplink.up" : "uplink.down") : t("none")),
        el("td", { class: "outbox" }, depth(g)),
        el("td", {}, `${g.online} / ${g.offline} (${g.devices})`),
        el("td", {}, fmtTime(g.health_at)), el("td", {}, g.software ?? t("none")),
        el("td", { class: "config", title: g.config_error ?? "" }, g.config_version == null ? t("devices.configLocal") : `v${g.config_version}`,
          g.config_error ? el("div", { class: "muted" }, t("devices.configRefused")) : null))))),
    el("h2", {}, t("devices.devices")),
    el("table", { id: "device-list" },
      el("thead", {}, el("tr", {}, ...["#", t("devices.profile"), t("col.where"), t("col.state"), t("devices.lastSeen")].map((x) => el("th", {}, x)))),
      el("tbody", {}, ...h.devices.map((d) => el("tr", { "data-id": d.id, class: `st-${d.state}` },
        el("td", {}, d.id), el("td", {}, d.profile_id), el("td", {}, where(d)),
        el("td", {}, el("span", { class: `state st-${d.state}` }, t(`state.${d.state}`))),
        el("td", {}, fmtTime(d.last_seen), " ", el("span", { class: "muted" }, fmtAgo(d.last_seen)))))))));
}

// -- audit

async function auditPage() {
  const rows = await act(() => api("GET", "/api/audit?limit=200"));
  if (!rows || route[0] !== "audit") return;
  view().replaceChildren(el("section", {}, el("h2", {}, t("audit.title")),
    el("table", { id: "audit" },
      el("thead", {}, el("tr", {}, ...[t("col.time"), t("audit.actor"), t("audit.action"), t("audit.target"), t("audit.detail")].map((x) => el("th", {}, x)))),
      el("tbody", {}, ...rows.map((r) => el("tr", {},
        el("td", {}, fmtTime(r.ts)), el("td", {}, actorLabel(r.actor)), el("td", {}, r.action), el("td", {}, `${r.target_type} ${r.target_id}`),
        el("td", { class: "detail-json" }, JSON.stringify(r.detail).slice(0, 160))))))));
}

// ---- start ---------------------------------------------------------------------------------------------------

window.addEventListener("hashchange", render);
document.addEventListener("xq:lang", () => { alert(); render(); });
setInterval(() => { // SLA countdowns tick without re-rendering the rows (a half-picked select stays)
  for (const row of document.querySelectorAll("#orders tbody tr")) {
    const o = orders.get(Number(row.dataset.id));
    const cell = row.querySelector("td.sla");
    if (!o || !cell) continue;
    const sla = slaText(o);
    cell.textContent = sla.text;
    cell.classList.toggle("late", Boolean(sla.late));
  }
}, 1000);

onLive(onChange, reloadAll);
start("console", async () => {
  const sites = await api("GET", "/api/sites");
  site = sites[0] ?? null;
  workers = (await api("GET", "/api/console/workers").catch(() => [])) || [];
  await reloadAll();
}, {
  leave: () => { alarms.clear(); alert(); },
});
