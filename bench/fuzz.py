"""Fuzzing: the API (schemathesis, a token per role), payload decode, the profile loader and the Modbus codec.

    .venv/bin/python bench/fuzz.py            # ≥ 10,000 inputs per target (about 15-20 min on 2 cores)
    .venv/bin/python bench/fuzz.py --quick    # a few hundred per target (about 1-2 min)

The API runs for real (uvicorn + PostgreSQL in a throw-away database, seeded with a site, grids, devices,
an alarm and a work order, one user per role); every operation of ``/api/openapi.json`` gets valid and
invalid cases (schemathesis ``positive`` / ``negative``) as admin, property manager, grid worker, installer
and anonymous. A 5xx is a server error; for the other targets an exception other than the part's own error
is a crash (targets in ``bench/_fuzz_targets.py``). Baseline measured in the same run: plain ``GET
/api/health`` requests per second, against which the fuzzing request rate is given as a ratio.

Last line: one JSON object (``api_requests``, ``api_server_errors``, ``decode_inputs``, ``decode_crashes``,
``profile_inputs``, ``profile_crashes``, ``modbus_inputs``, ``modbus_crashes``, rates per second).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import emit, free_port, throwaway_database
from bench._fuzz_targets import (
    ProfileChecker,
    check_decode,
    check_modbus,
    decode_inputs,
    fuzz_api,
    modbus_inputs,
    profile_inputs,
    run,
)
from cloud.alarms.testkit import insert_event, migrate_all, seed
from cloud.api.config import ApiConfig
from cloud.auth.roles import Role
from cloud.auth.store import add_user
from cloud.config import BackendConfig
from cloud.db import DatabaseConfig
from cloud.serve import Backend

PASSWORD = "fuzz-password-123"
USERS = {"admin": (Role.ADMIN, None), "pm": (Role.PROPERTY_MANAGER, None), "worker1": (Role.GRID_WORKER, "g1"),
         "installer": (Role.INSTALLER, None)}


class NullPublisher:
    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        return None


@contextmanager
def running_backend(dsn: str) -> Iterator[str]:
    """The API and decision engine in a thread of their own (their own event loop); yields the base URL."""
    port = free_port()
    config = BackendConfig(
        database=DatabaseConfig(dsn=dsn, pool_max=4),
        api=ApiConfig(port=port, jwt_secret="fuzz-secret-" + "x" * 32, evidence_dir=Path(tempfile.mkdtemp()),
                      gateway_upload_token="fuzz-gateway-token-0123"),
    )
    started = threading.Event()
    failure: list[BaseException] = []
    holder: dict[str, Any] = {}

    async def main() -> None:
        backend = Backend(config, publisher=NullPublisher(), run_timers=False)
        stop = asyncio.Event()
        holder["loop"], holder["stop"] = asyncio.get_running_loop(), stop
        try:
            await backend.start()
            assert backend.pool is not None
            async with backend.pool.connection() as conn:
                for name, (role, grid) in USERS.items():
                    await add_user(conn, name, PASSWORD, role, grid_id=grid)
        except BaseException as exc:
            failure.append(exc)
            started.set()
            raise
        started.set()
        try:
            await stop.wait()
        finally:
            await backend.stop()

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="fuzz-backend", daemon=True)
    thread.start()
    started.wait(60)
    if failure:
        raise RuntimeError(f"backend did not start: {failure[0]!r}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(30)


def tokens(base_url: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {"anonymous": {}}
    with httpx.Client(base_url=base_url) as client:
        for name in USERS:
            r = client.post("/api/auth/token", data={"username": name, "password": PASSWORD})
            r.raise_for_status()
            out[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return out


def health_rate(base_url: str, seconds: float) -> float:
    import requests

    session = requests.Session()
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        session.get(f"{base_url}/api/health", timeout=10).raise_for_status()
        n += 1
    return n / (time.monotonic() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (a few hundred inputs per target)")
    parser.add_argument("--examples", type=int, default=None, help="inputs per local target (default 10,000)")
    parser.add_argument("--api-examples", type=int, default=None,
                        help="cases per operation × mode × role (default 30; quick: 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--targets", default="api,decode,profile,modbus", help="comma-separated subset to run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    examples = args.examples or (300 if args.quick else 10_000)
    api_examples = args.api_examples or (3 if args.quick else 30)
    result: dict[str, Any] = {"quick": args.quick}
    targets = set(args.targets.split(","))
    if "api" in targets:
        fuzz_the_api(result, args.quick, api_examples)
    local = (("decode", decode_inputs(), check_decode), ("profile", profile_inputs(), None),
             ("modbus", modbus_inputs(), check_modbus))
    checker = ProfileChecker()
    try:
        for name, strategy, check in local:
            if name not in targets:
                continue
            t0 = time.monotonic()
            got = run(strategy, check or checker, examples, seed=args.seed)
            took = time.monotonic() - t0
            print(f"{name}: {got.inputs} inputs in {took:.0f} s ({got.inputs / took:.0f}/s), "
                  f"{len(got.crashes)} crashes")
            for c in got.crashes[:20]:
                print(f"  CRASH {c}")
            result[f"{name}_inputs"] = got.inputs
            result[f"{name}_crashes"] = len(got.crashes)
            result[f"{name}_inputs_per_s"] = round(got.inputs / took, 1)
    finally:
        checker.close()
    emit(result)
    failed = result.get("api_server_errors") or any(result.get(f"{n}_crashes") for n in ("decode", "profile", "modbus"))
    return 1 if failed else 0


def fuzz_the_api(result: dict[str, Any], quick: bool, api_examples: int) -> None:
    with throwaway_database() as dsn:
        migrate_all(dsn)
        seed(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            insert_event(conn, "door1", "door.forced_open", severity="major")  # an alarm and a work order
        with running_backend(dsn) as base_url:
            auth = tokens(base_url)
            baseline = health_rate(base_url, 2.0 if quick else 5.0)
            t0 = time.monotonic()
            api = fuzz_api(base_url, auth, api_examples)
            api_s = time.monotonic() - t0
    rate = api.requests / api_s if api_s else 0.0
    print(f"api: {api.requests} requests in {api_s:.0f} s ({rate:.0f}/s; GET /api/health baseline "
          f"{baseline:.0f}/s, ratio {rate / baseline:.2f}); statuses {dict(sorted(api.statuses.items()))}")
    for e in api.server_errors[:20]:
        print(f"  SERVER ERROR {e}")
    result.update(api_requests=api.requests, api_server_errors=len(api.server_errors),
                  api_requests_per_s=round(rate, 1), api_health_baseline_per_s=round(baseline, 1),
                  api_rate_ratio_to_baseline=round(rate / baseline, 3) if baseline else None)



if __name__ == "__main__":
    sys.exit(main())
