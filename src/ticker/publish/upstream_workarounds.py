"""Every place ``ticker`` works around upstream behaviour — aiomqtt 2.5, paho-mqtt 2.2, amqtt
0.12 and CPython 3.11's asyncio — gathered here so each can be dropped when upstream changes.

Each function says what it works around and in which version. Nothing else in ``ticker``
touches a private attribute of aiomqtt, paho or amqtt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt

# --- aiomqtt 2.5 / paho-mqtt 2.2 (the publisher, ``ticker watch``, ``ticker screen``) ------


async def publish(client: aiomqtt.Client, topic: str, payload: bytes, *, qos: int,
                  retain: bool, timeout: float) -> None:
    """``client.publish`` waiting at most ``timeout`` s for its acknowledgement, whose
    cancellation is never lost.

    Works around: aiomqtt 2.5's ``publish(timeout=t)`` waits for the PUBACK (for QoS 0: for the
    write) with ``asyncio.wait_for``, and on Python 3.11 ``wait_for`` *swallows a cancellation*
    that arrives in the loop iteration in which the awaited future completes (CPython gh-86296;
    fixed in 3.12 by rewriting ``wait_for`` on ``asyncio.timeout``, gh-96764). The publisher
    ends a session by cancelling its task group; a worker whose cancellation was swallowed ran
    on, so the group never ended, ``close()`` gave up after its timeout and the broker was left
    with the will instead of the publisher's own last status (the SIGTERM race of issue 10).

    With ``timeout=math.inf`` aiomqtt awaits the acknowledgement directly (no ``wait_for``),
    and ``asyncio.timeout`` bounds it: it turns only its own expiry into ``TimeoutError`` and
    lets every other cancellation through. Expiry is reported as aiomqtt reports it, as
    ``MqttError("Operation timed out")``: to the session it means the connection is dead.
    """
    try:
        async with asyncio.timeout(timeout):
            await client.publish(topic, payload, qos=qos, retain=retain, timeout=math.inf)
    except TimeoutError:
        raise aiomqtt.MqttError("Operation timed out") from None


async def subscribe(client: aiomqtt.Client, topic: str, *, qos: int, timeout: float) -> None:
    """``client.subscribe`` waiting at most ``timeout`` s for the SUBACK, whose cancellation is
    never lost.

    Works around: the same ``asyncio.wait_for`` of aiomqtt 2.5 on Python 3.11 as :func:`publish`
    (a Ctrl-C landing as the SUBACK arrives would be swallowed, and ``ticker watch`` or the
    screen's subscriber would carry on). Expiry is aiomqtt's ``MqttError("Operation timed out")``.
    """
    try:
        async with asyncio.timeout(timeout):
            await client.subscribe(topic, qos=qos, timeout=math.inf)
    except TimeoutError:
        raise aiomqtt.MqttError("Operation timed out") from None


def set_connect_timeout(client: aiomqtt.Client, timeout: float) -> None:
    """Make paho's TCP/TLS connect obey ``timeout``.

    Works around: aiomqtt 2.5's ``timeout`` bounds the wait for the CONNACK only; paho 2.2's
    socket connect keeps its own default of 5 s, with no aiomqtt parameter to set it.
    """
    with contextlib.suppress(AttributeError, RuntimeError, ValueError):
        client._client.connect_timeout = timeout


def discard(client: aiomqtt.Client) -> None:
    """Close the socket a failed connection attempt may have left open.

    Works around: aiomqtt 2.5 leaves it to the garbage collector (a ``ResourceWarning``) when
    the CONNACK never comes; paho 2.2's ``_sock_close`` also unregisters it from our loop.
    """
    paho_client = getattr(client, "_client", None)
    if paho_client is not None and paho_client.socket() is not None:
        with contextlib.suppress(Exception):
            paho_client._sock_close()
    retrieve_disconnect(client)


def retrieve_disconnect(client: aiomqtt.Client) -> None:
    """Mark aiomqtt's disconnect future as seen.

    Works around: aiomqtt 2.5 sets an exception on its private ``_disconnected`` future when a
    connection drops, and nothing retrieves it if the connection is not then awaited, so
    asyncio logs "Future exception was never retrieved" (an error under our tests' warnings).
    """
    future: asyncio.Future[None] | None = getattr(client, "_disconnected", None)
    if future is not None and future.done() and not future.cancelled():
        future.exception()


# --- amqtt 0.12 (the embedded broker) --------------------------------------------------------


def bound_port(broker: Any) -> int:
    """The port amqtt's default listener is bound to (after ``port=0``: the free one chosen).

    Works around: amqtt 0.12 has no public way to ask; its listener's server is private.
    """
    server = broker._servers["default"].instance
    port: int = server.sockets[0].getsockname()[1]
    return port


def close_each_connection(broker: Any) -> set[asyncio.StreamWriter]:
    """Remember every client connection's writer, and close it when amqtt is done with it.

    Works around: amqtt 0.12 does not always close a client's transport (at shutdown above
    all), which leaves an unclosed socket to the garbage collector. ``stream_connected`` is
    amqtt's public per-connection entry point; wrapping it on the instance costs one set insert
    per connection. Returns the live writers, for :func:`shutdown_broker`.
    """
    writers: set[asyncio.StreamWriter] = set()
    handle: Callable[..., Awaitable[None]] = broker.stream_connected

    async def stream_connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               listener_name: str) -> None:
        writers.add(writer)
        try:
            await handle(reader, writer, listener_name=listener_name)
        finally:
            writers.discard(writer)
            if not writer.is_closing():
                writer.close()

    broker.stream_connected = stream_connected
    return writers


async def shutdown_broker(broker: Any, writers: set[asyncio.StreamWriter],
                          timeout: float) -> None:
    """``broker.shutdown()``, bounded by ``timeout``, then close what it left open.

    Works around: amqtt 0.12 on Python 3.11 sometimes never finishes ``shutdown()``: a
    connected client's reader task is cancelled inside ``asyncio.wait_for`` and its inner read
    is left pending, so it waits forever for the reader to stop. After ``timeout`` we close
    its (private) listeners and the connections ourselves and cancel every task left.
    """
    try:
        async with asyncio.timeout(timeout):
            await broker.shutdown()
    except TimeoutError:
        logging.getLogger(__name__).debug("amqtt shutdown timed out; closing what it left")
        for server in getattr(broker, "_servers", {}).values():  # it never got to close them
            instance = getattr(server, "instance", None)
            if instance is not None:
                instance.close()
    for writer in list(writers):
        if not writer.is_closing():
            writer.close()
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.cancel()
    for _ in range(3):  # let the transports' connection_lost callbacks close their sockets
        await asyncio.sleep(0)


def quiet_cancellations(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """An event-loop exception handler for the embedded broker's loop.

    Works around: Python 3.11's stream callbacks report a ``CancelledError`` traceback when a
    client's task is cancelled at amqtt's shutdown; those are dropped, anything else goes to
    asyncio's default handler.
    """
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)
