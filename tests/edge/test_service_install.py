"""``xiaoqu edge install-service`` against a temporary root; the shipped unit; NOTIFY_SOCKET parsing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edge.service_install import unit_template
from edge.watchdog import Notifier

REPO = Path(__file__).resolve().parents[2]


def _xiaoqu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xiaoqu", "edge", *args], capture_output=True, text=True, cwd=REPO)


def _unit_settings(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def test_the_shipped_unit_is_a_watched_notify_service() -> None:
    unit = _unit_settings(unit_template())
    assert unit["Type"] == "notify" and unit["Restart"] == "always" and float(unit["WatchdogSec"]) > 0
    assert unit["StateDirectory"] == "xiaoqu" and unit["ConfigurationDirectory"] == "xiaoqu"
    assert unit["ExecStart"] == "@XIAOQU@ edge run --config /etc/xiaoqu/gateway.yaml"
    assert (REPO / "packaging/systemd/xiaoqu-edge.service").read_text() == unit_template()


def test_install_service_writes_the_unit_and_folders(tmp_path: Path) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text("gateway_id: gw-i\nsite: s1\noutbox: {path: /var/lib/xiaoqu/outbox.sqlite3}\n")
    root = tmp_path / "root"
    out = _xiaoqu("install-service", "--root", str(root), "--config", str(config), "--exec", "/opt/xq/bin/xiaoqu")
    assert out.returncode == 0, out.stderr
    unit = _unit_settings((root / "etc/systemd/system/xiaoqu-edge.service").read_text())
    assert unit["ExecStart"] == "/opt/xq/bin/xiaoqu edge run --config /etc/xiaoqu/gateway.yaml"
    assert (root / "etc/xiaoqu/gateway.yaml").read_text() == config.read_text()
    assert (root / "var/lib/xiaoqu").is_dir() and (root / "etc/xiaoqu").stat().st_mode & 0o777 == 0o750
    assert "warning" not in out.stderr

    # A different config is not overwritten without --force; a state path the service cannot write is flagged.
    other = tmp_path / "other.yaml"
    other.write_text("gateway_id: gw-i\nsite: s1\noutbox: {path: ./outbox.sqlite3}\n")
    out = _xiaoqu("install-service", "--root", str(root), "--config", str(other))
    assert out.returncode == 0 and "exists and differs" in out.stderr
    out = _xiaoqu("install-service", "--root", str(root), "--config", str(other), "--force")
    assert out.returncode == 0 and "outbox.path" in out.stderr and "outside /var/lib/xiaoqu" in out.stderr


def test_install_service_refuses_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text("gateway_id: gw-i\nsite: s1\noutbox: {path: /var/lib/xiaoqu/o.sqlite3}\nmetrics_port: x\n")
    out = _xiaoqu("install-service", "--root", str(tmp_path / "root"), "--config", str(config))
    assert out.returncode == 2 and "gw.yaml:4: metrics_port" in out.stderr
    assert not (tmp_path / "root").exists()


def test_notifier_from_env() -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": "@sd", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())})
    assert n.socket_path == "@sd" and n.watchdog_period_s == 15.0
    assert Notifier.from_env({"NOTIFY_SOCKET": "@sd", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) \
        .watchdog_period_s is None  # the pings are someone else's (our parent's)
    assert Notifier.from_env({}).send("READY=1") is False  # not under a service manager: a no-op
