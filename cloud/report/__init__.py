"""Reports built from the backend's records: the fire-drill report (``xiaoqu report drill``)."""

from cloud.report.drill import DrillQuery, DrillReport, build_drill_report, load_sim_report, write_drill_report
from cloud.report.html import render_html

__all__ = ["DrillQuery", "DrillReport", "build_drill_report", "load_sim_report", "render_html", "write_drill_report"]
