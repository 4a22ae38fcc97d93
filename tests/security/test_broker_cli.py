"""`xiaoqu cloud broker init / add-gateway`: the files an installer gets, their modes, clear refusals."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from cloud.broker import pki
from cloud.broker.cli import app


def xq(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    result.returncode = result.exit_code  # type: ignore[attr-defined]
    return result


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_init_and_add_gateway_write_what_the_installer_needs(tmp_path: Path) -> None:
    d = tmp_path / "broker"
    done = xq("init", "--dir", str(d), "--hostname", "mqtt.example.cn", "--hostname", "10.20.0.5")
    assert done.returncode == 0, done.stderr
    assert "xq-ingest" in done.stdout and "conf.d/xiaoqu.conf" in done.stdout
    assert mode(d / "ca" / "ca.key") == 0o600
    assert mode(d / "credentials" / "ingest.yaml") == 0o600
    conf = (d / "xiaoqu.conf").read_text()
    for line in ("allow_anonymous false", "listener 1883 127.0.0.1", "listener 8883 0.0.0.0",
                 "require_certificate true", f"acl_file {d / 'acl'}"):
        assert line in conf
    again = xq("init", "--dir", str(d))
    assert again.returncode == 1 and "already set up" in again.stderr
    assert xq("add-gateway", "b3-gw", "--site", "demo", "--dir", str(d)).returncode == 0
    creds = d / "credentials" / "gateways" / "b3-gw"
    uplink = json.loads((creds / "uplink.yaml").read_text())["uplink"]
    assert uplink["url"] == "mqtts://mqtt.example.cn:8883" and uplink["username"] == "b3-gw"
    assert mode(creds / "client.key") == 0o600 and mode(creds / "uplink.yaml") == 0o600
    assert pki.common_name(creds / "client.crt") == "b3-gw"
    passwd = (d / "passwd").read_text()
    assert passwd.count("\n") == 3 and uplink["password"] not in passwd  # hashed, never the password
    acl = (d / "acl").read_text()
    assert "user b3-gw\ntopic write xq/v1/demo/b3-gw/telemetry" in acl
    bad = xq("add-gateway", "bad/id", "--site", "demo", "--dir", str(d))
    assert bad.returncode == 1 and "gateway 'bad/id'" in bad.stderr
    missing = xq("revoke-gateway", "nope", "--dir", str(d), "--no-reload")
    assert missing.returncode == 1 and "no active gateway 'nope'" in missing.stderr
