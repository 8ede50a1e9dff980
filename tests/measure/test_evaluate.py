"""`qa eval`: the hit rule and metrics on known rankings, and real runs on tiny question sets."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SEED_NAME, write_tiny_squad

from qa.cli import main
from qa.measure.datasets import EvalQuestion
from qa.measure.evaluate import (
    ANSWERING,
    Tally,
    auroc,
    coverage_at_precision,
    evaluate,
    expected_calibration_error,
    format_table,
    holds_answer,
    rank_metrics,
)
from qa.reader.index import Index
from qa.records import Hit
from qa.search.candidates import Candidates
from qa.search.fusion import RETRIEVERS, retriever_scores
from qa.verify.scorer import load_verifier

GRASSLEY = EvalQuestion("q1", "Who chairs the Senate Judiciary Committee?", ("Chuck Grassley",))
UNANSWERABLE = EvalQuestion("q2", "What is the boiling point of tungsten?", (), answerable=False)


def test_holds_answer_is_a_case_insensitive_substring() -> None:
    assert holds_answer("Chuck Grassley chairs it.", ("chuck grassley",))
    assert holds_answer("It cost $5,000.", ("nothing", "$5,000"))
    assert not holds_answer("Grassley chairs it.", ("Chuck Grassley",))


def test_rank_metrics_on_known_rankings() -> None:
    rankings = [
        [True, False],  # first: hit@1, RR 1
        [False, False, True],  # third: hit@5, RR 1/3
        [False] * 5 + [True],  # sixth: not in hit@5, RR 1/6
        [False] * 10 + [True],  # eleventh: outside MRR@10
    ]
    metrics = rank_metrics(rankings)
    assert metrics["hit@1"] == pytest.approx(1 / 4)
    assert metrics["hit@5"] == pytest.approx(2 / 4)
    assert metrics["mrr@10"] == pytest.approx((1 + 1 / 3 + 1 / 6) / 4)


def test_tally_rates_and_unmeasured_rates() -> None:
    tally = Tally(rankings=[[True]], answerable_asked=4, answerable_abstained=1)
    metrics = tally.metrics()
    assert metrics["abstained_answerable"] == 0.25
    assert metrics["abstained_unanswerable"] is None  # none asked: not measured, not 0
    assert metrics["spans_verified"] is None


def _candidates() -> Candidates:
    fields = {f.name: np.zeros(3, dtype=np.float32) for f in dataclasses.fields(Candidates)}
    fields.update(
        rows=np.asarray([5, 6, 7]),
        passage_rows=np.zeros(3, dtype=np.int64),
        dense=np.asarray([0.1, 0.9, 0.5], dtype=np.float32),
        lexical_raw=np.asarray([3.0, 0.0, 1.0], dtype=np.float32),
        dense_ranking=np.asarray([6, 7]),
        lexical_ranking=np.asarray([5, 7]),
    )
    return Candidates(**fields)


def test_each_baseline_ranks_by_its_own_signal() -> None:
    found = _candidates()
    assert np.argmax(retriever_scores(found, "bm25")) == 0
    assert np.argmax(retriever_scores(found, "dense")) == 1
    # RRF: row 7 is second for both retrievers, which beats first for one only.
    assert np.argmax(retriever_scores(found, "rrf")) == 2
    with pytest.raises(ValueError, match="bm25, dense, rrf, fusion"):
        retriever_scores(found, "sparse")


def test_wrong_spans_are_caught_and_named(seed_index: Index) -> None:
    hit = seed_index.sentences[0]
    text = seed_index.source_text(SEED_NAME)
    good = Hit(
        id=hit.id, text=hit.text, location=hit.citation, score=1.0, dense_rank=1, lexical_rank=1, passage_rank=1,
        dense_score=1.0, lexical_score=1.0, context=text[hit.start : hit.end], context_start=hit.start,
    )
    shifted = dataclasses.replace(good, location=dataclasses.replace(good.location, start=good.start + 1))
    tally = Tally()
    tally.check_spans([good, shifted], seed_index.source_text)
    assert tally.spans_checked == 2
    assert tally.spans_wrong == [shifted.citation]


def test_evaluate_scores_every_retriever_on_the_real_seed(seed_index: Index) -> None:
    report = evaluate(seed_index, [GRASSLEY, UNANSWERABLE])
    assert set(report.results) == set(RETRIEVERS)
    assert (report.questions, report.answerable) == (2, 1)
    for name, metrics in report.results.items():
        assert metrics["ranked"] == 1
        assert metrics["spans_verified"] == 1.0, (name, metrics["spans_wrong"])
        assert metrics["hit@5"] == 1.0  # Grassley's sentence is in every retriever's top 5
    default = report.results["default"]
    assert default["hit@1"] == 1.0
    assert default["abstained_unanswerable"] == 1.0
    assert default["abstained_answerable"] == 0.0
    assert report.results["bm25"]["abstained_unanswerable"] is None  # baselines have no confidence


def test_eval_command_on_a_tiny_squad_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    squad = write_tiny_squad(tmp_path / "tiny.json")
    code = main(["eval", str(squad), "--work", str(tmp_path / "work"), "--limit", "2", "--seed", "1", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert report["questions"] == report["answerable"] == 2
    assert "hidden" in report["unanswerable"]  # SQuAD has none: own article hidden instead
    assert set(report["retrievers"]) == set(RETRIEVERS)
    for metrics in report["retrievers"].values():
        assert metrics["spans_verified"] == 1.0
        assert metrics["hit@1"] == 1.0  # one-fact paragraphs: every retriever finds them
    assert sorted(p.name for p in (tmp_path / "work" / "seeds").iterdir()) == ["00-harbour-bridge.txt", "01-alpine-lakes.txt"]


def test_eval_command_prints_one_table_for_a_jsonl_file(
    capsys: pytest.CaptureFixture[str], seed_index: Index, tmp_path: Path
) -> None:
    questions = tmp_path / "questions.jsonl"
    rows = [
        {"question": GRASSLEY.question, "answer": "Chuck Grassley", "answerable": True},
        {"question": UNANSWERABLE.question, "answer": None, "answerable": False},
    ]
    questions.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    code = main(["eval", str(questions), "--index", str(seed_index.path.parent), "--retriever", "default"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("2 questions, 1 answerable")
    assert lines[1].split()[:4] == ["retriever", "hit@1", "hit@5", "MRR@10"]
    assert lines[3].split()[:4] == ["default", "1.000", "1.000", "1.000"]
    assert "100.0% of" in lines[3]


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ("{not json", "bad.json", "is not JSON"),
        ('{"questions": []}', "other.json", "no top-level `data` list"),
        ('{"answer": "x"}\n', "bad.jsonl", "line 1: not a question object"),
    ],
)
def test_eval_refuses_bad_question_files_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, name: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    code = main(["eval", str(path), "--work", str(tmp_path / "work"), "--index", str(tmp_path / "index")])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_auroc_on_known_orders() -> None:
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5  # a tie counts half
    assert auroc([0.3, 0.9, 0.6], [True, False, True]) == 0.0  # both right ones below the wrong one
    assert auroc([0.9], [True]) is None  # nothing wrong to compare with


def test_expected_calibration_error_on_known_bins() -> None:
    assert expected_calibration_error([0.95, 0.95], [True, True]) == pytest.approx(0.05)
    # One bin at 0.15 (all wrong: gap 0.15), one at 0.85 (half right: gap 0.35), weighted 2:2.
    assert expected_calibration_error([0.15, 0.15, 0.85, 0.85], [False, False, True, False]) == pytest.approx(0.25)
    assert expected_calibration_error([], []) is None


def test_coverage_at_precision_answers_the_most_it_can() -> None:
    confidences = [0.99, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    correct = [True] * 9 + [False]
    assert coverage_at_precision(confidences, correct) == 1.0  # 9 of 10 right: exactly 90%
    correct = [True, True, False, True, True, True, False, False, True, False]
    # Top 6: 5 right (83%); top 2: 100%; top 5: 4 of 5 (80%). Only the top 2 reach 90%.
    assert coverage_at_precision(confidences, correct) == 0.2
    assert coverage_at_precision([0.5, 0.5], [True, False]) == 0.0  # a tie is answered or abstained whole
    assert coverage_at_precision([0.4], [False]) == 0.0


def test_the_answering_rows_report_calibration_and_counts(seed_index: Index) -> None:
    report = evaluate(seed_index, [GRASSLEY, UNANSWERABLE], verifier=load_verifier())
    table = format_table(report)
    for name in ANSWERING:
        metrics = report.results[name]
        answerable = metrics["answered_right"] + metrics["answered_wrong"] + metrics["abstained_answerable_count"]
        assert answerable == 1 and metrics["answered_wrong"] == 0
        assert metrics["abstained_unanswerable_count"] == metrics["unanswerable_asked"] == 1
        assert metrics["auroc"] == 1.0  # the right top sentence is more confident than the unanswerable one
        assert f"\n{name} " in table
    assert report.results["fusion"]["answered_right"] == 1
    assert "coverage at 90% precision" in table and "1 of 1" in table
