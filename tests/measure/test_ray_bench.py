"""`python -m qa.measure.ray_bench`: its report's arithmetic on known numbers (a real run is BENCHMARKS.md's)."""

from __future__ import annotations

from typing import Any

import pytest

from qa.measure.ray_bench import main, median_run, to_markdown


def ray_run(total_s: float) -> dict[str, Any]:
    return {
        "total_s": total_s,
        "sentences": 1_000,
        "connect_s": 1.0,
        "hash_s": 0.5,
        "pipeline_s": 20.0,
        "first_row_s": 12.0,
        "actors_ready_s": 10.0,
        "model_load_s": 4.0,
        "split_s": 2.0,
        "embed_s": 30.0,
        "shards_s": 0.2,
        "assemble_s": 0.3,
        "commit_s": 3.0,
        "per_node": {"aaaaaaaaaaaa": 600, "bbbbbbbbbbbb": 400},
    }


def test_median_run_is_the_middle_total_and_the_lower_middle_of_an_even_count() -> None:
    runs = [{"total_s": t} for t in (30.0, 10.0, 20.0)]
    assert median_run(runs)["total_s"] == 20.0
    assert median_run(runs[:2])["total_s"] == 10.0


def test_report_gives_median_times_their_ratio_every_run_and_each_nodes_throughput() -> None:
    locals_ = [{"total_s": t, "sentences": 1_000} for t in (20.0, 25.0, 21.0)]
    rays = [ray_run(t) for t in (30.0, 26.0, 40.0)]
    text = to_markdown(locals_, rays, "python -m qa.measure.ray_bench --squad x.json")
    assert "| local | 21.0 | 47.6 | 20.0, 25.0, 21.0 |" in text
    assert "| Ray | 30.0 | 33.3 | 30.0, 26.0, 40.0 |" in text
    assert "**1.43×**" in text
    # sentences embedded on a node over the pipeline's 20 s
    assert "node aaaaaaaa 30.0, node bbbbbbbb 20.0." in text


def test_repeats_below_one_are_refused(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    squad = tmp_path / "squad.json"
    squad.write_text('{"data": []}', encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["--squad", str(squad), "--repeats", "0", "--work", str(tmp_path / "work")])
    assert "--repeats must be at least 1" in capsys.readouterr().err
