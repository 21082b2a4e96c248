"""Every place the publisher works around upstream behaviour (aiomqtt 2.5, paho-mqtt 2.2,
CPython 3.11's asyncio), gathered here so each can be dropped when upstream changes.

Each function says what it works around and in which version. Nothing else in ``ticker``
touches a private attribute of aiomqtt or paho.
"""

from __future__ import annotations

import asyncio
import math

import aiomqtt


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
