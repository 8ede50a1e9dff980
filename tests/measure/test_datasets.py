"""Question sets: our JSONL format, SQuAD v1.1, and reproducible sampling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.errors import QAError
from qa.measure.datasets import EvalQuestion, is_squad, load_jsonl, load_selqa, load_squad, sample, write_corpus


def test_jsonl_questions_keep_answerability(tmp_path: Path) -> None:
    path = tmp_path / "dev.jsonl"
    path.write_text(
        '{"id": "d1", "question": "Who?", "answer": "Grassley", "answerable": true}\n\n'
        '{"id": "u1", "question": "Why?", "answer": null, "answerable": false}\n',
        encoding="utf-8",
    )
    assert load_jsonl(path) == [
        EvalQuestion("d1", "Who?", ("Grassley",)),
        EvalQuestion("u1", "Why?", (), answerable=False),
    ]


def test_squad_articles_become_documents_with_their_questions(tmp_path: Path) -> None:
    path = tmp_path / "squad.json"
    article = {
        "title": "Super_Bowl_50",
        "paragraphs": [
            {"context": " First paragraph. ", "qas": [
                {"id": "x", "question": "Q?", "answers": [{"text": "First", "answer_start": 1}, {"text": "First", "answer_start": 1}]}
            ]},
            {"context": "Second one.", "qas": []},
        ],
    }
    path.write_text(json.dumps({"data": [article]}), encoding="utf-8")
    documents, questions = load_squad(path)
    assert documents == {"00-super-bowl-50.txt": "Super Bowl 50\n\nFirst paragraph.\n\nSecond one.\n"}
    assert questions == [EvalQuestion("x", "Q?", ("First",), "00-super-bowl-50.txt")]
    assert is_squad(path) and not is_squad(tmp_path / "dev.jsonl")
    write_corpus(documents, tmp_path / "corpus")
    assert (tmp_path / "corpus" / "00-super-bowl-50.txt").read_text(encoding="utf-8") == documents["00-super-bowl-50.txt"]


def test_sample_is_a_seeded_shuffle_then_the_first_n() -> None:
    questions = [EvalQuestion(str(n), f"q{n}?", ("a",)) for n in range(50)]
    first = sample(questions, 10, seed=0)
    assert first == sample(questions, 10, seed=0)
    assert first != sample(questions, 10, seed=1)
    assert first == sample(questions, None, seed=0)[:10]
    assert sorted(sample(questions, None, seed=3), key=lambda q: int(q.id)) == questions


def test_selqa_sections_become_documents_and_answers_their_sentences(tmp_path: Path) -> None:
    section = {"article": "Owls", "section": "Diet", "candidates": ["Owls hunt at night. ", "They eat mice."]}
    items = [
        {**section, "question": "What do owls eat?", "answers": [1], "is_paraphrase": True},
        {**section, "question": "When do owls hunt?", "answers": [0], "is_paraphrase": False},
        {**section, "question": "How long do owls live?", "answers": []},
        {"article": "Owls", "section": "Range", "candidates": ["Owls live everywhere."], "question": "Where?",
         "answers": [0]},
    ]
    (tmp_path / "selqa-ass-dev.json").write_text(json.dumps(items), encoding="utf-8")
    documents, questions = load_selqa([tmp_path / "selqa-ass-dev.json"])
    assert documents == {
        "00-owls-diet.txt": "Owls - Diet\n\nOwls hunt at night. They eat mice.\n",
        "01-owls-range.txt": "Owls - Range\n\nOwls live everywhere.\n",
    }
    # A question without an answer sentence is left out: its section may answer it after all.
    assert [(q.id, q.answers, q.source) for q in questions] == [
        ("selqa-ass-dev-0", ("They eat mice.",), "00-owls-diet.txt"),
        ("selqa-ass-dev-1", ("Owls hunt at night.",), "00-owls-diet.txt"),
        ("selqa-ass-dev-3", ("Owls live everywhere.",), "01-owls-range.txt"),
    ]
    (tmp_path / "squad.json").write_text(json.dumps({"data": []}), encoding="utf-8")
    with pytest.raises(QAError, match="not a SelQA answer-selection file"):
        load_selqa([tmp_path / "squad.json"])
