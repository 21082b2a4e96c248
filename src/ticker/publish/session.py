"""The publisher's session with the broker: its own thread and asyncio loop, one connection at
a time, serving the outbox.

A connection: CONNECT with the will (the retained status "offline", fired by the broker if
the publisher vanishes), then one task per kind of work — the status, the milestones (up to
``max_inflight`` awaiting PUBACK), the ticks and leaderboards (at most ``tick_hz`` a second),
the order frames (a window of four in flight) — plus a watcher that notices a dropped
connection and, once closing, the drain.

On a lost connection the session reconnects with capped exponential backoff (:class:`Backoff`:
0.05 s doubling to 0.75 s, ±20 % jitter, from the start again at each CONNACK, so a broker
that is back is found within a second and one that stays down sees ~1.3 attempts a second)
while the run goes on filling the outbox; each new connection re-publishes the status, every
milestone not yet acknowledged and the latest tick and leaderboard, and frames whose PUBACK
never came. Milestone topics are retained and their ids stable, so a re-send never duplicates
a milestone.

Closing (the drain): once the outbox is drained or the close deadline passes, the connection's
tasks are cancelled, the latest tick and leaderboard and the final status are said, and the
session DISCONNECTs cleanly (so the broker drops the will).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from ticker.publish import topics, upstream_workarounds
from ticker.publish.connect import (
    UNSUPPORTED_PROTOCOL,
    ConnectFailed,
    connack_code,
    describe_connect_error,
)
from ticker.publish.outbox import Latest, OrderFrame, Outbox
from ticker.publish.url import MqttUrl

log = logging.getLogger("ticker.publish")
#: paho-mqtt's own log lines (socket errors while a broker restarts...). Quiet by default: the
#: session logs lost connections itself, once, on ``ticker.publish``.
_paho_log = logging.getLogger("ticker.publish.paho")
_paho_log.setLevel(logging.CRITICAL)

#: Seconds allowed after ``close()``'s timeout for the final status and the DISCONNECT.
FINAL_GRACE_S = 1.0
#: Order frames awaiting PUBACK at once.
ORDERS_WINDOW = 4

#: What a wake-up from another thread is for.
Wake = Literal["status", "milestones", "orders", "close"]


@dataclass(frozen=True, slots=True)
class Settings:
    """How the session connects and paces itself (see :class:`~ticker.publish.Publisher`)."""

    url: MqttUrl
    client_id: str
    protocol: aiomqtt.ProtocolVersion | None  # None: MQTT 5, else 3.1.1 if the broker says so
    ca_file: str | None
    tick_hz: float
    connect_timeout: float
    ack_timeout: float
    min_backoff: float
    max_backoff: float
    max_inflight: int
    keepalive: int


class Backoff:
    """Reconnection delays: ``low`` doubling to ``high``, each ±20 % (jitter, so that many
    publishers cut off together do not come back in step); :meth:`reset` at every CONNACK.

    >>> b = Backoff(0.05, 0.75, uniform=lambda lo, hi: 1.0)
    >>> [round(b.next(), 2) for _ in range(6)]
    [0.05, 0.1, 0.2, 0.4, 0.75, 0.75]
    """

    def __init__(self, low: float, high: float, *,
                 uniform: Callable[[float, float], float] = random.uniform) -> None:
        self.low, self.high, self.uniform = low, high, uniform
        self.current = low

    def next(self) -> float:
        delay = self.current * self.uniform(0.8, 1.2)
        self.current = min(self.current * 2, self.high)
        return delay

    def reset(self) -> None:
        self.current = self.low


class _Drained(Exception):
    """Raised inside a connection's task group to end it once closing has drained the outbox."""


