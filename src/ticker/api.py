"""The whole pipeline as a function: :func:`replay` (and :func:`replay_async`).

``ticker replay`` is this function plus the terminal ticker and the command line's defaults. The
library's defaults differ where a script or a notebook wants them to: nothing is recorded (no
``runs/`` directory appears) unless ``record=True``, nothing is published unless ``mqtt`` names
a broker, and nothing is printed — results come back as a :class:`~ticker.Summary` and through
the ``sinks`` you pass (see :class:`ticker.Sink`).

>>> import ticker
>>> summary = ticker.replay("smoke", scale=0.1)
>>> summary.run
'smoke-seed1111-x0.1'
>>> ticker.format_money(summary.gmv_minor, summary.currency)
'RMB 60.4 million'
>>> summary.to_json()["peak_orders_per_s"] == summary.peak.orders_per_s
True
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ticker.engine import DEFAULT_SNAPSHOT_EVERY, ReplayOptions, execute, prepare
from ticker.eventlog import FsyncPolicy
from ticker.scenario.generate import DEFAULT_BATCH_EVENTS
from ticker.scenario.model import Scenario
from ticker.sink import Sink
from ticker.views import Summary


def replay(source: str | Path | Scenario, *, scale: float | None = None, seed: int | None = None,
           sinks: Sequence[Sink] = (), record: bool = False, run_dir: str | Path | None = None,
           resume: bool = False, speed: float | None = None, mqtt: str | None = None,
           publish_orders: bool = False, ca_file: str | None = None, tick_hz: float = 10.0,
           batch_size: int = DEFAULT_BATCH_EVENTS, workers: int = 1, fsync: FsyncPolicy = "interval",
           snapshot_every: int = DEFAULT_SNAPSHOT_EVERY) -> Summary:
    """Replay ``source`` to its end and return the run's :class:`~ticker.Summary`.

    ``source``: a bundled scenario's name, a scenario TOML file, a :class:`~ticker.Scenario`, or
    a recorded run directory (its log is re-read). ``scale`` and ``seed`` default to the
    scenario's. ``record=True`` writes the event log, snapshots and derived files into
    ``run_dir`` (default ``runs/{run}``); ``resume=True`` continues a crashed recording there.
    ``speed``: ``None`` as fast as possible, ``1.0`` real time, else a factor of it.
    ``mqtt``: a broker URL (``mqtt://host:port``, ``mqtts://…``) to publish the run to, or
    ``""`` for the local default broker (embedded when none listens on 127.0.0.1:1883); the
    summary's ``mqtt`` then says what was delivered. Results never depend on ``batch_size`` or
    ``workers``. Every problem a user can cause raises a :class:`~ticker.TickerError`.
    """
    from ticker.publish.sink import connect

    options = ReplayOptions(scale=scale, seed=seed, speed=speed,
                            run_dir=Path(run_dir) if run_dir is not None else None, resume=resume,
                            record=record, fsync=fsync, snapshot_every=snapshot_every,
                            batch_size=batch_size, workers=workers, tick_hz=tick_hz)
    run = prepare(source, options)
    every: list[Sink] = list(sinks)
    if mqtt is not None:
        publisher = connect(run, mqtt, tick_hz=tick_hz, ca_file=ca_file, orders=publish_orders)
        every.insert(0, publisher)
    try:
        return execute(run, every)
    finally:  # if execute never started (it closes every sink itself); closing twice is harmless
        for sink in every:
            sink.close()


async def replay_async(source: str | Path | Scenario, **kwargs: Any) -> Summary:
    """:func:`replay` for code already inside an event loop (a notebook, an asyncio service).

    The fold is CPU work and the publisher has its own thread and loop, so the replay runs in a
    worker thread and the caller's loop stays responsive; same arguments, same result.
    """
    return await asyncio.to_thread(replay, source, **kwargs)
