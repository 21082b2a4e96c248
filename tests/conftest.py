"""Shared fixtures. The broker tests talk to a real Mosquitto 2 on loopback, never to a mock.

``mosquitto`` (session): one broker for the whole run, with an anonymous listener and a second
listener that wants a password (user ``ticker``, password ``MOSQUITTO_PASSWORD``); persistence on,
in a temporary directory. ``mosquitto_factory``: private brokers a test may stop and restart on
the same port (the shared one is never stopped). ``unique_run``: a run id derived from the test's
name, so tests never hear each other's retained messages.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MOSQUITTO_USER = "ticker"
MOSQUITTO_PASSWORD = "s3cret-festival"


def find_mosquitto() -> str | None:
    """The broker binary: on PATH, or where Debian puts it (/usr/sbin is not on every PATH)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Poll TCP connects to 127.0.0.1:port until one succeeds (bounded); fail if ``proc`` dies."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s") from None
            time.sleep(0.02)  # poll interval, not synchronisation: the connect above is the check


class Mosquitto:
    """A Mosquitto process with a generated config; ``stop()`` and ``start()`` keep the ports."""

    def __init__(self, binary: str, workdir: Path, *, auth_listener: bool = False,
                 tls: tuple[Path, Path, Path] | None = None) -> None:
        self.binary = binary
        self.user, self.password = MOSQUITTO_USER, MOSQUITTO_PASSWORD
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.auth_port = free_port() if auth_listener else None
        self.tls_port = free_port() if tls else None
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "mosquitto.log"
        lines = [
            "per_listener_settings true",
            "persistence true",
            f"persistence_location {workdir}/",
            "log_type error",
            "log_type warning",
            "log_type notice",
            # as root, mosquitto would drop to user "mosquitto", who cannot read our tmp dir
            "user root" if os.geteuid() == 0 else "",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
        ]
        if auth_listener:
            passwd = workdir / "passwd"
            passwd.write_text("")
            subprocess.run(["mosquitto_passwd", "-b", str(passwd), MOSQUITTO_USER,
                            MOSQUITTO_PASSWORD], check=True, capture_output=True, timeout=30)
            lines += [f"listener {self.auth_port} 127.0.0.1", "allow_anonymous false",
                      f"password_file {passwd}"]
        if tls:
            ca, cert, key = tls
            lines += [f"listener {self.tls_port} 127.0.0.1", "allow_anonymous true",
                      f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(line for line in lines if line) + "\n")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def auth_url(self, user: str | None = None, password: str | None = None) -> str:
        """The password listener's URL, with the right credentials unless told otherwise."""
        return (f"mqtt://{user or self.user}:{password or self.password}"
                f"@127.0.0.1:{self.auth_port}")

    def start(self, timeout: float = 15.0) -> Mosquitto:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for port in (self.port, self.auth_port, self.tls_port):
            if port is not None:
                try:
                    wait_listening(port, timeout, self.proc)
                except (RuntimeError, TimeoutError) as exc:
                    self.stop()
                    raise RuntimeError(f"{exc}; log:\n{self.log_path.read_text()[-2000:]}") from None
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM: Mosquitto saves its persistence file (retained messages, sessions) and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc = None


@pytest.fixture(scope="session")
def mosquitto_binary() -> str:
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("!!! MOSQUITTO NOT FOUND: every broker test is SKIPPED. Install it with "
                    "'apt-get install mosquitto mosquitto-clients' (scripts/test does it) !!!")
    return binary


@pytest.fixture(scope="session")
def mosquitto(mosquitto_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """The shared broker: anonymous on ``.port``, password-protected on ``.auth_port``."""
    broker = Mosquitto(mosquitto_binary, tmp_path_factory.mktemp("mosquitto"), auth_listener=True)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def mosquitto_factory(mosquitto_binary: str, tmp_path: Path) -> Iterator:
    """Start private brokers (``factory(**kwargs)``) that the test may stop and restart."""
    brokers: list[Mosquitto] = []

    def factory(**kwargs) -> Mosquitto:
        broker = Mosquitto(mosquitto_binary, tmp_path / f"mosquitto{len(brokers)}", **kwargs)
        brokers.append(broker)
        return broker.start()

    yield factory
    for broker in brokers:
        broker.stop()


@pytest.fixture
def unique_run(request: pytest.FixtureRequest) -> str:
    """A run id (an MQTT topic level) from the test's name, plus a short random tail."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name).strip("-")[:60]
    return f"{name}-{secrets.token_hex(3)}"
