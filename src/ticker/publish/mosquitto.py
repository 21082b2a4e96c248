"""A private Mosquitto on a free loopback port, for ``ticker bench --sustain`` and the benchmarks.

Why its own configuration: a Mosquitto with its defaults queues at most 1,000 QoS 1 messages
(``max_queued_messages``) for a subscriber beyond the 20 in flight and silently drops the rest,
so at millions of orders a second a consumer that falls a moment behind would lose order frames
and the benchmark would measure the broker's drops, not the pipeline. Here the queues are
unbounded (``max_queued_messages 0``, ``max_queued_bytes 0``) and more messages may be in flight
per client (``max_inflight_messages 100``): a subscriber that lags is then seen as lag, which is
what the sustained-rate test measures. Nothing is persisted; the broker lives in a temporary
directory and listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ticker.publish.url import PublishError

#: Where Debian, a source install and Homebrew put the broker when it is not on PATH.
MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")

CONFIG = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 100
log_type error
log_type warning
"""


def find_mosquitto() -> str:
    """The broker's executable, or :class:`PublishError` saying how to install it."""
    found = shutil.which("mosquitto") or next((p for p in MOSQUITTO_PATHS if os.access(p, os.X_OK)),
                                              None)
    if found is None:
        raise PublishError("mosquitto is not installed (apt-get install mosquitto), "
                           "or give a broker with --mqtt URL")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateMosquitto:
    """``with PrivateMosquitto() as broker: broker.url`` — started, listening, stopped at exit."""

    def __init__(self, startup_timeout: float = 15.0) -> None:
        self.binary = find_mosquitto()
        self.timeout = startup_timeout
        self.port = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return None if self._proc is None else self._proc.pid

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def __enter__(self) -> PrivateMosquitto:
        self._dir = tempfile.TemporaryDirectory(prefix="ticker-mosquitto-")
        workdir = Path(self._dir.name)
        self.port = free_port()
        conf = workdir / "mosquitto.conf"
        # as root, Mosquitto would drop to user "mosquitto", who cannot read a private temp dir
        conf.write_text(CONFIG.format(port=self.port) + ("user root\n" if os.geteuid() == 0 else ""))
        log = workdir / "mosquitto.log"
        with log.open("wb") as out:
            self._proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                why = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                self.__exit__()
                raise PublishError(f"mosquitto exited with code {code} before listening: {why[0]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise PublishError(f"mosquitto did not listen on 127.0.0.1:{self.port} within "
                                       f"{self.timeout:g} s") from None
                time.sleep(0.02)  # polling the port, bounded by the deadline

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
