"""Answers: quotes and citations from the real seed, abstention, bad questions, formatting."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, SEED_NAME, SEEDS

import qa
from qa.quotes import NOT_FOUND, UNSURE, answer_from, answer_question, answer_status, make_quotes
from qa.reader.index import Index
from qa.records import Answer, Citation, Hit, Quote, format_citation
from qa.render.text import format_text
from qa.search.confidence import FUSION_ANSWER_AT, FUSION_UNSURE_AT
from qa.search.ranking import Retrieval, search
from qa.verify.rerank import RerankPolicy
from qa.verify.scorer import load_verifier

DevResults = dict[str, tuple[list[Hit], Answer]]

CONTEXT = "Alpha one. Beta two.  Gamma three. Delta four."


def make_hit(
    sentence: str,
    score: float,
    *,
    source: str = "doc.txt",
    paragraph: int = 2,
    context: str = CONTEXT,
    context_start: int = 100,
    dense_rank: int | None = None,
    page: int | None = None,
) -> Hit:
    """A hit for `sentence`, which must occur in `context`, placed at `context_start` in its file."""
    offset = context.index(sentence)
    return Hit(
        id=f"{source}:{sentence}",
        text=sentence,
        location=Citation(
            source,
            context_start + offset,
            context_start + offset + len(sentence),
            "Part one",
            paragraph,
            paragraph + 1,
            page,
        ),
        score=score,
        dense_rank=dense_rank,
        lexical_rank=None,
        passage_rank=1,
        dense_score=0.5,
        lexical_score=0.0,
        context=context,
        context_start=context_start,
    )


def assert_quotes_its_source(record: Quote | Hit) -> None:
    source_text = Path(SEEDS, record.source).read_text(encoding="utf-8")
    assert source_text[record.start : record.end] == record.text
    assert record.context[record.start - record.context_start : record.end - record.context_start] == record.text


# --- make_quotes ---------------------------------------------------------------------


def test_adjacent_sentences_of_a_paragraph_become_one_exact_quote() -> None:
    alpha, beta = make_hit("Alpha one.", 0.9, dense_rank=1), make_hit("Beta two.", 0.8, dense_rank=4)
    [quote] = make_quotes([beta, alpha])
    assert quote.text == "Alpha one. Beta two." == CONTEXT[0:20]
    assert (quote.start, quote.end) == (100, 120)
    assert quote.sentence_ids == (alpha.id, beta.id)  # reading order, not score order
    assert (quote.score, quote.dense_rank) == (0.9, 1)  # the best sentence's evidence
    assert (quote.source, quote.paragraph, quote.line, quote.section) == ("doc.txt", 2, 3, "Part one")
    assert (quote.context, quote.context_start) == (CONTEXT, 100)


def test_merged_quote_keeps_the_whitespace_between_sentences() -> None:
    [quote] = make_quotes([make_hit("Beta two.", 0.5), make_hit("Gamma three.", 0.6), make_hit("Alpha one.", 0.4)])
    assert quote.text == "Alpha one. Beta two.  Gamma three."
    assert quote.text == CONTEXT[quote.start - 100 : quote.end - 100]
    assert quote.score == 0.6


def test_sentences_with_text_between_them_stay_separate_quotes() -> None:
    quotes = make_quotes([make_hit("Alpha one.", 0.7), make_hit("Gamma three.", 0.9)])
    assert [quote.text for quote in quotes] == ["Gamma three.", "Alpha one."]  # best first
    assert [quote.sentence_ids for quote in quotes] == [("doc.txt:Gamma three.",), ("doc.txt:Alpha one.",)]


def test_sentences_of_other_paragraphs_or_files_are_not_merged() -> None:
    first = make_hit("Alpha one.", 0.9, context="Alpha one.", context_start=0, paragraph=1)
    next_paragraph = make_hit("Beta two.", 0.8, context="Beta two.", context_start=11, paragraph=2)
    other_file = make_hit("Beta two.", 0.7, source="other.txt", context="Alpha one. Beta two.", context_start=0)
    quotes = make_quotes([first, next_paragraph, other_file])
    assert [(q.source, q.text) for q in quotes] == [
        ("doc.txt", "Alpha one."),
        ("doc.txt", "Beta two."),
        ("other.txt", "Beta two."),
    ]


def test_no_hits_no_quotes() -> None:
    assert make_quotes([]) == []


def test_quote_keeps_the_page_and_never_merges_across_pages() -> None:
    [quote] = make_quotes([make_hit("Alpha one.", 0.5, page=2), make_hit("Beta two.", 0.4, page=2)])
    assert quote.page == 2 and ", page 2, paragraph 2," in quote.citation
    split = make_quotes([make_hit("Alpha one.", 0.5, page=1), make_hit("Beta two.", 0.4, page=2)])
    assert [(q.text, q.page) for q in split] == [("Alpha one.", 1), ("Beta two.", 2)]


# --- answers over the real seed ---------------------------------------------------------


def test_who_chairs_the_judiciary_committee(seed_index: Index) -> None:
    answer = qa.answer("Who chairs the Senate Judiciary Committee?", index=seed_index)
    assert answer.answered, (answer.confidence, [hit.text[:60] for hit in answer.related])
    assert "Chuck Grassley" in answer.quotes[0].text


def test_citations_name_file_paragraph_and_line(dev_results: DevResults, seed_index: Index) -> None:
    passage_of = {(p.source, p.paragraph): p for p in seed_index.passages}
    quotes = [quote for _, answer in dev_results.values() for quote in answer.quotes]
    related = [hit for _, answer in dev_results.values() for hit in answer.related]
    assert quotes and related
    source_text = (SEEDS / SEED_NAME).read_text(encoding="utf-8")
    for record in [*quotes, *related]:
        section = f' § "{record.section}"' if record.section else ""
        assert record.citation == (
            f"{SEED_NAME}{section}, paragraph {record.paragraph}, line {record.line}, chars {record.start}-{record.end}"
        )
        # The numbers are right, not just present.
        assert source_text.count("\n", 0, record.start) + 1 == record.line
        passage = passage_of[(record.source, record.paragraph)]
        assert passage.start <= record.start < record.end <= passage.end


def test_dev_quotes_and_related_hits_quote_their_source(dev_results: DevResults) -> None:
    records = [r for _, answer in dev_results.values() for r in (*answer.quotes, *answer.related)]
    assert len(records) >= 2 * len(dev_results)
    for record in records:
        assert_quotes_its_source(record)


def test_dev_unanswerable_questions_abstain_with_related_hits(
    dev_set: list[dict[str, Any]], dev_results: DevResults
) -> None:
    unanswerable = [row["id"] for row in dev_set if not row["answerable"]]
    assert unanswerable
    for name in unanswerable:
        answer = dev_results[name][1]
        assert answer.answered is False, (name, answer.confidence)
        assert answer.quotes == []
        assert answer.related


# Measured with the calibrated threshold: 10 of 12 answered; d11 ("pushback")
# and d12 (a paraphrase of "willingness") stay below it and list the right
# sentence under related instead. A floor, so that calibration cannot regress.
ANSWERED_AT_LEAST = 10


def test_dev_answerable_questions_are_answered(dev_set: list[dict[str, Any]], dev_results: DevResults) -> None:
    answers = {row["id"]: dev_results[row["id"]][1] for row in dev_set if row["answerable"]}
    abstained = {name: answer.confidence for name, answer in answers.items() if answer.answered is not True}
    assert len(answers) - len(abstained) >= ANSWERED_AT_LEAST, f"abstained on {abstained}"
    for name, answer in answers.items():
        if not answer.answered:
            gold = next(row["answer"] for row in dev_set if row["id"] == name).lower()
            assert any(gold in hit.text.lower() for hit in answer.related), name


@pytest.mark.parametrize("question", ["Who is Paul Knierim?", "What is the boiling point of water?"])
def test_threshold_decides_between_quotes_and_abstention(seed_index: Index, question: str) -> None:
    hits = search(seed_index, question, k=3).hits
    sure = answer_question(seed_index, question, k=3, min_confidence=0.0)
    assert sure.answered is True
    assert sure.quotes and hits[0].text in sure.quotes[0].text
    quoted = {sentence_id for quote in sure.quotes for sentence_id in quote.sentence_ids}
    assert quoted.isdisjoint(hit.id for hit in sure.related)
    assert quoted | {hit.id for hit in sure.related} == {hit.id for hit in hits}
    for quote in sure.quotes:
        assert_quotes_its_source(quote)

    never = answer_question(seed_index, question, k=3, min_confidence=1.5)
    assert never.answered is False
    assert never.quotes == [] and never.related == hits
    assert never.confidence == sure.confidence
    assert 0.0 <= sure.confidence <= 1.0


def test_answer_to_dict_is_json_with_citations(seed_index: Index) -> None:
    answer = answer_question(seed_index, "Who is Kirsten Madison?", k=3, min_confidence=0.0)
    data = json.loads(json.dumps(answer.to_dict(), ensure_ascii=False))
    assert set(data) == {"question", "answered", "status", "confidence", "quotes", "related", "notes", "build"}
    assert data["build"] == seed_index.path.name  # the one build every quote came from
    assert data["answered"] is True and data["question"] == "Who is Kirsten Madison?"
    assert [q["citation"] for q in data["quotes"]] == [q.citation for q in answer.quotes]
    assert [q["text"] for q in data["quotes"]] == [q.text for q in answer.quotes]
    assert all(isinstance(q["sentence_ids"], list) and q["sentence_ids"] for q in data["quotes"])
    assert [h["citation"] for h in data["related"]] == [h.citation for h in answer.related]
    quote_data = json.loads(json.dumps(answer.quotes[0].to_dict()))
    assert quote_data["citation"] == answer.quotes[0].citation


# --- bad questions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("", "the question is empty"),
        ("   ", "the question is empty"),
        ("?!?", "no words to search for"),
        (None, "must be text"),
        (42, "must be text"),
        (["Who?"], "must be text"),
    ],
)
def test_bad_question_is_refused_clearly(seed_index: Index, question: Any, message: str) -> None:
    with pytest.raises(qa.BadQuestionError, match=message):
        qa.answer(question, index=seed_index)


def test_very_long_question_is_shortened_with_a_note(seed_index: Index) -> None:
    question = ("How much does a fentanyl investment yield? " * 2500)[:99_999] + "?"
    assert len(question) == 100_000
    answer = qa.answer(question, index=seed_index)
    assert answer.question == question
    assert any("100,000" in note and "characters" in note for note in answer.notes), answer.notes
    assert answer.related or answer.quotes


def test_control_characters_in_a_question_are_ignored(seed_index: Index) -> None:
    plain = qa.answer("Who is Paul Knierim?", index=seed_index)
    noisy = qa.answer("Who is\x00Paul\x07Knierim?\x1b", index=seed_index)
    assert noisy.question == "Who is\x00Paul\x07Knierim?\x1b"
    assert noisy.notes == []
    assert (noisy.answered, noisy.confidence) == (plain.answered, plain.confidence)
    assert [q.text for q in noisy.quotes] == [q.text for q in plain.quotes]
    assert [h.id for h in noisy.related] == [h.id for h in plain.related]


# --- formatting -------------------------------------------------------------------------------


def test_format_citation() -> None:
    assert format_citation("a/b.txt", "Intro", 3, 7, 10, 20) == 'a/b.txt § "Intro", paragraph 3, line 7, chars 10-20'
    assert format_citation("b.md", None, 1, 1, 0, 5) == "b.md, paragraph 1, line 1, chars 0-5"
    assert (
        format_citation("r.pdf", "Intro", 3, 7, 10, 20, page=2)
        == 'r.pdf § "Intro", page 2, paragraph 3, line 7, chars 10-20'
    )


def test_format_text_answered() -> None:
    [quote] = make_quotes([make_hit("Alpha one.", 0.75)])
    text = format_text(Answer("Q?", True, 0.9, [quote], [make_hit("Delta four.", 0.2)], ["shortened"]))
    lines = text.splitlines()
    assert lines[0] == "[1] “Alpha one.”"
    assert lines[1].strip().startswith(quote.citation)
    assert "Delta four." not in text  # related hits are not shown beside an answer
    assert lines[-2] == "Confidence that the sources answer this: 0.90"
    assert lines[-1] == "Note: shortened"


def test_format_text_not_found_lists_closest_passages() -> None:
    related = [make_hit("Beta two.", 0.3), make_hit("Delta four.", 0.2)]
    text = format_text(Answer("Q?", False, 0.1, [], related, []))
    lines = text.splitlines()
    assert lines[0] == NOT_FOUND
    assert lines[1] == "Closest passages:"
    assert lines[2] == "  - “Beta two.”"
    assert lines[3].strip().startswith(related[0].citation)
    assert "  - “Delta four.”" in lines
    assert lines[-1] == "Confidence that the sources answer this: 0.10"


def test_status_bands_follow_the_thresholds() -> None:
    assert answer_status(0.5) == "answered" and answer_status(0.49) == "unsure"
    assert answer_status(FUSION_UNSURE_AT) == "unsure" and answer_status(FUSION_UNSURE_AT - 0.01) == "not_found"
    assert answer_status(0.1, min_confidence=0.05) == "answered"  # a threshold below the band has no band
    assert answer_status(0.9, min_confidence=1.5) == "unsure"


def test_the_answer_threshold_is_the_retrievals_own_unless_one_is_given() -> None:
    hits = [make_hit("Alpha one.", 0.4), make_hit("Beta two.", 0.3)]
    verified = Retrieval(hits, 0.3, answer_at=0.25, unsure_at=0.1)  # as the verifier's RerankPolicy sets them
    assert answer_from("Q?", verified).status == "answered"
    assert answer_from("Q?", Retrieval(hits, 0.3)).status == "unsure"  # the fusion's 0.5 and 0.2
    assert answer_from("Q?", Retrieval(hits, 0.12, answer_at=0.25, unsure_at=0.1)).status == "unsure"
    assert answer_from("Q?", Retrieval(hits, 0.09, answer_at=0.25, unsure_at=0.1)).status == "not_found"
    # QA_MIN_CONFIDENCE (min_confidence) wins over either model's own threshold.
    assert answer_from("Q?", verified, min_confidence=0.5).status == "unsure"
    assert answer_from("Q?", Retrieval(hits, 0.3), min_confidence=0.3).status == "answered"


def test_a_verified_retrieval_carries_the_verifiers_thresholds(seed_index: Index) -> None:
    policy = RerankPolicy()
    verified = search(seed_index, "Who is Kirsten Madison?", verifier=load_verifier())
    assert (verified.answer_at, verified.unsure_at) == (policy.answer_at, policy.unsure_at)
    fused = search(seed_index, "Who is Kirsten Madison?")
    assert (fused.answer_at, fused.unsure_at) == (FUSION_ANSWER_AT, FUSION_UNSURE_AT)


def test_an_unsure_answer_has_no_quotes_and_puts_the_closest_sentence_first() -> None:
    hits = [make_hit("Alpha one.", 0.4), make_hit("Beta two.", 0.3)]
    unsure = answer_from("Q?", Retrieval(hits, 0.35))
    assert (unsure.status, unsure.answered, unsure.quotes, unsure.related) == ("unsure", False, [], hits)
    assert unsure.to_dict()["status"] == "unsure"
    assert answer_from("Q?", Retrieval(hits, 0.05)).status == "not_found"
    assert answer_from("Q?", Retrieval([], 0.9)).status == "not_found"
    assert answer_from("Q?", Retrieval(hits, 0.9)).status == "answered"
    with pytest.raises(ValueError, match="does not go with"):
        Answer("Q?", True, 0.3, [], hits, status="unsure")


def test_format_text_unsure_shows_the_closest_sentence_as_maybe_not_an_answer() -> None:
    related = [make_hit("Beta two.", 0.3), make_hit("Delta four.", 0.2)]
    text = format_text(Answer("Q?", False, 0.3, [], related, [], status="unsure"))
    lines = text.splitlines()
    assert lines[:2] == [UNSURE, "  “Beta two.”"]
    assert lines[2].strip().startswith(related[0].citation)
    assert lines[3] == "Other passages:" and "  - “Delta four.”" in lines
    assert NOT_FOUND not in text


PARAPHRASES = REPO.parent / "shared" / "eval" / "dev_seed_paraphrase.jsonl"
# Measured (not fitted on): of the 24 reworded answerable questions, 7 are
# answered with the right sentence first and 5 more are "unsure" with it
# first; 3 of the 6 unanswerable ones are not answered. Floors, so that a
# change to ranking or calibration cannot quietly lose them. (With every
# word window embedded and the weights fitted for that, it was 9, 14 and 5;
# BENCHMARKS.md, "The compact index", gives both.)
PARAPHRASES_ANSWERED_RIGHT = 7
PARAPHRASES_SHOWN_RIGHT = 12
PARAPHRASES_UNANSWERABLE_HELD_BACK = 3


def test_reworded_questions_are_answered_or_shown_as_unsure(seed_index: Index) -> None:
    if not PARAPHRASES.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{PARAPHRASES} is missing")
        pytest.skip(f"{PARAPHRASES} is missing; it lives in the shared eval folder beside the repo")
    rows = [json.loads(line) for line in PARAPHRASES.read_text(encoding="utf-8").splitlines() if line.strip()]
    answered_right = shown_right = held_back = 0
    for row in rows:
        answer = qa.answer(row["question"], index=seed_index)
        first = answer.quotes[0].text if answer.quotes else answer.related[0].text
        right = row["answerable"] and row["answer"].lower() in first.lower()
        answered_right += answer.answered and right
        shown_right += answer.status in ("answered", "unsure") and right
        held_back += not row["answerable"] and not answer.answered
    assert answered_right >= PARAPHRASES_ANSWERED_RIGHT
    assert shown_right >= PARAPHRASES_SHOWN_RIGHT
    assert held_back >= PARAPHRASES_UNANSWERABLE_HELD_BACK


def test_a_sentence_without_a_score_is_never_quoted_beside_the_best() -> None:
    hits = [make_hit("Alpha one.", 0.0), make_hit("Beta two.", 0.0)]
    answer = answer_from("Q?", Retrieval(hits, 0.9))
    assert [quote.text for quote in answer.quotes] == ["Alpha one."]
