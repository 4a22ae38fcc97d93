"""``xiaoqu edge install-service``: the systemd unit, ``/etc/xiaoqu`` (config) and ``/var/lib/xiaoqu`` (state).

Writes below ``root`` (``/`` on a gateway; a temporary folder in tests or when building an image), never
runs systemctl: the command prints what to run next.
"""

from __future__ import annotations

import filecmp
import shutil
import sys
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

UNIT_NAME = "xiaoqu-edge.service"
UNIT_DIR = Path("etc/systemd/system")
CONFIG_DIR = Path("etc/xiaoqu")
STATE_DIR = Path("var/lib/xiaoqu")
CONFIG_NAME = "gateway.yaml"


def unit_template() -> str:
    return files("edge.systemd").joinpath(UNIT_NAME).read_text(encoding="utf-8")


def unit_text(xiaoqu: str) -> str:
    """The unit with ExecStart pointing at this install's ``xiaoqu`` executable."""
    return unit_template().replace("@XIAOQU@", xiaoqu)


def default_executable() -> str:
    here = Path(sys.executable).with_name("xiaoqu")
    return str(here) if here.exists() else (shutil.which("xiaoqu") or "/usr/local/bin/xiaoqu")


@dataclass
class InstallReport:
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def install_service(root: Path, xiaoqu: str, config: Path | None, *, force: bool = False) -> InstallReport:
    """Write the unit and make the config and state folders below ``root``; copy ``config`` in if given.

    An existing ``/etc/xiaoqu/gateway.yaml`` that differs is kept unless ``force``. The caller validated
    ``config`` (``xiaoqu edge check``) before.
    """
    report = InstallReport()
    unit = root / UNIT_DIR / UNIT_NAME
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(unit_text(xiaoqu), encoding="utf-8")
    unit.chmod(0o644)
    report.written.append(unit)
    for folder in (root / CONFIG_DIR, root / STATE_DIR):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o750)
    target = root / CONFIG_DIR / CONFIG_NAME
    if config is not None:
        if target.exists() and not force and not filecmp.cmp(config, target, shallow=False):
            report.kept.append(target)
            report.warnings.append(f"{target} exists and differs from {config}: kept (use --force to replace it)")
        else:
            shutil.copyfile(config, target)
            target.chmod(0o640)
            report.written.append(target)
    elif not target.exists():
        report.warnings.append(f"no {target} yet: copy your gateway config there (xiaoqu edge check validates it)")
    return report


def state_warnings(outbox_path: Path, snapshot_dir: Path | None, spool_dir: Path | None) -> list[str]:
    """The service may write only below /var/lib/xiaoqu (ProtectSystem=strict): paths elsewhere fail at start."""
    state = Path("/") / STATE_DIR
    out: list[str] = []
    for what, p in (("outbox.path", outbox_path), ("snapshot_dir", snapshot_dir), ("evidence.spool_dir", spool_dir)):
        if p is not None and not p.resolve().is_relative_to(state):
            out.append(f"{what} {p} is outside {state}: the service cannot write there (ProtectSystem=strict)")
    return out
