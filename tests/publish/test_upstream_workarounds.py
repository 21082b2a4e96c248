"""The workarounds of ``publish/upstream_workarounds.py``, against a real Mosquitto."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from ticker.publish import upstream_workarounds

pytestmark = [pytest.mark.network, pytest.mark.timeout(60)]


@pytest.mark.parametrize("call", ["publish QoS 0", "publish QoS 1", "subscribe"])
async def test_a_cancelled_call_is_cancelled_whenever_the_cancel_lands(mosquitto, unique_run: str,
                                                                       call: str) -> None:
    """Cancel a publish (or subscribe) after k loop iterations, for every k from "at once" to
    "long after the acknowledgement": whenever ``cancel()`` finds the task unfinished, the task
    ends cancelled.

    aiomqtt 2.5's own ``publish(timeout=...)`` on Python 3.11 breaks this at the iterations in
    which the acknowledgement completes (QoS 0 here: k = 4 to 6), returning as if never
    cancelled — the SIGTERM race of issue 10 (see the module).
    """
    topic = f"ticker-test/{unique_run}/cancel"
    cancelled_unfinished = finished = 0
    k = -1
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, timeout=10) as client:
        # k: every count up to 100, then 10 % steps, until 5 calls finished before their
        # cancel (past the acknowledgement however long a loaded broker takes to send it)
        while finished < 5:
            k = k + 1 if k < 100 else k + k // 10
            if call == "subscribe":
                work = upstream_workarounds.subscribe(client, f"{topic}/{k}", qos=1, timeout=10)
            else:
                work = upstream_workarounds.publish(client, topic, b"x", qos=int(call[-1]),
                                                    retain=False, timeout=10)
            task = asyncio.create_task(work)
            for _ in range(k):
                await asyncio.sleep(0)
            if task.cancel():
                cancelled_unfinished += 1
                with pytest.raises(asyncio.CancelledError):
                    await task
            else:
                await task  # finished before the cancel: its result stands
                finished += 1
    assert cancelled_unfinished  # the sweep began before the acknowledgement


async def test_a_publish_that_is_never_acknowledged_times_out_as_a_dead_connection(
        unique_run: str) -> None:
    """A broker that accepts the connection, then never answers: the publish ends after its
    timeout in aiomqtt's own words for it, which the session treats as a lost connection."""
    silent = asyncio.Event()

    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # CONNECT
        writer.write(bytes([0x20, 2, 0, 0]))  # CONNACK (3.1.1, accepted), then silence
        await writer.drain()
        await silent.wait()
        writer.close()

    server = await asyncio.start_server(broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        client = aiomqtt.Client("127.0.0.1", port, timeout=5,
                                protocol=aiomqtt.ProtocolVersion.V311)
        async with client:
            with pytest.raises(aiomqtt.MqttError, match="timed out"):
                await upstream_workarounds.publish(client, f"t/{unique_run}", b"x", qos=1,
                                                   retain=False, timeout=0.3)
            silent.set()
