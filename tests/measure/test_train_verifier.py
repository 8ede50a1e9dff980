"""The verifier's training command, end to end on a few examples, with the real bundled weights.

A few steps on data the test writes: groups, mining over a real index, training,
checkpoint, ONNX export, int8 quantization, the held-aside report and the
card. It proves the command works; the shipped model's quality is in its card.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.measure import train_verifier
from qa.measure.verifier_batches import TrainSettings, training_pool
from qa.measure.verifier_data import SELQA, Group, choose_split, load_groups, mining_corpus, selqa_groups
from qa.verify.scorer import Verifier

ODD_MARKER = "Zorblax"  # only in the odd-numbered dev article: it must never be read


def _paragraph(subject: str, place: str, year: str) -> dict:
    context = (
        f"{subject} is a town in the hills. It was founded in {year} by farmers. "
        f"Its largest building is the {place}. Many visitors come in summer."
    )
    return {
        "context": context,
        "qas": [
            {"id": f"{subject}-year", "question": f"When was {subject} founded?",
             "answers": [{"text": year, "answer_start": context.index(year)}]},
            {"id": f"{subject}-place", "question": f"What is the largest building in {subject}?",
             "answers": [{"text": place, "answer_start": context.index(place)}]},
        ],
    }


def _squad(titles: list[str]) -> dict:
    articles = []
    for number, title in enumerate(titles):
        articles.append({"title": title, "paragraphs": [
            _paragraph(f"{title}ville", f"{title} Library", str(1800 + number)),
            _paragraph(f"{title}burg", f"{title} Tower", str(1900 + number)),
        ]})
    return {"version": "1.1", "data": articles}


def _selqa(article: str) -> list[dict]:
    candidates = [f"{article} lies on a river.", f"The mayor of {article} is Ann Lee.", f"{article} has two schools."]
    return [
        {"article": article, "section": "Town", "question": f"Who is the mayor of {article}?", "answers": [1],
         "candidates": candidates, "is_paraphrase": False},
        {"article": article, "section": "Town", "question": f"How many schools does {article} have?", "answers": [2],
         "candidates": candidates, "is_paraphrase": True},
    ]


def write_data(folder: Path) -> Path:
    folder.mkdir()
    (folder / "squad-v1.1-dev.json").write_text(json.dumps(_squad(["Alpha", ODD_MARKER, "Gamma"])), encoding="utf-8")
    (folder / "squad-v1.1-train-first11.json").write_text(json.dumps(_squad(["Delta"])), encoding="utf-8")
    (folder / "selqa-ass-dev.json").write_text(json.dumps(_selqa("Eastham") + _selqa("Westham")), encoding="utf-8")
    (folder / "selqa-ass-test.json").write_text(json.dumps(_selqa("Northam") + _selqa("Southam")), encoding="utf-8")
    return folder


def test_odd_dev_articles_are_never_read(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    train, held = load_groups(data, choose_split(data, 0, squad_articles=1))
    documents, questions = mining_corpus(data)
    assert train and held
    assert not any(ODD_MARKER in json.dumps(g.to_dict()) for g in train + held)
    assert not any(ODD_MARKER in text for text in documents.values())
    assert not any(ODD_MARKER in q.question for q in questions)


def test_a_negative_holding_the_answer_is_left_out(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    train, held = load_groups(data, choose_split(data, 0, squad_articles=1))
    for group in train + held:
        for sentence, label in zip(group.sentences, group.labels, strict=True):
            if label == 0 and group.answers:
                assert not any(a.lower() in sentence.lower() for a in group.answers)


def test_mined_per_group_caps_the_fusions_wrong_candidates_attached_to_a_question() -> None:
    group = Group("q1", "When was Alphaville founded?", ["It was founded in 1800."], [1], "Alpha.txt", "squad")
    top = [
        {"text": "It was founded in 1800.", "hit": True},  # the answer itself: never a negative
        {"text": "Betaville was founded in 1801.", "hit": False},
        {"text": "Gammaville was founded in 1802.", "hit": False},
        {"text": "Deltaville was founded in 1803.", "hit": False},
    ]
    for cap, attached in ((1, 1), (3, 3), (5, 3)):
        (pooled,) = training_pool([group], {"q1": {"top": top}}, TrainSettings(mined_per_group=cap))
        assert pooled.labels == [1] + [2] * attached
        assert pooled.sentences[1:] == [c["text"] for c in top[1 : 1 + attached]]  # the fusion's best wrong first


def test_reworded_repeats_put_each_reworded_selqa_question_and_its_removed_group_in_the_pool_that_often() -> None:
    reworded = Group("s1", "Who ran the mill?", ["Ann ran it.", "It was red."], [1, 0], "selqa:A", "selqa", reworded=True)
    plain = Group("s2", "Who owned the mill?", ["Bob owned it.", "It was old."], [1, 0], "selqa:A", "selqa")
    settings = TrainSettings(reworded_repeats=3, answer_removed_share=1.0)
    pool = training_pool([reworded, plain], {}, settings)
    assert [g.id for g in pool] == ["s1"] * 3 + ["s1:removed"] * 3 + ["s2", "s2:removed"]
    assert all(g.reworded for g in pool[:6]) and not any(g.reworded for g in pool[6:])
    assert [g.id for g in training_pool([reworded, plain], {}, TrainSettings(answer_removed_share=1.0))] == [
        "s1", "s1:removed", "s2", "s2:removed"
    ]


def test_selqa_groups_carry_is_paraphrase(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    groups = selqa_groups([data / name for name in SELQA])
    rows = [row for name in SELQA for row in json.loads((data / name).read_text())]
    assert [g.reworded for g in groups] == [bool(row.get("is_paraphrase")) for row in rows]
    assert any(g.reworded for g in groups) and not all(g.reworded for g in groups)


def test_reworded_repeats_below_one_is_refused_before_anything_is_written(tmp_path: Path, capsys) -> None:
    argv, work, _ = tiny_run(tmp_path, 2, "--reworded-repeats", "0")
    with pytest.raises(SystemExit):
        train_verifier.main(argv)
    assert "--reworded-repeats: takes 1 or more" in capsys.readouterr().err
    assert not work.exists()


def tiny_run(tmp_path: Path, steps: int, *extra: str) -> tuple[list[str], Path, Path]:
    """The training command's arguments for a run of a few steps on the test's data, and its work and out folders."""
    data = write_data(tmp_path / "data")
    work, out = tmp_path / "work", tmp_path / "model"
    argv = [
        "--data-dir", str(data), "--work", str(work), "--out", str(out), "--seed", "0",
        "--max-steps", str(steps), "--eval-every", "2", "--mine-questions", "6", "--held-questions", "4",
        "--held-squad-articles", "1", "--latency-calls", "3", "--layers", "1", *extra,
    ]
    return argv, work, out


def test_training_command_end_to_end(tmp_path: Path) -> None:
    argv, work, out = tiny_run(tmp_path, 4)
    assert train_verifier.main(argv) == 0
    assert (work / "checkpoint" / "state.json").is_file()
    assert json.loads((work / "checkpoint" / "state.json").read_text())["step"] == 4
    verifier = Verifier(out)  # checks the sha256 first
    scores = verifier.score("When was Alphaville founded?", ["It was founded in 1800 by farmers.", "Many visitors come."])
    assert scores.logits.shape == (2,) and ((scores.probabilities > 0) & (scores.probabilities < 1)).all()
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["steps"] == 4 and report["shipped"] in ("fp32", "int8")
    assert report["settings"]["mined_per_group"] == TrainSettings.mined_per_group
    card = (out / "MODEL_CARD.md").read_text()
    assert "--seed 0" in card
    assert "## How it is used" in card and "Not fitted yet" in card  # the policy is fitted apart, afterwards
    # The same command again resumes from the finished checkpoint: no further steps.
    assert train_verifier.main(argv) == 0
    assert json.loads((out / "report.json").read_text())["training"]["steps"] == 4


def test_a_data_folder_lacking_a_file_is_named_before_anything_is_written(tmp_path: Path, capsys) -> None:
    data = write_data(tmp_path / "data")
    (data / "selqa-ass-test.json").unlink()
    work, out = tmp_path / "work", tmp_path / "out"
    assert train_verifier.main(["--data-dir", str(data), "--work", str(work), "--out", str(out)]) == 2
    assert "lacks selqa-ass-test.json" in capsys.readouterr().err
    assert not work.exists() and not out.exists()


def test_with_context_each_candidate_is_read_after_the_sentence_before_it(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    split = choose_split(data, 0, squad_articles=1)
    plain = {g.id: g for part in load_groups(data, split) for g in part}
    read = {g.id: g for part in load_groups(data, split, "previous") for g in part}
    assert plain.keys() == read.keys()
    # SQuAD: the article's previous sentence, across its paragraphs; the labels are unchanged.
    first, second = read["Alphaville-year"], read["Alphaburg-year"]
    assert first.labels == plain["Alphaville-year"].labels
    assert "It was founded in 1800 by farmers. [SEP] Alphaville is a town in the hills." in first.sentences
    assert "Alphaville is a town in the hills." in first.sentences  # the article's first sentence has none
    assert "Alphaburg is a town in the hills. [SEP] Many visitors come in summer." in second.sentences
    # SelQA: the section's previous candidate.
    selqa = next(g for g in read.values() if g.dataset == "selqa")
    town = selqa.article.removeprefix("selqa:")
    assert selqa.sentences[1] == f"The mayor of {town} is Ann Lee. [SEP] {town} lies on a river."


def test_training_with_context_writes_it_where_question_time_reads_it(tmp_path: Path) -> None:
    argv, _, out = tiny_run(
        tmp_path, 2, "--context", "previous", "--max-length", "96", "--mined-per-group", "1", "--reworded-repeats", "2"
    )
    assert train_verifier.main(argv) == 0
    verifier = Verifier(out)
    assert verifier.context == "previous" and verifier.calibration.max_length == 96
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["context"] == "previous" and report["settings"]["mined_per_group"] == 1
    assert report["settings"]["reworded_repeats"] == 2
    card = (out / "MODEL_CARD.md").read_text()
    assert "previous sentence" in card and "answer-removed group are in the pool 2 times" in card


def _person_data(folder: Path) -> Path:
    """A SQuAD article whose second paragraph opens with "He", and a SelQA section that does the same."""
    data = write_data(folder)
    first = "Nikola Tesla was born in Smiljan. He studied in Graz."
    second = "He moved to Paris in 1882. The city had electric light."
    article = {"title": "Tesla", "paragraphs": [
        {"context": first, "qas": [{"id": "tesla-study", "question": "Where did Tesla study?",
                                    "answers": [{"text": "Graz", "answer_start": first.index("Graz")}]}]},
        {"context": second, "qas": [{"id": "tesla-move", "question": "When did Tesla move to Paris?",
                                     "answers": [{"text": "1882", "answer_start": second.index("1882")}]}]},
    ]}
    (data / "squad-v1.1-train-first11.json").write_text(json.dumps({"version": "1.1", "data": [article]}))
    candidates = ["Ann Lee was elected in 2001, the council said.", "She had led the council.", "Rain fell."]
    (data / "selqa-ass-test.json").write_text(json.dumps([
        {"article": "Eastham", "section": "Council", "question": "Who led the council?", "answers": [1],
         "candidates": candidates, "is_paraphrase": True},
    ]))
    return data


def test_with_names_an_opening_he_is_read_with_its_name_as_question_time_reads_it(tmp_path: Path) -> None:
    data = _person_data(tmp_path / "data")
    split = choose_split(data, 0, squad_articles=1)
    plain = {g.id: g for part in load_groups(data, split) for g in part}
    named = {g.id: g for part in load_groups(data, split, names=True) for g in part}
    assert plain["tesla-move"].sentences[0] == "He moved to Paris in 1882."
    # Across paragraphs, as the index has the article in one document; the labels are unchanged.
    assert named["tesla-move"].sentences == ["Nikola Tesla moved to Paris in 1882.", "The city had electric light."]
    assert named["tesla-move"].labels == plain["tesla-move"].labels
    assert named["tesla-study"].sentences == ["Nikola Tesla was born in Smiljan.", "Nikola Tesla studied in Graz."]
    # SelQA: from the section's candidates before it.
    selqa = next(g for g in named.values() if g.dataset == "selqa" and g.question == "Who led the council?")
    assert selqa.sentences[1] == "Ann Lee had led the council."
    # With the sentence before as context too, the name goes in the sentence, and the context is as written.
    both = {g.id: g for part in load_groups(data, split, "previous", names=True) for g in part}
    assert both["tesla-move"].sentences[0] == "Nikola Tesla moved to Paris in 1882. [SEP] He studied in Graz."
    # Sentences that open otherwise read exactly as without names.
    for key, group in plain.items():
        if not any(s.startswith(("He ", "She ")) for s in group.sentences):
            assert named[key].sentences == group.sentences


def test_mined_candidates_are_read_with_their_names_from_the_mining_index(tmp_path: Path) -> None:
    import qa
    from qa.measure.verifier_mining import with_readings

    seeds = tmp_path / "work" / "seeds"
    seeds.mkdir(parents=True)
    (seeds / "tesla.txt").write_text("Nikola Tesla was born in Smiljan. He studied in Graz.\n", encoding="utf-8")
    qa.build_index(seeds, tmp_path / "work" / "index")
    source = qa.load_index(tmp_path / "work" / "index").sentences[1].source
    mined = {"q": {"top": [{"source": source, "text": "He studied in Graz.", "hit": False},
                           {"source": "elsewhere.txt", "text": "He left.", "hit": True}]}}
    read = with_readings(mined, tmp_path / "work", "none", names=True)
    assert [c["text"] for c in read["q"]["top"]] == ["Nikola Tesla studied in Graz.", "He left."]
    assert [c["hit"] for c in read["q"]["top"]] == [False, True]
    assert with_readings(mined, tmp_path / "work", "none") is mined  # without names nothing is read


def test_training_with_names_records_them_in_the_report_and_card(tmp_path: Path) -> None:
    argv, _, out = tiny_run(tmp_path, 2, "--names")
    assert train_verifier.main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["names"] is True
    assert "read with the name it stands for" in (out / "MODEL_CARD.md").read_text()


def test_training_reads_each_sentence_as_question_time_reads_it_from_the_index(tmp_path: Path) -> None:
    """Train-serve parity: every named training sentence is what the verifier reads for some indexed sentence."""
    import qa
    from qa.measure.datasets import load_squad
    from qa.measure.verifier_data import squad_groups
    from qa.verify.antecedent import verifier_text

    data = _person_data(tmp_path / "data")
    path = data / "squad-v1.1-train-first11.json"
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for name, text in load_squad(path)[0].items():  # the articles as the mining index holds them
        (seeds / name).write_text(text, encoding="utf-8")
    qa.build_index(seeds, tmp_path / "index")
    sentences = qa.load_index(tmp_path / "index").sentences
    question_time = {verifier_text(sentences, row) for row in range(len(sentences))}
    trained = {s for group in squad_groups(path, None, "squad-train", names=True) for s in group.sentences}
    assert "Nikola Tesla moved to Paris in 1882." in trained
    assert trained <= question_time


def test_qa_train_is_the_training_command(tmp_path: Path, capsys) -> None:
    from qa import cli

    with pytest.raises(SystemExit) as help_exit:
        cli.main(["train", "--help"])
    assert help_exit.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: python -m qa train") and "--names" in shown and "--data-dir" in shown
    data = write_data(tmp_path / "data")
    (data / "selqa-ass-dev.json").unlink()
    work = tmp_path / "work"
    assert cli.main(["train", "--data-dir", str(data), "--work", str(work), "--out", str(tmp_path / "out")]) == 2
    assert "lacks selqa-ass-dev.json" in capsys.readouterr().err and not work.exists()
