"""The Dask driver: where each step of the two-pass scan runs, and the checks before it does.

::

    driver                                   workers (one thread each)
    ──────                                   ─────────────────────────
    make_plan, fingerprint ── check ───────► identify(): ticker version, plan fingerprint
    split into parts ───────── pass 1 ─────► scan_parts(stretch k)  (kept on the worker)
    as they come, in order ◄── summaries ─── PartScan.summary()   [recording: adopt the log
                                                                   stretch k staged]
    counter starts of k ────── pass 2 ─────► search(stretch k): piece_probes, find_crossings
                                             (on stretch k's worker, while pass 1 goes on)
    assemble: state (and the snapshot states), milestones, summary

Every task has a run-specific key (Dask would otherwise hand back a cached result of an earlier
run); a worker that dies mid-task is replaced and its tasks recomputed by Dask from their inputs
(the generator is a pure function of the plan, so the result is the same). A worker whose ticker
version or plan fingerprint differs from the driver's is refused before any work starts.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import resource
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from ticker import __version__, eventlog
from ticker.aggregate import AggregateState, Aggregator
from ticker.cluster import scan
from ticker.errors import TickerError
from ticker.scenario import Scenario, make_plan
from ticker.scenario.generate import Plan

if TYPE_CHECKING:
    from distributed import Client

    from ticker.aggregate.milestones import Milestone

#: A thread's own resource use (Linux); elsewhere tasks report CPU time only.
_RUSAGE_THREAD: int | None = getattr(resource, "RUSAGE_THREAD", None)

#: Parts per worker by default: enough to keep every worker busy to the end of pass 1.
PARTS_PER_WORKER = 4

#: Dask settings of a local cluster. Its statistical profiler samples each worker's stack every
#: 10 ms: 14 % of a worker's CPU in this job (double11-2020 at scale 0.05), off. Its event loops
#: wake every 20 ms (the "tick" that notices a blocked loop), 100 ms (each worker's memory
#: monitor) and 500 ms (the system monitor, for the dashboard): an idle local:2 cluster took
#: 1.6 % of a core per worker and 3.2 % in the scheduler (the driver's process), which the
#: scan's workers lose on a machine with one core each; at 1 s, 1 s and 5 s, 0.2 % and 0.6 %.
#: The memory monitor still acts within a second, on tasks that take tens of seconds.
QUIET_LOCAL_CLUSTER = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
}


class ClusterError(TickerError, ValueError):
    """The cluster cannot be reached, or a worker cannot take part; one line for the user."""


# --- connecting -----------------------------------------------------------------------------------


def _dask() -> ModuleType:
    try:
        import distributed
    except ImportError:
        raise ClusterError("--cluster needs Dask distributed: pip install 'ticker[cluster]'") from None
    return distributed


def parse_cluster(spec: str) -> tuple[str, int | str]:
    """``local:N`` → ("local", N); ``tcp://host:port`` → ("tcp", address)."""
    if spec.startswith("local:"):
        count = spec[len("local:"):]
        if count.isdigit() and 0 < int(count) <= 256:
            return "local", int(count)
        raise ClusterError(f"--cluster {spec}: expected local:N with N workers in 1..256")
    if spec.startswith(("tcp://", "tls://")) and spec.count(":") == 2 \
            and spec.rsplit(":", 1)[1].isdigit():
        return "remote", spec
    raise ClusterError(f"--cluster {spec!r}: expected local:N (a cluster on this machine) or "
                       "tcp://HOST:PORT (a running 'dask scheduler')")


