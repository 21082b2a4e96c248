"""The embedded broker: amqtt in-process, so ``ticker replay`` works on a machine with no broker.

amqtt speaks MQTT 3.1.1 only (the publisher detects it and falls back, or is told with
``protocol="3.1.1"``). It keeps retained messages and fires wills, which is all the ticker's
contract needs; it keeps nothing on disk, so a restart forgets everything. For anything long-lived
use Mosquitto.

Threading: :class:`EmbeddedBroker` runs the broker on its own daemon thread with its own event
loop, so synchronous code (the CLI, the engine, tests) can start and stop it.
:func:`run_broker` is the foreground ``ticker broker`` command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from typing import Any, TextIO

from ticker.publish import upstream_workarounds
from ticker.publish.url import PublishError

#: amqtt logs every connection at INFO and refusals at WARNING; a library must not print them
#: unless the application configured logging, so give its logger a handler that drops them.
logging.getLogger("amqtt").addHandler(logging.NullHandler())
logging.getLogger("transitions").addHandler(logging.NullHandler())

#: Seconds allowed for amqtt's own shutdown before its tasks are cancelled.
SHUTDOWN_TIMEOUT_S = 1.0

#: Protocol the embedded broker speaks, for ``Publisher(protocol=...)``.
PROTOCOL = "3.1.1"


def _config(host: str, port: int) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        # Only anonymous access: no $SYS plugin (a timer and topics nobody asked for), no
        # packet/event loggers (a log line per packet).
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


class EmbeddedBroker:
    """An amqtt broker on ``host:port`` (``port=0``: a free port, read back from :attr:`port`).

    ``start()`` blocks until the listener is bound (or raises :class:`PublishError`, one line);
    ``stop()`` disconnects every client and joins the thread. Also a context manager.
    Memory: amqtt keeps one copy of each retained topic, so a run costs O(milestones + a few).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: str | None = None

    @property
    def url(self) -> str:
        """``mqtt://host:port`` of the running broker."""
        if self.port is None:
            raise PublishError("the embedded broker is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}"

    def __repr__(self) -> str:
        where = self.url if self.port is not None else f"{self.host}:{self._requested_port}"
        return f"<EmbeddedBroker {where} {'running' if self.running else 'stopped'}>"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self.port is not None

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        if self._thread is not None:
            raise PublishError("the embedded broker is already started")
        self._thread = threading.Thread(target=self._thread_main, daemon=True,
                                        name=f"ticker-broker-{self.host}:{self._requested_port}")
        self._thread.start()
        if not self._started.wait(timeout):
            self.stop()
            raise PublishError(f"the embedded MQTT broker did not start within {timeout:g} s")
        if self._error is not None:
            self._thread.join(timeout)
            self._thread = None
            raise PublishError(self._error)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the broker down (clients are disconnected; their wills fire) and join it."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        self.port = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:
            self._error = f"the embedded MQTT broker failed: {' '.join(str(exc).split())}"
        finally:
            self._started.set()

    async def _main(self) -> None:
        from amqtt.broker import Broker  # type: ignore[import-untyped]  # amqtt 0.12: no py.typed

        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.set_exception_handler(upstream_workarounds.quiet_cancellations)
        broker = Broker(_config(self.host, self._requested_port))
        writers = upstream_workarounds.close_each_connection(broker)
        try:
            await broker.start()
        except Exception as exc:
            cause = exc.__cause__ or exc
            errno = getattr(cause, "errno", None)
            why = os.strerror(errno).lower() if errno else str(cause)
            self._error = (f"cannot start the embedded MQTT broker on "
                           f"{self.host}:{self._requested_port}: {' '.join(str(why).split())}")
            return
        try:
            self.port = upstream_workarounds.bound_port(broker)
            self._started.set()
            await self._stop.wait()
        finally:
            await upstream_workarounds.shutdown_broker(broker, writers, SHUTDOWN_TIMEOUT_S)


def run_broker(host: str = "127.0.0.1", port: int = 1883, *, out: TextIO | None = None,
               ready: threading.Event | None = None, stop: threading.Event | None = None) -> int:
    """The ``ticker broker`` command: serve until Ctrl-C (or ``stop`` is set); return 0.

    Prints the URL to connect to. A port in use is a :class:`PublishError` (one line).
    """
    out = out if out is not None else sys.stdout
    stop = stop if stop is not None else threading.Event()
    broker = EmbeddedBroker(host, port)
    try:
        broker.start()
        print(f"ticker broker: listening on {broker.url} (MQTT 3.1.1; Ctrl-C to stop)", file=out,
              flush=True)
        if ready is not None:
            ready.set()
        stop.wait()
    except KeyboardInterrupt:  # Ctrl-C is how it is meant to end, wherever it lands
        pass
    finally:
        broker.stop()
    print("ticker broker: stopped", file=out, flush=True)
    return 0
