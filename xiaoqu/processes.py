"""A command owns the processes it starts: it stops them in order on a signal, and they die with it.

Used by every command and benchmark that starts processes (``xiaoqu demo``, ``cloud ingest --workers N``,
``sim run``'s private Mosquitto, the demo's embedded Mosquitto and PostgreSQL, benches). Standard library
only, so any part may import it (it is the one module of ``xiaoqu`` that lower layers import).

- :func:`spawn` starts a child that gets a *death signal* when this process dies, even by SIGKILL
  (Linux ``PR_SET_PDEATHSIG``, set in the child between fork and exec — after a ``user=`` switch, which
  would clear it — and the child exits at once if its parent already died before that). The kernel ties
  the death signal to the *thread* that forked, so a child spawned from a thread other than the main one
  is forked from a dedicated thread that lives as long as the process.
- :func:`die_with_parent` does the same from inside a ``multiprocessing`` child (call it first).
- :class:`StopSignals` turns the first SIGINT, SIGTERM or SIGHUP into a :class:`StopSignal` exception in
  the main thread, so ``finally`` blocks stop the children in order; later signals are recorded, never
  raised, so the stop itself cannot be interrupted. :meth:`StopSignals.run_async` runs a coroutine so that
  the signal cancels it instead (an exception raised inside one of asyncio's callbacks is logged and
  dropped by the event loop, so a raising handler could lose a Ctrl-C).
- :func:`stop` signals a group of children, waits a bounded time, then kills what is left.

Where ``prctl`` is not available (not Linux) the death signal is skipped; the ordered stop still works.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1
T = TypeVar("T")


def _load_prctl() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return fn


_prctl = _load_prctl()


def exit_code(signum: int) -> int:
    """The shell's convention for "ended by signal N": 128 + N (SIGTERM 143, SIGHUP 129, SIGINT 130)."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopSignal(BaseException):
    """The first stop signal a :class:`StopSignals` block received (not an ``Exception``: nothing swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum

    @property
    def code(self) -> int:
        return exit_code(self.signum)


class StopSignals:
    """``with StopSignals() as stop:`` — the first SIGINT/SIGTERM/SIGHUP raises :class:`StopSignal`.

    After the first signal (or after :meth:`shield`, which a ``finally`` that stops children calls first)
    signals are only recorded in :attr:`received`. The previous handlers come back on exit. Main thread only.
    Asyncio code runs through :meth:`run_async`, where the signal cancels the coroutine and the
    :class:`StopSignal` is raised once the event loop has unwound.
    """

    def __init__(self, signals: Sequence[int] = STOP_SIGNALS) -> None:
        self.signals = tuple(signals)
        self.received: int | None = None
        self._raise = True
        self._previous: dict[int, Any] = {}
        self._deferred: Callable[[], None] | None = None

    def __enter__(self) -> StopSignals:
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def shield(self) -> None:
        """From now on signals are recorded, not raised (the stop is under way)."""
        self._raise = False

    def run_async(self, main: Coroutine[Any, Any, T]) -> T:
        """``asyncio.run(main)``; the first stop signal cancels ``main`` and, once it has unwound (its
        ``finally`` blocks and ``async with`` exits ran), raises :class:`StopSignal` here.

        A handler that raised wherever the main thread happens to be would, inside one of the loop's
        callbacks (a socket's ``data_received``, a timer), be logged and dropped by asyncio, and with it
        the user's Ctrl-C. Here the handler only asks the loop to cancel ``main``, which is safe anywhere."""

        async def guarded() -> T:
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()
            assert task is not None
            stopping: list[int] = []

            def cancel_main() -> None:
                stopping.append(1)
                loop.call_soon_threadsafe(task.cancel)

            self._deferred = cancel_main
            try:
                result = await main
            except asyncio.CancelledError:
                if stopping:
                    raise StopSignal(self.received or signal.SIGINT) from None
                raise
            finally:
                self._deferred = None
            if stopping:  # main ended (or swallowed the cancellation) just as the signal came
                raise StopSignal(self.received or signal.SIGINT)
            return result

        try:
            return asyncio.run(guarded())
        finally:
            self._deferred = None
            main.close()  # never awaited when the signal came first: no "never awaited" warning

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        if self._raise:
            self._raise = False
            if self._deferred is not None:
                self._deferred()  # the loop cancels the coroutine; run_async raises once it has unwound
                return
            raise StopSignal(signum)
        logger.info("%s received while stopping; the stop goes on", signal_name(signum))


# -- starting children that die with us ----------------------------------------------------------------
def _child_setup(parent: int, death_signal: int, then: Callable[[], None] | None) -> None:
    """Runs in the child between fork and exec (after setsid and any uid/gid switch)."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(128 + int(death_signal))
    if then is not None:
        then()


class _Forker:
    """A thread that lives as long as the process and does the forks asked for from other threads."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="xiaoqu-forker", daemon=True)
                self._thread.start()
        fut: Future[Any] = Future()
        self._jobs.put((fn, fut))
        return fut.result()

    def _loop(self) -> None:
        while True:
            fn, fut = self._jobs.get()
            try:
                fut.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, which raises it
                fut.set_exception(exc)


_forker = _Forker()


def spawn(
    args: Sequence[str],
    *,
    death_signal: int = signal.SIGTERM,
    new_session: bool = True,
    preexec: Callable[[], None] | None = None,
    **popen: Any,
) -> subprocess.Popen[Any]:
    """``subprocess.Popen(args, **popen)`` whose child receives ``death_signal`` when this process dies.

    ``new_session`` (default) puts the child in a session and process group of its own: a terminal's
    Ctrl-C or hang-up reaches only this process, which then stops its children in order, and
    :func:`stop` can signal the child together with whatever it started.
    """
    parent = os.getpid()

    def setup() -> None:
        _child_setup(parent, death_signal, preexec)

    def start() -> subprocess.Popen[Any]:
        return subprocess.Popen(list(args), start_new_session=new_session, preexec_fn=setup, **popen)

    if threading.current_thread() is threading.main_thread():
        return start()
    proc: subprocess.Popen[Any] = _forker.call(start)
    return proc


def run(
    args: Sequence[str], *, timeout: float | None = None, capture_output: bool = False, **popen: Any
) -> subprocess.CompletedProcess[Any]:
    """Like ``subprocess.run(args, check=False)`` for :func:`spawn`: on any interruption the child is stopped."""
    if capture_output:
        popen.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc = spawn(args, **popen)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        stop([proc], grace_s=5)
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def die_with_parent(death_signal: int = signal.SIGTERM, parent: int | None = None) -> None:
    """For a ``multiprocessing`` (or other) child: get ``death_signal`` when the parent dies; exit if it has.

    ``parent`` defaults to the ``multiprocessing`` parent's pid (recorded at spawn, so there is no race)."""
    if parent is None:
        mp_parent = multiprocessing.parent_process()
        parent = mp_parent.pid if mp_parent is not None else None
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(128 + int(death_signal))


# -- stopping them -----------------------------------------------------------------------------------
Child = subprocess.Popen[Any] | BaseProcess


def _alive(p: Child) -> bool:
    if isinstance(p, BaseProcess):
        return p.pid is not None and p.is_alive()
    return p.poll() is None


def _signal(p: Child, sig: int, group: bool) -> None:
    pid = p.pid
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)  # a spawn()ed child leads its own group: this reaches what it started too
        else:
            os.kill(pid, sig)


