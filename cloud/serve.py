"""Composition root of ``xiaoqu cloud serve``: from the config loaded once (:mod:`cloud.config`), starts the
API and the decision engine.

The engine is fed by ``LISTEN xq_events`` (ingest notifies in its commit); the API and the engine share
one change bus, so the WebSocket pushes what the engine decides without touching the database again. The
bus is relayed between ``serve`` processes over ``NOTIFY xq_changes`` (:class:`PgChangeRelay`), so several
processes behind a load balancer all push every change to their browsers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import uvicorn
from psycopg_pool import AsyncConnectionPool

from cloud.alarms.bus import ChangeBus, PgChangeRelay
from cloud.alarms.engine import DecisionEngine
from cloud.alarms.rules import Rules
from cloud.api.app import create_app
from cloud.api.deps import AppState
from cloud.config import BackendConfig, load_decision
from cloud.dispatch.commands import CommandTimeouts, Publisher
from cloud.dispatch.mqtt import MqttPublisher
from cloud.dispatch.notify import Notifier, build_channel
from contract.clock import Clock, SystemClock
from device_profiles import Catalog, load_catalog

log = logging.getLogger(__name__)


class Backend:
    """API + decision engine in one process (also used by tests and the latency benchmark).

    ``rules`` and ``catalog`` are the ones the entry point checked (:func:`cloud.config.load_decision`);
    without them they are loaded here from ``config.decision``."""

    def __init__(
        self,
        config: BackendConfig,
        *,
        rules: Rules | None = None,
        catalog: Catalog | None = None,
        clock: Clock | None = None,
        publisher: Publisher | None = None,
        run_timers: bool = True,
    ) -> None:
        self.config = config
        self.api = config.require_api()
        # One catalog (shipped profiles plus the configured folders) for the rules, command checks and timeouts.
        self.catalog = catalog if catalog is not None else load_catalog(config.decision.profiles)
        self.rules = rules if rules is not None else load_decision(config, catalog=self.catalog)[0]
        self.clock = clock or SystemClock()
        self._publisher = publisher
        self._own_mqtt: MqttPublisher | None = None
        self._run_timers = run_timers
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.bus = ChangeBus()
        self.relay: PgChangeRelay | None = None
        self.pool: AsyncConnectionPool[Any] | None = None
        self.engine: DecisionEngine | None = None
        self.server: uvicorn.Server | None = None

    async def start(self) -> None:
        db = self.config.database
        self.pool = AsyncConnectionPool(
            db.dsn,
            min_size=db.pool_min,
            max_size=db.pool_max,
            open=False,
            kwargs={"application_name": "xiaoqu-decision"},
        )
        await self.pool.open(wait=True)
        publisher = self._publisher
        if publisher is None:
            self._own_mqtt = MqttPublisher(self.config.publisher_settings())
            await asyncio.to_thread(self._own_mqtt.start)
            publisher = self._own_mqtt
        notifier = Notifier([build_channel(c) for c in self.config.decision.notifications])
        catalog = self.catalog
        self.engine = DecisionEngine(
            self.pool, self.rules, clock=self.clock, publisher=publisher, bus=self.bus, notifier=notifier,
            catalog=catalog, command_timeouts=CommandTimeouts(catalog),
        )
        app = create_app(AppState(self.api, self.pool, self.engine, self.bus, self.clock))
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=self.api.host,
                port=self.api.port,
                log_level="warning",
                lifespan="off",
                ws="websockets-sansio",
                # Open WebSockets (a console kept open all day) must not hold a stop forever.
                timeout_graceful_shutdown=5,
            )
        )
        ready, relaying = asyncio.Event(), asyncio.Event()
        self.relay = PgChangeRelay(self.bus, db.dsn)
        self._tasks.append(asyncio.create_task(self.relay.run(self._stop, relaying)))
        self._tasks.append(asyncio.create_task(self.engine.listen(db.dsn, self._stop, ready)))
        if self._run_timers:
            interval = self.config.decision.timer_interval_s
            self._tasks.append(asyncio.create_task(self.engine.run_timers(self._stop, interval)))
        self._tasks.append(asyncio.create_task(self.server.serve()))
        await asyncio.wait_for(ready.wait(), 10)
        await asyncio.wait_for(relaying.wait(), 10)
        while not self.server.started:
            await asyncio.sleep(0.02)
        log.info("API on http://%s:%d/api/docs; engine listening", self.api.host, self.api.port)

    async def stop(self) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.should_exit = True
        for task in self._tasks[:-1]:  # listener and timers; the server task ends by itself
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._own_mqtt is not None:
            self._own_mqtt.stop()
        if self.pool is not None:
            await self.pool.close()

    async def run_forever(self) -> None:
        await self.start()
        try:
            await self._stop.wait()
        finally:
            await self.stop()


def serve(config: BackendConfig, rules: Rules, catalog: Catalog) -> None:
    """Run until interrupted (``rules`` and ``catalog`` as checked by :func:`cloud.config.load_decision`)."""
    backend = Backend(config, rules=rules, catalog=catalog)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(backend.run_forever())
