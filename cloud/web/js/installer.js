// The installer's page (/install): pick a profile, bind a device to building / floor / unit (POST
// /api/devices), then a commissioning checklist — the device is heard from, each detector's test press
// arrives — recorded in the audit log (POST /api/devices/{id}/commissioning). The installer has no live
// stream, so the checklist asks the API every 2 s while it is open.
// Per point, pass / fail comes from what the gateway actually read (GET /api/devices/{id}/points: its
// first read reports every point with its quality), and on demand from an active probe through the gateway
// (the 探测 / Probe button: POST /api/devices/{id}/probe, then GET …/probe/{command_id} until answered): the
// gateway reads every point once and says per point the value at its precision or why it failed.

import { $, api, el, fmtTime, profileInfo, setTimeZone, showError, start, t, typeLabel, where } from "./core.js";

let sites = [];
let layout = null;
let labels = null;
let poll = null;

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

function field(key, node) {
  return el("label", {}, t(key), node);
}

async function loadSite(siteId) {
  layout = await api("GET", `/api/sites/${encodeURIComponent(siteId)}/layout`);
  setTimeZone(layout.site.timezone);
}

function checksFor(device) {
  const prof = profileInfo(device.profile_id);
  const checks = [{ key: "online", text: t("inst.check.online") }];
  for (const e of prof?.events ?? []) {
    const label = typeLabel(e.type, { profile: device.profile_id });
    if (e.type.endsWith(".test")) checks.push({ key: `event:${e.type}`, type: e.type, text: t("inst.check.test", { label }) });
    else if (prof.device_type === "fire_panel" && e.type === "fire.alarm" && !checks.some((c) => c.type === e.type)) {
      checks.push({ key: `event:${e.type}`, type: e.type, text: t("inst.check.event", { label }) });
    }
  }
  return checks;
}

function probeValue(p) {
  if (p.value === null || p.value === undefined) return "";
  const v = typeof p.value === "boolean" ? t(p.value ? "inst.bool.true" : "inst.bool.false") : (p.shown || String(p.value));
  return p.unit ? `${v} ${p.unit}` : v;
}

function drawProbe(box, out) {
  const head = out.done
    ? t(out.ok ? "inst.probe.ok" : "inst.probe.failed", { passed: out.passed, failed: out.failed })
    : t("inst.probe.waiting");
  box.replaceChildren(
    el("h3", {}, t("inst.probe.title"), " ", el("span", { class: out.done ? (out.ok ? "ok" : "bad") : "muted", id: "probe-summary" }, head)),
    out.reason ? el("p", { class: "muted", id: "probe-reason" }, out.reason) : "",
    el("table", { id: "probe-table" },
      el("thead", {}, el("tr", {}, ...["", "inst.probe.col.point", "inst.probe.col.name", "inst.probe.col.value", "inst.probe.col.result", "inst.probe.col.reason"]
        .map((k) => el("th", {}, k ? t(k) : "")))),
      el("tbody", {}, ...out.points.map((p) => el("tr", { "data-point": p.name, class: p.ok ? "probe-pass" : "probe-fail" },
        el("td", { class: "mark" }, p.ok ? "✓" : "✗"),
        el("td", {}, p.label ?? p.name), el("td", { class: "muted" }, p.name),
        el("td", { class: "probe-value" }, probeValue(p)),
        el("td", { class: "probe-verdict" }, t(p.ok ? "inst.pass" : "inst.fail")),
        el("td", { class: "probe-reason" }, p.reason ?? ""))))),
    el("p", { class: "muted" }, `${t("inst.probe.source")} ${out.gateway_id} · ${out.state}`),
  );
}

async function runProbe(device, box, button) {
  button.disabled = true;
  box.replaceChildren(el("p", { class: "muted" }, t("inst.probe.running")));
  try {
    const id = encodeURIComponent(device.id);
    let out = await api("POST", `/api/devices/${id}/probe?wait_s=15`);
    for (let i = 0; !out.done && i < 30; i++) {
      drawProbe(box, out);
      await new Promise((r) => setTimeout(r, 1000));
      out = await api("GET", `/api/devices/${id}/probe/${out.command_id}`);
    }
    drawProbe(box, out);
    showError("#view-error", null);
    return out;
  } catch (err) {
    box.replaceChildren();
    showError("#view-error", err);
    return null;
  } finally {
    button.disabled = false;
  }
}

