"""A small typed wrapper over paho-mqtt 2.x: connect (credentials, TLS), reconnect, subscribe, publish, ack.

paho runs the network on its own thread. Everything that crosses from that thread into asyncio goes through
:func:`call_in_loop` — messages, connection changes and publish completions awaited with ``await``. What
runs where:

- ``on_message``, ``on_connect``, ``on_disconnect``, ``on_subscribed``: in the event loop that was running
  when the client was started (``deliver="loop"``, the default), or in paho's network thread
  (``deliver="thread"``, for callers without an event loop, such as the ingest worker thread: keep them short).
- :meth:`Delivery.add_done_callback` callbacks: in paho's network thread as the PUBACK is read (or in the
  thread that calls :meth:`MqttClient.close`); they must not block and must not raise.

Received QoS 1 messages are acknowledged by paho when ``on_message`` returns, unless ``manual_ack=True``:
then nothing is acknowledged until :meth:`MqttClient.ack` — what lets ingest acknowledge only after its
database commit (unacknowledged messages of a persistent session are redelivered by the broker).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import uuid
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from contract.mqtt.errors import MqttConnectError, MqttNotConnected, MqttPublishError
from contract.mqtt.settings import MqttSettings

log = logging.getLogger(__name__)

Protocol = Literal["3.1.1", "5"]
Deliver = Literal["loop", "thread"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Message:
    """One received message. ``topic`` is the ``repr`` of its raw bytes when they are not UTF-8."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    session: int = 0
    """The broker session it came in (:meth:`MqttClient.ack` skips a message of a session the broker dropped)."""


@dataclass(frozen=True, slots=True)
class Will:
    """The last will: published by the broker when the connection ends without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class ConnectResult:
    session_present: bool
    """The broker still had this client id's session (persistent sessions only)."""