class Session:
    """Runs on its own thread (:meth:`run`); other threads only call :meth:`wake` and
    :meth:`abandon`, and read :attr:`ready`, :attr:`connected`, :attr:`ever_connected`,
    :attr:`first_error` and :attr:`protocol` (None until detected)."""

    def __init__(self, settings: Settings, outbox: Outbox) -> None:
        self.settings = settings
        self.outbox = outbox
        info = outbox.info
        self.protocol = settings.protocol
        self._status_topic = topics.status_topic(info.run)
        self._latest_topic: dict[Latest, str] = {"tick": topics.gmv_topic(info.run),
                                                 "leaderboard": topics.leaderboard_topic(info.run)}
        self._will = aiomqtt.Will(self._status_topic, topics.status_payload(info, "offline"),
                                  qos=topics.STATUS.qos, retain=topics.STATUS.retain)
        #: set once the first connection is made or has failed (then :attr:`first_error`)
        self.ready = threading.Event()
        self.connected = False
        self.ever_connected = False
        self.first_error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._got_connack = False  # the current connection attempt got its CONNACK
        self._events: dict[Wake | Literal["progress"], asyncio.Event] = {}

    # --- any thread -------------------------------------------------------------------------

    def wake(self, what: Wake) -> None:
        """Wake the loop's task waiting for ``what`` (no lock held; any thread)."""
        loop = self._loop
        if loop is None:
            return  # not running yet: its first connection sends everything queued
        with contextlib.suppress(RuntimeError):  # the loop has already closed
            loop.call_soon_threadsafe(self._set, what)

    def abandon(self) -> None:
        """Cancel every task of the loop (a close that did not end in time)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_cancel_all)

    # --- the session's thread -----------------------------------------------------------------

    def run(self) -> None:
        """The thread's body: reconnect and serve until closed (or the first connection fails)."""
        try:
            asyncio.run(self._main())
        except BaseException:  # a bug: keep the engine running, say so once
            log.exception("publisher for %s stopped", self.settings.url)
        finally:
            self.connected = False
            self.ready.set()
            self.outbox.wake_waiters()  # a flush() waiting for us returns

    def _set(self, what: Wake | Literal["progress"]) -> None:
        self._events[what].set()

    async def _main(self) -> None:
        self._events = {name: asyncio.Event()
                        for name in ("status", "milestones", "orders", "close", "progress")}
        self._loop = asyncio.get_running_loop()  # from now on, wake() reaches the events above
        if self.outbox.closing:
            self._events["close"].set()
        backoff = Backoff(self.settings.min_backoff, self.settings.max_backoff)
        while True:
            self._got_connack = False
            try:
                await self._connection()
                return
            except ConnectFailed as exc:
                if not self.ever_connected:
                    self.first_error = str(exc)
                    return
                reason = str(exc)
            except BaseExceptionGroup as group:
                reason = _group_reason(group)
            except Exception as exc:  # a bug, not the network: say so, and keep the outbox alive
                log.exception("publisher error")
                reason = f"publisher error: {type(exc).__name__}: {exc}"
            finally:
                self.connected = False
                self.outbox.requeue_frames()
            if self._got_connack:  # the next outage starts fast again
                backoff.reset()
            delay = backoff.next()
            if self.outbox.closing:
                left = self.outbox.deadline - time.monotonic()
                if left <= 0:
                    return
                log.warning("%s; retrying in %.1f s (closing, %.1f s left)", reason, delay, left)
                await asyncio.sleep(min(delay, left))
            else:
                log.warning("%s; reconnecting in %.1f s", reason, delay)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):  # not wait_for: see upstream_workarounds
                        await self._events["close"].wait()

    async def _connection(self) -> None:
        """One connection: serve the outbox until it is lost or closing has drained it."""
        stack = contextlib.AsyncExitStack()
        client = await self._connect(stack)
        self._got_connack = True
        if self.ever_connected:
            self.outbox.reconnected()
            log.warning("reconnected to %s", self.settings.url)
        self.ever_connected = True
        self.connected = True
        self.ready.set()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._watch(client))
                group.create_task(self._status_worker(client))
                group.create_task(self._milestone_worker(client, group))
                group.create_task(self._latest_worker(client))
                group.create_task(self._orders_worker(client, group))
                group.create_task(self._drain())
        except BaseExceptionGroup as group:
            if not all(isinstance(e, _Drained) for e in _leaves(group)):
                upstream_workarounds.retrieve_disconnect(client)
                with contextlib.suppress(aiomqtt.MqttError):
                    await stack.aclose()
                raise
        except BaseException:
            with contextlib.suppress(aiomqtt.MqttError):
                await stack.aclose()
            raise
        await self._final(client)
        self.connected = False
        # aiomqtt waits ``client.timeout`` (the connect timeout, 5 s) for the DISCONNECT to go
        # out; behind a queue of frames or to a stalled broker that would outlast close()'s
        # budget (timeout + 2 x FINAL_GRACE_S), so the goodbye gets one grace period.
        client.timeout = FINAL_GRACE_S
        with contextlib.suppress(aiomqtt.MqttError):
            await stack.aclose()  # DISCONNECT: a clean goodbye, so the broker drops the will
        upstream_workarounds.retrieve_disconnect(client)

    async def _connect(self, stack: contextlib.AsyncExitStack) -> aiomqtt.Client:
        timeout = self.settings.connect_timeout
        if self.outbox.closing:
            timeout = max(0.2, min(timeout, self.outbox.deadline - time.monotonic()))
        if self.protocol is None:
            self.protocol = await self._detect_protocol(timeout)
        client = self._client(self.protocol, timeout)
        try:
            await stack.enter_async_context(client)
        except aiomqtt.MqttError as exc:
            upstream_workarounds.discard(client)
            raise ConnectFailed(describe_connect_error(exc, self.settings.url, timeout)) from None
        return client

    async def _detect_protocol(self, timeout: float) -> aiomqtt.ProtocolVersion:
        """MQTT 5 if the broker accepts it, else 3.1.1: one probe connection, without a will.

        Why a probe: a 3.1.1-only broker should answer an MQTT 5 CONNECT with "unsupported
        protocol version", but amqtt 0.12 misreads one that carries a will and drops the
        connection without a CONNACK, which would cost a whole ``connect_timeout``. Costs one
        extra connect round trip, once per publisher (the answer is kept for reconnections).
        """
        probe = self._client(aiomqtt.ProtocolVersion.V5, timeout, will=False)
        try:
            async with probe:
                pass
        except MqttConnectError as exc:
            upstream_workarounds.discard(probe)
            if connack_code(exc) in UNSUPPORTED_PROTOCOL:
                return aiomqtt.ProtocolVersion.V311
            raise ConnectFailed(describe_connect_error(exc, self.settings.url, timeout)) from None
        except aiomqtt.MqttError as exc:
            upstream_workarounds.discard(probe)
            raise ConnectFailed(describe_connect_error(exc, self.settings.url, timeout)) from None
        upstream_workarounds.retrieve_disconnect(probe)
        return aiomqtt.ProtocolVersion.V5

    def _client(self, protocol: aiomqtt.ProtocolVersion, timeout: float, *,
                will: bool = True) -> aiomqtt.Client:
        settings, url = self.settings, self.settings.url
        kwargs: dict[str, Any] = {}
        if protocol == aiomqtt.ProtocolVersion.V311:
            kwargs["clean_session"] = True  # the outbox, not the broker, keeps what is unsent
        if url.tls:
            kwargs["tls_params"] = aiomqtt.TLSParameters(ca_certs=settings.ca_file)
        client = aiomqtt.Client(
            url.host, url.port, username=url.username, password=url.password,
            identifier=settings.client_id, protocol=protocol, will=self._will if will else None,
            timeout=timeout, keepalive=settings.keepalive, logger=_paho_log,
            max_inflight_messages=settings.max_inflight + ORDERS_WINDOW + 4, **kwargs)
        client.pending_calls_threshold = 1 << 30  # many PUBACKs in flight is the point
        upstream_workarounds.set_connect_timeout(client, timeout)
        return client

    async def _send(self, client: aiomqtt.Client, topic: str, payload: bytes,
                    delivery: topics.Delivery, *, timeout: float | None = None) -> None:
        """Publish and wait for the broker's acknowledgement (QoS 0: for the write), at most
        ``timeout`` s (default ``ack_timeout``); a cancellation is never lost on the way."""
        await upstream_workarounds.publish(
            client, topic, payload, qos=delivery.qos, retain=delivery.retain,
            timeout=self.settings.ack_timeout if timeout is None else timeout)

    # --- one connection's tasks ---------------------------------------------------------------

    async def _watch(self, client: aiomqtt.Client) -> None:
        """Raise ``MqttError`` as soon as the connection drops (aiomqtt's public signal)."""
        async for _ in client.messages:
            pass

    async def _status_worker(self, client: aiomqtt.Client) -> None:
        kick = self._events["status"]
        kick.set()  # every connection starts by saying "running" again
        while True:
            await kick.wait()
            kick.clear()
            payload, version = self.outbox.status_to_send()
            await self._send(client, self._status_topic, payload, topics.STATUS)
            self.outbox.status_acknowledged(version)
            self._events["progress"].set()

    async def _milestone_worker(self, client: aiomqtt.Client, group: asyncio.TaskGroup) -> None:
        inflight: set[str] = set()
        window = asyncio.Semaphore(self.settings.max_inflight)
        everything = True  # a new connection: everything not yet acknowledged
        kick = self._events["milestones"]
        kick.set()
        while True:
            await kick.wait()
            kick.clear()
            ids = self.outbox.milestones_to_send(everything=everything)
            everything = False
            for mid in ids:
                entry = self.outbox.milestone(mid)
                if entry is None or mid in inflight:
                    continue
                await window.acquire()
                inflight.add(mid)
                group.create_task(self._send_milestone(client, mid, entry, inflight, window))

    async def _send_milestone(self, client: aiomqtt.Client, mid: str, entry: tuple[str, bytes],
                              inflight: set[str], window: asyncio.Semaphore) -> None:
        topic, payload = entry
        try:
            await self._send(client, topic, payload, topics.MILESTONE)
        finally:
            inflight.discard(mid)
            window.release()
        if self.outbox.milestone_acknowledged(mid, entry):  # replaced while in flight
            self._events["milestones"].set()
        self._events["progress"].set()

    async def _latest_worker(self, client: aiomqtt.Client) -> None:
        self.outbox.resend_latest()  # a broker may have lost them
        interval = 1.0 / self.settings.tick_hz
        while True:
            await self._send_latest(client)
            await asyncio.sleep(interval)

    async def _send_latest(self, client: aiomqtt.Client) -> None:
        """Send the pending tick and leaderboard, if any (QoS 0, retained)."""
        kinds: tuple[Latest, ...] = ("tick", "leaderboard")
        for kind in kinds:
            payload = self.outbox.take_latest(kind)
            if payload is None:
                continue
            data = payload if isinstance(payload, bytes) else topics.dumps(payload)
            try:
                await self._send(client, self._latest_topic[kind], data, topics.GMV)
            except BaseException:
                self.outbox.put_back_latest(kind, data)
                raise
            self.outbox.latest_sent(kind, data)

    async def _orders_worker(self, client: aiomqtt.Client, group: asyncio.TaskGroup) -> None:
        window = asyncio.Semaphore(ORDERS_WINDOW)
        kick = self._events["orders"]
        kick.set()
        while True:
            await kick.wait()
            kick.clear()
            while True:
                await window.acquire()
                frame = self.outbox.next_frame()
                if frame is None:
                    window.release()
                    break
                group.create_task(self._send_frame(client, frame, window))

    async def _send_frame(self, client: aiomqtt.Client, frame: OrderFrame,
                          window: asyncio.Semaphore) -> None:
        try:
            await self._send(client, frame.topic, frame.data, topics.ORDERS)
        finally:
            window.release()
        self.outbox.frame_acknowledged(frame)
        self._events["progress"].set()

    async def _drain(self) -> None:
        """Once closing: wait until drained (or the deadline), then end the connection's tasks."""
        await self._events["close"].wait()
        progress = self._events["progress"]
        while True:
            progress.clear()
            left = self.outbox.deadline - time.monotonic()
            if self.outbox.drained() or left <= 0:
                raise _Drained
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await progress.wait()

    async def _final(self, client: aiomqtt.Client) -> None:
        """Last words on a live connection: the latest tick and leaderboard, then the final
        status ("finished", or "offline" when interrupted)."""
        left = max(0.0, self.outbox.deadline - time.monotonic()) + FINAL_GRACE_S
        payload = self.outbox.final_status()
        try:
            async with asyncio.timeout(left):
                await self._send_latest(client)
                await self._send(client, self._status_topic, payload, topics.STATUS, timeout=left)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.warning("could not publish the final status to %s: %s", self.settings.url, exc)
            return
        self.outbox.finished()


def _cancel_all() -> None:
    for task in asyncio.all_tasks():
        task.cancel()


def _group_reason(group: BaseExceptionGroup[BaseException]) -> str:
    for exc in _leaves(group):
        if isinstance(exc, aiomqtt.MqttError):
            return f"lost connection to MQTT broker ({' '.join(str(exc).split()) or 'no reason'})"
    for exc in _leaves(group):
        if not isinstance(exc, asyncio.CancelledError):
            log.error("publisher error", exc_info=exc)
            return f"publisher error: {type(exc).__name__}: {exc}"
    return "publisher session ended"


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out

