"""Every key path of a parsed TOML document, for tests that mutate a scenario at any key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def key_paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path of the document, tables and arrays included (a mutation may hit any)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key)
            yield from key_paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield (*path, i)
            yield from key_paths(value, (*path, i))
