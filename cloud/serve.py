"""Composition root of ``xiaoqu cloud serve``: loads the config once, starts the API and the decision engine.

The engine is fed by ``LISTEN xq_events`` (ingest notifies in its commit); the API and the engine share
one change bus, so the WebSocket pushes what the engine decides without touching the database again. The
bus is relayed between ``serve`` processes over ``NOTIFY xq_changes`` (:class:`PgChangeRelay`), so several
processes behind a load balancer all push every change to their browsers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import uvicorn
from psycopg_pool import AsyncConnectionPool
from pydantic import Field
from ruamel.yaml import YAML

from cloud.alarms.bus import ChangeBus, PgChangeRelay
from cloud.alarms.engine import DecisionEngine
from cloud.alarms.rules import Rules, load_rules
from cloud.api.app import create_app
from cloud.api.config import ApiConfig
from cloud.api.deps import AppState
from cloud.db import DatabaseConfig
from cloud.dispatch.commands import CommandTimeouts, Publisher
from cloud.dispatch.mqtt import MqttPublisher, PublisherConfig
from cloud.dispatch.notify import ChannelConfig, LogConfig, Notifier, build_channel
from contract.base import StrictModel
from contract.clock import Clock, SystemClock
from device_profiles import load_catalog

log = logging.getLogger(__name__)


def _default_channels() -> list[ChannelConfig]:
    return [LogConfig()]


class ServeConfig(StrictModel):
    database: DatabaseConfig = DatabaseConfig()
    mqtt: PublisherConfig = PublisherConfig()
    api: ApiConfig
    rules: Path | None = Field(default=None, description="rules YAML; the shipped cloud/alarms/rules.yaml if unset")
    profiles: list[Path] | None = Field(
        default=None, description="device profile folders (the commands' timeouts); the shipped profiles if unset"
    )
    notifications: list[ChannelConfig] = Field(default_factory=lambda: _default_channels())
    timer_interval_s: float = Field(default=1.0, gt=0)


def load_config(path: Path) -> ServeConfig:
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
    return ServeConfig.model_validate(data)


class Backend:
    """API + decision engine in one process (also used by tests and the latency benchmark)."""

    def __init__(
        self,
        config: ServeConfig,
        *,
        rules: Rules | None = None,
        clock: Clock | None = None,
        publisher: Publisher | None = None,
        run_timers: bool = True,
    ) -> None:
        self.config = config
        self.rules = rules or load_rules(config.rules)
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
            self._own_mqtt = MqttPublisher(self.config.mqtt)
            await asyncio.to_thread(self._own_mqtt.start)
            publisher = self._own_mqtt
        notifier = Notifier([build_channel(c) for c in self.config.notifications])
        # One catalog (shipped profiles plus the configured folders) for command checks and their timeouts.
        catalog = load_catalog(self.config.profiles)
        self.engine = DecisionEngine(
            self.pool, self.rules, clock=self.clock, publisher=publisher, bus=self.bus, notifier=notifier,
            catalog=catalog, command_timeouts=CommandTimeouts(catalog),
        )
        app = create_app(AppState(self.config.api, self.pool, self.engine, self.bus, self.clock))
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=self.config.api.host,
                port=self.config.api.port,
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
            self._tasks.append(asyncio.create_task(self.engine.run_timers(self._stop, self.config.timer_interval_s)))
        self._tasks.append(asyncio.create_task(self.server.serve()))
        await asyncio.wait_for(ready.wait(), 10)
        await asyncio.wait_for(relaying.wait(), 10)
        while not self.server.started:
            await asyncio.sleep(0.02)
        log.info("API on http://%s:%d/api/docs; engine listening", self.config.api.host, self.config.api.port)

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


def serve(config: ServeConfig) -> None:
    """Run until interrupted."""
    backend = Backend(config)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(backend.run_forever())
