// Shared by the console (/), the worker's phone view (/worker) and the installer page (/install):
// words (zh-CN first), the API with the bearer token, the session, the live stream, times in the
// compound's time zone (24-hour) and the device profiles' labels. Plain ES module, no build step.
// Data goes into the page with textContent (never innerHTML), so device strings cannot inject markup.

import { DICT } from "./i18n.js";

export const $ = (sel, root = document) => root.querySelector(sel);

// ---- words ---------------------------------------------------------------------------------------------

const LANG_KEY = "xq.lang";
export let lang = localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";

export function t(key, params = {}) {
  const text = DICT[lang][key] ?? DICT.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => (params[k] ?? `{${k}}`));
}

export function setLang(next) {
  lang = next === "en" ? "en" : "zh";
  localStorage.setItem(LANG_KEY, lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  applyStatic();
  setLive($("#live")?.dataset.state || "offline");
}

// Elements with data-i18n="key" (text) or data-i18n-placeholder get their words from the dictionary.
export function applyStatic(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
}

export function el(tag, attrs = {}, ...children) {
  const svg = ["svg", "g", "rect", "circle", "text", "line", "path", "title", "polygon"].includes(tag);
  const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.setAttribute("class", v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// ---- time: the compound's zone, 24-hour ----------------------------------------------------------------

export let timeZone = "Asia/Shanghai";
let fmt = null;

export function setTimeZone(zone) {
  timeZone = zone || "Asia/Shanghai";
  fmt = null;
}

function parts(d) {
  fmt ??= new Intl.DateTimeFormat("en-GB", {
    timeZone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  return Object.fromEntries(fmt.formatToParts(d).map((p) => [p.type, p.value]));
}

export function fmtTime(iso, { date = true } = {}) {
  if (!iso) return t("none");
  const d = iso instanceof Date ? iso : new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = parts(d);
  const time = `${p.hour}:${p.minute}:${p.second}`;
  return date ? `${p.year}-${p.month}-${p.day} ${time}` : time;
}

export function fmtDuration(ms) {
  const s = Math.max(0, Math.round(Math.abs(ms) / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? t("dur.hm", { h, m }) : t("dur.ms", { m, s: s % 60 });
}

export function fmtAgo(iso) {
  if (!iso) return t("none");
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return t("ago.s", { n: Math.floor(s) });
  if (s < 3600) return t("ago.m", { n: Math.floor(s / 60) });
  if (s < 86400) return t("ago.h", { n: Math.floor(s / 3600) });
  return t("ago.d", { n: Math.floor(s / 86400) });
}

// ---- labels from the device profiles --------------------------------------------------------------------

let LABELS = { profiles: {}, event_types: {} };
export const deviceProfiles = new Map(); // device id → profile id (from the layout, when the caller may see it)

export async function loadLabels() {
  LABELS = await api("GET", "/api/labels");
  return LABELS;
}

export function profileInfo(profileId) {
  return LABELS.profiles[profileId];
}

function humanize(id) {
  const s = String(id).replace(/[._]/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function subset(small, big) {
  return Object.entries(small || {}).every(([k, v]) => big && String(big[k]) === String(v));
}

// The label of an alarm / event type; with the device's profile and the alarm's detail, the exact row's
// (平层关人 vs 非平层关人).
export function typeLabel(type, { profile, detail, key } = {}) {
  const entry = LABELS.event_types[type];
  let zh = entry?.label ?? null;
  const prof = LABELS.profiles[profile ?? ""];
  if (prof) {
    const rows = prof.events.filter((e) => e.type === type && e.label);
    const row = (key && rows.find((e) => templateMatch(e.key, key)))
      ?? rows.find((e) => Object.keys(e.detail).length && subset(e.detail, detail))
      ?? (rows.length === 1 ? rows[0] : null);
    if (row) zh = row.label;
  }
  if (lang === "en") {
    if (entry?.en) return entry.en;
    return zh ? `${humanize(type)} · ${zh}` : humanize(type);
  }
  return zh ?? humanize(type);
}

export function alarmLabel(a) {
  let text = typeLabel(a.type, { profile: deviceProfiles.get(a.device_id), detail: a.detail, key: a.key });
  const zone = a.detail?.zone;
  if (zone !== undefined && zone !== null) text += ` · ${t("alarm.zone", { n: zone })}`;
  return text;
}

function templateMatch(template, name) {
  if (!template.includes("{n}")) return template === name;
  const re = new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace("{n}", "(\\d+)")}$`);
  return re.test(name);
}

export function pointLabel(profile, name) {
  const prof = LABELS.profiles[profile ?? ""];
  const p = prof?.points.find((x) => templateMatch(x.name, name));
  if (!p) return { label: name, unit: "" };
  const n = name.match(/\d+/)?.[0];
  const label = p.name.includes("{n}") && n ? `${p.label ?? name} ${n}` : (p.label ?? name);
  return { label: lang === "en" ? `${name} · ${label}` : label, unit: p.unit ?? "" };
}

export function commandLabel(profile, name) {
  const prof = LABELS.profiles[profile ?? ""];
  const c = prof?.commands.find((x) => x.name === name);
  if (!c?.label) return humanize(name);
  return lang === "en" ? `${humanize(name)} · ${c.label}` : c.label;
}

export function sevLabel(s) {
  return t(`sev.${s}`);
}

export function where(row) {
  const bits = [];
  if (row.building) bits.push(row.building);
  if (row.floor !== null && row.floor !== undefined) bits.push(row.floor < 0 ? t("map.floorB", { n: -row.floor }) : t("map.floor", { n: row.floor }));
  if (row.unit) bits.push(t("map.unit", { u: row.unit }));
  return bits.join(" ") || t("none");
}

export function actorLabel(actor) {
  if (actor === "engine") return t("actor.engine");
  if (actor === "device") return t("actor.device");
  return actor;
}

// ---- API ------------------------------------------------------------------------------------------------

let token = null;
let tokenKey = "xq.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function errorMessage(r) {
  let msg = `${r.status} ${r.statusText}`;
  try {
    const j = await r.json();
    if (typeof j.detail === "string") msg = j.detail;
    else if (j.detail) msg = JSON.stringify(j.detail);
  } catch (_) { /* not JSON */ }
  return msg;
}

export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 401) {
    logout(t("login.expired"));
    throw new ApiError(401, t("login.expired"));
  }
  if (!r.ok) throw new ApiError(r.status, await errorMessage(r));
  return r.json();
}

// Evidence needs the bearer token, so it is fetched and shown from a blob URL.
export async function evidenceUrl(ref) {
  const r = await fetch(`/api/evidence/${encodeURIComponent(ref)}`, { headers: { Authorization: `Bearer ${token}` } });
  if (!r.ok) throw new ApiError(r.status, `${ref}: ${await errorMessage(r)}`);
  const blob = await r.blob();
  return { url: URL.createObjectURL(blob), type: blob.type };
}

export async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// A photo from the phone's camera: scaled to at most 1600 px and re-encoded as JPEG (phones' HEIC and
// 12-megapixel originals are neither accepted nor needed), then uploaded as evidence; returns the ref.
export async function uploadPhoto(file, prefix) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, 1600 / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const blob = await new Promise((res) => canvas.toBlob(res, "image/jpeg", 0.85));
  const bytes = await blob.arrayBuffer();
  const digest = await sha256Hex(bytes);
  const ref = `${prefix}-${digest.slice(0, 16)}.jpg`;
  const r = await fetch(`/api/evidence/${ref}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "image/jpeg", "X-Content-SHA256": digest },
    body: bytes,
  });
  if (!r.ok) throw new ApiError(r.status, await errorMessage(r));
  return ref;
}

async function login(username, password) {
  const r = await fetch("/api/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ username, password }),
  });
  if (!r.ok) throw new ApiError(r.status, r.status === 401 ? t("login.wrong") : `${r.status}`);
  return (await r.json()).access_token;
}

export function showError(sel, err) {
  const node = $(sel);
  if (node) node.textContent = err ? (err.message || String(err)) : "";
}

// ---- live stream ------------------------------------------------------------------------------------------

let socket = null;
let reconnectDelay = 500;
let pingTimer = null;
const handlers = { change: () => {}, reconnect: () => {} };

export function onLive(change, reconnect) {
  handlers.change = change;
  handlers.reconnect = reconnect;
}

function setLive(state) {
  const badge = $("#live");
  if (!badge) return;
  badge.dataset.state = state;
  badge.textContent = t(state === "on" ? "live.on" : state === "off" ? "live.off" : "live.offline");
  badge.className = `live ${state === "on" ? "on" : "off"}`;
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
    setLive("on");
    handlers.reconnect(); // anything missed while disconnected: reload
    pingTimer = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send("ping"), 20000);
  };
  ws.onmessage = (msg) => {
    let change;
    try {
      change = JSON.parse(msg.data);
    } catch (err) {
      console.error("bad change message", err, msg.data);
      return;
    }
    handlers.change(change);
  };
  ws.onclose = (ev) => {
    clearInterval(pingTimer);
    if (socket !== ws) return; // replaced or logged out
    setLive("off");
    if (ev.code === 1008 && !opened) {
      logout(t("login.expired"));
      return;
    }
    if (!opened) api("GET", "/api/auth/me").catch(() => {});
    setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 10000);
  };
}

// ---- session ----------------------------------------------------------------------------------------------

let onLogout = () => {};

export function logout(message) {
  token = null;
  sessionStorage.removeItem(tokenKey);
  const ws = socket;
  socket = null;
  if (ws) ws.close();
  $("#main").hidden = true;
  $("#logout").hidden = true;
  $("#who").textContent = "";
  $("#login").hidden = false;
  setLive("offline");
  showError("#login-error", message ? new Error(message) : null);
  onLogout();
}

// Wire the log-in form, the language switch and log-out; `enter(me)` builds the page after log-in.
export async function start(view, enter, { live = true, leave = () => {} } = {}) {
  tokenKey = `xq.${view}.token`;
  token = sessionStorage.getItem(tokenKey);
  onLogout = leave;
  setLang(lang);
  $("#lang").addEventListener("click", () => {
    setLang(lang === "zh" ? "en" : "zh");
    document.dispatchEvent(new CustomEvent("xq:lang"));
  });
  $("#logout").addEventListener("click", () => logout());
  const go = async () => {
    const me = await api("GET", "/api/auth/me");
    $("#who").textContent = me.username;
    $("#login").hidden = true;
    $("#main").hidden = false;
    $("#logout").hidden = false;
    await loadLabels();
    await enter(me);
    if (live) connect();
  };
  $("#login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    showError("#login-error", null);
    try {
      token = await login(form.get("username"), form.get("password"));
      sessionStorage.setItem(tokenKey, token);
      ev.target.reset();
      await go();
    } catch (err) {
      showError("#login-error", err);
    }
  });
  if (token) {
    try {
      await go();
      return;
    } catch (_) { /* stale token: fall through to the form */ }
  }
  logout();
}
