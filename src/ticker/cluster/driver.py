"""The Dask driver: where each step of the two-pass scan runs, and the checks before it does.

::

    driver                                   workers (one thread each)
    ──────                                   ─────────────────────────
    make_plan, fingerprint ── check ───────► identify(): ticker version, plan fingerprint
    split into parts ───────── pass 1 ─────► scan_part(part k)  (kept on the worker)
    counter starts ◄────────── summaries ─── PartScan.summary()
    offsets of each part ───── probes ─────► piece_probes(scan k, start k)
    balance probes ─────────── pass 2 ─────► find_crossings(group g)
    assemble: state, milestones, summary

Every task has a run-specific key (Dask would otherwise hand back a cached result of an earlier
run); a worker that dies mid-task is replaced and its tasks recomputed by Dask from their inputs
(the generator is a pure function of the plan, so the result is the same). A worker whose ticker
version or plan fingerprint differs from the driver's is refused before any work starts.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from ticker import __version__
from ticker.aggregate import Aggregator
from ticker.cluster import scan
from ticker.errors import TickerError
from ticker.scenario import Scenario, make_plan
from ticker.scenario.generate import Plan

#: Parts per worker by default: enough to keep every worker busy to the end of pass 1.
PARTS_PER_WORKER = 4


class ClusterError(TickerError, ValueError):
    """The cluster cannot be reached, or a worker cannot take part; one line for the user."""


# --- connecting -----------------------------------------------------------------------------------


def _dask():
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
def connect(spec: str) -> Iterator:
    """A Dask client for ``spec``: a fresh local cluster on 127.0.0.1 (everything, the HTTP
    server included, on loopback), or a running scheduler; closed on exit."""
    distributed = _dask()
    kind, where = parse_cluster(spec)
    cluster = None
    try:
        if kind == "local":
            import dask

            # Dask's statistical profiler samples each worker's stack every 10 ms: 14 % of a
            # worker's CPU in this job (measured, double11-2020 at scale 0.05). Off.
            with dask.config.set({"distributed.worker.profile.enabled": False}):
                cluster = distributed.LocalCluster(
                    n_workers=where, threads_per_worker=1, processes=True, host="127.0.0.1",
                    # the scheduler's HTTP server (metrics; the dashboard if bokeh is installed)
                    # on a free loopback port: None would still try :8787, and warn when taken
                    dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
            client = distributed.Client(cluster)
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


def pass1(job: Job, pieces: list[scan.Piece]) -> scan.PartScan:
    plan, template, counters = _checked(job)
    return scan.scan_part(plan, template, counters, pieces)


def summarize(part: scan.PartScan) -> scan.PartScan:
    return part.summary()


def probes_of(job: Job, part: scan.PartScan, start) -> list[scan.Probe]:
    _, template, counters = _checked(job)
    return scan.piece_probes(part, start, template, counters)


def pass2(job: Job, probes: list[scan.Probe]):
    plan, template, _ = _checked(job)
    return scan.find_crossings(plan, template, probes)


# --- the driver -----------------------------------------------------------------------------------


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


def check_workers(client, job: Job) -> int:
    """Refuse a cluster whose workers run another ticker or compute another plan; one line."""
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
    return len(answers)


def run_scan(client, scenario: Scenario, seed: int, scale: float, run: str,
             parts: int | None = None) -> ClusterResult:
    """The replay of (scenario, seed, scale) on the cluster behind ``client``, without a log."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    plan = make_plan(scenario, seed, scale)
    template = Aggregator(scenario, run)
    counters = scan.Counters.build(plan, template)
    job = Job(scenario, seed, scale, run, scan.plan_fingerprint(plan))
    workers = check_workers(client, job)
    timings["check"] = time.perf_counter() - t0
    layout = scan.split(plan, parts or PARTS_PER_WORKER * workers)
    token = uuid.uuid4().hex[:12]  # run-specific keys: never a cached result of another run

    t1 = time.perf_counter()
    scans = [client.submit(pass1, job, pieces, key=f"ticker-pass1-{token}-{k}", pure=False)
             for k, pieces in enumerate(layout)]
    summaries = client.gather([client.submit(summarize, f, key=f"ticker-sum-{token}-{k}", pure=False)
                               for k, f in enumerate(scans)])
    timings["pass1"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    starts = scan.counter_starts(summaries)
    found = client.gather([client.submit(probes_of, job, f, start, key=f"ticker-probe-{token}-{k}",
                                         pure=False)
                           for k, (f, start) in enumerate(zip(scans, starts, strict=True))])
    probes = [p for part in found for p in part] + scan.part_probes(summaries, template, counters)
    del scans  # the per-piece sums are no longer needed on the workers
    groups = scan.balance(probes, 2 * workers)
    timings["merge"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    crossings = client.gather([client.submit(pass2, job, g, key=f"ticker-pass2-{token}-{k}",
                                             pure=False) for k, g in enumerate(groups)])
    timings["pass2"] = time.perf_counter() - t3
    t4 = time.perf_counter()
    aggregator = scan.assemble(template, summaries, [m for ms in crossings for m in ms])
    timings["merge"] += time.perf_counter() - t4
    timings["total"] = time.perf_counter() - t0
    return ClusterResult(aggregator, workers, len(layout), len(probes),
                         sum(p.events for p in probes), timings)
