"""``ticker watch``: subscribe to a festival and print it, for people (lines) or scripts (JSON).

Default filter: every milestone of every run (``ticker/+/milestones/#``); ``run`` narrows any
filter to ``ticker/{run}/...``, and a filter that does not start with ``ticker/`` is relative to
the run (``gmv``, ``milestones/#``, ``#``). Milestones are retained, so a late watcher first
gets the whole story so far, then the new ones as they happen.

Output, one line per message:

* a milestone: ``2021-11-11 00:01:36.000+08:00 · Apple is the first brand to pass RMB 1 billion ·
  RMB 1.0 billion`` (event time · headline · value; an arrival-ordered run's say ``[live]``,
  ``[final]`` or ``[correction]`` before the headline);
* the GMV tick: one line rewritten in place when ``out`` is a terminal (rich), else a line each;
* status and leaderboard: a short line; anything else: the topic and its size;
* ``as_json``: one JSON object per message, ``{"topic", "payload", "qos", "retain"}``, with
  ``payload`` parsed (``null`` and ``"bytes": n`` for a binary payload such as an order frame).

A broker hands a new subscriber its retained messages in its own order (Mosquitto: by topic), so
the story so far would read out of order. Retained milestones are held in event-time order
(:class:`RetainedMilestones`) until the retained burst ends — the first live message, or
:data:`SETTLE_S` without any — and then printed, oldest first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

import aiomqtt
import orjson
from sortedcontainers import SortedKeyList

from ticker.clock import parse_time
from ticker.publish import topics
from ticker.publish.connect import describe_connect_error
from ticker.publish.upstream_workarounds import discard, subscribe
from ticker.publish.url import MqttUrl, PublishError, parse_url

#: Where ``ticker watch`` looks when given no URL and no ``TICKER_MQTT_URL``.
DEFAULT_URL = "mqtt://127.0.0.1:1883"
#: Quiet time after which the retained burst a subscription brings is taken to be over. A
#: broker sends it at once, back to back; MQTT has no end-of-retained marker to wait for.
SETTLE_S = 0.25


_Order = tuple[int, int, int, str, int]
_Held = tuple[_Order, aiomqtt.Message]


class RetainedMilestones:
    """Retained milestones waiting to be printed, kept in event-time order (then seq, topic).

    A message whose payload is not a milestone (no parseable ``event_time``) sorts last, in
    arrival order.
    """

    def __init__(self) -> None:
        self._held: SortedKeyList[_Held, _Order] = SortedKeyList(key=lambda item: item[0])
        self._arrived = 0

    def __len__(self) -> int:
        return len(self._held)

    def add(self, message: aiomqtt.Message) -> None:
        self._arrived += 1
        self._held.add((_event_order(message, self._arrived), message))

    def drain(self) -> list[aiomqtt.Message]:
        """Everything held, oldest event first; the holder is empty afterwards."""
        out = [message for _key, message in self._held]
        self._held.clear()
        return out


def _event_order(message: aiomqtt.Message, arrived: int) -> _Order:
    payload = message.payload if isinstance(message.payload, bytes) else b""
    try:
        data = orjson.loads(payload)
        at = parse_time(str(data["event_time"]))
        seq = data.get("seq")
        return 0, at, seq if isinstance(seq, int) else 0, message.topic.value, arrived
    except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
        return 1, 0, 0, "", arrived


def run_watch(url: str | None = None, filters: Sequence[str] = (), run: str | None = None,
              as_json: bool = False, out: TextIO | None = None, *, err: TextIO | None = None,
              max_messages: int | None = None, ca_file: str | None = None,
              connect_timeout: float = 5.0) -> int:
    """Print what the broker says until Ctrl-C (exit 0) or ``max_messages`` messages.

    Returns the exit code: 0, 1 when the broker cannot be reached or the connection is lost,
    2 for a bad URL or filter; each failure is one line on ``err``.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        parsed = parse_url(url or os.environ.get("TICKER_MQTT_URL") or DEFAULT_URL)
        subs = ([topics.narrow_filter(f, run) for f in filters] if filters
                else [topics.milestones_filter(run)])
    except (PublishError, ValueError) as exc:
        print(f"ticker: {exc}", file=err)
        return 2
    printer = _Printer(out, as_json)
    try:
        return asyncio.run(_watch(parsed, subs, printer, err, max_messages, ca_file,
                                  connect_timeout))
    except KeyboardInterrupt:
        return 0
    finally:
        printer.close()


