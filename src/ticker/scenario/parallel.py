"""Chunks made by worker processes, handed back through shared memory.

``generate_chunk`` is a pure function of (plan, chunk), so any process can make any chunk; this
module runs it in ``workers`` processes so that generating overlaps folding (a 2-core machine
generates on one core while the engine folds on the other). A chunk's ~2.5 MB of columns would
cost more to pickle through a pipe than to fold, so each worker writes its chunk straight into a
slot of one shared-memory block (``fill_chunk`` computes the columns in place) and answers with
the slot's event count. :func:`lent` hands the parent each slot's columns as views until it asks
for the next chunk, so the parent copies them once, into their batch
(:func:`ticker.scenario.generate.batches`); :func:`chunks` copies each chunk out. Chunks come
back in order, at most ``slots`` in flight, so memory stays bounded (``slots`` × the largest
chunk × 39 bytes).

The workers attach to the block by mapping ``/dev/shm/{name}`` rather than through
``SharedMemory(name)``, which in Python < 3.13 would register the block with the resource
tracker a second time and have it unlinked (or warned about) twice.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
from collections import deque
from collections.abc import Generator, Iterator
from multiprocessing.pool import AsyncResult
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from ticker.events import COLUMNS, OrderBatch

if TYPE_CHECKING:
    from ticker.scenario.generate import Plan

# Widest columns first, and slots a multiple of 8 events: every column starts 8-byte aligned.
_LAYOUT = sorted(COLUMNS.items(), key=lambda item: -item[1].itemsize)
_SHM_DIR = "/dev/shm"


def available() -> bool:
    """Shared memory is reachable as files (Linux); elsewhere the caller pickles chunks."""
    return Path(_SHM_DIR).is_dir()


def _views(buffer: mmap.mmap | memoryview, slots: int, slot_events: int) -> list[dict[str, np.ndarray]]:
    """Per slot, one array per column over the shared block."""
    out: list[dict[str, np.ndarray]] = []
    offset = 0
    for _ in range(slots):
        views: dict[str, np.ndarray] = {}
        for name, dtype in _LAYOUT:
            views[name] = np.frombuffer(buffer, dtype, slot_events, offset)
            offset += slot_events * dtype.itemsize
        out.append(views)
    return out


class _Worker(TypedDict, total=False):
    """What one worker process keeps between chunks (set once by ``_init_worker``)."""

    plan: Plan
    block: mmap.mmap
    views: list[dict[str, np.ndarray]]


_worker: _Worker = {}


def _init_worker(plan: Plan, name: str, size: int, slots: int, slot_events: int) -> None:
    fd = os.open(Path(_SHM_DIR) / name, os.O_RDWR)
    try:
        block = mmap.mmap(fd, size)
    finally:
        os.close(fd)
    _worker.update({"plan": plan, "block": block, "views": _views(block, slots, slot_events)})


def _fill(c: int, slot: int) -> int:
    from ticker.scenario.generate import fill_chunk

    plan = _worker["plan"]
    n = int(plan.chunk_seq[c + 1] - plan.chunk_seq[c])
    fill_chunk(plan, c, {name: column[:n] for name, column in _worker["views"][slot].items()})
    return n


def chunks(plan: Plan, workers: int, start_chunk: int = 0) -> Iterator[OrderBatch]:
    """The plan's chunks from ``start_chunk`` on, in order, made by ``workers`` processes."""
    made = lent(plan, workers, start_chunk)
    try:
        for _, chunk in made:
            copied = OrderBatch(**{name: column.copy() for name, column in chunk.columns().items()})
            del chunk  # no view of the slot may remain when the next one is asked for
            yield copied
    finally:
        made.close()


def lent(plan: Plan, workers: int, start_chunk: int = 0
         ) -> Generator[tuple[int, OrderBatch], None, None]:
    """``(c, chunk c)`` from ``start_chunk`` on, in order, made by ``workers`` processes; each
    chunk is a view of shared memory, valid only until the next one is asked for (its slot is
    then given to another chunk): copy what you keep, and drop every reference to the views
    before asking for the next chunk or closing (the block cannot be unmapped under them)."""
    todo = iter(range(start_chunk, plan.chunks))
    slot_events = -(-int(np.diff(plan.chunk_seq).max()) // 8) * 8
    slots = 4 * workers  # enough queued that a worker never waits for the parent to wake
    size = slots * slot_events * sum(dtype.itemsize for dtype in COLUMNS.values())
    block = SharedMemory(create=True, size=size)
    views: list[dict[str, np.ndarray]] = []
    try:
        assert block.buf is not None  # None only once closed
        views = _views(block.buf, slots, slot_events)
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_init_worker,
                          initargs=(plan, block.name, size, slots, slot_events)) as pool:
            pending: deque[tuple[int, int, AsyncResult[int]]] = deque()
            for slot, c in zip(range(slots), todo, strict=False):
                pending.append((c, slot, pool.apply_async(_fill, (c, slot))))
            while pending:
                c, slot, result = pending.popleft()
                n = result.get()
                yield c, OrderBatch(**{name: views[slot][name][:n] for name in COLUMNS})
                following = next(todo, None)
                if following is not None:  # the slot is free again: the caller is done with it
                    pending.append((following, slot, pool.apply_async(_fill, (following, slot))))
    finally:
        views.clear()  # no array over the block may outlive it
        block.close()
        block.unlink()