@contextlib.contextmanager
def connect(spec: str) -> Iterator[Client]:
    """A Dask client for ``spec``: a fresh local cluster on 127.0.0.1 (everything, the HTTP
    server included, on loopback), or a running scheduler; closed on exit."""
    distributed = _dask()
    kind, where = parse_cluster(spec)
    cluster = None
    try:
        if kind == "local":
            import dask

            with dask.config.set(QUIET_LOCAL_CLUSTER):
                cluster = distributed.LocalCluster(
                    n_workers=where, threads_per_worker=1, processes=True, host="127.0.0.1",
                    # the scheduler's HTTP server (metrics; the dashboard if bokeh is installed)
                    # on a free loopback port: None would still try :8787, and warn when taken
                    dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
            client = distributed.Client(cluster)
            from ticker.cluster.quiet import QuietClose

            client.register_plugin(QuietClose())  # its workers close without a traceback
        else:
            client = distributed.Client(where, timeout=10)
    except OSError as exc:
        if cluster is not None:
            cluster.close()
        raise ClusterError(f"--cluster {spec}: cannot reach the Dask scheduler ({exc})") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# --- worker side ----------------------------------------------------------------------------------

_plans: dict[str, tuple[Plan, Aggregator, scan.Counters]] = {}


def _worker_setup(scenario: Scenario, seed: int, scale: float, run: str
                  ) -> tuple[Plan, Aggregator, scan.Counters, str]:
    """The plan of this run on this worker process, built once (and the allocator re-tuned:
    Dask's nanny sets MALLOC_TRIM_THRESHOLD_ low, which halves the generator's speed)."""
    key = f"{run}\0{scenario.text}"
    if key not in _plans:
        from ticker.engine import tune_allocator

        tune_allocator()
        plan = make_plan(scenario, seed, scale)
        template = Aggregator(scenario, run)
        _plans.clear()  # one run at a time per worker: plans of a full festival are ~100 MB
        _plans[key] = (plan, template, scan.Counters.build(plan, template))
    plan, template, counters = _plans[key]
    return plan, template, counters, scan.plan_fingerprint(plan)


def identify(scenario: Scenario, seed: int, scale: float, run: str) -> tuple[str, str]:
    """(ticker version, plan fingerprint) as this worker computes them."""
    return __version__, _worker_setup(scenario, seed, scale, run)[3]


def _checked(job: Job) -> tuple[Plan, Aggregator, scan.Counters]:
    plan, template, counters, fingerprint = _worker_setup(job.scenario, job.seed, job.scale, job.run)
    if fingerprint != job.fingerprint:  # a worker that joined after the check
        raise ClusterError(f"a worker computes plan fingerprint {fingerprint}, the driver "
                           f"{job.fingerprint}: install the same ticker and numpy everywhere")
    return plan, template, counters


@dataclass(frozen=True)
class Staging:
    """Where and how the workers write their stretches of the event log (shared storage)."""

    directory: str  # absolute: the run directory's log/.staging, as every worker sees it
    fsync: eventlog.FsyncPolicy
    segment_bytes: int


@dataclass(frozen=True)
class TaskCost:
    """What a task cost its worker thread: CPU seconds and minor page faults (each a fresh page
    the kernel zeroes: slow on these VMs). Summed over a run, and set against the workers'
    process totals, they tell the scan's own work from the worker's around it."""

    cpu_s: float = 0.0
    faults: int = 0

    @staticmethod
    def now() -> TaskCost:
        use = resource.getrusage(_RUSAGE_THREAD) if _RUSAGE_THREAD is not None else None
        return TaskCost(time.thread_time(), use.ru_minflt if use is not None else 0)

    def since(self) -> TaskCost:
        end = TaskCost.now()
        return TaskCost(end.cpu_s - self.cpu_s, end.faults - self.faults)

    def __add__(self, other: TaskCost) -> TaskCost:
        return TaskCost(self.cpu_s + other.cpu_s, self.faults + other.faults)


@dataclass
class Stretch:
    """Pass 1's result for one task: its consecutive parts, and the log stretch it staged."""

    scans: list[scan.PartScan]
    staged: str | None
    cost: TaskCost = TaskCost()


def pass1(job: Job, parts: list[list[scan.Piece]], staging: Staging | None = None) -> Stretch:
    began = TaskCost.now()
    plan, template, counters = _checked(job)
    if staging is None:
        scans = scan.scan_parts(plan, template, counters, parts)
        return Stretch(scans, None, began.since())
    # A directory of its own for each attempt: a task Dask reruns never writes into the
    # segments of an attempt that died (the driver takes the one named in the result it got).
    lo = parts[0][0].lo
    where = Path(staging.directory) / f"{eventlog.segment_name(lo)}-{uuid.uuid4().hex[:8]}"
    writer = eventlog.LogWriter(eventlog.EventLog(
        where, fsync=staging.fsync, segment_bytes=staging.segment_bytes,
        start_seq=lo))
    try:
        scans = scan.scan_parts(plan, template, counters, parts, writer.append)
    finally:
        writer.close()
    return Stretch(scans, str(where), began.since())


def sees(path: str) -> bool:
    """Whether this worker sees the file ``path`` (the driver's staging area)."""
    return Path(path).is_file()


def summarize(stretch: Stretch) -> Stretch:
    return Stretch([s.summary() for s in stretch.scans], stretch.staged, stretch.cost)


@dataclass
class Search:
    """Pass 2's result for one task: the crossings found, and how much it regenerated."""

    crossings: list[Milestone]
    probes: int
    events: int
    cost: TaskCost = TaskCost()


def search(job: Job, stretch: Stretch, starts: list[np.ndarray], more: list[scan.Probe]) -> Search:
    """Pass 2 for one stretch, on the worker that holds its per-piece sums: the pieces (and
    ``more``: whole parts) where a threshold can be first reached, given the counters' values at
    each part's start, searched for the crossing order."""
    began = TaskCost.now()
    plan, template, counters = _checked(job)
    probes = [p for part, start in zip(stretch.scans, starts, strict=True)
              for p in scan.piece_probes(part, start, template, counters)] + more
    crossings = scan.find_crossings(plan, template, probes)
    return Search(crossings, len(probes), sum(p.events for p in probes), began.since())


# --- the driver -----------------------------------------------------------------------------------


def shippable(scenario: Scenario) -> Scenario:
    """The scenario without what it derived (its catalogues: ~10 MB for double11-2021, which
    would go with every task): each worker derives them once (a replay's fingerprint check
    confirms they agree)."""
    return dataclasses.replace(scenario)


@dataclass(frozen=True)
class Job:
    """What every task needs to rebuild the plan; small enough to ship with each task."""

    scenario: Scenario
    seed: int
    scale: float
    run: str
    fingerprint: str


@dataclass
class ClusterResult:
    aggregator: Aggregator
    workers: int
    parts: int
    probes: int
    probe_events: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds: check, pass1, merge, pass2
    pass1_cost: TaskCost = TaskCost()  # summed over the tasks, on the workers
    pass2_cost: TaskCost = TaskCost()


@dataclass
class Recording:
    """What a recorded run adds to the scan: workers stage whole segments of the event log, the
    driver takes them into the log in seq order (``adopt``, :meth:`EventLog.adopt`) and writes
    the state at every ``snapshot_every`` seqs (``snapshot``), as one process would."""

    staging: Staging
    snapshot_every: int
    adopt: Callable[[Path], None]
    snapshot: Callable[[AggregateState], None]


def check_workers(client: Client, job: Job, staging: Staging | None = None) -> int:
    """Refuse a cluster whose workers run another ticker, compute another plan or (recording)
    cannot see the staging area; one line."""
    answers = client.run(identify, job.scenario, job.seed, job.scale, job.run)
    if not answers:
        raise ClusterError("the Dask cluster has no workers")
    for address, (version, fingerprint) in sorted(answers.items()):
        if version != __version__:
            raise ClusterError(f"worker {address} runs ticker {version}, this driver ticker "
                               f"{__version__}: install the same version on every worker")
        if fingerprint != job.fingerprint:
            raise ClusterError(f"worker {address} computes plan fingerprint {fingerprint} for "
                               f"{job.run}, this driver {job.fingerprint}: install the same "
                               "ticker and numpy on every worker")
    if staging is not None:
        Path(staging.directory).mkdir(parents=True, exist_ok=True)
        probe = Path(staging.directory) / f".visible-{uuid.uuid4().hex[:8]}"
        probe.touch()
        try:
            seen = client.run(sees, str(probe))
        finally:
            probe.unlink()
        for address, ok in sorted(seen.items()):
            if not ok:
                raise ClusterError(f"worker {address} cannot see {staging.directory}: workers "
                                   "write the event log into the run directory, which needs "
                                   "storage shared with this driver (or run with --no-log)")
    return len(answers)


def layout(plan: Plan, parts: int, recording: Recording | None) -> list[list[list[scan.Piece]]]:
    """The tasks of pass 1, each a run of consecutive parts. Without a log: one part a task, on
    chunk boundaries. Recording: tasks on the log's segment boundaries (each writes whole
    segments), cut into parts at the snapshot seqs inside them."""
    if recording is None:
        return [[pieces] for pieces in scan.split(plan, parts)]
    every = recording.snapshot_every
    align = eventlog.segment_events(recording.staging.segment_bytes)
    tasks = []
    for pieces in scan.split(plan, parts, align):
        lo, hi = pieces[0].lo, pieces[-1].hi
        tasks.append(scan.parts_at(plan, [lo, *range(lo - lo % every + every, hi, every), hi]))
    return tasks


def run_scan(client: Client, scenario: Scenario, seed: int, scale: float, run: str,
             parts: int | None = None, recording: Recording | None = None) -> ClusterResult:
    """The replay of (scenario, seed, scale) on the cluster behind ``client``; with
    ``recording``, its event log and snapshots too."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    plan = make_plan(scenario, seed, scale)
    template = Aggregator(scenario, run)
    counters = scan.Counters.build(plan, template)
    job = Job(shippable(scenario), seed, scale, run, scan.plan_fingerprint(plan))
    staging = recording.staging if recording is not None else None
    workers = check_workers(client, job, staging)
    timings["check"] = time.perf_counter() - t0
    tasks = layout(plan, parts or PARTS_PER_WORKER * workers, recording)
    token = uuid.uuid4().hex[:12]  # run-specific keys: never a cached result of another run

    t1 = time.perf_counter()
    stretches: list[Any] = [client.submit(pass1, job, task, staging,
                                          key=f"ticker-pass1-{token}-{k}", pure=False)
                            for k, task in enumerate(tasks)]
    summaries = [client.submit(summarize, f, key=f"ticker-sum-{token}-{k}", pure=False)
                 for k, f in enumerate(stretches)]
    # Part by part as pass 1 completes, in seq order: the counters' values at each part's start
    # are known once every part before it is in, so its pass-2 search starts at once, on the
    # worker holding its per-piece sums, while later parts are still in pass 1 (no barrier).
    # The driver keeps no part: each is added to the running state (scan.Assembly) as soon as
    # its search is in, and then dropped, with the futures that hold it on the workers.
    merge = 0.0
    assembly = scan.Assembly(template)
    pending: collections.deque[tuple[Stretch, Any]] = collections.deque()
    start = np.zeros(counters.width, np.int64)
    running = np.zeros(len(counters.indexed), np.int64)
    every = recording.snapshot_every if recording is not None else 0
    probes = probe_events = 0

    pass1_cost = pass2_cost = TaskCost()

    def assemble(stretch: Stretch, found: Search) -> None:
        nonlocal probes, probe_events, pass1_cost, pass2_cost
        probes, probe_events = probes + found.probes, probe_events + found.events
        pass1_cost, pass2_cost = pass1_cost + stretch.cost, pass2_cost + found.cost
        for part in stretch.scans:
            assembly.add(part, found.crossings)
            if recording is not None and part.end_seq % every == 0 \
                    and part.end_seq < plan.total_events:  # the last: the run's final snapshot
                recording.snapshot(assembly.snapshot())

    for k, stretch in _in_order(summaries):
        t = time.perf_counter()
        if recording is not None:
            assert stretch.staged is not None
            recording.adopt(Path(stretch.staged))
            shutil.rmtree(stretch.staged)  # what is left: the stretch's lock file
        starts = []
        for part in stretch.scans:
            starts.append(start.copy())
            start += part.counter_net
        more = scan.part_probes(stretch.scans, counters, running)
        pending.append((stretch, client.submit(search, job, stretches[k], starts, more,
                                               key=f"ticker-pass2-{token}-{k}", pure=False)))
        stretches[k] = None  # its per-piece sums go once its search is done
        while pending and pending[0][1].done():
            done, future = pending.popleft()
            assemble(done, future.result())
        merge += time.perf_counter() - t
    timings["pass1"] = time.perf_counter() - t1
    t3, tail = time.perf_counter(), 0.0
    while pending:  # the searches still running after pass 1
        done, future = pending.popleft()
        found = future.result()
        t = time.perf_counter()
        assemble(done, found)
        tail += time.perf_counter() - t
    merge += tail
    timings["pass2"] = time.perf_counter() - t3 - tail  # waiting for them
    t4 = time.perf_counter()
    final = assembly.finish()
    timings["merge"] = merge + time.perf_counter() - t4
    timings["total"] = time.perf_counter() - t0
    aggregator = Aggregator(scenario, run, final, brand_names=template.brand_names)
    return ClusterResult(aggregator, workers, len(tasks), probes, probe_events, timings,
                         pass1_cost, pass2_cost)


def _in_order(futures: list[Any]) -> Iterator[tuple[int, Stretch]]:
    """(index, result) of ``futures`` in index order, each as soon as it and every one before
    it are done. A result is fetched only at its turn, and the list lets go of each future once
    it is taken (the data stays on its worker until then, and is released after)."""
    index = {f.key: k for k, f in enumerate(futures)}
    ready: set[int] = set()
    taken = 0
    for future in _dask().as_completed(list(futures)):
        ready.add(index[future.key])
        del future
        while taken in ready:
            stretch = futures[taken].result()
            futures[taken] = None
            yield taken, stretch
            del stretch
            taken += 1
