"""`python -m qa.measure.fusion_refit`: the fusion's weights refitted on held-aside questions, by article.

End to end on the calibration test's written data with the shipped verifier,
and the folds on hand-made questions. The figures on real data are
BENCHMARKS.md's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa.measure import fusion_refit
from qa.measure.calibrate import Sample
from qa.measure.datasets import EvalQuestion
from qa.search.candidates import Candidates
from qa.search.fusion import FusionWeights
from tests.measure.test_calibrate_verifier import write_data


def question(qid: str, source: str) -> EvalQuestion:
    return EvalQuestion(qid, "?", ("a",), source)


def test_each_fold_holds_one_squad_article_and_selqa_articles_dealt_in_turn() -> None:
    squad = [question("s1", "B"), question("s2", "A"), question("s3", "C"), question("s4", "A")]
    sections = {"x-1": "X", "x-2": "X", "y-1": "Y", "z-1": "Z", "w-1": "W"}
    selqa = [question("q1", "x-1"), question("q2", "x-2"), question("q3", "y-1"), question("q4", "w-1")]
    squad_fold, selqa_fold = fusion_refit.folds_by_article(squad, ["C", "A", "B"], selqa, sections)
    assert squad_fold == {"s1": 1, "s2": 0, "s3": 2, "s4": 0}
    # Articles in sorted order W, X, Y, Z go to folds 0, 1, 2, 0: both sections of X in one fold.
    assert selqa_fold == {"q1": 1, "q2": 1, "q3": 2, "q4": 0}
    with pytest.raises(ValueError, match="at least 2"):
        fusion_refit.folds_by_article(squad, ["A"], selqa, sections)


def sample(qid: str, dense: list[float], coverage: list[float], relevant: list[bool]) -> Sample:
    rows, zeros = np.arange(len(dense)), np.zeros(len(dense))
    found = Candidates(
        rows, rows, np.asarray(dense), zeros, zeros, zeros, np.asarray(coverage), zeros, zeros, rows, rows
    )
    return Sample(question(qid, "A"), found, np.asarray(relevant), [], None)


def test_fusion_figures_rank_each_question_with_the_weights_given_for_it() -> None:
    # The answer is second by its sentence cosine and first by its coverage.
    samples = [sample("s", [0.9, 0.5], [0.0, 1.0], [False, True]), sample("q", [0.9, 0.5], [0.0, 1.0], [False, True])]
    by_dense = FusionWeights(1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    by_coverage = FusionWeights(0.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    figures = fusion_refit.fusion_figures(samples, {"s": by_dense, "q": by_coverage}, {"q"}, {"q"})
    assert figures["SQuAD"] == {"hit@1": 0.0, "mrr@10": 0.5}
    assert figures["SelQA"] == figures["SelQA reworded"] == {"hit@1": 1.0, "mrr@10": 1.0}


def test_end_to_end_no_fold_is_fitted_on_its_own_articles(tmp_path: Path, monkeypatch, capsys) -> None:
    data = write_data(tmp_path / "data")
    fitted_on: list[set[str]] = []
    search_weights = fusion_refit.search_weights

    def recording(samples: list[Sample]) -> FusionWeights:
        fitted_on.append({s.question.id for s in samples})
        return search_weights(samples)

    monkeypatch.setattr(fusion_refit, "search_weights", recording)
    out = tmp_path / "refit.json"
    argv = ["--data-dir", str(data), "--work", str(tmp_path / "work"), "--held-squad-articles", "2", "--json", str(out)]
    assert fusion_refit.main(argv) == 0
    figures = json.loads(out.read_text(encoding="utf-8"))
    # Both even articles (Alpha and Gamma) held aside, 2 questions each; 2 SelQA articles of 2 questions each.
    assert figures["questions"] == {"squad": 4, "selqa": 4, "selqa_reworded": 2}
    assert len(figures["folds"]) == len(fitted_on) == 2
    assert all(sum(weights.values()) == pytest.approx(1.0) for weights in figures["folds"])
    # Each fold is fitted on the other fold's questions only: one SQuAD article and one SelQA article.
    assert fitted_on[0].isdisjoint(fitted_on[1]) and all(len(ids) == 4 for ids in fitted_on)
    assert {"Alpha-year", "Alpha-place"} <= fitted_on[1] and {"Gamma-year", "Gamma-place"} <= fitted_on[0]
    for name in ("weights in code", "refitted by article"):
        for label in fusion_refit.SETS:
            assert 0.0 <= figures[name]["fusion"][label]["mrr@10"] <= 1.0
            assert 0.0 <= figures[name]["verified"][label]["auroc"] <= 1.0
    printed = capsys.readouterr().out
    assert "| weights in code |" in printed and "| refitted by article |" in printed
