"""`python -m qa.measure.policy_variants`: the shipped policy against one-change variants, cross-validated.

End to end on the calibration test's written data with the shipped verifier,
and its pure parts on hand-made cases. The figures on real data are
BENCHMARKS.md's. That it refuses a folder without a verifier is tested beside
calibrate_verifier's refusal.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa.measure import policy_variants
from qa.measure.calibrate_verifier import Case
from qa.measure.policy_variants import Variant, at_depth, feature_row, judge
from tests.measure.test_calibrate_verifier import write_data


def case(logits: list[float], hits: list[bool], answerable: bool = True, qid: str = "q", rest: int = 0) -> Case:
    fused = np.linspace(0.9, 0.5, len(logits))
    # Each candidate's window cosine and coverage tell it apart: 0.1 and 0.2 for the first, 1.1 and 1.2 next.
    offsets = np.arange(len(logits))
    parts = np.column_stack([offsets + 0.1, offsets + 0.2, fused, offsets + 0.3, offsets + 0.4])
    return Case(fused, np.asarray(logits), np.asarray(hits), [False] * rest, answerable, 0.6, qid, parts)


def test_a_shallower_depth_reads_fewer_candidates_and_keeps_the_rest_in_fusion_order() -> None:
    full = case([1.0, 5.0, -2.0, 0.0], [False, True, False, False], rest=3)
    shallow = at_depth(full, 1)
    assert shallow.logits.tolist() == [1.0] and shallow.hits.tolist() == [False]
    assert shallow.rest_hits == [True, False, False, False, False, False]
    assert shallow.parts is not None and shallow.parts.tolist() == [[0.1, 0.2, 0.9, 0.3, 0.4]]


def test_features_follow_the_variant_and_the_label_is_whether_the_reordered_top_answers() -> None:
    found = case([1.0, 5.0, -2.0], [False, True, False])
    row, right = feature_row(found, Variant(fused_weight=1.0))
    assert right  # the logit of 5 outweighs the fusion's lead
    # The shipped four: logit, lead, and the reranked top's own cosine and coverage: the second candidate's,
    # which the logit of 5 put first.
    assert row == [5.0, 4.0, 1.1, 1.2]
    assert feature_row(found, Variant(features="logit, lead, fusion", fused_weight=1.0))[0][2] == pytest.approx(
        np.log(0.6 / 0.4)
    )
    assert len(feature_row(found, Variant(features="logit, lead"))[0]) == 2
    shares = feature_row(found, Variant(features="logit, lead, top's cosine and coverage, top share", fused_weight=1.0))
    assert len(shares[0]) == 5 and shares[0][2] > 0  # the top holds most of the softmax
    both = feature_row(found, Variant(features="logit, lead, fusion, top's cosine and coverage", fused_weight=1.0))[0]
    assert both[3:] == [1.1, 1.2] and len(both) == 5
    signals = "logit, lead, top's cosine and coverage, paragraph cosine, sentence coverage"
    assert feature_row(found, Variant(features=signals, fused_weight=1.0))[0][2:] == [1.1, 1.2, 1.3, 1.4]
    hidden = case([1.0, 5.0, -2.0], [False, True, False], answerable=False)
    assert not feature_row(hidden, Variant(fused_weight=1.0))[1]  # never right when nothing answers


def test_a_confidence_that_follows_the_logit_is_judged_to_separate() -> None:
    rng = np.random.default_rng(0)
    sets: dict[str, list[Case]] = {name: [] for name in ("squad own", "squad hidden", "selqa own", "selqa hidden")}
    for number in range(40):
        for prefix in ("squad", "selqa"):
            high = float(rng.uniform(3, 6))
            sets[f"{prefix} own"].append(case([high, -3.0], [True, False], qid=f"{prefix}{number}"))
            sets[f"{prefix} hidden"].append(case([-high, -4.0], [False, False], False, qid=f"{prefix}{number}"))
    for model in ("logistic", "boosted"):
        figures = judge(sets, {f"selqa{n}" for n in range(20)}, Variant(depth=2, model=model))
        for name in ("SQuAD", "SelQA", "SelQA reworded"):
            assert figures[name]["auroc"] > 0.99 and figures[name]["mrr@10"] == 1.0
            assert figures[name]["abstains_when_answerable"] < 0.1 and figures[name]["abstains_when_hidden"] > 0.9


def test_end_to_end_on_written_data_and_again_from_its_cache(tmp_path: Path, capsys) -> None:
    data = write_data(tmp_path / "data")
    work, out = tmp_path / "work", tmp_path / "variants.json"
    argv = ["--data-dir", str(data), "--work", str(work), "--held-squad-articles", "1", "--json", str(out)]
    assert policy_variants.main(argv) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    shipped = results[0]["variant"]
    assert shipped == {
        "features": "logit, lead, top's cosine and coverage",
        "balanced": False,
        "depth": 5,
        "fused_weight": 16.0,
        "model": "logistic",
    }
    assert {"logistic", "boosted"} == {r["variant"]["model"] for r in results}
    assert len({json.dumps(r["variant"], sort_keys=True) for r in results}) == len(results)  # each variant once
    printed = capsys.readouterr().out
    assert "| logit, lead | logistic | no | 5 |" in printed
    assert "| logit, lead, fusion | boosted | no | 5 |" in printed
    (cache,) = work.glob("policy-cases-*.json")
    assert set(json.loads(cache.read_text())["sets"]) == {"squad own", "squad hidden", "selqa own", "selqa hidden"}
    assert policy_variants.main(argv) == 0  # from the cache: the same figures
    assert json.loads(out.read_text(encoding="utf-8")) == results
