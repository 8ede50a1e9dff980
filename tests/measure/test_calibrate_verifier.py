"""`python -m qa.measure.calibrate_verifier` end to end on data the test writes, with the shipped verifier.

It searches the held-aside SQuAD article and the held-aside SelQA articles (a
corpus of their own), each question once as it is and once with its document
hidden, and fits the RerankPolicy on both. The figures on real data are the
model card's and BENCHMARKS.md's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa.errors import VerifierError
from qa.measure import calibrate_verifier, policy_variants
from qa.measure.verifier_data import choose_split
from qa.verify.rerank import FITTED_FOR, RerankPolicy

TOWNS = ["Ashby", "Brill", "Corve", "Dunmow", "Elstow", "Fenny", "Goring", "Hythe", "Ickford", "Jevington"]


def squad_article(title: str, year: int) -> dict:
    context = (
        f"{title} is a town in the hills. It was founded in {year} by farmers. "
        f"Its largest building is the {title} Library. Many visitors come in summer."
    )
    return {
        "title": title,
        "paragraphs": [
            {
                "context": context,
                "qas": [
                    {
                        "id": f"{title}-year",
                        "question": f"When was {title} founded?",
                        "answers": [{"text": str(year), "answer_start": context.index(str(year))}],
                    },
                    {
                        "id": f"{title}-place",
                        "question": f"What is the largest building in {title}?",
                        "answers": [{"text": f"{title} Library", "answer_start": context.index(f"{title} Library")}],
                    },
                ],
            }
        ],
    }


def selqa_questions(town: str) -> list[dict]:
    candidates = [f"{town} lies on a river.", f"The mayor of {town} is Ann Lee.", f"{town} has two schools."]
    section = {"article": town, "section": "Town", "candidates": candidates}
    return [
        {**section, "question": f"Who is the mayor of {town}?", "answers": [1], "is_paraphrase": False},
        {
            **section,
            "question": f"How many places of learning are there in {town}?",
            "answers": [2],
            "is_paraphrase": True,
        },
    ]


def write_data(folder: Path) -> Path:
    folder.mkdir()
    squad = {"version": "1.1", "data": [squad_article(t, 1800 + n) for n, t in enumerate(["Alpha", "Beta", "Gamma"])]}
    (folder / "squad-v1.1-dev.json").write_text(json.dumps(squad), encoding="utf-8")
    (folder / "selqa-ass-dev.json").write_text(
        json.dumps([q for t in TOWNS[:5] for q in selqa_questions(t)]), encoding="utf-8"
    )
    (folder / "selqa-ass-test.json").write_text(
        json.dumps([q for t in TOWNS[5:] for q in selqa_questions(t)]), encoding="utf-8"
    )
    return folder


def test_fits_the_policy_on_held_aside_squad_and_selqa(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    out = tmp_path / "figures.json"
    argv = ["--data-dir", str(data), "--work", str(tmp_path / "work"), "--held-squad-articles", "1", "--json", str(out)]
    assert calibrate_verifier.main(argv) == 0
    figures = json.loads(out.read_text(encoding="utf-8"))
    split = choose_split(data, 0, 1)
    assert figures["split"] == split.to_dict()
    assert len(split.selqa_held) == 2  # 15% of 10 articles, rounded
    # The one held SQuAD article's 2 questions; both questions of each held SelQA article, one of them reworded.
    assert figures["questions"] == {"squad": 2, "selqa": 4, "selqa_reworded": 2}
    assert figures["model_sha256"] == FITTED_FOR  # the shipped model's, the one fitted for here
    policy = figures["policy"]
    assert set(policy) == {
        "depth",
        "fused_weight",
        "intercept",
        "top_logit",
        "margin",
        "window_cosine",
        "paragraph_coverage",
        "answer_at",
        "unsure_at",
    }
    assert 0.0 < policy["unsure_at"] < policy["answer_at"] < 1.0 and -1.0 <= figures["answer_at_youden_j"] <= 1.0
    for name in ("SQuAD held-aside articles", "SelQA held-aside articles", "SelQA held-aside, reworded only"):
        verified = figures[name]["verified"]
        # Each question once as it is and once with its document hidden (a held SelQA article hides only itself).
        assert (
            verified["cases"]
            == 2
            * figures["questions"][
                {"SQuAD held-aside articles": "squad", "SelQA held-aside articles": "selqa"}.get(name, "selqa_reworded")
            ]
        )
        assert 0.0 <= verified["abstained_when_unanswerable"] <= 1.0
    # Right answers can only come from the questions asked as they are.
    assert figures["SelQA held-aside articles"]["reranked"]["hit@5"] > 0.5


def test_the_answer_threshold_is_the_one_that_best_splits_answerable_from_unanswerable() -> None:
    values = np.asarray([0.9, 0.35, 0.3, 0.28, 0.25, 0.2, 0.1, 0.05])
    unanswerable = np.asarray([False, False, False, False, True, True, True, True])
    threshold, j = calibrate_verifier.best_answer_at(values, unanswerable)
    # Every threshold from 0.26 to 0.28 answers all 4 answerable and none of the others; ties go high.
    assert (threshold, j) == (0.28, 1.0)
    # An answerable question (0.3) below an unanswerable one (0.5): from 0.51 to 0.70 three of four answerable
    # are answered and neither unanswerable one (J 0.75); answering down to 0.3 would answer half of those (0.5).
    values = np.asarray([0.9, 0.8, 0.7, 0.3, 0.5, 0.1])
    unanswerable = np.asarray([False, False, False, False, True, True])
    assert calibrate_verifier.best_answer_at(values, unanswerable) == (0.7, 0.75)


def test_weights_count_each_case_in_the_answer_threshold() -> None:
    values = np.asarray([0.9, 0.3, 0.5, 0.1])
    unanswerable = np.asarray([False, False, True, True])
    # Alike, answering from 0.31 to 0.9 and answering down to 0.3 tie at J 0.5; ties go high.
    assert calibrate_verifier.best_answer_at(values, unanswerable) == (0.9, 0.5)
    # The answerable 0.3 weighing three: leaving it out now costs three quarters of the answerable weight.
    weights = np.asarray([1.0, 3.0, 1.0, 1.0])
    assert calibrate_verifier.best_answer_at(values, unanswerable, weights) == (0.3, 0.5)


def test_the_unsure_band_is_the_fusions_share_of_the_answer_threshold() -> None:
    policy = calibrate_verifier.with_thresholds(RerankPolicy(), 0.3)
    assert (policy.answer_at, policy.unsure_at) == (0.3, 0.12)


@pytest.mark.parametrize("tool", [calibrate_verifier, policy_variants], ids=lambda tool: tool.__name__)
def test_a_model_folder_without_a_verifier_is_refused_before_any_indexing(tmp_path: Path, tool) -> None:
    data = write_data(tmp_path / "data")
    work = tmp_path / "work"
    argv = ["--data-dir", str(data), "--work", str(work), "--model-dir", str(tmp_path / "no-model")]
    with pytest.raises(VerifierError, match="no-model"):
        tool.main(argv)
    assert not work.exists()


def test_the_cases_signals_are_the_ones_question_time_reads() -> None:
    # search_cases stacks candidate_signals' two values first; features() picks them by these names.
    assert calibrate_verifier.PARTS[: len(calibrate_verifier.SIGNALS)] == calibrate_verifier.SIGNALS
