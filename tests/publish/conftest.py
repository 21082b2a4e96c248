"""Fixtures for the publishing tests (the brokers themselves are in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .helpers import Listener


@pytest.fixture
def listen() -> Iterator[Callable[..., Listener]]:
    """``listen(port, filters, **kw)`` -> a started :class:`Listener`, closed after the test."""
    listeners: list[Listener] = []

    def factory(port: int, filters: list[str] | str, **kwargs) -> Listener:
        listener = Listener(port, [filters] if isinstance(filters, str) else filters, **kwargs)
        listeners.append(listener)
        return listener

    yield factory
    for listener in listeners:
        listener.close()