async def _watch(url: MqttUrl, subs: list[str], printer: _Printer, err: TextIO,
                 max_messages: int | None, ca_file: str | None, timeout: float) -> int:
    kwargs: dict[str, Any] = {}
    if url.tls:
        kwargs["tls_params"] = aiomqtt.TLSParameters(ca_certs=ca_file)
    client = aiomqtt.Client(url.host, url.port, username=url.username, password=url.password,
                            protocol=aiomqtt.ProtocolVersion.V311, timeout=timeout, **kwargs)
    try:
        await client.__aenter__()
    except aiomqtt.MqttError as exc:
        discard(client)
        print(f"ticker: {describe_connect_error(exc, url, timeout)}", file=err)
        return 1
    try:
        for sub in subs:
            await subscribe(client, sub, qos=topics.READER_QOS, timeout=timeout)
        if max_messages is not None and max_messages <= 0:
            return 0
        shown = 0
        retained: set[tuple[str, bytes]] = set()
        backlog = RetainedMilestones()
        messages = client.messages
        waiting: asyncio.Task[aiomqtt.Message] | None = None
        try:
            while True:
                # one pending read, never cancelled mid-way (a cancelled read could drop a message)
                waiting = waiting or asyncio.ensure_future(anext(messages))
                done, _ = await asyncio.wait({waiting}, timeout=SETTLE_S if backlog else None)
                if not done:  # the retained burst is over: the story so far, in event-time order
                    for held in backlog.drain():
                        printer.show(held)
                        shown += 1
                        if max_messages is not None and shown >= max_messages:
                            return 0
                    continue
                message, waiting = waiting.result(), None
                # amqtt 0.12 also sends a new client the retained messages matching OTHER
                # clients' subscriptions (at QoS 0, before ours): drop what we did not ask for,
                # and print a retained message once.
                if not any(message.topic.matches(sub) for sub in subs):
                    continue
                if message.retain:
                    key = (message.topic.value, bytes(message.payload or b""))
                    if key in retained:
                        continue
                    if len(retained) > 100_000:
                        retained.clear()
                    retained.add(key)
                    if "/milestones/" in message.topic.value:
                        backlog.add(message)
                        continue
                for held in [*backlog.drain(), message]:
                    printer.show(held)
                    shown += 1
                    if max_messages is not None and shown >= max_messages:
                        return 0
        finally:
            if waiting is not None:
                waiting.cancel()
    except aiomqtt.MqttError as exc:
        print(f"ticker: lost connection to MQTT broker {url}: {exc}", file=err)
        return 1
    finally:
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)
    return 0


def format_message(topic: str, payload: bytes) -> tuple[str, bool]:
    """``(line, is_tick)``: how a person reads one message (the GMV tick may update in place)."""
    try:
        _run, rest = topics.parse_topic(topic)
        data = orjson.loads(payload)
    except (ValueError, orjson.JSONDecodeError):
        return f"{topic} · {len(payload):,} bytes", False
    if not isinstance(data, dict):
        return f"{topic} · {payload.decode(errors='replace')}", False
    when = _when(data.get("event_time"))
    if rest.startswith("milestones/"):
        # an arrival-ordered run says which: [live] at once, [final] when the watermark passes
        timing = f"[{data['timing']}] " if isinstance(data.get("timing"), str) else ""
        return f"{when} · {timing}{data.get('headline', '')} · {data.get('value', '')}", False
    if rest == "gmv":
        rate = data.get("orders_per_s", 0)
        watermark = f" · watermark {_when(data['watermark'])}" if "watermark" in data else ""
        return (f"{when} · GMV {data.get('gmv', '')} · {data.get('orders', 0):,} orders · "
                f"{rate:,.0f} orders/s{watermark}"), True
    if rest == "status":
        return (f"{data.get('run', _run)} · {data.get('state', '?')} · {data.get('scenario', '')} "
                f"seed {data.get('seed', '')} scale {data.get('scale', '')}"), False
    if rest == "leaderboard":
        top = " · ".join(f"{b['rank']}. {b['brand']} {b['gmv']}" for b in data.get("brands", [])[:5])
        return f"{when} · top brands: {top}", False
    return f"{topic} · {orjson.dumps(data).decode()}", False


def _when(event_time: object) -> str:
    """ISO event time as a person reads it: ``2021-11-11 00:01:36.250+08:00`` (milliseconds)."""
    try:
        return datetime.fromisoformat(str(event_time)).isoformat(sep=" ", timespec="milliseconds")
    except ValueError:
        return str(event_time or "")


class _Printer:
    """Writes lines; on a terminal, keeps the GMV tick as one live line under them (rich)."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.live = None
        if not as_json and _isatty(out):
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            console = Console(file=out, highlight=False)
            self._text = Text
            self.live = Live(Text(""), console=console, auto_refresh=False,
                             redirect_stdout=False, redirect_stderr=False)
            self.live.start()

    def show(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        payload = message.payload if isinstance(message.payload, bytes) else (
            str(message.payload).encode() if message.payload is not None else b"")
        if self.as_json:
            try:
                record: dict[str, Any] = {"topic": topic, "payload": orjson.loads(payload)}
            except orjson.JSONDecodeError:
                record = {"topic": topic, "payload": None, "bytes": len(payload)}
            record["qos"] = message.qos
            record["retain"] = bool(message.retain)
            self.out.write(orjson.dumps(record).decode() + "\n")
            self.out.flush()
            return
        line, is_tick = format_message(topic, payload)
        if self.live is not None:
            if is_tick:
                self.live.update(self._text(line), refresh=True)
            else:
                self.live.console.print(self._text(line), soft_wrap=True)
            return
        self.out.write(line + "\n")
        self.out.flush()

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def _isatty(out: TextIO) -> bool:
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):
        return False
