"""Every bundled scenario, replayed at its default scale, reports its published figures:
the aggregator's summary and milestones (not just the generated stream) hold every target."""

from __future__ import annotations

import orjson
import pytest

from ticker.cli import main
from ticker.scenario import bundled_names


@pytest.mark.parametrize("name", bundled_names())
def test_a_replay_at_the_default_scale_holds_every_published_fact(name, tmp_path, capsys):
    run_dir = tmp_path / name
    code = main(["replay", name, "--mqtt", "none", "--quiet", "--run-dir", str(run_dir)])
    assert code == 0
    capsys.readouterr()
    assert main(["report", str(run_dir), "--json"]) == 0, "a published fact does not hold"
    report = orjson.loads(capsys.readouterr().out)
    assert report["ok"] and report["facts"] and all(f["ok"] for f in report["facts"])
