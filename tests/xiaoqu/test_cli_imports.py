"""The ``xiaoqu`` command loads no part's packages until a command runs, and names the missing extra."""

from __future__ import annotations

import subprocess
import sys

from xiaoqu.commands import missing_extra_message

HEAVY = {"psycopg", "psycopg_pool", "fastapi", "uvicorn", "starlette", "cv2", "onnxruntime", "numpy", "pymodbus",
         "paho"}


def test_importing_the_command_loads_no_part_packages() -> None:
    code = f"import sys, xiaoqu.cli; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(HEAVY)!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_missing_package_names_the_extra_of_the_command() -> None:
    msg = missing_extra_message(["-v", "cloud", "migrate"], ModuleNotFoundError("no", name="psycopg"))
    assert msg is not None and "pip install 'xiaoqu[cloud]'" in msg and "'psycopg'" in msg and "\n" not in msg
    msg = missing_extra_message(["onboard", "probe"], ModuleNotFoundError("no", name="pymodbus.client"))
    assert msg is not None and "xiaoqu[edge]" in msg
    assert "xiaoqu[edge,cloud,sim]" in (missing_extra_message(["demo"], ModuleNotFoundError(name="fastapi")) or "")


def test_a_missing_module_of_our_own_is_a_bug_not_an_install_choice() -> None:
    assert missing_extra_message(["cloud", "serve"], ModuleNotFoundError("no", name="cloud.nothing")) is None
