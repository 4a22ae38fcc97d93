// The compound map → building → floor plan, drawn as SVG from GET /api/sites/{id}/layout (buildings with
// their floors and alarmed floors, devices with building / floor / unit / state / worst active alarm).

import { el, t, typeLabel } from "./core.js";

const SEV_RANK = { critical: 0, major: 1, minor: 2, warning: 3 };

export function markerState(d) {
  if (d.alarm_severity) return `alarm sev-${d.alarm_severity}${d.alarm_acked ? " acked" : ""}`;
  return d.state === "online" ? "online" : d.state === "offline" ? "offline" : "unknown";
}

function floorName(f) {
  return f < 0 ? t("map.floorB", { n: -f }) : t("map.floor", { n: f });
}

function deviceTitle(d) {
  const bits = [d.name || d.id, t(`state.${d.state}`) || d.state];
  if (d.alarm_type) bits.push(typeLabel(d.alarm_type, { profile: d.profile_id }));
  return bits.join(" · ");
}

export function legend() {
  const item = (cls, key) => el("span", { class: "legend-item" }, el("i", { class: `dot ${cls}` }), t(key));
  return el("div", { class: "legend" },
    item("alarm sev-critical", "map.legend.alarm"), item("online", "map.legend.online"),
    item("offline", "map.legend.offline"), item("unknown", "map.legend.unknown"));
}

// The compound: one tile per building, coloured by its worst active alarm.
export function compoundSvg(layout, onBuilding) {
  const cols = Math.min(4, Math.max(1, layout.buildings.length));
  const w = 170, h = 120, gap = 24;
  const rows = Math.ceil(layout.buildings.length / cols) || 1;
  const svg = el("svg", {
    class: "map compound", viewBox: `0 0 ${cols * (w + gap) + gap} ${rows * (h + gap) + gap}`, role: "img",
    "aria-label": layout.site.name,
  });
  layout.buildings.forEach((b, i) => {
    const x = gap + (i % cols) * (w + gap);
    const y = gap + Math.floor(i / cols) * (h + gap);
    const cls = `building${b.worst_severity ? ` alarmed sev-${b.worst_severity}` : ""}`;
    svg.append(el("g", { class: cls, "data-building": b.id, tabindex: 0, onclick: () => onBuilding(b.id) },
      el("title", {}, `${b.name} · ${t("map.devices", { n: b.devices })} · ${t("map.alarms", { n: b.active_alarms })}`),
      el("rect", { x, y, width: w, height: h, rx: 8 }),
      el("text", { x: x + w / 2, y: y + 42, class: "name" }, b.name),
      el("text", { x: x + w / 2, y: y + 68, class: "sub" }, `${t("map.devices", { n: b.devices })} · ${b.floors.length}F`),
      el("text", { x: x + w / 2, y: y + 92, class: "sub alarms" }, b.active_alarms ? t("map.alarms", { n: b.active_alarms }) : ""),
    ));
  });
  return svg;
}

// A building's elevation: one band per floor with its devices; alarmed floors highlighted.
export function buildingSvg(building, devices, onFloor, pins = []) {
  const rowH = 26, labelW = 64, bandW = 440, shaftW = 70;
  const floors = building.floors;
  const alarmed = new Map(building.alarmed_floors.map((a) => [a.floor, a.severity]));
  const svg = el("svg", {
    class: "map building-view", viewBox: `0 0 ${labelW + bandW + shaftW + 20} ${floors.length * rowH + 20}`,
    role: "img", "aria-label": building.name,
  });
  floors.forEach((f, i) => {
    const y = 10 + i * rowH;
    const sev = alarmed.get(f);
    const onFloor_ = devices.filter((d) => d.floor === f);
    const g = el("g", {
      class: `floor${sev ? ` alarmed sev-${sev}` : ""}`, "data-floor": f, tabindex: 0, onclick: () => onFloor(f),
    },
      el("title", {}, `${building.name} ${floorName(f)} · ${t("map.devices", { n: onFloor_.length })}`),
      el("text", { x: labelW - 8, y: y + rowH / 2 + 5, class: "floor-label" }, floorName(f)),
      el("rect", { x: labelW, y: y + 2, width: bandW, height: rowH - 4, rx: 3 }),
    );
    onFloor_.forEach((d, j) => {
      g.append(el("circle", {
        class: `marker ${markerState(d)}`, cx: labelW + 16 + j * 20, cy: y + rowH / 2, r: 7, "data-device": d.id,
      }, el("title", {}, deviceTitle(d))));
    });
    pins.filter((a) => a.floor === f).forEach((a, j) => {
      const cx = labelW + bandW - 16 - j * 20, cy = y + rowH / 2;
      g.append(pin(a, cx, cy, 8));
    });
    svg.append(g);
  });
  // Devices of the whole building (lifts): drawn in the shaft column.
  const shaft = devices.filter((d) => d.floor === null || d.floor === undefined);
  const x = labelW + bandW + 10;
  svg.append(el("rect", { class: "shaft", x, y: 10, width: shaftW - 10, height: floors.length * rowH - 4, rx: 4 }));
  shaft.forEach((d, j) => {
    svg.append(el("circle", {
      class: `marker ${markerState(d)}`, cx: x + (shaftW - 10) / 2, cy: 26 + j * 24, r: 8, "data-device": d.id,
    }, el("title", {}, deviceTitle(d))));
  });
  return svg;
}

