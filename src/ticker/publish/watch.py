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

from ticker.publish import topics
from ticker.publish.mqtt import _discard, describe_connect_error
from ticker.publish.url import MqttUrl, PublishError, parse_url

#: Where ``ticker watch`` looks when given no URL and no ``TICKER_MQTT_URL``.
DEFAULT_URL = "mqtt://127.0.0.1:1883"


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
        _discard(client)
        print(f"ticker: {describe_connect_error(exc, url, timeout)}", file=err)
        return 1
    try:
        for sub in subs:
            await client.subscribe(sub, qos=1)
        if max_messages is not None and max_messages <= 0:
            return 0
        shown = 0
        retained: set[tuple[str, bytes]] = set()
        async for message in client.messages:
            # amqtt 0.12 also sends a new client the retained messages matching OTHER clients'
            # subscriptions (at QoS 0, before ours): drop what we did not ask for, and print a
            # retained message once.
            if not any(message.topic.matches(sub) for sub in subs):
                continue
            if message.retain:
                key = (message.topic.value, bytes(message.payload or b""))
                if key in retained:
                    continue
                if len(retained) > 100_000:
                    retained.clear()
                retained.add(key)
            printer.show(message)
            shown += 1
            if max_messages is not None and shown >= max_messages:
                return 0
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
