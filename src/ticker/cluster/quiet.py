"""A local cluster that closes without tracebacks.

When ``--cluster local:N`` closes, each worker stops (its status ``closing``), then closes its
connections to the scheduler; a heartbeat that was on its way at that moment fails, and Dask
logs it at ERROR with two tracebacks ("Failed to communicate with scheduler during
heartbeat", ``StreamClosedError``; dask/distributed#7105, open). Nothing is wrong: the worker is
going anyway. :class:`QuietClose` drops that one record from a worker that is closing, and
nothing else (a failed heartbeat of a running worker is still logged).

Imported only with Dask (``ticker[cluster]``).
"""

from __future__ import annotations

import logging
from typing import Any

import distributed
from distributed.core import Status

#: The message Dask's worker logs when a heartbeat fails (``distributed/worker.py``).
HEARTBEAT_FAILED = "Failed to communicate with scheduler during heartbeat."
_CLOSING = (Status.closing, Status.closing_gracefully, Status.closed)


class _ClosingHeartbeat(logging.Filter):
    def __init__(self, worker: Any):
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == HEARTBEAT_FAILED and self.worker.status in _CLOSING)


class QuietClose(distributed.WorkerPlugin):
    """Installed on every worker of a local cluster, the ones started later included."""

    name = "ticker-quiet-close"

    def setup(self, worker: Any) -> None:
        logging.getLogger("distributed.worker").addFilter(_ClosingHeartbeat(worker))
