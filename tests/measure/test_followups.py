"""Follow-up sets: SQuAD pairs derived from even articles only, the JSONL reader, and `qa eval` on them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from commands import Captured, run

from qa.errors import QAError
from qa.measure.followups import FollowUp, derive_squad_followups, is_followup_file, load_followups


def _squad(path: Path) -> Path:
    def question(qid: str, text: str, answer: str) -> dict:
        return {"id": qid, "question": text, "answers": [{"text": answer, "answer_start": 0}]}

    articles = [
        {
            "title": "Super_Bowl_50",
            "paragraphs": [
                {
                    "context": "...",
                    "qas": [
                        question("e1", "Who won Super Bowl 50?", "Denver Broncos"),
                        question("e2", "Where was Super Bowl 50 played?", "Santa Clara"),
                        question("e3", "Who sang at halftime?", "Coldplay"),
                    ],
                }
            ],
        },
        {
            "title": "Warsaw",
            "paragraphs": [
                {
                    "context": "...",
                    "qas": [
                        question("o1", "What is Warsaw?", "capital"),
                        question("o2", "How old is Warsaw?", "old"),
                    ],
                }
            ],
        },
    ]
    path.write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")
    return path


def test_squad_pairs_come_from_even_articles_with_the_subject_replaced(tmp_path: Path) -> None:
    pairs = derive_squad_followups(_squad(tmp_path / "squad.json"))
    assert pairs == [
        FollowUp("e2", "Who won Super Bowl 50?", "Where was it played?", ("Santa Clara",), "00-super-bowl-50.txt")
    ]


def test_squad_pairs_from_the_held_out_odd_articles_are_asked_for_by_name(tmp_path: Path) -> None:
    path = _squad(tmp_path / "squad.json")
    odd = FollowUp("o2", "What is Warsaw?", "How old is it?", ("old",), "01-warsaw.txt")
    assert derive_squad_followups(path, articles="odd") == [odd]
    assert derive_squad_followups(path, articles="all") == [*derive_squad_followups(path), odd]
    with pytest.raises(ValueError, match="all, even or odd"):
        derive_squad_followups(path, articles="first")


def test_squad_pairs_leave_out_questions_where_the_title_is_part_of_a_longer_noun_phrase(tmp_path: Path) -> None:
    context = "Informal Huguenot worship continued in secret. Huguenot refugees settled in Berlin."
    questions = [
        ("h0", "Where did the Huguenot faith begin?"),  # the first turn
        ("h1", "What did the Huguenot refugees build?"),  # "did it refugees build"
        ("h2", "Who led a Huguenot colony?"),  # "a it colony"
        ("h3", "What was the first Huguenot church called?"),  # "the first it church"
        ("h4", "Where did informal Huguenot worship continue?"),  # "informal it": the article says so
        ("h5", "How did the king restrict Huguenot travel?"),  # "restrict it travel"
        ("h6", "What is the Huguenot's emblem?"),
        ("h7", "Which city did the Huguenot settle in?"),
        ("h8", "Huguenot settled in which city?"),
        ("h9", 'What does the name "Huguenot" mean?'),  # the word, not what it names
        ("h10", "What was the first church of Huguenot called?"),  # a participle: the verb's
    ]
    article = {
        "title": "Huguenot",
        "paragraphs": [
            {
                "context": context,
                "qas": [{"id": i, "question": q, "answers": [{"text": "x", "answer_start": 0}]} for i, q in questions],
            }
        ],
    }
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"version": "1.1", "data": [article]}), encoding="utf-8")
    pairs = derive_squad_followups(path)
    assert {pair.first for pair in pairs} == {"Where did the Huguenot faith begin?"}
    assert [(pair.id, pair.question) for pair in pairs] == [
        ("h6", "What is its emblem?"),
        ("h7", "Which city did it settle in?"),
        ("h8", "It settled in which city?"),
        ("h10", "What was the first church of it called?"),
    ]


def test_qa_eval_derives_squad_pairs_from_even_articles_unless_told(tmp_path: Path, capsys: Captured) -> None:
    def article(title: str, context: str, questions: list[tuple[str, str, str]]) -> dict:
        qas = [
            {"id": i, "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
            for i, q, a in questions
        ]
        return {"title": title, "paragraphs": [{"context": context, "qas": qas}]}

    squad = tmp_path / "squad.json"
    data = [
        article(
            "Kelso",
            "Kelso is a market town in the Scottish Borders. Kelso abbey was founded in 1128 by monks from Picardy.",
            [("k1", "Where is Kelso?", "Scottish Borders"), ("k2", "When did Kelso get its abbey?", "1128")],
        ),
        article(
            "Lydd",
            "Lydd is a town on Romney Marsh in Kent. Lydd had an airport that opened in 1954 for car ferry flights.",
            [
                ("l1", "Where is Lydd?", "Romney Marsh"),
                ("l2", "When did Lydd open an airport?", "1954"),
                ("l3", "What flights was Lydd's airport opened for?", "car ferry flights"),
            ],
        ),
    ]
    squad.write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")
    work = ["--work", str(tmp_path / "work"), "--json"]
    # One pair from the even article (the default), two from the odd one, which is held out.
    for articles, pairs in [([], 1), (["--articles", "odd"], 2), (["--articles", "all"], 3)]:
        code, out, err = run(capsys, "eval", str(squad), "--followups", *articles, *work)
        assert code == 0, err
        assert json.loads(out)["pairs"] == pairs, articles


def test_the_follow_up_reader_refuses_a_row_without_its_first_question(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(
        '{"first": "Who is X?", "question": "Where does he work?", "answer": ["A", "B"]}\n', encoding="utf-8"
    )
    assert is_followup_file(good) and load_followups(good)[0].answers == ("A", "B")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"first": "Who is X?", "answer": "A"}\n', encoding="utf-8")
    with pytest.raises(QAError, match="line 1"):
        load_followups(bad)


def test_qa_eval_reports_follow_up_hit_at_1_with_and_without_history(
    seed_index: object, tmp_path: Path, capsys: Captured
) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        '{"id": "a", "first": "How much profit does a fentanyl investment yield?", "question": "What about heroin?", "answer": "$80,000"}\n'
        # "it" after words it could point at: unanswered alone, so searched again with the first turn.
        '{"id": "b", "first": "What is the American Enterprise Institute?", "question": "Which resident scholar works for it?", "answer": "Derek Scissors"}\n',
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "eval", str(pairs), "--index", str(seed_index.path.parent), "--json", "--latency", "1")  # type: ignore[attr-defined]
    figures = json.loads(out)
    assert code == 0 and figures["pairs"] == 2 and figures["hit@1 with history"] == 1.0
    assert figures["taken as follow-ups"] == 1 and figures["searched again with history"] == 1
    timed = figures["latency"]
    assert timed["calls each"] == 2.0 and timed["pairs searched twice"] == 1.0
    assert timed["median added ms, searched twice"] > 0
    code, out, _ = run(capsys, "eval", str(pairs), "--index", str(seed_index.path.parent), "--latency", "1")  # type: ignore[attr-defined]
    assert code == 0 and out.startswith(
        "2 follow-up pairs (1 taken as follow-ups, 1 more searched again with history): hit@1 alone "
    )
    assert "the 1 pairs searched twice: added " in out
    # "Which resident scholar works for it?" finds Derek Scissors alone too, but is sure of him only with history.
    assert (
        "  answered with the right sentence first: alone 0.500, with history 1.000; answered wrong with history 0.000\n"
        in out
    )


def test_a_follow_up_is_also_asked_with_its_document_hidden(built: tuple[Path, Path, object]) -> None:
    import qa.api
    from qa.measure.followups import evaluate_followups

    _, _, index = built
    pairs = [
        FollowUp("a", "When did the alpha bridge open?", "What do farmers plant on its banks?", ("rice",), "alpha.txt")
    ]
    figures = evaluate_followups(index, pairs, verifier=qa.api.verifier())  # type: ignore[arg-type]
    assert figures["hit@1 with history"] == 1.0
    # Asked over beta.txt and notes/gamma.md only, nothing answers it, and it is not answered.
    assert figures["answered with its article hidden"] == 0.0
    assert figures["answered wrong with history"] == 0.0
    # A pair whose document is not in the index is not asked hidden.
    unknown = [replace(pairs[0], source="elsewhere.txt")]
    assert "answered with its article hidden" not in evaluate_followups(index, unknown)  # type: ignore[arg-type]
