"""Command-line interface: argument parsing only; every command is a thin call into a module.

A user error (bad scenario, bad flag value, missing run directory) is a :class:`ticker.TickerError`,
caught once in :func:`main`: one line on stderr and exit code 2, never a traceback. Anything else
that escapes is a bug.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ticker import __version__
from ticker.clock import format_time
from ticker.errors import TickerError
from ticker.money import format_money
from ticker.validate import (
    BENCH_EVENTS,
    EVENTS_PER_BATCH,
    IDLE_S,
    LAST,
    PARTS,
    PORT,
    REPEATS,
    RUNG_S,
    SALE_S,
    SCALE,
    SEED,
    SNAPSHOT_EVERY,
    SPEED,
    TICK_HZ,
    TOP,
    WORKERS,
    input_file_arg,
    number_arg,
    numbers_arg,
    output_dir_arg,
    output_file_arg,
)

if TYPE_CHECKING:
    from ticker.rundir import RunDir
    from ticker.sink import Sink


def _cmd_scenarios(args: argparse.Namespace) -> int:
    from ticker.scenario import bundled_names, resolve

    for name in bundled_names():
        s = resolve(name)
        first = format_time(s.start_us, s.zone, precision="minutes")[:16].replace("T", " ")
        last = format_time(s.end_us, s.zone, precision="minutes")[:16].replace("T", " ")
        print(f"{name:<20} {first} .. {last} {s.zone.tzname(None)[3:] or '+00:00'}  "
              f"{s.currency.code}  {s.orders:>14,} orders at scale 1  "
              f"GMV {format_money(s.gmv_minor, s.currency):<19} default scale {s.default_scale:g}")
    return 0


def _cmd_disorders(args: argparse.Namespace) -> int:
    from ticker.scenario.disorder import bundled_profiles, load_profile

    for name in bundled_profiles():
        p = load_profile(name)
        print(f"{name:<14} lateness {p.lateness_s:g} s, dedup {p.dedup_s:g} s; groups of "
              f"{p.group_ms:g} ms; {p.delayed:.2%} delayed (median {p.delay_median_s:g} s, at most "
              f"{p.delay_max_s:g} s); {p.late:.2%} late (up to {p.late_max_s:g} s); "
              f"{p.duplicates:.2%} delivered twice")
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:

    from ticker.engine import ReplayOptions
    from ticker.publish.sink import connect
    from ticker.publish.terminal import TerminalTicker

    options = ReplayOptions(
        scale=args.scale, seed=args.seed, speed=args.speed, run_dir=args.run_dir,
        resume=args.resume, record=not args.no_log, fsync=args.fsync,
        snapshot_every=args.snapshot_every, batch_size=args.batch_size, workers=args.workers,
        tick_hz=args.tick_hz, partial=args.partial, disorder=args.disorder)
    from ticker.engine import execute, prepare, tune_allocator

    url = args.mqtt or os.environ.get("TICKER_MQTT_URL") or ""
    mqtt = screen = None
    try:
        tune_allocator()
        if args.cluster:
            from ticker.cluster.replay import check_options

            check_options(args.scenario, options)
        run = prepare(args.scenario, options)
        terminal = TerminalTicker(title=run.scenario.title, currency=run.scenario.currency,
                                  zone=run.scenario.zone, total_events=run.total_events,
                                  scale=run.scale, quiet=args.quiet)
        sinks: list[Sink] = [terminal]
        if url.lower() != "none":
            mqtt = connect(run, url, tick_hz=args.tick_hz, ca_file=args.ca_file,
                           orders=args.publish_orders)
            sinks.insert(0, mqtt)
            if mqtt.where:
                terminal.note(mqtt.where)
        elif args.screen:
            raise TickerError("--screen shows what is published: it needs a broker, not --mqtt none")
        if args.screen:
            from ticker.screen.server import start_beside

            assert mqtt is not None  # --screen without a broker was refused above
            screen = start_beside(mqtt.publisher.url, run.run, args.screen_port, args.ca_file)
        for note in run.notes:
            terminal.note(note)
        if args.cluster:
            from ticker.cluster.replay import execute as execute_on_cluster

            summary, _ = execute_on_cluster(run, sinks, args.cluster, args.parts, note=terminal.note)
        else:
            summary = execute(run, sinks)
        if screen is not None:
            screen.linger()
    finally:
        if screen is not None:
            screen.stop_thread()
        if mqtt is not None:
            mqtt.close()  # if the run never started; closing twice is harmless
    if args.summary:
        _write_summary(args.summary, summary.to_json(), run.run_dir.path if run.run_dir else None)
    undelivered = summary.mqtt is not None and summary.mqtt.undelivered
    code = 4 if summary.partial else 3 if undelivered else 0
    if args.report:  # printed even with --quiet: it was asked for
        from ticker.report import build_report, load_report, print_report

        report = (load_report(run.run_dir.path) if run.run_dir is not None
                  else build_report(run.scenario, summary.to_json()))
        print_report(report)
        code = code if report.ok else 1
    return code


def _write_summary(path: Path, summary: dict[str, Any], recorded: Path | None) -> None:
    """``--summary PATH`` (checked writable before the run; a failure now still says where the
    run is kept)."""
    import orjson

    from ticker.validate import os_problem

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as exc:
        raise TickerError(os_problem(path, exc) + (
            f"; the run is complete in {recorded}" if recorded else "")) from None


def _cmd_watch(args: argparse.Namespace) -> int:
    from ticker.publish import run_watch

    return run_watch(args.mqtt, args.filters, args.run, args.json, ca_file=args.ca_file)


def _cmd_screen(args: argparse.Namespace) -> int:
    from ticker.publish.watch import DEFAULT_URL
    from ticker.screen import run_screen

    return run_screen(args.mqtt or os.environ.get("TICKER_MQTT_URL") or DEFAULT_URL, run=args.run,
                      host=args.host, port=args.port, ca_file=args.ca_file, open_browser=args.open)


def _cmd_broker(args: argparse.Namespace) -> int:
    from ticker.publish import run_broker

    return run_broker(args.host, args.port)


def _run_dir(path: Path) -> RunDir:
    from ticker.rundir import RunDir, RunDirError

    run_dir = RunDir(path)
    if not run_dir.exists():
        raise RunDirError(f"{path}: not a run directory (no run.json; expected the --run-dir of a "
                        "'ticker replay')")
    return run_dir


def _cmd_verify(args: argparse.Namespace) -> int:
    from ticker.history import verify_run

    run_dir = _run_dir(args.run_dir)
    problems = verify_run(run_dir, repair=args.repair)
    for line in problems:
        print(line)
    if not problems:
        print(f"{run_dir.path}: ok: every frame checks, and the re-folded log agrees with the "
              f"snapshots, the milestones and the summary")
    if args.repair and problems:  # 0 when every problem was a derived file now rebuilt
        return 1 if verify_run(run_dir) else 0
    return 1 if problems else 0


def _cmd_state(args: argparse.Namespace) -> int:
    from ticker.clock import parse_time
    from ticker.history import render_state, state_at

    run_dir = _run_dir(args.run_dir)
    scenario = run_dir.scenario()
    try:
        at_us = parse_time(args.at, scenario.zone)
    except ValueError:
        raise TickerError(f"--at: expected an ISO-8601 time like 2021-11-11T00:45+08:00, found "
                        f"{args.at!r}") from None
    found = state_at(run_dir, at_us)
    print(render_state(found, scenario, top=args.top, last=args.last, as_json=args.json))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    import contextlib

    from ticker.export import export_milestones, export_orders
    from ticker.scenario.dimensions import tables

    run_dir = _run_dir(args.run_dir)
    scenario = run_dir.scenario()
    out = args.out if args.out is not None else sys.stdout.buffer
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)  # as --run-dir and --summary
    try:
        with contextlib.suppress(BrokenPipeError):
            if args.what == "milestones":
                count = export_milestones(run_dir.milestones_path, out, args.format, zone=scenario.zone)
            else:
                count = export_orders(run_dir.log, out, args.format,
                                      brands=run_dir.brand_names(scenario),
                                      platforms=[p for p, _ in scenario.platforms],
                                      regions=[r for r, _ in scenario.regions], zone=scenario.zone,
                                      dimensions=tables(scenario))
            if args.out is not None:
                print(f"wrote {count:,} {args.what} to {args.out}", file=sys.stderr)
    except OSError as exc:  # the --out file cannot be written: the user's to fix
        raise TickerError(str(exc)) from None
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    import orjson

    from ticker.report import years

    if args.png is not None:
        from ticker.report import require_plotting

        require_plotting()  # before the work, not after it
    found = years.festivals()
    if args.png is not None:
        years.write_png(found, args.png)
    if args.json:
        sys.stdout.write(orjson.dumps(years.history_json(found), option=orjson.OPT_INDENT_2).decode()
                         + "\n")
    else:
        years.render(found, sys.stdout)
    if args.png is not None:
        print(f"wrote the chart to {args.png}", file=sys.stderr)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from ticker.report import load_report, print_report, require_plotting, write_png

    if args.png is not None:
        require_plotting()  # before the work, not after it
    report = load_report(args.run_dir, args.baseline)
    if args.png is not None:
        write_png(report, args.png)
    print_report(report, as_json=args.json)
    if args.png is not None:
        print(f"wrote the chart to {args.png}", file=sys.stderr)
    return 0 if report.ok else 1


def _cmd_import(args: argparse.Namespace) -> int:
    from ticker.ingest import parse_mapping
    from ticker.ingest.importer import ImportOptions, import_orders

    result = import_orders(ImportOptions(
        path=args.file, fmt=args.format, mapping=parse_mapping(args.map), scenario=args.scenario,
        currency=args.currency, run_dir=args.run_dir, scale=args.scale, fsync=args.fsync,
        disorder=args.disorder))
    return _report_ingest(result.summary, result.run_dir.path, args, rejected=result.rejected)


def _cmd_follow(args: argparse.Namespace) -> int:
    from ticker.ingest.follow import DEFAULT_TOPICS, DEFAULT_URL, FollowOptions, follow

    def say(line: str) -> None:
        if not args.quiet:
            print(f"ticker: {line}", file=sys.stderr)

    opts = FollowOptions(
        url=args.mqtt or os.environ.get("TICKER_MQTT_URL") or DEFAULT_URL,
        topics=tuple(args.topic) or DEFAULT_TOPICS, scenario=args.scenario, run_dir=args.run_dir,
        currency=args.currency, tick_hz=args.tick_hz, idle_s=args.idle_exit, ca_file=args.ca_file,
        fsync=args.fsync, on_progress=say, disorder=args.disorder)
    summary, follower = follow(opts)
    for note in follower.notes:
        say(note)
    _report_ingest(summary, follower.run_dir.path, args, rejected=summary["ingest"]["rejected"])
    # dead letters are the stream's, not a failure of follow: counted, not an exit code
    return 3 if summary.get("mqtt", {}).get("undelivered") else 0


def _report_ingest(summary: dict[str, Any], path: Path, args: argparse.Namespace, *, rejected: int) -> int:
    """The closing lines of import and follow; exit code 1 when anything was refused."""

    from ticker.money import CURRENCIES

    if args.summary:
        _write_summary(args.summary, summary, path)
    ingest = summary["ingest"]
    if not args.quiet:
        currency = CURRENCIES[summary["currency"]]
        print(f"{path}: {ingest['accepted']:,} orders accepted, {rejected:,} rejected"
              + (f" ({ingest['duplicates']:,} duplicates)" if ingest.get("duplicates") else "")
              + (f", reasons in {ingest['dead_letters']}" if rejected else ""))
        refunds = f"{summary['refunds']:,} refund{'' if summary['refunds'] == 1 else 's'}"
        print(f"  GMV {format_money(summary['gmv_minor'], currency)} from {summary['orders']:,} orders "
              f"and {refunds}; {len(summary['milestones']):,} milestones; "
              f"peak {summary['peak_orders_per_s']:,} orders/s at {summary['peak_at']}")
    return 1 if rejected > ingest.get("duplicates", 0) else 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import orjson

    from ticker.bench import print_table, run_bench

    if args.sustain:
        return _bench_sustain(args)
    result = run_bench(args.events, repeats=args.repeats, peers=args.peers)
    if args.json:
        print(orjson.dumps(result.to_json()).decode())
        return 0
    print_table(result)
    return 0


def _bench_sustain(args: argparse.Namespace) -> int:
    import orjson

    from ticker.sustain import DEFAULT_FACTORS, MODES, print_sustain, run_sustain

    def progress(rung: Any) -> None:
        print(f"ticker bench --sustain: {rung.mode} ×{rung.factor:g}, {rung.sale_s:g} s of sale "
              f"time: {rung.events_per_s:,.0f} events/s, lag max {rung.lag_max_s:.3f} s, "
              f"{'held' if rung.held else 'not held: ' + rung.why}", file=sys.stderr, flush=True)

    modes = [m for m in MODES if args.modes in (m, "both")]
    result = run_sustain(args.mqtt, factors=args.factors or DEFAULT_FACTORS, rung_s=args.rung_s,
                         latency_s=args.latency_s, modes=modes, scale=args.scale,
                         progress=None if args.quiet else progress)
    if args.json:
        print(orjson.dumps(result.to_json()).decode())
    else:
        print_sustain(result)
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    import contextlib

    import orjson

    from ticker.cluster.sweep import parse_seeds, render, run_sweep
    from ticker.scenario import resolve

    seeds = parse_seeds(args.seeds)
    scenario = resolve(args.scenario)
    scale = scenario.default_scale if args.scale is None else args.scale
    with contextlib.ExitStack() as stack:
        client = None
        if args.cluster:
            from ticker.cluster.driver import connect

            client = stack.enter_context(connect(args.cluster))
        sweep = run_sweep(scenario, seeds, scale, client)
    if args.json:
        print(orjson.dumps(sweep.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        render(sweep)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "sweep": _cmd_sweep,
    "bench": _cmd_bench,
    "verify": _cmd_verify,
    "state": _cmd_state,
    "export": _cmd_export,
    "report": _cmd_report,
    "history": _cmd_history,
    "scenarios": _cmd_scenarios,
    "disorders": _cmd_disorders,
    "replay": _cmd_replay,
    "watch": _cmd_watch,
    "screen": _cmd_screen,
    "broker": _cmd_broker,
    "import": _cmd_import,
    "follow": _cmd_follow,
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what, where, what was expected), exit code 2."""

    def error(self, message: str) -> NoReturn:
        message = message.removeprefix("argument ")  # "--tick-hz: expected ..., got 0"
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


