// The grid worker's phone view (/worker, made for 390×844): my queue with SLA countdowns, where to go on
// the floor plan, and accept → arrive → resolve with a note and photos from the phone's camera (uploaded
// as evidence, POST /api/evidence/{ref}, then named in the step).

import { $, api, el, evidenceUrl, onLive, setTimeZone, showError, start, t, uploadPhoto, where } from "./core.js";
import { floorSvg } from "./plan.js";
import { slaText } from "./sla.js";

let me = null;
let rows = [];
const drafts = new Map(); // order id → {note, photos: [ref]}: survives re-rendering on live changes
const layouts = new Map(); // site id → layout (the worker's grid only)
const open = new Set(); // order ids whose "where to go" is shown

function draft(id) {
  if (!drafts.has(id)) drafts.set(id, { note: "", photos: [] });
  return drafts.get(id);
}

async function load() {
  try {
    rows = (await api("GET", "/api/orders")).filter((o) => o.state !== "closed");
    showError("#view-error", null);
  } catch (err) {
    showError("#view-error", err);
  }
  render();
}

async function step(o, action, body) {
  try {
    await api("POST", `/api/orders/${o.id}/${action}`, body);
    if (action === "resolve") drafts.delete(o.id);
    if (action === "arrive") draft(o.id).photos = []; // the check-in photo is recorded; resolve starts afresh
    showError("#view-error", null);
  } catch (err) {
    showError("#view-error", err);
  }
  await load();
}

function thumb(ref) {
  const holder = el("span", { class: "thumb", "data-ref": ref });
  evidenceUrl(ref).then(({ url }) => holder.replaceChildren(el("img", { src: url, alt: ref }))).catch((err) => { holder.textContent = err.message; });
  return holder;
}

function photoInput(o) {
  const d = draft(o.id);
  const input = el("input", {
    type: "file", accept: "image/*", capture: "environment", name: "photo", class: "photo-input",
    onchange: async (ev) => {
      const file = ev.target.files[0];
      if (!file) return;
      try {
        d.photos.push(await uploadPhoto(file, `order-${o.id}`));
        showError("#view-error", null);
      } catch (err) {
        showError("#view-error", err);
      }
      render();
    },
  });
  return el("div", { class: "photo" },
    el("label", { class: "photo-button" }, t("order.photo"), input),
    d.photos.length ? el("span", { class: "muted photo-count" }, t("order.photoAdded", { n: d.photos.length })) : null,
    el("div", { class: "photos" }, ...d.photos.map(thumb)));
}

async function whereToGo(o, holder) {
  try {
    if (!layouts.has(o.site_id)) layouts.set(o.site_id, await api("GET", `/api/sites/${encodeURIComponent(o.site_id)}/layout`));
    const layout = layouts.get(o.site_id);
    setTimeZone(layout.site.timezone);
    const b = layout.buildings.find((x) => x.id === o.building);
    if (!b || o.floor === null || o.floor === undefined) {
      holder.replaceChildren(el("p", {}, where(o)));
      return;
    }
    holder.replaceChildren(el("p", { class: "go" }, `${b.name} · ${where(o)}`),
      floorSvg(b, o.floor, layout.devices.filter((d) => d.building === b.id), {
        unit: o.unit, pins: (layout.remote_alarms || []).filter((a) => a.building === b.id),
      }));
  } catch (err) {
    holder.replaceChildren(el("p", { class: "error" }, err.message));
  }
}

function card(o) {
  const mine = o.assignee === me.username;
  const sla = slaText(o);
  const d = draft(o.id);
  let actions = null;
  if (mine && o.state === "assigned") {
    actions = el("button", { type: "button", class: "step", onclick: () => step(o, "accept") }, t("order.accept"));
  } else if (mine && o.state === "accepted") {
    actions = el("div", { class: "resolve" }, photoInput(o),
      el("button", { type: "button", class: "step", onclick: () => step(o, "arrive", { photo: d.photos[0] ?? null }) }, t("order.arrive")));
  } else if (mine && o.state === "arrived") {
    const note = el("textarea", { name: "note", rows: 3, placeholder: t("order.notePlaceholder"), required: true, oninput: (ev) => { d.note = ev.target.value; } });
    note.value = d.note;
    actions = el("form", {
      class: "resolve",
      onsubmit: (ev) => {
        ev.preventDefault();
        if (d.note.trim()) step(o, "resolve", { note: d.note.trim(), evidence: d.photos });
      },
    }, note, photoInput(o), el("button", { type: "submit", class: "step" }, t("order.resolve")));
  }
  const go = el("div", { class: "where" });
  if (open.has(o.id)) whereToGo(o, go);
  return el("li", { class: `order state-${o.state}`, "data-id": o.id },
    el("div", { class: "title" }, el("b", {}, t(`order.type.${o.type}`)), el("span", { class: `state state-${o.state}` }, t(`order.state.${o.state}`))),
    el("div", { class: "loc" }, where(o)),
    el("div", { class: `sla${sla.late ? " late" : ""}` }, sla.text),
    el("div", { class: "muted" }, `#${o.id} · ${o.title}`),
    o.assignee && !mine ? el("div", { class: "muted" }, t("order.assignedTo", { who: o.assignee })) : null,
    o.resolution_note ? el("div", {}, `${t("order.note")}：${o.resolution_note}`) : null,
    el("button", { type: "button", class: "go-button", onclick: () => { if (open.has(o.id)) open.delete(o.id); else open.add(o.id); render(); } }, t("order.where")),
    go, actions);
}

function render() {
  $("#orders").replaceChildren(...rows.map(card));
  $("#empty").hidden = rows.length > 0;
}

setInterval(() => {
  for (const node of document.querySelectorAll("#orders .order")) {
    const o = rows.find((x) => x.id === Number(node.dataset.id));
    const cell = node.querySelector(".sla");
    if (!o || !cell) continue;
    const sla = slaText(o);
    cell.textContent = sla.text;
    cell.classList.toggle("late", Boolean(sla.late));
  }
}, 1000);
document.addEventListener("xq:lang", render);

onLive((change) => { if (change.kind === "work_order") load(); }, load);
start("worker", async (who) => {
  me = who;
  await load();
});
