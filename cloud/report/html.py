"""The fire-drill report as one self-contained HTML file: inline CSS and an inline SVG timeline, no scripts,
no fonts or libraries from a CDN — it opens offline and can be archived with the drill record."""

from __future__ import annotations

import html
from datetime import datetime, timedelta, tzinfo
from typing import Any

from cloud.report.drill import DrillReport, LinkageCommand, Signal

LEFT = 260  # label column of the chart, px
WIDTH = 1100
ROW = 28

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Noto Sans CJK SC","PingFang SC",sans-serif;margin:24px;color:#1d2433}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde2ea}
.meta{color:#5a6478}.pass{color:#13795b;font-weight:600}.fail{color:#c2261d;font-weight:600}.na{color:#8a93a6}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #dde2ea;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f9}td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{font-size:18px;margin:12px 0}.legend span{margin-right:16px}svg text{font:12px system-ui,sans-serif}
"""


def _fmt_time(t: datetime | None, tz: tzinfo) -> str:
    return "—" if t is None else t.astimezone(tz).strftime("%H:%M:%S.%f")[:-3]


def _fmt_s(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f} s"


def _verdict(ok: bool | None, none_text: str = "not recorded") -> str:
    if ok is None:
        return f'<span class="na">{none_text}</span>'
    return '<span class="pass">PASS</span>' if ok else '<span class="fail">FAIL</span>'


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def render_html(report: DrillReport, tz: tzinfo) -> str:
    q = report.query
    fig = report.figures()
    title = f"Fire-drill report — {q.building or 'all buildings'}"
    head = (f'<p class="meta">{_e(q.since.astimezone(tz).isoformat(timespec="seconds"))} → '
            f'{_e(q.until.astimezone(tz).isoformat(timespec="seconds"))} (times {_e(tz)})'
            + (f" · site {_e(q.site)}" if q.site else "")
            + (f" · scenario {_e(report.scenario)}" if report.scenario else "") + "</p>")
    if report.signals:
        overall = (f'<p class="verdict">{_verdict(report.passed)} — {fig["signals_within_limit"]} of '
                   f'{fig["signals"]} signals within the GB/T 26875.1 limit of {report.limit_s:g} s '
                   f'(transmission median {_fmt_s(fig["transmission_median_s"])}, '
                   f'max {_fmt_s(fig["transmission_max_s"])}'
                   f'; shown on a console: {fig["shown_signals"]} of {fig["signals"]}'
                   + (f', median {_fmt_s(fig["display_median_s"])}' if fig["shown_signals"] else "") + ")</p>")
    else:
        overall = '<p class="verdict fail">No fire or smoke signal was recorded in this window.</p>'
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{_e(title)}</title>",
        f"<style>{CSS}</style></head><body>", f"<h1>{_e(title)}</h1>", head, overall,
        "<h2>Timeline</h2>", _chart(report, tz), _legend(),
        "<h2>Signals</h2>", _signals_table(report.signals, tz, report.limit_s),
        "<h2>Linkage commands</h2>", _linkage_table(report.linkage, tz),
        "<h2>Acknowledgements</h2>", _acks_table(report.signals, tz),
    ]
    if report.incidents:
        parts += ["<h2>Incidents</h2>", _incidents_table(report, tz)]
    parts += [
        "<h2>How the figures are measured</h2>",
        "<ul><li><b>seen</b>: the event's observation time, stamped by the gateway when it read the device "
        "(<code>events.ts</code>).</li><li><b>stored</b>: when the backend's ingest received it; it is committed "
        "with that time (<code>events.received_at</code>).</li><li><b>shown</b>: when the backend pushed the "
        "alarm's raise to a connected console over the WebSocket (the alarm timeline's <code>shown</code> entry); "
        "none when no console was connected.</li><li><b>transmission</b> = stored − seen, against GB/T 26875.1 "
        f"§4.1.2.1 (≤ {report.limit_s:g} s); <b>display</b> = shown − seen, against the fire-control-room display "
        f"rule (≤ {report.limit_s:g} s). A signal passes when both hold (display only where recorded).</li>"
        "<li><b>injected</b> (with a simulator report): when the simulator set the device; injected → seen is "
        "the gateway's detection time (its poll interval), not part of the limit.</li>"
        "<li>Clocks: seen is the gateway's clock, stored and shown the backend's; a skew between them shows "
        "up in transmission.</li></ul>",
        f'<p class="meta">Generated {_e(datetime.now(tz).isoformat(timespec="seconds"))} by '
        "<code>xiaoqu report drill</code>.</p></body></html>",
    ]
    return "\n".join(parts)


def _signals_table(signals: list[Signal], tz: tzinfo, limit: float) -> str:
    rows = ["<table><tr><th>signal</th><th>device</th><th>where</th><th>injected</th><th>seen (gateway)</th>"
            "<th>stored (backend)</th><th>shown (console)</th><th>transmission</th>"
            f"<th>≤ {limit:g} s</th><th>display</th><th>≤ {limit:g} s</th><th>alarm</th><th>readings</th></tr>"]
    for s in signals:
        readings = ", ".join(f"{k}={v}" for k, v in s.readings.items())
        alarm = f"#{s.alarm_id} ({s.alarm_outcome})" if s.alarm_id is not None else (s.alarm_outcome or "—")
        rows.append(
            f"<tr><td>{_e(s.key)}</td><td>{_e(s.device_id)}</td><td>{_e(s.where)}</td>"
            f"<td>{_fmt_time(s.injected_at, tz)}</td><td>{_fmt_time(s.seen_at, tz)}</td>"
            f"<td>{_fmt_time(s.stored_at, tz)}</td><td>{_fmt_time(s.shown_at, tz)}"
            f"{' to ' + _e(s.shown_to) if s.shown_to else ''}</td>"
            f'<td class="num">{_fmt_s(s.transmission_s)}</td><td>{_verdict(s.transmission_ok)}</td>'
            f'<td class="num">{_fmt_s(s.display_s)}</td><td>{_verdict(s.display_ok, "no console")}</td>'
            f"<td>{_e(alarm)}</td><td>{_e(readings)}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _linkage_table(commands: list[LinkageCommand], tz: tzinfo) -> str:
    if not commands:
        return '<p class="na">No linkage command in this window.</p>'
    rows = ["<table><tr><th>by</th><th>origin</th><th>command</th><th>device</th><th>issued</th><th>sent</th>"
            "<th>outcome</th><th>at</th><th>reason</th></tr>"]
    for c in commands:
        cls = "pass" if c.outcome == "succeeded" else "fail" if c.outcome in (
            "failed", "timed_out", "rejected", "expired", "refused") else "na"
        rows.append(
            f"<tr><td>{_e(c.source)}</td><td>{_e(c.origin)}</td><td>{_e(c.command)}</td><td>{_e(c.device_id)}</td>"
            f"<td>{_fmt_time(c.issued_at, tz)}</td><td>{_fmt_time(c.sent_at, tz)}</td>"
            f'<td class="{cls}">{_e(c.outcome)}</td><td>{_fmt_time(c.finished_at, tz)}</td>'
            f"<td>{_e(c.reason)}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _acks_table(signals: list[Signal], tz: tzinfo) -> str:
    seen: set[int] = set()
    rows = ["<table><tr><th>alarm</th><th>signal</th><th>raised</th><th>acknowledged by</th><th>at</th>"
            "<th>after the signal was seen</th><th>cleared</th></tr>"]
    for s in signals:
        if s.alarm_id is None or s.alarm_id in seen:
            continue
        seen.add(s.alarm_id)
        after = None if s.acked_at is None else (s.acked_at - s.seen_at).total_seconds()
        rows.append(
            f"<tr><td>#{s.alarm_id}</td><td>{_e(s.key)} {_e(s.device_id)}</td><td>{_fmt_time(s.alarm_at, tz)}</td>"
            f"<td>{_e(s.acked_by) or '<span class=fail>not acknowledged</span>'}</td>"
            f'<td>{_fmt_time(s.acked_at, tz)}</td><td class="num">{_fmt_s(after)}</td>'
            f"<td>{_fmt_time(s.cleared_at, tz)}</td></tr>")
    rows.append("</table>")
    return "".join(rows) if seen else '<p class="na">No alarm was raised from these signals.</p>'


def _incidents_table(report: DrillReport, tz: tzinfo) -> str:
    rows = ["<table><tr><th>incident</th><th>kind</th><th>building</th><th>opened</th><th>closed</th>"
            "<th>alarms</th></tr>"]
    for i in report.incidents:
        rows.append(f"<tr><td>#{i.id}</td><td>{_e(i.kind)}</td><td>{_e(i.building)}</td>"
                    f"<td>{_fmt_time(i.opened_at, tz)}</td><td>{_fmt_time(i.closed_at, tz)}</td>"
                    f"<td>{_e(', '.join(f'#{a}' for a in i.alarm_ids))}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _legend() -> str:
    return ('<p class="legend meta"><span>○ injected</span><span style="color:#2563eb">● seen by the gateway</span>'
            '<span>■ stored by the backend</span><span style="color:#d97706">▲ shown on a console</span>'
            '<span style="color:#7c3aed">◆ acknowledged</span><span style="background:#dcfce7">&nbsp;10 s limit&nbsp;'
            '</span><span style="color:#13795b">━ command succeeded</span><span style="color:#c2261d">━ failed / '
            "timed out</span></p>")


def _chart(report: DrillReport, tz: tzinfo) -> str:
    """Inline SVG: one row per signal (its 10 s window, seen → stored → shown, acknowledged), then one row per
    linkage command (issued → outcome)."""
    times: list[datetime] = []
    for s in report.signals:
        times += [t for t in (s.injected_at, s.seen_at, s.stored_at, s.shown_at, s.acked_at) if t is not None]
    for c in report.linkage:
        times += [t for t in (c.issued_at, c.finished_at) if t is not None]
    if not times:
        return '<p class="na">Nothing to draw.</p>'
    t0, t1 = min(times), max(times)
    if report.signals:
        t1 = max(t1, max(s.seen_at for s in report.signals) + timedelta(seconds=report.limit_s))
    span = (t1 - t0).total_seconds() * 1.04 + 1
    plot = WIDTH - LEFT - 20

    def x(t: datetime) -> float:
        return LEFT + (t - t0).total_seconds() / span * plot

    rows = len(report.signals) + len(report.linkage)
    height = 40 + ROW * max(rows, 1) + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img" '
           f'aria-label="drill timeline">']
    step = _tick_step(span)
    tick = 0.0
    while tick <= span:
        px = LEFT + tick / span * plot
        out.append(f'<line x1="{px:.1f}" y1="24" x2="{px:.1f}" y2="{height - 6}" stroke="#eef1f5"/>'
                   f'<text x="{px:.1f}" y="16" text-anchor="middle" fill="#5a6478">+{tick:g}s</text>')
        tick += step
    out.append(f'<text x="4" y="16" fill="#5a6478">t0 = {_e(_fmt_time(t0, tz))}</text>')
    y = 34
    for s in report.signals:
        mid = y + ROW / 2
        label = f"{s.key} · {s.device_id}"
        out.append(f'<text x="4" y="{mid + 4:.1f}">{_e(label[:38])}<title>{_e(label)} {_e(s.where)}</title></text>')
        lim_x0, lim_x1 = x(s.seen_at), min(LEFT + plot, x(s.seen_at) + report.limit_s / span * plot)
        out.append(f'<rect x="{lim_x0:.1f}" y="{y + 4}" width="{lim_x1 - lim_x0:.1f}" height="{ROW - 8}" '
                   f'fill="#dcfce7"><title>GB/T 26875.1: {report.limit_s:g} s from seen</title></rect>')
        end = s.shown_at or s.stored_at
        colour = "#13795b" if s.passed else "#c2261d"
        out.append(f'<line x1="{x(s.seen_at):.1f}" y1="{mid}" x2="{x(end):.1f}" y2="{mid}" stroke="{colour}" '
                   f'stroke-width="3"/>')
        if s.injected_at is not None:
            out.append(f'<circle cx="{x(s.injected_at):.1f}" cy="{mid}" r="5" fill="#fff" stroke="#5a6478">'
                       f"<title>injected {_e(_fmt_time(s.injected_at, tz))}</title></circle>")
        out.append(f'<circle cx="{x(s.seen_at):.1f}" cy="{mid}" r="5" fill="#2563eb"><title>seen by the gateway '
                   f"{_e(_fmt_time(s.seen_at, tz))}</title></circle>")
        sx = x(s.stored_at)
        out.append(f'<rect x="{sx - 4:.1f}" y="{mid - 4}" width="8" height="8" fill="#1d2433"><title>stored '
                   f"{_e(_fmt_time(s.stored_at, tz))} (+{s.transmission_s:.2f} s)</title></rect>")
        if s.shown_at is not None:
            hx = x(s.shown_at)
            out.append(f'<path d="M{hx:.1f},{mid - 6} L{hx + 6:.1f},{mid + 5} L{hx - 6:.1f},{mid + 5} Z" '
                       f'fill="#d97706"><title>shown on a console {_e(_fmt_time(s.shown_at, tz))} '
                       f"(+{s.display_s or 0:.2f} s)</title></path>")
        if s.acked_at is not None:
            ax = x(s.acked_at)
            out.append(f'<path d="M{ax:.1f},{mid - 7} L{ax + 6:.1f},{mid} L{ax:.1f},{mid + 7} L{ax - 6:.1f},{mid} Z" '
                       f'fill="#7c3aed"><title>acknowledged by {_e(s.acked_by)} '
                       f"{_e(_fmt_time(s.acked_at, tz))}</title></path>")
        y += ROW
    for c in report.linkage:
        mid = y + ROW / 2
        label = f"{c.command} → {c.device_id}"
        out.append(f'<text x="4" y="{mid + 4:.1f}" fill="#334">{_e(label[:38])}<title>{_e(c.origin)}: {_e(label)}'
                   "</title></text>")
        colour = "#13795b" if c.outcome == "succeeded" else "#c2261d" if c.outcome in (
            "failed", "timed_out", "rejected", "expired", "refused") else "#8a93a6"
        x0 = x(c.issued_at)
        x1 = x(c.finished_at) if c.finished_at is not None else x0
        out.append(f'<rect x="{x0:.1f}" y="{mid - 4}" width="{max(x1 - x0, 3):.1f}" height="8" fill="{colour}">'
                   f"<title>{_e(c.source)} {_e(c.origin)}: {_e(c.command)} {_e(c.outcome)} "
                   f"{_e(c.reason or '')}</title></rect>")
        y += ROW
    out.append("</svg>")
    return "".join(out)


def _tick_step(span: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if span / step <= 14:
            return float(step)
    return 7200.0
