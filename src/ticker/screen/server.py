"""``ticker screen``: serve the festival's big screen, live from the broker, over Server-Sent Events.

One asyncio loop does everything: an aiomqtt subscriber folds the broker's messages into a
:class:`~ticker.screen.state.Festival`, and a small HTTP/1.1 server (asyncio streams, no framework)
serves the page's static files and one SSE stream per browser (``/events``). Why SSE and not a
WebSocket: the data flows one way; SSE is plain HTTP that the standard library can speak in a
few lines, and the browser's ``EventSource`` reconnects by itself. Every (re)connection starts
with a full snapshot of the run, so a browser that joins late or comes back after an outage is
complete at once, and nothing is lost while it was away.

Routes: ``/`` (the page), ``/screen.css``, ``/screen.js``, ``/favicon.svg``, ``/events[?run=ID]``
(the stream: without ``run`` it follows the newest run, switching when a newer one starts) and
``/state.json[?run=ID]`` (the same snapshot once, for scripts).

Safety: binds 127.0.0.1 unless told otherwise; the broker URL shown to the page carries no
credentials; the page is served with a Content-Security-Policy that forbids inline scripts and
anything not from this server, on top of rendering every broker string as text.

A slow browser is never waited for: its queue is bounded, and when it overflows the stream is
closed; the browser reconnects and starts again from a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import webbrowser
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiomqtt
import orjson

from ticker.publish import topics
from ticker.publish.connect import describe_connect_error
from ticker.publish.upstream_workarounds import discard, subscribe
from ticker.publish.url import MqttUrl, PublishError, parse_url
from ticker.screen.state import FILTERS, Festival, RunSnapshot, Update

#: aiomqtt's and paho's own log lines ("Could not gracefully disconnect" when the broker is gone):
#: the screen reports a lost broker itself, on the page.
_QUIET = logging.getLogger("ticker.screen.mqtt")
_QUIET.setLevel(logging.CRITICAL)

#: The screen's port when none is given: 11.11.
DEFAULT_PORT = 1111
#: Reconnect backoff to the broker, seconds (doubling from MIN to MAX).
MIN_BACKOFF, MAX_BACKOFF = 0.1, 2.0
#: Messages queued for one browser before its stream is dropped (it reconnects to a snapshot).
VIEWER_QUEUE = 4096
#: A comment line every this many seconds keeps proxies and the browser from timing out.
KEEPALIVE_S = 15.0
#: What the page may load: only this server's own files; no inline script, no plugins.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/screen.css": ("screen.css", "text/css; charset=utf-8"),
    "/screen.js": ("screen.js", "text/javascript; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}


def static_files() -> dict[str, tuple[bytes, str]]:
    """The page's files as shipped inside the package, by route."""
    folder = resources.files("ticker.screen") / "static"
    return {route: ((folder / name).read_bytes(), ctype) for route, (name, ctype) in _STATIC.items()}


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class _Viewer:
    """One browser's stream: the run it shows (``None`` until one exists) and its outbox."""

    def __init__(self, run: str | None, follow: bool) -> None:
        self.run = run
        self.follow = follow
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(VIEWER_QUEUE)
        self.dropped = False

    def send(self, chunk: bytes) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(chunk)
        except asyncio.QueueFull:  # too slow: close; it reconnects and gets a snapshot
            self.dropped = True
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.get_nowait()
                self.queue.put_nowait(None)


