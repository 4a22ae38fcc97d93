"""Reports built from the backend's records: the fire-drill report (``xiaoqu report drill``).

:mod:`cloud.report.drill` reads the records, :mod:`cloud.report.html` renders the page, :mod:`cloud.report.cli`
is the command. Nothing is imported here, so mounting the command loads no database driver.
"""
