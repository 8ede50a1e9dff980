"""Hard candidates for the verifier, mined with the project's current fusion.

The mining index holds the even-numbered SQuAD dev articles and SQuAD train's
first 11 articles only (`verifier_data.mining_corpus`): odd-numbered dev
articles are never written, indexed or searched. Each question is searched
as `qa eval` searches it (`gather_candidates`, then the fusion's order), and
the top sentences are kept with the hit rule's verdict (the sentence contains
a gold answer string, case-insensitive). Held-aside questions are also
searched with their own article hidden, for the "nothing answers" figures.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from qa.measure.datasets import EvalQuestion, write_corpus
from qa.measure.evaluate import holds_answer
from qa.search.candidates import gather_candidates
from qa.search.fusion import FusionWeights, fused_scores
from qa.search.question import encode_question

logger = logging.getLogger(__name__)

MINED_DEPTH = 20  # the fusion's top 20: what the verifier would rerank at question time
CANDIDATES = 50  # as qa eval and qa.search.ranking.search gather them


def _top(index: Any, query: np.ndarray, tokens: list[str], answers: tuple[str, ...], hide: str | None) -> list[dict]:
    found = gather_candidates(index, query, tokens, CANDIDATES, exclude_source=hide)
    scores = fused_scores(found, FusionWeights())
    rows = found.rows[np.argsort(-scores, kind="stable")[:MINED_DEPTH]]
    top = []
    for row in rows.tolist():
        sentence = index.sentences[row]
        top.append({"text": sentence.text, "source": sentence.source, "hit": holds_answer(sentence.text, answers)})
    return top


def mine(documents: dict[str, str], questions: list[EvalQuestion], work: Path, hidden_for: set[str]) -> dict[str, dict]:
    """Each question's fused top sentences (and, for ids in `hidden_for`, with its article hidden).

    The result is cached as JSON in `work/mined.json` and reused when it
    covers the same question ids.
    """
    import qa

    cache = work / "mined.json"
    wanted = {q.id for q in questions}
    if cache.is_file():
        mined = json.loads(cache.read_text(encoding="utf-8"))
        if set(mined) == wanted:
            return mined
    write_corpus(documents, work / "seeds")
    index = qa.build_index(work / "seeds", work / "index")
    mined = {}
    for number, question in enumerate(questions, start=1):
        query, tokens, _ = encode_question(index, question.question)
        entry: dict[str, Any] = {
            "question": question.question,
            "source": question.source,
            "answers": list(question.answers),
        }
        entry["top"] = _top(index, query, tokens, question.answers, None)
        if question.id in hidden_for:
            entry["hidden"] = _top(index, query, tokens, question.answers, question.source)
        mined[question.id] = entry
        if number % 500 == 0:
            logger.info("mined %s of %s questions", number, len(questions))
    temporary = cache.with_suffix(".tmp")
    temporary.write_text(json.dumps(mined), encoding="utf-8")
    temporary.replace(cache)
    return mined


def with_readings(mined: dict[str, dict], work: Path, reads: str, names: bool = False) -> dict[str, dict]:
    """The mined candidates with each text as a verifier trained with `reads` and `names` reads it.

    The hit verdicts stay. A sentence's context (the sentence before, the
    name an opening "He" stands for) is taken from the mining index under
    `work`, where the fusion found it, so it is what question time would give.
    """
    if (reads == "none" and not names) or not mined:
        return mined
    import qa
    from qa.verify.antecedent import verifier_text
    from qa.verify.rerank import previous_sentence
    from qa.verify.scorer import reading

    if not (work / "index").exists():
        raise FileNotFoundError(f"no mining index under {work}; delete {work / 'mined.json'} to mine again")
    sentences = qa.load_index(work / "index").sentences
    wanted = {
        (c["source"], c["text"]) for entry in mined.values() for part in ("top", "hidden") for c in entry.get(part, [])
    }
    read_as = {}
    for row in range(len(sentences)):
        sentence = sentences[row]
        key = (sentence.source, sentence.text)
        if key in wanted:
            text = verifier_text(sentences, row) if names else sentence.text
            read_as[key] = reading(text, previous_sentence(sentences, row), reads)

    def read(candidate: dict) -> dict:
        key = (candidate["source"], candidate["text"])
        return {**candidate, "text": read_as.get(key, reading(candidate["text"], None, reads))}

    return {
        key: {**entry, **{part: [read(c) for c in entry[part]] for part in ("top", "hidden") if part in entry}}
        for key, entry in mined.items()
    }