def _wait(p: Child, timeout: float) -> bool:
    if isinstance(p, BaseProcess):
        p.join(timeout)
        return not p.is_alive()
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def stop(children: Sequence[Child], *, sig: int = signal.SIGTERM, grace_s: float = 10.0, group: bool = False) -> None:
    """Send ``sig`` to every child still running, wait up to ``grace_s`` in all, then SIGKILL the rest.

    With ``group`` the signals go to each child's process group (children started by :func:`spawn`
    with ``new_session``), and whatever is left in a group after its leader ended is killed too.
    Returns within about ``grace_s`` + 5 s."""
    for p in children:
        if _alive(p):
            _signal(p, sig, group)
    deadline = time.monotonic() + grace_s
    for p in children:
        if not _wait(p, max(0.0, deadline - time.monotonic())):
            logger.warning("pid %s did not stop within %.0f s of %s; killing it", p.pid, grace_s, signal_name(sig))
            _signal(p, signal.SIGKILL, group)
            _wait(p, 5.0)
        elif group:
            _signal(p, signal.SIGKILL, True)  # stragglers of a leader that has ended (usually none)


def exit_on_stop_signals() -> None:
    """For scripts (benches): SIGTERM and SIGHUP raise ``SystemExit(128 + n)`` like SIGINT raises
    ``KeyboardInterrupt``, so ``finally`` blocks and ``multiprocessing``'s exit handler stop the children."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # the stop is under way; don't interrupt it
        raise SystemExit(exit_code(signum))

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
