"""The bytes a replay records never change by accident.

Each bundled scenario is replayed at a small scale and seed into a run directory, and every file it
writes (log segments, snapshots, milestones.jsonl, summary.json, run.json), plus what ``ticker
report --json`` and ``ticker state --json`` print, is hashed. The hashes below were recorded from the
code *before* the library refactor of issue 9 (commit 2d15f8c; the milestone-derived ones again at
9bd2f2f, after eb2bb6b deliberately renamed rate records' ids — the log hashes did not move), so
they prove that the refactor left
the log format, the summary contract and the derived files byte-for-byte as they were — and they
keep proving it. The summary's two wall-clock fields (``events_per_s``, ``wall_s``) are the only
bytes masked.

When a change is *meant* to alter these bytes (a new log format version, a new summary field),
re-record with ``python tests/test_golden.py`` and say so in the commit message.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
from pathlib import Path

import pytest

from ticker.cli import main

# scenario, scale, seed: small enough to run in about a second each, large enough to cross
# several snapshots (every 65,536 events), milestones of every kind, and more than one window.
CASES = [
    ("smoke", 0.25, 7),
    ("double11-2021", 0.00002, 11),
    ("double11-2020", 0.00002, 2020),
    ("double11-2017", 0.00005, 17),
    ("singles-day-2016", 0.0001, 3),
    ("aliexpress-2021", 0.002, 5),
    ("lazada-1111-2020", 0.002, 9),
]

_VOLATILE = re.compile(rb'("(?:events_per_s|wall_s)": )[-0-9.e+a-zNul]+')


def _quiet_main(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue()


def digests(scenario: str, scale: float, seed: int, root: Path) -> dict[str, str]:
    """sha256 (first 16 hex digits) of every file a replay writes, and of two read-backs."""
    run_dir = root / scenario
    code, _ = _quiet_main(["replay", scenario, "--scale", str(scale), "--seed", str(seed),
                           "--mqtt", "none", "--quiet", "--run-dir", str(run_dir),
                           "--snapshot-every", "65536", "--batch-size", "50000"])
    assert code == 0
    found: dict[str, str] = {}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file() and p.name != "LOCK"):
        data = path.read_bytes()
        if path.name == "summary.json":
            data = _VOLATILE.sub(rb"\1null", data)
        found[path.relative_to(run_dir).as_posix()] = hashlib.sha256(data).hexdigest()[:16]
    _, report = _quiet_main(["report", str(run_dir), "--json"])
    found["report --json"] = hashlib.sha256(report.encode()).hexdigest()[:16]
    code, state = _quiet_main(["state", str(run_dir), "--at", _MIDDLE[scenario], "--json"])
    assert code == 0
    found["state --json"] = hashlib.sha256(state.encode()).hexdigest()[:16]
    return found


# a moment inside each festival, for `ticker state --at`
_MIDDLE = {
    "smoke": "2021-11-11T00:30+08:00",
    "double11-2021": "2021-11-11T00:45+08:00",
    "double11-2020": "2020-11-11T00:30+08:00",
    "double11-2017": "2017-11-11T00:30+08:00",
    "singles-day-2016": "2016-11-11T12:00+08:00",
    "aliexpress-2021": "2021-11-12T00:00+08:00",
    "lazada-1111-2020": "2020-11-11T12:00+08:00",
}

RECORDED: dict[str, dict[str, str]] = {
    'smoke': {
        'log/00000000000000000000.seg': 'b26f2f3f6a13a304',
        'milestones.jsonl': 'e73a2de48dca1d50',
        'run.json': 'dc6f948ceb6718d2',
        'scenario.toml': '3d1245aca5c6dda5',
        'snapshots/snap-00000000000000063183.npz': '740f20a53cc045c4',
        'summary.json': 'fb0e661845be2467',
        'report --json': '5d89633b4f802373',
        'state --json': '0a8af0007347b394',
    },
    'double11-2021': {
        'log/00000000000000000000.seg': '538490c2e6e49b0e',
        'milestones.jsonl': '0a082df72e6a949d',
        'run.json': '15633d4c3a862c91',
        'scenario.toml': '0c03fae1f790e90b',
        'snapshots/snap-00000000000000051271.npz': 'b234cddc23a2faa3',
        'summary.json': 'b6f5b46cf4d26a09',
        'report --json': 'f3c8ae63c739d2c4',
        'state --json': '05923a46f0ca1a31',
    },
    'double11-2020': {
        'log/00000000000000000000.seg': '5b0afa04847155e1',
        'milestones.jsonl': 'd443e819b5dd4385',
        'run.json': '3fb7188f2cfde2e1',
        'scenario.toml': 'cbf396ed893eb2f7',
        'snapshots/snap-00000000000000047328.npz': '2bfc47edca2619b7',
        'summary.json': '1dd2e5ba1b0e27ce',
        'report --json': '9012cdb2361b9d09',
        'state --json': 'e6313eefe27d7f56',
    },
    'double11-2017': {
        'log/00000000000000000000.seg': 'f138a3e0547cf936',
        'milestones.jsonl': 'd075beea3357f759',
        'run.json': '45a9fb1018c0f1aa',
        'scenario.toml': '5008fe21b679b924',
        'snapshots/snap-00000000000000041412.npz': '0d30141540b74d8d',
        'summary.json': '58a09271256f5588',
        'report --json': '8ac490cbeca1b125',
        'state --json': 'dbbbacc0199337bc',
    },
    'singles-day-2016': {
        'log/00000000000000000000.seg': 'e79675be2d2480f2',
        'milestones.jsonl': '5879ed4ee5950288',
        'run.json': '2e4fd27fbdd31f68',
        'scenario.toml': 'd45dec40bbaba9aa',
        'snapshots/snap-00000000000000065536.npz': '5666e3917df70ecd',
        'snapshots/snap-00000000000000067014.npz': '91a3f3abaee7598a',
        'summary.json': '1ea0a22fb55a30ed',
        'report --json': '30275bc11e6277a5',
        'state --json': '01b55a4a63d3c289',
    },
    'aliexpress-2021': {
        'log/00000000000000000000.seg': '454d218b7b6959a7',
        'milestones.jsonl': 'fb6731c10bd2584c',
        'run.json': '543db22a47897ced',
        'scenario.toml': 'b863d17fb316bdad',
        'snapshots/snap-00000000000000065536.npz': '134112534a522e0a',
        'snapshots/snap-00000000000000123600.npz': '837e6d38e1e54963',
        'summary.json': '6daa654054372111',
        'report --json': '440b0af70f4fb707',
        'state --json': '1a4d08a0f0e94699',
    },
    'lazada-1111-2020': {
        'log/00000000000000000000.seg': '9efc2955e12c37a5',
        'milestones.jsonl': '8a98dfd8823542c0',
        'run.json': '9c81ac6932e0d77a',
        'scenario.toml': '84d3bed0b0fe1e3c',
        'snapshots/snap-00000000000000065536.npz': '6ab3fd31e1670011',
        'snapshots/snap-00000000000000103000.npz': 'cf8dc689e07a2961',
        'summary.json': '66ef01e2f7d83301',
        'report --json': '5d5d2c2b9e9ab875',
        'state --json': '683d4c1e79a394f4',
    },
}


@pytest.mark.parametrize(("scenario", "scale", "seed"), CASES, ids=[c[0] for c in CASES])
def test_a_replay_writes_the_bytes_recorded_before_the_refactor(scenario, scale, seed, tmp_path):
    assert digests(scenario, scale, seed, tmp_path) == RECORDED[scenario]


if __name__ == "__main__":  # re-record: python tests/test_golden.py
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print("RECORDED: dict[str, dict[str, str]] = {")
        for scenario, scale, seed in CASES:
            print(f"    {scenario!r}: {{")
            for name, digest in digests(scenario, scale, seed, Path(tmp)).items():
                print(f"        {name!r}: {digest!r},")
            print("    },")
        print("}")
