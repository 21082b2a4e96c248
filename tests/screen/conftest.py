"""Fixtures for the screen's tests: Debian's Chromium (driven by Playwright, async API) and the
screen server on a free loopback port. The browser tooling is ``benchmarks/screen_tools.py``,
which the latency benchmark and the README's screenshot use too."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import screen_tools

from ticker.screen import ScreenServer


@pytest.fixture(scope="session")
def chromium(require_binary) -> str:
    """Skipped when missing on a developer's machine, a failure in CI (tests/conftest.py)."""
    path = screen_tools.find_chromium() or require_binary(
        "chromium", *screen_tools.CHROMIUM_CANDIDATES, install="apt-get install chromium")
    pytest.importorskip("playwright", reason="pip install -e '.[test]' installs playwright")
    return path


@pytest.fixture
def screen() -> Iterator[Callable[..., ScreenServer]]:
    """``screen(url, run=None, port=0)`` -> a started server on its own thread, stopped after."""
    servers: list[ScreenServer] = []

    def factory(url: str, run: str | None = None, port: int = 0) -> ScreenServer:
        server = ScreenServer(url, run=run, port=port).start_in_thread()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop_thread()