class ScreenServer:
    """The screen's HTTP server and broker subscriber. ``await start()``, then ``await stop()``;
    or from synchronous code ``start_in_thread()`` / ``stop_thread()`` (``ticker replay --screen``).
    """

    def __init__(self, url: str | MqttUrl, *, run: str | None = None, host: str = "127.0.0.1",
                 port: int = DEFAULT_PORT, ca_file: str | None = None,
                 connect_timeout: float = 5.0) -> None:
        self.mqtt_url = parse_url(url)
        try:
            self.pinned = topics.check_run_id(run) if run is not None else None
        except ValueError as exc:
            raise PublishError(f"--run: {exc}") from None
        self.host = host
        self.port = port
        self.ca_file = ca_file
        self.connect_timeout = connect_timeout
        self.festival = Festival()
        self.link = {"mqtt": "connecting", "detail": ""}
        self.files = static_files()
        self._viewers: set[_Viewer] = set()
        self._connections: set[asyncio.Task[Any]] = set()  # current_task(): of any kind
        self._newest: str | None = None
        self._server: asyncio.AbstractServer | None = None
        self._mqtt_task: asyncio.Task[None] | None = None
        self._diag_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        #: Called with each folded message's update (or None), on the server's loop: the
        #: latency benchmark notes when each milestone reached the server.
        self.on_update: Callable[[Update | None], None] | None = None
        self.announce: Callable[[str], None] = print

    # --- life cycle ------------------------------------------------------------------------

    @property
    def broker_label(self) -> str:
        """The broker as the page may show it: scheme, host and port, never a user or password."""
        host = f"[{self.mqtt_url.host}]" if ":" in self.mqtt_url.host else self.mqtt_url.host
        return f"{self.mqtt_url.scheme}://{host}:{self.mqtt_url.port}"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> ScreenServer:
        """Connect to the broker (a failure is one-line :class:`PublishError`) and listen."""
        self._loop = asyncio.get_running_loop()
        client = self._client()
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            discard(client)
            raise PublishError(describe_connect_error(exc, self.mqtt_url, self.connect_timeout)) \
                from None
        try:
            self._server = await asyncio.start_server(self._serve_http, self.host, self.port,
                                                      limit=16384)
        except OSError as exc:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)
            raise PublishError(f"cannot serve the screen on {self.host}:{self.port}: "
                               f"{exc.strerror or exc}") from None
        self.port = self._server.sockets[0].getsockname()[1]
        self._mqtt_task = asyncio.create_task(self._subscribe(client))
        return self

    async def stop(self) -> None:
        if self._mqtt_task is not None:
            self._mqtt_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mqtt_task
        for viewer in list(self._viewers):  # end each stream (its browser will reconnect)
            with contextlib.suppress(asyncio.QueueFull):
                viewer.queue.put_nowait(None)
        if self._server is not None:
            self._server.close()
        if self._connections:  # let each stream end; a stuck one is cancelled and awaited
            _, stuck = await asyncio.wait(self._connections, timeout=2.0)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    def start_in_thread(self) -> ScreenServer:
        """Run the server on its own thread and loop; returns once it listens (or raises)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                await self.start()
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            try:
                await self._stop.wait()
            finally:
                await self.stop()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), name="ticker-screen",
                                        daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            raise failure[0]
        return self

    def linger(self) -> None:
        """After a replay: keep the screen up until Ctrl-C (SIGINT), then return."""
        with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C from the moment this is said
            self.announce(f"ticker: the run is over; the screen stays up at {self.url} until Ctrl-C")
            forever = threading.Event()
            while not forever.wait(0.5):  # wakes to run the SIGINT handler, whichever thread got it
                pass

    def stop_thread(self, timeout: float = 5.0) -> None:
        if self._thread is None or self._loop is None or self._stop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already ended
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        self._thread = None

    # --- the broker ------------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        url = self.mqtt_url
        kwargs: dict[str, Any] = {}
        if url.tls:
            kwargs["tls_params"] = aiomqtt.TLSParameters(ca_certs=self.ca_file)
        return aiomqtt.Client(url.host, url.port, username=url.username, password=url.password,
                              identifier=f"ticker-screen-{secrets.token_hex(6)}",
                              protocol=aiomqtt.ProtocolVersion.V311, keepalive=10,
                              timeout=self.connect_timeout, logger=_QUIET, **kwargs)

    async def _subscribe(self, client: aiomqtt.Client | None) -> None:
        """Fold the broker's messages; on a lost connection, say so and reconnect forever.

        Each (re)connection subscribes afresh, so the broker re-sends every retained topic and
        the state is complete again; folding a retained message twice changes nothing.
        """
        backoff = MIN_BACKOFF
        while True:
            try:
                if client is None:
                    client = self._client()
                    try:
                        await client.__aenter__()
                    except aiomqtt.MqttError:
                        discard(client)
                        raise
                for topic_filter in FILTERS:
                    await subscribe(client, topic_filter, qos=topics.READER_QOS,
                                    timeout=self.connect_timeout)
                self._set_link("connected", "")
                backoff = MIN_BACKOFF
                async for message in client.messages:
                    self._on_message(message)
                raise aiomqtt.MqttError("the broker closed the connection")
            except aiomqtt.MqttError as exc:
                detail = " ".join(str(exc).split()) or type(exc).__name__
                self._set_link("reconnecting", f"lost the broker {self.broker_label}: {detail}")
            finally:
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.__aexit__(None, None, None)
                    client = None
            await asyncio.sleep(backoff)  # backoff before reconnecting, not synchronisation
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _on_message(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        if not any(message.topic.matches(f) for f in FILTERS):
            self.festival.ignored += 1  # amqtt sends retained messages of others' filters
            return
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):
            payload = b"" if payload is None else str(payload).encode()
        before = sum(self.festival.malformed.values())
        update = self.festival.ingest(topic, bytes(payload))
        if sum(self.festival.malformed.values()) != before:
            self._diagnostics_soon()
        if update is not None:
            self._dispatch(update)
        if self.on_update is not None:
            self.on_update(update)

    # --- fan-out to the browsers -----------------------------------------------------------

    def _dispatch(self, update: Update) -> None:
        if update.kind in ("status", "forget"):
            runs = _event("runs", self.festival.run_list())
            for viewer in self._viewers:
                viewer.send(runs)
            newest = self.festival.newest()
            if newest != self._newest:
                self._newest = newest
                for viewer in self._viewers:
                    if viewer.follow and viewer.run != newest:
                        viewer.run = newest
                        viewer.send(self._snapshot_event(newest))
            if update.kind == "forget":
                for viewer in self._viewers:
                    if viewer.run == update.run:
                        viewer.send(self._snapshot_event(update.run))
                return
        chunk = _event("snapshot" if update.kind == "snapshot" else update.kind,
                       update.data if update.kind == "snapshot" else {"run": update.run,
                                                                       **update.data})
        for viewer in self._viewers:
            if viewer.run == update.run:
                viewer.send(chunk)

    def _snapshot(self, run: str | None) -> RunSnapshot:
        known = self.festival.runs.get(run) if run is not None else None
        if known is not None:
            return known.snapshot()
        return {"run": run, "status": None, "tick": None, "leaderboard": None, "milestones": []}

    def _snapshot_event(self, run: str | None) -> bytes:
        return _event("snapshot", self._snapshot(run))

    def _set_link(self, state: str, detail: str) -> None:
        self.link = {"mqtt": state, "detail": detail}
        chunk = _event("link", self.link)
        for viewer in self._viewers:
            viewer.send(chunk)

    def _diagnostics_soon(self) -> None:
        """Tell the browsers about refused payloads, at most four times a second."""
        if self._diag_pending or self._loop is None:
            return
        self._diag_pending = True

        def send() -> None:
            self._diag_pending = False
            chunk = _event("diagnostics", self.festival.diagnostics())
            for viewer in self._viewers:
                viewer.send(chunk)

        self._loop.call_later(0.25, send)

    def hello(self, viewer: _Viewer) -> dict[str, Any]:
        return {"broker": self.broker_label, "link": self.link, "runs": self.festival.run_list(),
                "diagnostics": self.festival.diagnostics(), "follow": viewer.follow,
                "run": viewer.run}

    # --- HTTP --------------------------------------------------------------------------------

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve_connection(reader, writer)
        finally:
            self._connections.discard(task)

    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                ConnectionError):
            writer.close()
            return
        try:
            await self._route(method, target, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _route(self, method: str, target: str, writer: asyncio.StreamWriter) -> None:
        parts = urlsplit(target)
        if method not in ("GET", "HEAD"):
            await _respond(writer, 405, b"method not allowed\n", "text/plain; charset=utf-8",
                           extra={"Allow": "GET, HEAD"})
            return
        query = parse_qs(parts.query)
        run = query.get("run", [None])[0] or None
        if run is not None:
            try:
                topics.check_run_id(run)
            except ValueError:
                await _respond(writer, 400, b"bad run id\n", "text/plain; charset=utf-8")
                return
        if parts.path == "/events" and method == "GET":
            await self._stream(writer, run)
        elif parts.path == "/state.json":
            viewer = self._viewer_for(run)
            body = orjson.dumps({**self.hello(viewer), "snapshot": self._snapshot(viewer.run)})
            await _respond(writer, 200, body, "application/json", head=method == "HEAD")
        elif parts.path in self.files:
            body, ctype = self.files[parts.path]
            await _respond(writer, 200, body, ctype, head=method == "HEAD")
        else:
            await _respond(writer, 404, b"not found\n", "text/plain; charset=utf-8")

    def _viewer_for(self, run: str | None) -> _Viewer:
        if run is not None:
            return _Viewer(run, follow=False)
        if self.pinned is not None:
            return _Viewer(self.pinned, follow=False)
        return _Viewer(self.festival.newest(), follow=True)

    async def _stream(self, writer: asyncio.StreamWriter, run: str | None) -> None:
        viewer = self._viewer_for(run)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                     b"Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                     b"Connection: close\r\n\r\nretry: 1000\n\n")
        writer.write(_event("hello", self.hello(viewer)) + self._snapshot_event(viewer.run))
        self._viewers.add(viewer)
        try:
            await writer.drain()
            while True:
                try:
                    chunk = await asyncio.wait_for(viewer.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    chunk = b": keepalive\n\n"
                if chunk is None:
                    return
                parts = [chunk]
                while not viewer.queue.empty():  # coalesce what is waiting into one write
                    more = viewer.queue.get_nowait()
                    if more is None:
                        writer.write(b"".join(parts))
                        return
                    parts.append(more)
                writer.write(b"".join(parts))
                await writer.drain()
        finally:
            self._viewers.discard(viewer)


async def _respond(writer: asyncio.StreamWriter, code: int, body: bytes, ctype: str, *,
                   head: bool = False, extra: dict[str, str] | None = None) -> None:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}[code]
    headers = {"Content-Type": ctype, "Content-Length": str(len(body)),
               "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer",
               "Connection": "close", **(extra or {})}
    lines = [f"HTTP/1.1 {code} {reason}"] + [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else body))
    await writer.drain()


def run_screen(url: str, *, run: str | None = None, host: str = "127.0.0.1",
               port: int = DEFAULT_PORT, ca_file: str | None = None, open_browser: bool = False,
               announce: Callable[[str], None] = print) -> int:
    """``ticker screen``: serve until Ctrl-C. A failed first connection or a taken port raises
    :class:`PublishError` (one line)."""

    async def main() -> None:
        server = ScreenServer(url, run=run, host=host, port=port, ca_file=ca_file)
        await server.start()
        announce(f"ticker screen: {server.url} (broker {server.broker_label}"
                 f"{', run ' + run if run else ', newest run'}; Ctrl-C to stop)")
        if open_browser:
            webbrowser.open(server.url)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def start_beside(url: str | MqttUrl, run: str, port: int | None = None,
                 ca_file: str | None = None, announce: Callable[[str], None] | None = None
                 ) -> ScreenServer:
    """``ticker replay --screen``: the screen for ``run`` on its own thread, on ``port`` (default
    :data:`DEFAULT_PORT`, or a free port when that one is taken); says where on stderr."""
    import sys

    say = announce or (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        server = ScreenServer(url, run=run, port=DEFAULT_PORT if port is None else port,
                              ca_file=ca_file).start_in_thread()
    except PublishError:
        if port is not None:
            raise
        server = ScreenServer(url, run=run, port=0, ca_file=ca_file).start_in_thread()
    server.announce = say
    say(f"ticker: the big screen is at {server.url}")
    return server

