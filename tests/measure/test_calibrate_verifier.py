"""`python -m qa.measure.calibrate_verifier` end to end on data the test writes, with the shipped verifier.

It searches the held-aside SQuAD article and the held-aside SelQA articles (a
corpus of their own), each question once as it is and once with its document
hidden, and fits the RerankPolicy on both. The figures on real data are the
model card's and BENCHMARKS.md's.
"""

from __future__ import annotations

import json
from pathlib import Path

from qa.measure import calibrate_verifier
from qa.measure.verifier_data import choose_split

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
    assert set(figures["policy"]) == {"depth", "fused_weight", "intercept", "top_logit", "margin", "fusion_logit"}
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