function renderChecklist(device, since) {
  clearInterval(poll);
  const checks = checksFor(device);
  checks.push({ key: "probe", text: t("inst.check.probe") });
  checks.push({ key: "points", text: t("inst.check.points", { good: 0, total: "?" }) });
  const state = new Map(checks.map((c) => [c.key, { passed: false, detail: null }]));
  const list = el("ul", { class: "checks" });
  const probeBox = el("div", { class: "points", id: "probe-result" });
  const probeButton = el("button", {
    type: "button", id: "probe",
    onclick: async () => {
      const out = await runProbe(device, probeBox, probeButton);
      if (out && out.done) {
        state.set("probe", { passed: out.ok, at: out.answered_at, detail: `${out.state}: ${out.passed}/${out.points.length}${out.reason ? ` (${out.reason})` : ""}` });
        draw();
      }
    },
  }, t("inst.probe.button"));
  const pointsBox = el("div", { class: "points" });
  const note = el("textarea", { name: "note", rows: 2 });
  const result = el("p", { class: "muted", id: "recorded" });
  const draw = () => list.replaceChildren(
    ...checks.map((c) => {
      const s = state.get(c.key);
      if (c.key === "probe") {
        const failed = s.detail !== null && !s.passed;
        return el("li", { class: `check${s.passed ? " passed" : failed ? " failed" : ""}`, "data-check": c.key },
          el("span", { class: "mark" }, s.passed ? "✓" : failed ? "✗" : "…"), el("span", {}, c.text), probeButton,
          el("span", { class: "muted" }, s.detail === null ? t("inst.probe.hint") : t(s.passed ? "inst.pass" : "inst.fail")));
      }
      return el("li", { class: `check${s.passed ? " passed" : ""}`, "data-check": c.key },
        el("span", { class: "mark" }, s.passed ? "✓" : "…"), el("span", {}, c.text),
        el("span", { class: "muted" }, s.passed ? t("inst.arrived", { t: fmtTime(s.at, { date: false }) }) : t("inst.waiting")));
    }),
  );
  const tick = async () => {
    const dev = await api("GET", `/api/devices/${encodeURIComponent(device.id)}`).catch(() => null);
    if (dev && dev.last_seen && new Date(dev.last_seen) > since && !state.get("online").passed) {
      state.set("online", { passed: true, at: dev.last_seen, detail: `${dev.state} ${dev.last_seen}` });
    }
    const events = await api("GET", `/api/devices/${encodeURIComponent(device.id)}/events?since=${encodeURIComponent(since.toISOString())}`).catch(() => []);
    for (const c of checks) {
      const hit = c.type && events.find((e) => e.type === c.type);
      if (hit && !state.get(c.key).passed) state.set(c.key, { passed: true, at: hit.received_at, detail: `${hit.type} ${hit.ts}` });
    }
    const pts = await api("GET", `/api/devices/${encodeURIComponent(device.id)}/points?since=${encodeURIComponent(since.toISOString())}`).catch(() => null);
    if (pts) {
      const total = pts.points.length;
      const c = checks.find((x) => x.key === "points");
      c.text = t("inst.check.points", { good: pts.counts.good, total });
      const ok = total > 0 && pts.counts.good === total;
      const newest = pts.points.map((p) => p.ts).filter(Boolean).sort().pop();
      state.set("points", { passed: ok, at: newest, detail: JSON.stringify(pts.counts) });
      drawPoints(pts);
    }
    draw();
  };
  const drawPoints = (pts) => pointsBox.replaceChildren(
    el("h3", {}, t("inst.points"), " ", el("span", { class: "muted" }, t("inst.points.summary", pts.counts))),
    el("table", { id: "points" }, el("tbody", {}, ...pts.points.map((p) => el("tr", { "data-point": p.name, class: `pt-${p.status}` },
      el("td", { class: "mark" }, p.status === "good" ? "✓" : p.status === "missing" ? "…" : "✗"),
      el("td", {}, p.label ?? p.name), el("td", { class: "muted" }, p.name),
      el("td", {}, p.value === null || p.value === undefined ? "" : `${p.value}${p.unit ? ` ${p.unit}` : ""}`),
      el("td", { class: "pt-status" }, t(`inst.point.${p.status}`)), el("td", { class: "muted" }, p.ts ? fmtTime(p.ts, { date: false }) : ""))))));
  poll = setInterval(tick, 2000);
  tick();
  $("#checklist").replaceChildren(
    el("h2", {}, `${t("inst.checklist")} · ${device.id}`),
    el("p", {}, `${device.profile_id} · ${where(device)}`),
    list,
    probeBox,
    pointsBox,
    field("inst.note", note),
    el("button", {
      type: "button", id: "record",
      onclick: async () => {
        const body = {
          checks: checks.filter((c) => c.key !== "probe" || state.get(c.key).detail !== null) // a probe counts once run
            .map((c) => ({ name: c.text, passed: state.get(c.key).passed, detail: state.get(c.key).detail })),
          note: note.value || null,
        };
        const r = await act(() => api("POST", `/api/devices/${encodeURIComponent(device.id)}/commissioning`, body));
        if (r) result.textContent = `${t("inst.recorded")} (${r.passed ? t("inst.pass") : t("inst.fail")})`;
      },
    }, t("inst.record")),
    result,
  );
  draw();
}

