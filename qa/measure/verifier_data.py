"""Training groups for the answer verifier: one question, its candidate sentences, which of them answer.

Sources, all from the data folder (its SOURCES.md gives their licences):

- SQuAD v1.1 dev, **even-numbered articles only** (positions 0, 2, ... in file
  order, as `qa eval --articles even` picks them). The odd ones are the held-out
  benchmark and are never read into a group.
- `squad-v1.1-train-first11.json`, every article.
- SelQA answer-sentence selection, dev and test.

A SQuAD paragraph is split into sentences with the project's own splitter
(`qa.split.sentence_spans`, as the index splits it); the positive is the
sentence holding the answer's `answer_start`. A sentence that is not the
positive but still contains a gold answer string is left out of the group
rather than labelled negative: the hit rule would count it as right.

With `reads="previous"` each candidate is the sentence followed by the one
before it (qa.verify.scorer.reading): in SQuAD the article's previous sentence,
across paragraphs as the index has it; in SelQA the section's previous candidate.
With `names`, a candidate opening with He/She/His/Her is read with the name it
stands for, found in the sentences before it in the same way
(qa.verify.antecedent.named), as question time reads it.

Held aside (for checkpoint choice and calibration, never trained on): a few
even SQuAD dev articles and about 15% of SelQA's articles, drawn with the seed.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qa.measure.datasets import EvalQuestion, _file_name, load_squad
from qa.measure.evaluate import holds_answer
from qa.split import sentence_spans
from qa.verify.antecedent import NAME_WINDOW, named
from qa.verify.scorer import reading

SQUAD_DEV = "squad-v1.1-dev.json"
SQUAD_TRAIN = "squad-v1.1-train-first11.json"
SELQA = ("selqa-ass-dev.json", "selqa-ass-test.json")
TRAIN_PREFIX = "train-"  # file-name prefix of SQuAD train articles in the mining corpus


@dataclass
class Group:
    """A question and candidate sentences with labels (1 answers, 0 does not).

    `article` names the document the group came from (the seed file name for
    SQuAD, `selqa:<article>` for SelQA); `answers` are SQuAD's gold strings
    (empty for SelQA); `answerable` is False for a group whose answering
    sentences were removed.
    """

    id: str
    question: str
    sentences: list[str]
    labels: list[int]
    article: str
    dataset: str
    answers: list[str] = field(default_factory=list)
    answerable: bool = True
    title: str = ""
    reworded: bool = False  # SelQA's `is_paraphrase`: the question was reworded away from its section

    def to_dict(self) -> dict:
        return asdict(self)


def even_dev_positions(squad_dev: Path) -> list[int]:
    """Positions of the even-numbered SQuAD dev articles (the only ones ever used)."""
    count = len(json.loads(squad_dev.read_text(encoding="utf-8"))["data"])
    return list(range(0, count, 2))


def _squad_articles(path: Path, keep: list[int] | None) -> list[tuple[int, dict]]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [(number, article) for number, article in enumerate(data) if keep is None or number in keep]


def readings(texts: list[str], earlier: list[str], reads: str, names: bool) -> list[str]:
    """Each of `texts` (consecutive sentences of one document, after `earlier`) as the verifier reads it.

    With `names`, an opening He/She is read with its name (qa.verify.antecedent.named), from the
    sentences before it as question time has them; with `reads`, the sentence before follows.
    """
    everything = [*earlier, *texts]
    first = len(earlier)
    read = []
    for number, text in enumerate(texts, start=first):
        sentence = named(text, everything[max(0, number - NAME_WINDOW) : number]) if names else text
        read.append(reading(sentence, everything[number - 1] if number else None, reads))
    return read


def _paragraph_groups(
    context: str, qas: list[dict], article: str, dataset: str, title: str, earlier: list[str], reads: str, names: bool
) -> list[Group]:
    spans = sentence_spans(context, 0, len(context))
    texts = [context[start:end] for start, end in spans]
    read = readings(texts, earlier, reads, names)
    groups = []
    for item in qas:
        answers = list(dict.fromkeys(a["text"] for a in item["answers"]))
        offset = item["answers"][0]["answer_start"]
        positive = next((i for i, (start, end) in enumerate(spans) if start <= offset < end), None)
        if positive is None:
            continue
        sentences, labels = [], []
        for number, text in enumerate(texts):
            if number == positive:
                sentences.append(read[number])
                labels.append(1)
            elif not holds_answer(text, tuple(answers)):
                sentences.append(read[number])
                labels.append(0)
        groups.append(Group(item["id"], item["question"], sentences, labels, article, dataset, answers, True, title))
    return groups


def squad_groups(
    path: Path, keep: list[int] | None, dataset: str, prefix: str = "", reads: str = "none", names: bool = False
) -> list[Group]:
    """Groups of a SQuAD file's paragraphs; `keep` limits it to those article positions."""
    groups = []
    for number, article in _squad_articles(path, keep):
        title = article["title"].replace("_", " ")
        name = prefix + _seed_name(number, title)
        earlier: list[str] = []  # the article's sentences so far, as the index has them in one document
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            groups += _paragraph_groups(context, paragraph["qas"], name, dataset, title, earlier, reads, names)
            earlier = [*earlier, *(context[start:end] for start, end in sentence_spans(context, 0, len(context)))]
            earlier = earlier[-NAME_WINDOW:]
    return groups