#: import and follow read the same order streams, so they take --disorder alike
_INGEST_DISORDER_HELP = (
    "an arrival-ordered stream: fold it by event time with this disorder profile's lateness and "
    "duplicate window (as replay --disorder; 'none': the ordered fold, which needs orders in "
    "event-time order); default: the scenario's [disorder]")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ticker",
        description="Replay a shopping festival as a stream of orders; fold it into GMV and "
        "milestones; publish them over MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"ticker {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)
    sub.add_parser("scenarios", help="list the bundled festival scenarios")
    sub.add_parser("disorders", help="list the bundled disorder profiles (--disorder NAME)")

    p = sub.add_parser("replay", help="replay a festival (or a recorded run) and publish it",
                       description="Generate a scenario's orders (or re-read a recorded run's "
                       "log), fold them into GMV and milestones, show and publish them.")
    p.add_argument("scenario", metavar="SCENARIO",
                   help="a bundled scenario name (see 'ticker scenarios'), a .toml file, "
                   "or a run directory to replay from its log")
    p.add_argument("--scale", type=number_arg(SCALE), default=None,
                   help="orders emitted = scale × the real count, each worth 1/scale more, so "
                   "the money and the shape are kept (default: the scenario's, see 'ticker "
                   "scenarios'; 1 is the full festival)")
    p.add_argument("--seed", type=number_arg(SEED), help="random seed (default: the scenario's)")
    p.add_argument("--disorder", metavar="NAME|FILE|none",
                   help="replay an arrival-ordered stream: out of order, duplicated and late "
                   "orders (a bundled profile such as 'realistic', or a TOML file; default: the "
                   "scenario's [disorder], if any); milestones then come live, final and as "
                   "corrections")
    p.add_argument("--speed", type=number_arg(SPEED, words={"max": None, "realtime": 1.0}),
                   default=None, metavar="max|realtime|FACTOR",
                   help="pace by event time: max (default), realtime, or a factor such as 3600")
    p.add_argument("--mqtt", metavar="URL", help="mqtt://[user:pass@]host[:port] or mqtts://...; "
                   "default $TICKER_MQTT_URL, else an embedded broker on 127.0.0.1; 'none' to "
                   "publish nothing")
    p.add_argument("--ca-file", type=input_file_arg, help="CA certificates (PEM) for an mqtts:// broker")
    p.add_argument("--publish-orders", action="store_true",
                   help="also publish the raw order batches on ticker/{run}/orders/{partition}")
    p.add_argument("--tick-hz", type=number_arg(TICK_HZ), default=10.0,
                   help="GMV ticks and leaderboards per wall-clock second (default 10)")
    p.add_argument("--run-dir", type=output_dir_arg, help="where to record the run (default runs/{run})")
    logging = p.add_mutually_exclusive_group()  # nothing to resume from without a log
    logging.add_argument("--resume", action="store_true",
                         help="continue a crashed recording in --run-dir from its last snapshot")
    logging.add_argument("--no-log", action="store_true",
                   help="do not record the event log or snapshots (e.g. a full-scale run)")
    p.add_argument("--fsync", choices=("every", "interval", "never"), default="interval",
                   help="event-log durability: every append, about once a second (default), "
                   "or never (the OS decides); see docs/architecture.md")
    p.add_argument("--snapshot-every", type=number_arg(SNAPSHOT_EVERY), default=1 << 23, metavar="N",
                   help="checkpoint the aggregate state every N events, rounded up to whole "
                   "log records of 65,536 (default 8,388,608)")
    p.add_argument("--batch-size", type=number_arg(EVENTS_PER_BATCH), default=1 << 20, metavar="N",
                   help="events per batch (default 1,048,576); results do not depend on it")
    p.add_argument("--workers", type=number_arg(WORKERS), default=1,
                   help="generator processes (default 1); results do not depend on it")
    p.add_argument("--cluster", metavar="local:N|tcp://HOST:PORT",
                   help="compute the replay on Dask: a local cluster of N worker processes, or a "
                   "running 'dask scheduler' (needs pip install 'ticker[cluster]'; with --no-log); "
                   "the result is the same as on one process")
    p.add_argument("--parts", type=number_arg(PARTS), metavar="P",
                   help="with --cluster: split the stream into P parts (default 4 per worker)")
    p.add_argument("--summary", type=output_file_arg, metavar="PATH", help="also write the summary JSON here")
    p.add_argument("--partial", action="store_true",
                   help="replaying a run directory whose log is damaged or incomplete: replay the "
                   "readable events anyway (the summary and the output say partial; exit code 4)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--report", action="store_true",
                   help="at the end, check the run against the scenario's published facts "
                   "(as 'ticker report'); the exit code is 1 when one does not hold")

    p.add_argument("--screen", action="store_true",
                   help="also serve the big screen (a live web page of the run, see 'ticker "
                   "screen'); it stays up after the run until Ctrl-C")
    p.add_argument("--screen-port", type=number_arg(PORT), default=None, metavar="PORT",
                   help="the screen's port on 127.0.0.1 (default 1111, or a free one if taken)")

    w = sub.add_parser("watch", help="subscribe to a run's milestones and ticks")
    w.add_argument("filters", nargs="*", metavar="TOPIC_FILTER",
                   help="MQTT topic filters (default ticker/+/milestones/#)")
    w.add_argument("--mqtt", metavar="URL", help="broker URL (default $TICKER_MQTT_URL, else "
                   "mqtt://127.0.0.1:1883)")
    w.add_argument("--run", metavar="ID", help="only this run's topics")
    w.add_argument("--json", action="store_true", help="one JSON object per message")
    w.add_argument("--ca-file", type=input_file_arg, help="CA certificates (PEM) for an mqtts:// broker")

    s = sub.add_parser("screen", help="serve the big screen: a live web page of a run",
                       description="Serve a web page that shows a run live from the broker: "
                       "GMV, orders/s, the leaderboard, milestones (Server-Sent Events).")
    s.add_argument("--mqtt", metavar="URL", help="broker URL (default $TICKER_MQTT_URL, else "
                   "mqtt://127.0.0.1:1883)")
    s.add_argument("--run", metavar="ID", help="show this run (default: the newest, following "
                   "new runs as they start; the page has a run picker)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=number_arg(PORT), default=1111, help="port to serve on (default 1111)")
    s.add_argument("--open", action="store_true", help="open the page in a web browser")
    s.add_argument("--ca-file", help="CA certificates (PEM) for an mqtts:// broker")

    v = sub.add_parser("verify", help="check a recorded run: frames, snapshots, summary")
    v.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    v.add_argument("--repair", action="store_true",
                   help="rebuild the derived files (snapshots, milestones.jsonl, summary.json) "
                   "from the log, which is the truth; exit code 0 when the run then verifies")

    t = sub.add_parser("state", help="the state of a recorded run as of an event time")
    t.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    t.add_argument("--at", required=True, metavar="TIME",
                   help="ISO-8601 event time, e.g. 2021-11-11T00:45+08:00 (no offset: the "
                   "festival's zone)")
    t.add_argument("--top", type=number_arg(TOP), default=10, help="top brands to show (default 10)")
    t.add_argument("--last", type=number_arg(LAST), default=5, help="latest milestones to show (default 5)")
    t.add_argument("--json", action="store_true", help="print JSON")

    e = sub.add_parser("export", help="export a recorded run's orders or milestones")
    e.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    e.add_argument("--format", required=True, choices=("csv", "jsonl", "parquet"))
    e.add_argument("--what", choices=("orders", "milestones"), default="orders")
    e.add_argument("--out", type=output_file_arg, metavar="PATH", help="output file (default: stdout)")

    h = sub.add_parser("history", help="the festivals year by year: the bundled scenarios side "
                       "by side and the record's yearly figures since 2009, each with its source")
    h.add_argument("--json", action="store_true", help="print JSON")
    h.add_argument("--png", type=output_file_arg, metavar="PATH",
                   help="draw GMV and brands by year (pip install 'ticker[plot]')")

    r = sub.add_parser("report", help="a recorded run against the published record",
                       description="Check a finished run against its scenario's [[targets]] "
                       "(the facts of FACTS.md): a table of expected, measured and difference, "
                       "then the milestones. Exit code 0 when every fact holds, 1 otherwise.")
    r.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    r.add_argument("--png", type=output_file_arg, metavar="PATH",
                   help="also draw the run into a PNG (needs matplotlib: pip install "
                   "'ticker[plot]')")
    r.add_argument("--json", action="store_true", help="print JSON instead of the table")
    r.add_argument("--baseline", type=Path, metavar="RUN_DIR", help="the previous year's run "
                   "for year-on-year facts (default: the scenario's festival.baseline, replayed "
                   "at the same scale next to RUN_DIR once)")

    s = sub.add_parser("sweep", help="replay a festival under many seeds: how much do its "
                       "milestones move?",
                       description="Replay a scenario once per seed (no log), then show per "
                       "milestone the earliest, median and latest event time, who wins each race "
                       "how often, and how often each published fact holds.")
    s.add_argument("scenario", metavar="SCENARIO", help="a bundled scenario name or a .toml file")
    s.add_argument("--seeds", required=True, metavar="A-B", help="the seeds, inclusive, e.g. 1-100")
    s.add_argument("--scale", type=number_arg(SCALE), default=None,
                   help="the scale of every replay (default: the scenario's)")
    s.add_argument("--cluster", metavar="local:N|tcp://HOST:PORT",
                   help="replay the seeds in parallel on Dask (pip install 'ticker[cluster]')")
    s.add_argument("--json", action="store_true", help="print JSON instead of the tables")

    n = sub.add_parser("bench", help="measure the aggregator against raw numpy and the plain Python "
                       "fold (--peers: polars, DuckDB, pandas; --sustain: the sustained rate "
                       "through a broker)")
    n.add_argument("--events", type=number_arg(BENCH_EVENTS), default=10_000_000,
                   help="events in the benchmark stream (default 10,000,000)")
    n.add_argument("--repeats", type=number_arg(REPEATS), default=3, help="timed folds (default 3)")
    n.add_argument("--json", action="store_true", help="print one JSON object")
    what = n.add_mutually_exclusive_group()
    what.add_argument("--peers", action="store_true",
                      help="also fold the same events with polars, DuckDB and pandas and check "
                      "their answers (pip install 'ticker[peers]')")
    what.add_argument("--sustain", action="store_true",
                      help="the highest speed factor at which the 2020 main day (scale 1), replayed "
                      "through a real Mosquitto with ticks and milestones, and again with "
                      "--publish-orders, keeps up with sale time, and the milestone latency from "
                      "fold to an independent subscriber at it. A rung holds when the subscriber "
                      "gets everything, its lag (receipt minus the pacer's due time of the newest "
                      "event received) never exceeds 1 s and grows by at most 0.02 s per s (least "
                      "squares; or under 0.1 s over the whole rung). See docs/benchmarks.md")
    n.add_argument("--mqtt", metavar="URL",
                   help="--sustain: the broker (default: a private Mosquitto on a free loopback port)")
    n.add_argument("--factors", type=numbers_arg(SPEED), metavar="F1,F2,...",
                   help="--sustain: the speed factors to climb (default 1,2,3,4,6,8,12,16,24,32)")
    n.add_argument("--rung-s", type=number_arg(RUNG_S), default=8.0,
                   help="--sustain: wall seconds per rung; a rung replays the first rung-s × "
                   "factor seconds of Nov 11 (default 8)")
    n.add_argument("--latency-s", type=number_arg(SALE_S), default=900.0,
                   help="--sustain: seconds of Nov 11 replayed at the held factor to measure "
                   "milestone latency (default 900: about 370 milestones)")
    n.add_argument("--modes", choices=["ticks", "orders", "both"], default="both",
                   help="--sustain: ticks and milestones, --publish-orders too, or both (default)")
    n.add_argument("--scale", type=number_arg(SCALE), default=1.0,
                   help="--sustain: the replay's scale (default 1, the real festival)")
    n.add_argument("--quiet", action="store_true", help="--sustain: no line per rung on stderr")

    i = sub.add_parser(
        "import", help="import an order file (CSV, JSON Lines, Parquet) into a run directory",
        description="Read orders from a file (or - for stdin) in the order given (the arrival "
        "order), log and fold them like a replay, into a run directory that replay, report, "
        "verify, state and export read. Each order needs order_id, brand, event_time and amount "
        "(decimal major units) or amount_minor (integer minor units); optional currency, "
        "platform, region, kind (placed|refunded). Event time: ISO-8601 (no offset: the "
        "festival's) or an epoch number, seconds below 1e11, milliseconds below 1e14, "
        "microseconds below 1e17. Rejected rows go to RUN_DIR/dead-letters.jsonl with their line "
        "and reason; the exit code is 1 when any was rejected. Without --scenario: one 32-day "
        "window from the day before the first order (UTC), platform and region 'all', "
        "milestones at every 10 million of GMV and brands passing 1, 10, 100 million and 1 "
        "billion (major units), orders/s records +5 %.")
    i.add_argument("file", metavar="FILE", help="the order file, or - for stdin")
    i.add_argument("--format", choices=("csv", "jsonl", "parquet"),
                   help="default: by the file's suffix, else by its first bytes")
    i.add_argument("--map", metavar="FIELD=COLUMN,...",
                   help="where each field is in the file, e.g. brand=shop_name,amount=price")
    i.add_argument("--scenario", metavar="NAME|FILE",
                   help="the festival's currency, windows, platforms, regions and milestone rules "
                   "(a bundled name or a .toml); its catalogue gives the known brands' ids")
    i.add_argument("--disorder", metavar="NAME|FILE|none",
                   help=_INGEST_DISORDER_HELP)
    i.add_argument("--currency", default="CNY", choices=("CNY", "USD"),
                   help="the currency without --scenario (default CNY)")
    i.add_argument("--run-dir", type=output_dir_arg, help="where to record the run (default "
                   "runs/{scenario}-import-{file name})")
    i.add_argument("--scale", type=number_arg(SCALE), default=1.0,
                   help="the scale the orders were made at, for report's scaled facts (default 1: "
                   "real orders)")
    i.add_argument("--fsync", choices=("every", "interval", "never"), default="interval",
                   help="event-log durability (as replay)")
    i.add_argument("--summary", type=output_file_arg, metavar="PATH", help="also write the summary JSON here")
    i.add_argument("--quiet", action="store_true", help="print nothing but errors")

    f = sub.add_parser(
        "follow", help="follow order events on an MQTT broker into a run, live",
        description="Subscribe to order events (ticker's binary frames from 'replay "
        "--publish-orders', or JSON orders with import's schema, one object or an array per "
        "message), log each first, fold it, and publish the run's ticks, leaderboard and "
        "milestones under ticker/{run}/ like a replay (run = the --run-dir's name). Persistent "
        "session (QoS 1, clean session off, a client id derived from the run): a restart resumes "
        "from the log with nothing lost or counted twice. Refused payloads go to "
        "RUN_DIR/dead-letters.jsonl and ticker/{run}/dead-letters. Stops on Ctrl-C / SIGTERM, or "
        "when the followed run's status says finished and all its events are in. Without "
        "--scenario: frames use the scenario their run's status names; JSON orders the default "
        "festival of 'ticker import --help'.")
    f.add_argument("--mqtt", metavar="URL", help="broker URL (default $TICKER_MQTT_URL, else "
                   "mqtt://127.0.0.1:1883: start one with 'ticker broker')")
    f.add_argument("--topic", action="append", default=[], metavar="FILTER",
                   help="topic filter to follow, repeatable (default ticker/+/orders/+)")
    f.add_argument("--scenario", metavar="NAME|FILE", help="the festival's rules (as import)")
    f.add_argument("--disorder", metavar="NAME|FILE|none",
                   help=_INGEST_DISORDER_HELP)
    f.add_argument("--currency", default="CNY", choices=("CNY", "USD"),
                   help="the currency without --scenario (default CNY)")
    f.add_argument("--run-dir", type=output_dir_arg, default=Path("runs/follow"),
                   help="where to record the run (default runs/follow); its name is the run id")
    f.add_argument("--idle-exit", type=number_arg(IDLE_S), default=5.0, metavar="SECONDS",
                   help="after the followed run says finished, stop when nothing more came for "
                   "this long though events are missing (default 5)")
    f.add_argument("--tick-hz", type=number_arg(TICK_HZ), default=10.0, help="ticks a second (default 10)")
    f.add_argument("--fsync", choices=("every", "interval", "never"), default="interval",
                   help="event-log durability (as replay)")
    f.add_argument("--ca-file", type=input_file_arg, help="CA certificates (PEM) for an mqtts:// broker")
    f.add_argument("--summary", type=output_file_arg, metavar="PATH", help="also write the summary JSON here")
    f.add_argument("--quiet", action="store_true", help="print nothing but errors")

    b = sub.add_parser("broker", help="run the embedded MQTT broker for other terminals")
    b.add_argument("--host", default="127.0.0.1")
    b.add_argument("--port", type=number_arg(PORT), default=1883)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ticker.engine import Interrupted

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (one line, already printed), --help, --version
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return COMMANDS[args.command](args)
    except Interrupted as exc:  # SIGINT/SIGTERM: flushed, checkpointed, said so
        print(f"ticker: {exc}", file=sys.stderr)
        return exc.code
    except TickerError as exc:  # the user's to fix: one line each, no traceback
        for line in exc.lines():
            print(f"ticker: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ticker: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ticker ... | head`: the reader left; stop quietly, as rich does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
