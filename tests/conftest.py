"""Shared fixtures. The broker tests talk to a real Mosquitto 2 on loopback, never to a mock.

``mosquitto`` (session): one broker for the whole run, with an anonymous listener and a second
listener that wants a password (user ``ticker``, password ``MOSQUITTO_PASSWORD``); persistence on,
in a temporary directory. ``mosquitto_factory``: private brokers a test may stop and restart on
the same port (the shared one is never stopped). ``unique_run``: a run id derived from the test's
name, so tests never hear each other's retained messages.

In CI (the ``CI`` environment variable is set, as ``.ci/run`` does) a missing external program is a
failure, not a skip: a machine whose install step failed must not go green. ``require_binary`` is the
one place that decides (also a fixture of that name, which the screen tests' ``chromium`` uses);
``mosquitto_binary`` is built on it.

Hypothesis profiles (chosen by ``HYPOTHESIS_PROFILE``, else ``ci`` when ``CI`` is set, else ``dev``;
``mutation`` for scripts/mutation): see ``_register_hypothesis_profiles``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.internal.conjecture import engine as _hypothesis_engine

IN_CI = bool(os.environ.get("CI"))

# Shrinking stops after this many seconds and reports the smallest failing example found so far. Hypothesis's
# own cap (300 s) equals pytest-timeout's, so a slow property could be killed mid-shrink and report only
# "Timeout" with no example (issue 17). The cap is a private constant: if it ever moves, this test run says so
# rather than silently losing the bound (see test_hypothesis_profiles.py).
SHRINK_SECONDS = 60


def _register_hypothesis_profiles() -> None:
    """``ci``: more examples, no example database (a fresh clone has none to reuse), the failing example
    printed with its reproduce blob, and no 'explain' phase (it re-runs the failing case many times after
    shrinking). ``dev``: fewer examples for a quick local loop; the database lives in ``.hypothesis/``,
    which .gitignore keeps out of the repository. No per-example ``deadline`` in either: on a shared
    2-core machine an example's time varies 2-3x, and a deadline would make the suite flaky, not stricter.
    Tests that pin ``max_examples`` in their own ``@settings`` keep that count under both profiles."""
    common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("ci", max_examples=200, database=None, print_blob=True,
                              phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target,
                                      Phase.shrink], **common)
    settings.register_profile("dev", max_examples=50, **common)
    # scripts/mutation: a mutant is killed by the first failing example, so no shrinking; the
    # database (in the scratch copy) replays examples that killed earlier mutants first. 10
    # examples: 25 of 25 killed mutants drawn at random (aggregate) were still killed with 10 and
    # no database (docs/mutation.md); a surviving mutant costs 5x less than with 50
    settings.register_profile("mutation", max_examples=10, phases=[Phase.explicit, Phase.reuse,
                                                                   Phase.generate], **common)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if IN_CI else "dev"))
    _hypothesis_engine.MAX_SHRINKING_SECONDS = SHRINK_SECONDS


_register_hypothesis_profiles()


def _let_children_hear_ctrl_c() -> None:
    """A shell without job control (a script's ``cmd &``, ``nohup``, some CI runners) starts a background
    command with SIGINT ignored, and an ignored signal stays ignored across ``exec``: every ticker the
    tests start would then ignore Ctrl-C, as Python leaves an inherited SIG_IGN alone, and the tests
    that press Ctrl-C (``ticker broker``, ``watch``, ``replay --screen``) would hang until their timeout.
    Those tests play a user at a terminal, where Ctrl-C is on, so the suite turns it back on: a
    handled signal is reset to the default in a child at ``exec``, and Python then installs its own."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_let_children_hear_ctrl_c()


def pytest_collection_modifyitems(config, items) -> None:
    """Under a mutation run (scripts/mutation), a mutant's tests run fastest first: pytest stops at
    the first failure (``-x``), so a mutant a 0.1 s test kills need not wait for a 10 s property
    test that happened to come first (mutmut passes the tests in no particular order). The times
    are mutmut's own, from its traced run (``mutmut-stats.json`` in the mutants directory)."""
    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        return
    try:
        seconds = json.loads(Path("mutmut-stats.json").read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return
    items.sort(key=lambda item: seconds.get(item.nodeid, float("inf")))

MOSQUITTO_USER = "ticker"
MOSQUITTO_PASSWORD = "s3cret-festival"


def find_binary(name: str, *candidates: str) -> str | None:
    """``name`` on PATH, else the first executable of ``candidates`` (/usr/sbin is not on every PATH)."""
    found = shutil.which(name)
    if found:
        return found
    return next((path for path in candidates if os.access(path, os.X_OK)), None)


def require_binary(name: str, *candidates: str, install: str) -> str:
    """The path of an external program the test needs. Missing: a skip on a developer's machine, a
    FAILURE in CI (``CI`` set), saying how to install it."""
    found = find_binary(name, *candidates)
    if found is None:
        where = ", ".join(candidates) or "-"
        message = f"{name} not found (on PATH or at {where}); install it with: {install}"
        if IN_CI:
            pytest.fail(f"CI: {message} (scripts/test installs it; a missing program fails in CI)",
                        pytrace=False)
        pytest.skip(f"!!! {message} -- every test that needs it is SKIPPED !!!")
    return found


@pytest.fixture(name="require_binary", scope="session")
def require_binary_fixture():
    """``require_binary(name, *candidates, install=...)`` for a test that needs some other program."""
    return require_binary


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
    return require_binary("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto",
                          "/opt/homebrew/sbin/mosquitto",
                          install="apt-get install mosquitto mosquitto-clients")


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
def seed() -> int:
    """A seed for a test's own random draws: fresh each run (more cases over time), or
    ``TICKER_TEST_SEED`` to repeat one. Printed, so a failing test's report shows it."""
    value = int(os.environ.get("TICKER_TEST_SEED") or secrets.randbits(30))
    print(f"seed {value}: TICKER_TEST_SEED={value} repeats this test's random draws")
    return value


@pytest.fixture
def unique_run(request: pytest.FixtureRequest) -> str:
    """A run id (an MQTT topic level) from the test's name, plus a short random tail."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name).strip("-")[:60]
    return f"{name}-{secrets.token_hex(3)}"
