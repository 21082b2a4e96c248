"""``ticker sweep``: many seeds, the spread of their milestones, the facts' hold-rate."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticker.cluster.sweep import SweepError, parse_seeds, run_sweep
from ticker.engine import ReplayOptions, execute, prepare
from ticker.scenario import resolve


@pytest.fixture(scope="module")
def local_sweep():
    return run_sweep(resolve("smoke"), range(3, 6), 0.5)


def test_each_seed_is_the_replay_of_that_seed(local_sweep) -> None:
    for seed, summary in zip(range(3, 6), local_sweep.summaries, strict=True):
        run = prepare("smoke", ReplayOptions(scale=0.5, seed=seed, record=False))
        alone = execute(run, []).to_json()
        assert summary["seed"] == seed and summary["milestones"] == alone["milestones"]
    assert len({s["gmv_minor"] for s in local_sweep.summaries}) > 1, "seeds should differ"


def test_the_spread_of_each_milestone(local_sweep) -> None:
    runs = len(local_sweep.summaries)
    assert local_sweep.milestones
    for m in local_sweep.milestones:
        assert 1 <= m["reached"] <= runs
        assert m["earliest"] <= m["median"] <= m["latest"]  # ISO text in one zone sorts as time
        mine = [d["event_time"] for s in local_sweep.summaries for d in s["milestones"]
                if (d["kind"], d["threshold_minor"]) == (m["kind"], m["threshold_minor"])
                and (d.get("rank") == 1 or (d.get("rank") is None and d["subject"] == m["subject"]))]
        assert sorted(mine)[0] == m["earliest"] and sorted(mine)[-1] == m["latest"]
    for race in local_sweep.races:
        assert sum(race["winners"].values()) == runs
    for fact in local_sweep.facts:
        assert fact["rate"] is None or 0 <= fact["rate"] <= 1
        assert fact["holds"] <= fact["measured"] <= runs


def test_the_dimensions_races_are_swept_too() -> None:
    """double11-2020's Taobao Live channels and Tmall Global brands race: each race's winner
    per seed, from the seeds' own milestones."""
    sweep = run_sweep(resolve("double11-2020"), range(1, 3), 0.0002)
    races = {(r["kind"], r["threshold_minor"]): r for r in sweep.races}
    assert {"brand_gmv", "channel_gmv", "tmall_global_brand_gmv"} <= {k for k, _ in races}
    for (kind, threshold), race in races.items():
        firsts = [d["subject"] for s in sweep.summaries for d in s["milestones"]
                  if (d["kind"], d["threshold_minor"], d.get("rank")) == (kind, threshold, 1)]
        assert race["winners"] == dict(Counter(firsts).most_common())
        assert race["what"].startswith("first ") and "to pass RMB" in race["what"]
    assert races[("channel_gmv", 1_000_000_000)]["what"] == \
        "first Taobao Live channel to pass RMB 10 million"


def test_on_a_cluster_the_same_table(local_sweep) -> None:
    pytest.importorskip("distributed", reason="needs ticker[cluster]")
    from ticker.cluster.driver import connect

    with connect("local:2") as client:
        remote = run_sweep(resolve("smoke"), range(3, 6), 0.5, client)
    a, b = local_sweep.to_json(), remote.to_json()
    a.pop("wall_s"), b.pop("wall_s")
    assert a == b


def test_on_a_cluster_a_festival_of_290_000_brands() -> None:
    """double11-2021's scenario carries ~10 MB of catalogues once derived: the tasks get it
    without them (Dask warned of a large graph, an error here), and the table is the same."""
    pytest.importorskip("distributed", reason="needs ticker[cluster]")
    from ticker.cluster.driver import connect

    scenario = resolve("double11-2021")
    local = run_sweep(scenario, range(1, 3), 0.0002).to_json()
    assert scenario.derived, "the local sweep derived the catalogues"
    with connect("local:2") as client:
        remote = run_sweep(scenario, range(1, 3), 0.0002, client).to_json()
    local.pop("wall_s"), remote.pop("wall_s")
    assert local == remote and any(r["kind"] == "tmall_global_brand_gmv" for r in local["races"])


@settings(max_examples=80, deadline=None)
@given(st.one_of(st.text(max_size=20), st.from_regex(r"-?\d{1,7}(-\d{1,7})?", fullmatch=True)))
def test_any_seed_range_is_parsed_or_refused_in_one_line(text: str) -> None:
    try:
        seeds = parse_seeds(text)
    except SweepError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("--seeds ")
        return
    assert len(seeds) >= 1 and seeds.start >= 0
    first, _, last = text.partition("-")
    assert (seeds.start, seeds.stop - 1) == (int(first), int(last or first))


def test_cli_sweep_json(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-m", "ticker", "sweep", "smoke", "--seeds", "1-2",
                           "--scale", "0.25", "--json"], capture_output=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = orjson.loads(done.stdout)
    assert out["runs"] == 2 and out["seeds"] == [1, 2] and out["milestones"] and out["facts"]
    bad = subprocess.run([sys.executable, "-m", "ticker", "sweep", "smoke", "--seeds", "9-1"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--seeds '9-1'" in bad.stderr