function renderForm() {
  const siteSel = el("select", { name: "site_id", onchange: async (ev) => { await loadSite(ev.target.value); renderForm(); } },
    ...sites.map((s) => el("option", { value: s.id, selected: s.id === layout?.site.id }, s.name || s.id)));
  const profiles = Object.entries(labels.profiles).filter(([, p]) => p.protocol !== "camera");
  const profileSel = el("select", { name: "profile_id", required: true },
    ...profiles.map(([id, p]) => el("option", { value: id }, `${p.vendor} ${p.model} (${id})`)));
  const buildingSel = el("select", { name: "building", required: true },
    ...(layout?.buildings ?? []).map((b) => el("option", { value: b.id }, b.name)));
  const gateways = [...new Set((layout?.devices ?? []).map((d) => d.gateway_id).filter(Boolean))];
  const form = el("form", {
    id: "register",
    onsubmit: async (ev) => {
      ev.preventDefault();
      const f = new FormData(ev.target);
      const body = {
        id: f.get("id"), profile_id: f.get("profile_id"), gateway_id: f.get("gateway_id"), site_id: f.get("site_id"),
        building: f.get("building"), floor: f.get("floor") === "" ? null : Number(f.get("floor")),
        unit: f.get("unit") || null, area: f.get("area") || null, name: f.get("name") || null,
      };
      const since = new Date();
      const r = await act(() => api("POST", "/api/devices", body));
      if (!r) return;
      $("#registered").textContent = t("inst.registered", { id: r.id });
      await loadSite(body.site_id);
      renderChecklist(r, since);
    },
  },
  el("h2", {}, t("inst.register")),
  field("inst.site", siteSel),
  field("inst.profile", profileSel),
  field("inst.deviceId", el("input", { name: "id", required: true, pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}" })),
  field("inst.gateway", el("input", { name: "gateway_id", required: true, list: "gateways", value: gateways[0] ?? "" })),
  el("datalist", { id: "gateways" }, ...gateways.map((g) => el("option", { value: g }))),
  field("inst.building", buildingSel),
  field("inst.floor", el("input", { name: "floor", type: "number", min: -10, max: 200 })),
  field("inst.unit", el("input", { name: "unit" })),
  field("inst.area", el("input", { name: "area" })),
  el("button", { type: "submit" }, t("inst.submit")),
  el("p", { id: "registered", class: "muted" }),
  el("h3", {}, t("inst.existing")),
  el("select", {
    name: "existing",
    onchange: (ev) => {
      const d = layout.devices.find((x) => x.id === ev.target.value);
      if (d) renderChecklist(d, new Date());
    },
  }, el("option", { value: "" }, t("inst.pick")), ...(layout?.devices ?? []).map((d) => el("option", { value: d.id }, `${d.id} · ${where(d)}`))));
  $("#view").replaceChildren(form, el("section", { id: "checklist" }));
}

document.addEventListener("xq:lang", renderForm);
start("installer", async () => {
  labels = await api("GET", "/api/labels");
  sites = await api("GET", "/api/sites");
  if (sites.length) await loadSite(sites[0].id);
  renderForm();
}, { live: false, leave: () => clearInterval(poll) });