def _seed_name(number: int, title: str) -> str:
    # Named as qa.questions names SQuAD articles, so sources match the mining index's.
    return _file_name(number, title)


def selqa_groups(paths: list[Path], reads: str = "none", names: bool = False) -> list[Group]:
    """SelQA questions with their section's candidates; `answers` indexes mark the positives."""
    groups = []
    for path in paths:
        for number, row in enumerate(json.loads(path.read_text(encoding="utf-8"))):
            answers = set(row["answers"])
            candidates = list(row["candidates"])
            labels = [int(i in answers) for i in range(len(candidates))]
            title = f"{row['article']}: {row['section']}"
            groups.append(
                Group(
                    f"{path.stem}:{number}",
                    row["question"],
                    readings(candidates, [], reads, names),
                    labels,
                    f"selqa:{row['article']}",
                    "selqa",
                    [],
                    True,
                    title,
                    bool(row.get("is_paraphrase")),
                )
            )
    return groups


def answer_removed(group: Group) -> Group | None:
    """The group without its answering sentences: nothing in it answers (None if nothing is left)."""
    kept = [s for s, label in zip(group.sentences, group.labels, strict=True) if not label]
    if not kept or all(group.labels):
        return None
    return Group(
        group.id + ":removed",
        group.question,
        kept,
        [0] * len(kept),
        group.article,
        group.dataset,
        group.answers,
        False,
        group.title,
        group.reworded,
    )


@dataclass
class Split:
    """Which articles are held aside (the rest is trained on)."""

    squad_dev_held: list[int]
    selqa_held: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def choose_split(data_dir: Path, seed: int, squad_articles: int = 4, selqa_share: float = 0.15) -> Split:
    """Held-aside articles, drawn with `seed`: a few even SQuAD dev articles and a share of SelQA's."""
    rng = random.Random(seed)
    even = even_dev_positions(data_dir / SQUAD_DEV)
    held = sorted(rng.sample(even, squad_articles))
    articles = sorted(
        {row["article"] for name in SELQA for row in json.loads((data_dir / name).read_text(encoding="utf-8"))}
    )
    selqa_held = sorted(rng.sample(articles, round(selqa_share * len(articles))))
    return Split(held, selqa_held)


def load_groups(
    data_dir: Path, split: Split, reads: str = "none", names: bool = False
) -> tuple[list[Group], list[Group]]:
    """Training and held-aside groups from the allowed data only; `reads` and `names` as `readings` takes them."""
    even = even_dev_positions(data_dir / SQUAD_DEV)
    dev = squad_groups(data_dir / SQUAD_DEV, even, "squad-dev", reads=reads, names=names)
    train = squad_groups(data_dir / SQUAD_TRAIN, None, "squad-train", TRAIN_PREFIX, reads, names)
    selqa = selqa_groups([data_dir / name for name in SELQA], reads, names)
    held_squad = {
        _seed_name(n, a["title"].replace("_", " "))
        for n, a in _squad_articles(data_dir / SQUAD_DEV, split.squad_dev_held)
    }
    held_selqa = {f"selqa:{name}" for name in split.selqa_held}
    held_names = held_squad | held_selqa
    everything = dev + train + selqa
    return [g for g in everything if g.article not in held_names], [g for g in everything if g.article in held_names]


def mining_corpus(data_dir: Path) -> tuple[dict[str, str], list[EvalQuestion]]:
    """Seed documents and questions for mining with the fusion: even dev articles and SQuAD train.

    Odd-numbered dev articles are dropped here, before anything is indexed.
    """
    documents, questions = load_squad(data_dir / SQUAD_DEV)
    order = {name: number for number, name in enumerate(documents)}
    documents = {name: text for name, text in documents.items() if order[name] % 2 == 0}
    questions = [q for q in questions if q.source in documents]
    train_documents, train_questions = load_squad(data_dir / SQUAD_TRAIN)
    documents.update({TRAIN_PREFIX + name: text for name, text in train_documents.items()})
    questions += [
        EvalQuestion(q.id, q.question, q.answers, TRAIN_PREFIX + q.source, q.answerable) for q in train_questions
    ]
    return documents, questions