def call_in_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: Any) -> bool:
    """Run ``fn(*args)`` in ``loop`` (from any thread); False when the loop is already closed."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: nobody waits for this any more
        return False
    return True


def _settle_future(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


class Delivery:
    """A publish in flight: done on the broker's PUBACK (QoS 1), or once written (QoS 0).

    ``await delivery`` (or :meth:`wait` with a timeout) returns when it is done and raises
    :class:`MqttPublishError` if it failed (refused, or the client was closed first)."""

    __slots__ = ("_callbacks", "_error", "_finished", "_lock", "_waiters", "mid", "rc")

    def __init__(self, lock: threading.Lock, on_done: Callable[[Delivery], None] | None) -> None:
        self.mid = 0
        self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        """paho's result of handing the message over: not success means it is queued (no connection) or lost."""
        self._lock = lock
        self._finished = False
        self._error: MqttPublishError | None = None
        self._callbacks: list[Callable[[Delivery], None]] | None = [on_done] if on_done is not None else None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] | None = None

    @property
    def accepted(self) -> bool:
        """paho sent the message (or will, after a reconnect); False: see :attr:`rc`."""
        return self.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    @property
    def rc_text(self) -> str:
        """:attr:`rc` in words."""
        return paho.error_string(self.rc)

    def done(self) -> bool:
        return self._finished

    @property
    def ok(self) -> bool:
        """Done and acknowledged."""
        return self._finished and self._error is None

    @property
    def error(self) -> MqttPublishError | None:
        return self._error

    def add_done_callback(self, fn: Callable[[Delivery], None]) -> None:
        """Call ``fn(self)`` when done (in the completing thread), or now if it is done already."""
        with self._lock:
            if not self._finished:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        fn(self)

    async def wait(self, timeout: float | None = None) -> None:
        """Until done; :class:`MqttPublishError` if it failed or is not done within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] | None = None
        with self._lock:
            if not self._finished:
                future = loop.create_future()
                if self._waiters is None:
                    self._waiters = []
                self._waiters.append((loop, future))
        if future is not None:
            try:
                await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise MqttPublishError(f"message {self.mid}: no PUBACK within {timeout:g} s") from None
        if self._error is not None:
            raise self._error

    def __await__(self) -> Generator[Any, None, None]:
        return self.wait().__await__()

    def _finish(self, error: MqttPublishError | None) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self._error = error
            callbacks, self._callbacks = self._callbacks, None
            waiters, self._waiters = self._waiters, None
        if callbacks is not None:
            for fn in callbacks:
                fn(self)
        if waiters is not None:
            for loop, future in waiters:
                call_in_loop(loop, _settle_future, future, None, error)


_Hook = Callable[[T], None]


class MqttClient:
    """One broker connection (one paho client). See the module docstring for the threading rules.

    ``reconnect=True``: :meth:`start` / :meth:`connect` keep trying in the background and paho reconnects
    after a drop (backoff ``reconnect_min_s`` … ``reconnect_max_s``), resubscribing every filter given to
    :meth:`subscribe`. ``reconnect=False``: one connection; after it ends, :meth:`close` and make a new client.
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        client_id: str | None = None,
        protocol: Protocol = "3.1.1",
        reconnect: bool = True,
        reconnect_min_s: int = 1,
        reconnect_max_s: int = 10,
        manual_ack: bool = False,
        will: Will | None = None,
        session_expiry_s: int | None = None,
        receive_maximum: int | None = None,
        max_inflight: int | None = None,
        deliver: Deliver = "loop",
        on_message: _Hook[Message] | None = None,
        on_connect: _Hook[ConnectResult] | None = None,
        on_disconnect: _Hook[str] | None = None,
        on_subscribed: _Hook[list[str]] | None = None,
    ) -> None:
        self.settings = settings
        self.client_id = client_id or settings.client_id or f"xq-{uuid.uuid4().hex[:12]}"
        self.address = settings.address
        self._v5 = protocol == "5"
        self._reconnect = reconnect
        self._deliver = deliver
        self._on_message_hook = on_message
        self._on_connect_hook = on_connect
        self._on_disconnect_hook = on_disconnect
        self._on_subscribed_hook = on_subscribed
        if self._v5:
            self._paho = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                     protocol=MQTTProtocolVersion.MQTTv5, reconnect_on_failure=reconnect,
                                     manual_ack=manual_ack)
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            if session_expiry_s is not None:
                props.SessionExpiryInterval = session_expiry_s
            if receive_maximum is not None:
                props.ReceiveMaximum = receive_maximum
            self._connect_kwargs: dict[str, Any] = {"clean_start": settings.clean_start, "properties": props}
        else:
            self._paho = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                     protocol=MQTTProtocolVersion.MQTTv311, clean_session=settings.clean_start,
                                     reconnect_on_failure=reconnect, manual_ack=manual_ack)
            self._connect_kwargs = {}
        if reconnect:
            self._paho.reconnect_delay_set(reconnect_min_s, reconnect_max_s)
        if max_inflight is not None:
            self._paho.max_inflight_messages_set(max_inflight)
        if settings.username is not None:
            self._paho.username_pw_set(settings.username, settings.password)
        if settings.uses_tls:
            try:
                self._paho.tls_set(
                    ca_certs=str(settings.ca_file) if settings.ca_file else None,
                    certfile=str(settings.cert_file) if settings.cert_file else None,
                    keyfile=str(settings.key_file) if settings.key_file else None,
                    tls_version=ssl.PROTOCOL_TLS_CLIENT,
                )
            except OSError as exc:  # a missing or unreadable CA, certificate or key (ssl.SSLError included)
                raise MqttConnectError(f"TLS setup for {self.address} failed: {exc}") from None
            if settings.tls_insecure:
                self._paho.tls_insecure_set(True)
        if will is not None:
            self._paho.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self._paho.on_connect = self._on_connect
        self._paho.on_disconnect = self._on_disconnect
        self._paho.on_publish = self._on_publish
        self._paho.on_message = self._on_message
        self._paho.on_subscribe = self._on_subscribe

        self._lock = threading.Lock()
        self._session = 0  # bumped on every CONNACK without the broker's stored session
        self._connected = False
        self._up = threading.Event()
        self._closing = False
        self._started = False
        self._subscriptions: dict[str, int] = {}
        self._pending: dict[int, Delivery] = {}
        self._early: set[int] = set()
        """PUBACKs read before publish() returned the message id (paho's thread was quicker)."""
        self._connect_waiters: list[Callable[[ConnectResult | MqttConnectError], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected_event: asyncio.Event | None = None

    # -- state ------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """The broker connection is up (CONNACK received, no drop since)."""
        return self._connected

    def inflight(self) -> int:
        """Publishes handed to paho and not done yet."""
        with self._lock:
            return len(self._pending)

    def call_soon(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run ``fn(*args)`` in the client's event loop from any thread (False: no loop, or it is closed)."""
        loop = self._loop
        return loop is not None and call_in_loop(loop, fn, *args)

    def wait_connected_blocking(self, timeout: float) -> bool:
        """:meth:`wait_connected` for a caller without an event loop."""
        return self._up.wait(timeout)

    async def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the connection to be up; its state then."""
        self._bind_loop()
        assert self._connected_event is not None
        if self._connected:
            return True
        try:
            await asyncio.wait_for(self._connected_event.wait(), timeout)
        except TimeoutError:
            return self._connected
        return True

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (``reconnect=True`` only): paho retries until the broker answers."""
        if not self._reconnect:
            raise ValueError("start() keeps retrying: use connect() for a client without reconnect")
        self.bind_loop()
        if self._started:
            return
        self._started = True
        self._paho.connect_async(self.settings.host, self.settings.port, self.settings.keepalive_s,
                                 **self._connect_kwargs)
        self._paho.loop_start()

    async def connect(self, timeout: float = 10.0) -> ConnectResult:
        """Connect and wait for the CONNACK; :class:`MqttConnectError` if that fails or takes over ``timeout``.

        With ``reconnect=True`` the client keeps trying in the background after a timeout (``close()`` ends it)."""
        loop = self._bind_loop()
        future: asyncio.Future[ConnectResult] = loop.create_future()

        def waiter(result: ConnectResult | MqttConnectError) -> None:
            if isinstance(result, MqttConnectError):
                call_in_loop(loop, _settle_future, future, None, result)
            else:
                call_in_loop(loop, _settle_future, future, result, None)

        with self._lock:
            self._connect_waiters.append(waiter)
        if self._reconnect:
            self.start()
        else:
            await asyncio.to_thread(self._open)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise MqttConnectError(f"{self.address}: no CONNACK within {timeout:g} s") from None

    def connect_blocking(self, timeout: float = 10.0) -> ConnectResult:
        """:meth:`connect` for a caller without an event loop (``reconnect=False`` only)."""
        if self._reconnect:
            raise ValueError("connect_blocking() is for a client without reconnect")
        done = threading.Event()
        box: list[ConnectResult | MqttConnectError] = []

        def waiter(result: ConnectResult | MqttConnectError) -> None:
            box.append(result)
            done.set()

        with self._lock:
            self._connect_waiters.append(waiter)
        self._open()
        if not done.wait(timeout):
            raise MqttConnectError(f"{self.address}: no CONNACK within {timeout:g} s")
        result = box[0]
        if isinstance(result, MqttConnectError):
            raise result
        return result

    def _open(self) -> None:
        self._started = True
        try:
            self._paho.connect(self.settings.host, self.settings.port, self.settings.keepalive_s,
                               **self._connect_kwargs)
        except OSError as exc:
            raise MqttConnectError(f"{self.address} unreachable: {exc}") from None
        self._paho.loop_start()

    async def close(self, timeout: float = 10.0) -> None:
        """Disconnect cleanly (the will is not sent), stop the network thread, fail what is still in flight.

        The network thread is joined from a daemon thread of its own, waited for at most ``timeout``: a
        thread that does not stop is logged and left behind rather than hanging the caller (and, through
        asyncio's default executor, the event loop's shutdown)."""
        self._begin_close()
        loop = asyncio.get_running_loop()
        stopped: asyncio.Future[None] = loop.create_future()

        def stop() -> None:
            try:
                self._paho.loop_stop()
            finally:
                call_in_loop(loop, _settle_future, stopped, None, None)

        threading.Thread(target=stop, name=f"mqtt-close-{self.address}", daemon=True).start()
        try:
            await asyncio.wait_for(stopped, timeout)
        except TimeoutError:
            log.warning("%s: the MQTT network thread did not stop within %g s; left behind", self.address, timeout)
        self._end_close()

    def close_blocking(self) -> None:
        """:meth:`close` for a caller without an event loop."""
        self._begin_close()
        self._paho.loop_stop()
        self._end_close()

    def _begin_close(self) -> None:
        with self._lock:
            self._closing = True
        if self._started:
            self._paho.disconnect()

    def _end_close(self) -> None:
        with self._lock:
            self._connected = False
            pending, self._pending = self._pending, {}
            self._early.clear()
            waiters, self._connect_waiters = self._connect_waiters, []
        error = MqttConnectError(f"{self.address}: client closed")
        for waiter in waiters:
            waiter(error)
        for delivery in pending.values():
            delivery._finish(MqttPublishError(f"message {delivery.mid}: client closed before its PUBACK"))
        self._set_connected_event(False)

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop() if self._loop is None else self._loop
        if self._loop is None:
            self._loop = loop
            self._connected_event = asyncio.Event()
        return loop

    def bind_loop(self) -> None:
        """Deliver into the running event loop (done by start() and connect() when called from one)."""
        try:
            self._bind_loop()
        except RuntimeError:  # no running loop: a thread-delivering client
            pass

    # -- publish, subscribe, ack ------------------------------------------------------------------

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
        on_done: Callable[[Delivery], None] | None = None,
    ) -> Delivery:
        """Hand a message to paho (thread-safe); the returned :class:`Delivery` is done on the PUBACK.

        ``on_done`` is called in paho's network thread once done (see :meth:`Delivery.add_done_callback`).
        Without a connection a QoS 1 message waits in paho for the next connect (``reconnect=True``)."""
        delivery = Delivery(self._lock, on_done)
        try:
            info = self._paho.publish(topic, payload, qos=qos, retain=retain)
        except ValueError as exc:  # a topic with wildcards, a payload over the limit
            raise MqttPublishError(f"{topic}: {exc}") from None
        delivery.mid, delivery.rc = info.mid, info.rc
        queued = info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (
            qos > 0 and info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN
        )
        with self._lock:
            early = info.mid in self._early
            if early:
                self._early.discard(info.mid)
            elif queued:
                self._pending[info.mid] = delivery
        if early:
            delivery._finish(None)
        elif not queued:
            delivery._finish(MqttPublishError(f"{topic}: not sent ({paho.error_string(info.rc)})"))
        return delivery

    async def publish_wait(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False, timeout: float | None = None
    ) -> None:
        """Publish only while connected, then wait for the PUBACK (raises :class:`MqttNotConnected` or
        :class:`MqttPublishError`)."""
        if not self._connected:
            raise MqttNotConnected(f"not connected to {self.address}")
        await self.publish(topic, payload, qos=qos, retain=retain).wait(timeout)

    def subscribe(self, filters: str | Iterable[str], qos: int = 1) -> None:
        """Subscribe now if connected, and again after every (re)connect."""
        items = [(filters, qos)] if isinstance(filters, str) else [(f, qos) for f in filters]
        if not items:
            return
        with self._lock:
            self._subscriptions.update(items)
            connected = self._connected
        if connected:
            self._send_subscribe(items)

    def ack(self, mid: int, qos: int, session: int | None = None) -> bool:
        """Acknowledge a received message (``manual_ack=True``; thread-safe). QoS 0 needs none.

        With ``session`` (the :attr:`Message.session` it came in), a message of a session the broker no
        longer has is not acknowledged: after a reconnect the broker redelivers a kept session's unacknowledged
        messages under their old ids, but a new session reuses ids for other messages, which an old ack would
        then acknowledge unseen. Returns whether the ack was sent."""
        if qos <= 0:
            return True
        if session is not None and session != self._session:
            log.debug("%s: message %d came in an earlier broker session; not acknowledged", self.client_id, mid)
            return False
        rc = self._paho.ack(mid, qos)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:  # no connection: the broker redelivers it to the session
            log.debug("%s: ack of message %d not sent (%s)", self.client_id, mid, paho.error_string(rc))
            return False
        return True

    def _send_subscribe(self, items: list[tuple[str, int]]) -> None:
        if self._v5:
            self._paho.subscribe([(f, SubscribeOptions(qos=q)) for f, q in items])
        else:
            self._paho.subscribe(items)

    # -- into the caller ----------------------------------------------------------------------------

    def _hand_over(self, fn: Callable[[T], None] | None, arg: T) -> None:
        if fn is None:
            return
        if self._deliver == "thread":
            fn(arg)
        elif not self.call_soon(fn, arg):
            log.debug("%s: nothing to deliver to (no event loop, or it is closed)", self.client_id)

    def _set_connected_event(self, up: bool) -> None:
        if up:
            self._up.set()
        else:
            self._up.clear()
        event = self._connected_event
        if event is not None:
            self.call_soon(event.set if up else event.clear)

    # -- paho callbacks (network thread) ----------------------------------------------------------

    def _on_connect(self, _c: paho.Client, _u: Any, flags: Any, reason: ReasonCode, _p: Any) -> None:
        failed = reason.is_failure
        result: ConnectResult | MqttConnectError
        if failed:
            result = MqttConnectError(f"{self.address} refused the connection: {reason}")
        else:
            result = ConnectResult(session_present=bool(flags.session_present))
        with self._lock:
            self._connected = not failed
            if not failed and not flags.session_present:
                self._session += 1  # message ids of the earlier session mean nothing any more
            waiters, self._connect_waiters = self._connect_waiters, []
            subscriptions = list(self._subscriptions.items())
        if failed:
            log.warning("%s: %s", self.client_id, result)
        else:
            log.debug("%s connected to %s (session present: %s)", self.client_id, self.address,
                      flags.session_present)
            if subscriptions:
                self._send_subscribe(subscriptions)
            self._set_connected_event(True)
        for waiter in waiters:
            waiter(result)
        if isinstance(result, ConnectResult):
            self._hand_over(self._on_connect_hook, result)

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        with self._lock:
            self._connected = False
            closing = self._closing
            waiters: list[Callable[[ConnectResult | MqttConnectError], None]] = []
            if not self._reconnect:  # closed before any CONNACK: fail the connect now
                waiters, self._connect_waiters = self._connect_waiters, []
        for waiter in waiters:
            waiter(MqttConnectError(f"connection to {self.address} closed: {reason}"))
        self._set_connected_event(False)
        if closing:
            return
        log.warning("%s lost %s: %s%s", self.client_id, self.address, reason,
                 "; reconnecting" if self._reconnect else "")
        self._hand_over(self._on_disconnect_hook, str(reason))

    def _on_publish(self, _c: paho.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with self._lock:
            delivery = self._pending.pop(mid, None)
            if delivery is None:
                self._early.add(mid)
                return
        if reason.is_failure:
            delivery._finish(MqttPublishError(f"message {mid} refused by the broker: {reason}"))
        else:
            delivery._finish(None)

    def _on_subscribe(self, _c: paho.Client, _u: Any, _mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            log.error("%s: subscription refused by %s: %s", self.client_id, self.address, failed)
        self._hand_over(self._on_subscribed_hook, failed)

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = repr(msg._topic)
        self._hand_over(self._on_message_hook, Message(topic, bytes(msg.payload), msg.qos, bool(msg.retain), msg.mid,
                                                          self._session))
