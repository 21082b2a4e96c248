"""Command-line interface: argument parsing only; every command is a thin call into a module.

A user error (bad scenario, bad flag value, missing run directory) is one line on stderr and exit
code 2; it is never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ticker import __version__
from ticker.clock import format_time
from ticker.money import format_money


class UserError(Exception):
    """A problem with what the user asked for; printed as one line, exit code 2."""


def _cmd_scenarios(args: argparse.Namespace) -> int:
    from ticker.scenario import bundled_names, resolve

    for name in bundled_names():
        s = resolve(name)
        first = format_time(s.start_us, s.zone, precision="minutes")[:16].replace("T", " ")
        last = format_time(s.end_us, s.zone, precision="minutes")[:16].replace("T", " ")
        print(f"{name:<20} {first} .. {last} {s.zone.tzname(None)[3:] or '+00:00'}  "
              f"{s.currency.code}  {s.orders:>14,} orders at scale 1  "
              f"GMV {format_money(s.gmv_minor, s.currency)}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "scenarios": _cmd_scenarios,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ticker",
        description="Replay a shopping festival as a stream of orders; fold it into GMV and "
        "milestones; publish them over MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"ticker {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("scenarios", help="list the bundled festival scenarios")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ticker.scenario import ScenarioError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ScenarioError as exc:
        for line in exc.problems:
            print(f"ticker: {line}", file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"ticker: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ticker: interrupted", file=sys.stderr)
        return 130
