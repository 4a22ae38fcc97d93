// A work order's SLA state: time left to accept / arrive, or how late it is.

import { fmtDuration, t } from "./core.js";

export function slaText(o, now = Date.now()) {
  if (o.state === "open" || o.state === "assigned") {
    const left = new Date(o.dispatch_due).getTime() - now;
    return { text: left >= 0 ? t("order.acceptIn", { t: fmtDuration(left) }) : t("order.overdue", { t: fmtDuration(left) }), late: left < 0 || o.dispatch_breached };
  }
  if (o.state === "accepted") {
    const left = new Date(o.arrival_due).getTime() - now;
    return { text: left >= 0 ? t("order.arriveIn", { t: fmtDuration(left) }) : t("order.overdue", { t: fmtDuration(left) }), late: left < 0 || o.arrival_breached };
  }
  return { text: o.dispatch_breached || o.arrival_breached ? t("order.breached") : t("none"), late: o.dispatch_breached || o.arrival_breached };
}