// One floor: units above and below a corridor; unit devices inside their unit, the others on the corridor.
export function floorSvg(building, floor, devices, { unit, device, onDevice, pins = [] } = {}) {
  const here = devices.filter((d) => d.floor === floor);
  const units = [...new Set(here.map((d) => d.unit).filter(Boolean))];
  const count = Math.max(building.units_per_floor || 0, units.length, 2);
  for (let i = 1; units.length < count; i++) {
    const name = `${floor}${String(i).padStart(2, "0")}`;
    if (!units.includes(name)) units.push(name);
  }
  units.sort((a, b) => a.localeCompare(b, "zh-CN", { numeric: true }));
  const W = 640, H = 300, cor = 60;
  const perRow = Math.ceil(units.length / 2);
  const uw = (W - 20) / perRow, uh = (H - 20 - cor) / 2;
  const sev = building.alarmed_floors.find((a) => a.floor === floor)?.severity;
  const svg = el("svg", {
    class: `map floor-plan${sev ? ` alarmed sev-${sev}` : ""}`, viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${building.name} ${floorName(floor)}`, "data-floor": floor,
  });
  svg.append(el("rect", { class: "outline", x: 5, y: 5, width: W - 10, height: H - 10, rx: 6 }));
  const boxes = new Map();
  units.forEach((u, i) => {
    const top = i < perRow;
    const x = 10 + (top ? i : i - perRow) * uw;
    const y = top ? 10 : 10 + uh + cor;
    boxes.set(u, { x, y });
    svg.append(el("g", { class: `unit${u === unit ? " target" : ""}`, "data-unit": u },
      el("rect", { x: x + 2, y, width: uw - 4, height: uh, rx: 4 }),
      el("text", { x: x + uw / 2, y: y + 22, class: "unit-label" }, t("map.unit", { u })),
    ));
  });
  svg.append(el("text", { x: W / 2, y: 10 + uh + cor / 2 + 5, class: "corridor-label" }, t("map.corridor")));
  const perUnit = new Map();
  let onCorridor = 0;
  const corridorCount = here.filter((d) => !(d.unit && boxes.has(d.unit))).length;
  const spacing = Math.min(130, (W - 60) / Math.max(1, corridorCount));
  for (const d of here) {
    let cx, cy;
    if (d.unit && boxes.has(d.unit)) {
      const b = boxes.get(d.unit);
      const k = perUnit.get(d.unit) ?? 0;
      perUnit.set(d.unit, k + 1);
      cx = b.x + 24 + k * 26;
      cy = b.y + uh - 24;
    } else {
      cx = 50 + onCorridor * spacing;
      cy = 10 + uh + cor / 2 - 12;
      onCorridor += 1;
    }
    svg.append(el("g", {
      class: `device${d.id === device ? " target" : ""}`, "data-device": d.id, tabindex: 0,
      onclick: () => onDevice && onDevice(d),
    },
      el("title", {}, deviceTitle(d)),
      el("circle", { class: `marker ${markerState(d)}`, cx, cy, r: 10 }),
      el("text", { x: cx, y: cy + 24, class: "device-label" }, d.name || d.id),
    ));
  }
  pins.filter((a) => a.floor === floor).forEach((a, j) => {
    const b = a.unit && boxes.get(a.unit);
    svg.append(pin(a, b ? b.x + uw - 30 : W - 40 - j * 40, b ? b.y + 30 : 10 + uh + cor / 2 - 12, 12));
  });
  return svg;
}

// An alarm located away from its device (a fire panel's zone on this floor): a diamond in the alarm colour.
function pin(a, cx, cy, r) {
  return el("g", { class: `pin sev-${a.severity}${a.acknowledged ? " acked" : ""}`, "data-alarm": a.id },
    el("title", {}, `${typeLabel(a.type, { profile: a.profile_id, key: a.key, detail: a.detail })} · ${a.device_id}`),
    el("polygon", { points: `${cx},${cy - r} ${cx + r},${cy} ${cx},${cy + r} ${cx - r},${cy}` }));
}

export function worstFirst(a, b) {
  return (SEV_RANK[a.severity] ?? 9) - (SEV_RANK[b.severity] ?? 9) || b.id - a.id;
}
