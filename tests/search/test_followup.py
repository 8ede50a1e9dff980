"""Follow-up questions: when a question leans on an earlier turn, what the turn lends, and that standalone ones do not move."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

import qa
from qa.embed.encoder import Encoder
from qa.reader.index import Index
from qa.records import Turn
from qa.search.followup import (
    carry_over,
    conversation_sources,
    might_refer_back,
    parse_history,
    refers_back,
    with_person,
)
from qa.search.ranking import search
from qa.verify.antecedent import person_named

FOLLOWUPS = REPO / "eval" / "followups_seed.jsonl"


@pytest.mark.parametrize(
    "question",
    [
        "What does he think of sanctions?",
        "Where does she work?",
        "What about heroin?",
        "And between 2014 and 2016?",
        "Who would that help?",
        "What did he call that?",
        "What did the agency report?",
        "Why?",
        "How so?",
        "What does it mean?",
        "Was the senator the chairman?",  # "the senator the": no name begins a clause about him
        "What is that in dollars?",
        "What does it mean for China?",
        "What was the population of the city in 2010?",
        "Where did it take place?",  # "take place": not "How long did it take ..."
        "What was it used to treat?",
        "What event took away his ability of speech?",  # "what" is a thing, not "his"
        "What is its official name?",  # after an auxiliary: the inverted subject
        "Why do traffickers like it, according to her?",  # no name after the comma
    ],
)
def test_questions_that_lean_on_an_earlier_turn(question: str) -> None:
    assert refers_back(question)


@pytest.mark.parametrize(
    "question",
    [
        "Who is Derek Scissors?",
        "Who warned that lone dealers have taken over from big drug rings?",
        "Who would gain ammunition if China admitted its role?",
        "What did Grassley say he wants?",
        "What does mixing fentanyl into other street drugs do to them?",
        "Why would sanctions on the whole country be unfair?",
        "How soon did China ban fentanyl analogues?",  # "How soon", not the opener "How so"
        "What is it called when a drug is scheduled?",  # an "it" that stands for what follows
        "What does it mean for a drug to be scheduled?",
        "What are those from Mexico accused of?",  # "those" defined where they stand
        "What did the committee the Senate set up find?",
        "What did the agency of the Justice Department report?",
        "How long did it take the committee to respond?",  # an "it" for the clause after it
        "How much does it cost to make a kilogram of fentanyl?",
        "Why is it difficult to stop the shipments?",
        "Who wrote that it is difficult to trace the precursors?",
        "Who made their commercial debut at the hearing?",  # "their" is whoever "who" is
        "Who announced she would step down as chairman?",
        "What company changed its name in 2019?",
        "After its report, which agency did Senator Grassley praise?",  # the name after the comma
    ],
)
def test_questions_that_stand_on_their_own(question: str) -> None:
    assert not refers_back(question)


@pytest.mark.parametrize(
    ("question", "might"),
    [
        ("Which NFL team won it?", True),
        ("What does mixing fentanyl into other street drugs do to them?", True),
        ("Which resident scholar works for it?", True),
        ("Who is Derek Scissors?", False),
        ("Why would sanctions on the whole country be unfair?", False),
        ("What does he think of sanctions?", False),  # refers back for certain: not "might"
    ],
)
def test_questions_whose_pronoun_might_point_at_an_earlier_turn(question: str, might: bool) -> None:
    assert might_refer_back(question) is might


def test_an_ambiguous_follow_up_unanswered_alone_is_searched_again_with_history(seed_index: Index) -> None:
    first = "What is the American Enterprise Institute?"
    question = "Which resident scholar works for it?"  # "it" after words it could point at
    history = [Turn(first, qa.answer(first, index=seed_index))]
    alone = search(seed_index, question, k=3, verifier=qa.api.verifier())
    followed = search(seed_index, question, k=3, history=history, verifier=qa.api.verifier())
    assert alone.confidence < alone.answer_at and alone.searches == 1
    assert followed.searches == 2 and followed.confidence > alone.confidence
    answered = qa.answer(question, index=seed_index, history=history)
    assert answered.answered and "Derek Scissors" in answered.quotes[0].text
    assert answered.notes == [f"Read as a follow-up to “{first}”; ask it in full to search it on its own."]
    assert not qa.answer(question, index=seed_index).answered


def test_an_ambiguous_question_answered_alone_from_the_conversations_document_is_not_searched_again(
    seed_index: Index,
) -> None:
    earlier = Turn("Who is Kirsten Madison?", qa.answer("Who is Kirsten Madison?", index=seed_index))
    question = "What does mixing fentanyl into other street drugs do to them?"
    alone = search(seed_index, question, k=3, verifier=qa.api.verifier())
    after = search(seed_index, question, k=3, history=[earlier], verifier=qa.api.verifier())
    assert might_refer_back(question) and alone.confidence >= alone.answer_at
    assert after.searches == 1 and [h.id for h in after.hits] == [h.id for h in alone.hits]
    assert after.confidence == alone.confidence and after.notes == alone.notes == []


def test_a_second_search_less_confident_than_the_first_is_not_taken(
    seed_index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    import qa.search.ranking as ranking

    question = "Which resident scholar works for it?"
    earlier = Turn("What is the American Enterprise Institute?", None)
    alone = search(seed_index, question, k=3, verifier=qa.api.verifier())
    searched = ranking._search

    def worse(*args: object, **kwargs: object) -> ranking.Retrieval:
        found = searched(*args, **kwargs)  # type: ignore[arg-type]
        if args[3] is not None:  # the search with the carry-over
            found.confidence = -1.0
        return found

    monkeypatch.setattr(ranking, "_search", worse)
    after = search(seed_index, question, k=3, history=[earlier], verifier=qa.api.verifier())
    assert after.searches == 2 and after.confidence == alone.confidence and after.notes == []
    assert [h.id for h in after.hits] == [h.id for h in alone.hits]


# Two documents: a follow-up's "it" alone finds the other one's sentence, and answers from it.
STRAYING = {
    "plague.txt": (
        "The Black Death was a bubonic plague pandemic that struck Europe from 1346 to 1353. "
        "It reached England in June 1348, carried by ships into the port of Melcombe. "
        "In Latin the name for the Black Death was magna mortalitas, the great mortality. "
        "The pandemic killed between a third and a half of the population of Europe.\n"
    ),
    "oak.txt": (
        "The English oak is a large deciduous tree native to most of Europe. "
        "The Latin name for the oak genus is Quercus. "
        "Oak wood is dense and was long used for ships and barrels.\n"
    ),
}
PLAGUE_FIRST = "When did the Black Death reach England?"
LATIN = "What is the Latin name for it?"


@pytest.fixture(scope="module")
def two_documents(encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> Index:
    from builds import write_docs

    root = tmp_path_factory.mktemp("two-documents")
    return qa.indexing.build_index(write_docs(root / "seeds", STRAYING), root / "index", encoder)


def test_the_conversation_is_in_the_documents_the_last_answer_quoted(two_documents: Index) -> None:
    answered = qa.answer(PLAGUE_FIRST, index=two_documents)
    assert answered.answered and conversation_sources([Turn(PLAGUE_FIRST, answered)]) == {"plague.txt"}
    assert conversation_sources([Turn(PLAGUE_FIRST, answered), Turn("Who won it?", None)]) == frozenset()
    assert conversation_sources([]) == frozenset()


def test_an_ambiguous_follow_up_answered_alone_from_another_document_is_brought_back(two_documents: Index) -> None:
    first = qa.answer(PLAGUE_FIRST, index=two_documents)
    alone = search(two_documents, LATIN, k=3, verifier=qa.api.verifier())
    assert might_refer_back(LATIN) and alone.confidence >= alone.answer_at
    assert alone.hits[0].source == "oak.txt" and alone.searches == 1
    followed = qa.answer(LATIN, index=two_documents, history=[Turn(PLAGUE_FIRST, first)])
    # Answered from the conversation's document, although less confidently than the oak alone.
    assert followed.answered and followed.confidence < alone.confidence
    quote = followed.quotes[0]
    assert quote.source == "plague.txt" and "magna mortalitas" in quote.text
    assert two_documents.source_text(quote.source)[quote.start : quote.end] == quote.text
    assert followed.notes == [f"Read as a follow-up to “{PLAGUE_FIRST}”; ask it in full to search it on its own."]


def test_a_carried_search_that_does_not_answer_from_the_conversations_document_is_not_taken(
    two_documents: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    import qa.search.ranking as ranking

    history = [Turn(PLAGUE_FIRST, qa.answer(PLAGUE_FIRST, index=two_documents))]
    alone = search(two_documents, LATIN, k=3, verifier=qa.api.verifier())
    searched = ranking._search

    def unsure(*args: object, **kwargs: object) -> ranking.Retrieval:
        found = searched(*args, **kwargs)  # type: ignore[arg-type]
        if args[3] is not None:  # the search with the carry-over: in the right document, but not answering
            assert found.hits[0].source == "plague.txt"
            found.confidence = found.answer_at - 0.01
        return found

    monkeypatch.setattr(ranking, "_search", unsure)
    after = search(two_documents, LATIN, k=3, history=history, verifier=qa.api.verifier())
    assert after.searches == 2 and after.confidence == alone.confidence and after.notes == []
    assert [h.id for h in after.hits] == [h.id for h in alone.hits]
    # After an unanswered turn there is no document to keep to: the oak answer stands, searched once.
    monkeypatch.undo()
    unanswered = search(two_documents, LATIN, k=3, history=[Turn(PLAGUE_FIRST, None)], verifier=qa.api.verifier())
    assert unanswered.searches == 1 and [h.id for h in unanswered.hits] == [h.id for h in alone.hits]
    # Nor when the question is kept to the other document: the conversation's is out of reach.
    scoped = search(two_documents, LATIN, k=3, history=history, verifier=qa.api.verifier(), sources=["oak.txt"])
    assert scoped.searches == 1 and scoped.hits[0].id == alone.hits[0].id


@pytest.mark.parametrize(
    ("history", "says"),
    [
        ("Who is he?", "must be a list"),
        ({"question": "x"}, "must be a list"),
        ([{"q": "x"}], "history turn 1"),
        ([{"question": "x", "answer": 3}], "answer object"),
        ([{"question": "x", "answer": {"quotes": [{"text": "t"}]}}], "a quote needs"),
    ],
)
def test_malformed_history_gets_a_message(seed_index: Index, history: object, says: str) -> None:
    with pytest.raises(qa.BadHistoryError, match=says):
        qa.answer("What does he think?", index=seed_index, history=history)  # type: ignore[arg-type]
    assert issubclass(qa.BadHistoryError, qa.BadQuestionError)


def test_history_from_json_equals_history_as_records(seed_index: Index) -> None:
    first = qa.answer("Who is Derek Scissors?", index=seed_index)
    as_records = qa.retrieve(
        "Where does he work?", k=3, index=seed_index, history=[Turn("Who is Derek Scissors?", first)]
    )
    from_json = json.loads(json.dumps([{"question": "Who is Derek Scissors?", "answer": first.to_dict()}]))
    assert [h.id for h in qa.retrieve("Where does he work?", k=3, index=seed_index, history=from_json)] == [
        h.id for h in as_records
    ]
    assert parse_history(from_json)[0].question == "Who is Derek Scissors?"


def test_an_earlier_answer_passed_back_as_it_came_is_its_turn(seed_index: Index) -> None:
    """history=[first] or [first.to_dict()] (what the MCP tool returns) keeps the answer's quotes, not only its question."""
    first = qa.answer("Who is Derek Scissors?", index=seed_index)
    assert first.answered
    as_records = qa.retrieve(
        "Where does he work?", k=3, index=seed_index, history=[Turn("Who is Derek Scissors?", first)]
    )
    without_answer = qa.retrieve(
        "Where does he work?", k=3, index=seed_index, history=[{"question": "Who is Derek Scissors?"}]
    )
    for history in ([first], json.loads(json.dumps([first.to_dict()]))):
        turn = parse_history(history)[0]
        assert turn.question == "Who is Derek Scissors?"
        assert turn.answer is not None and [q.text for q in turn.answer.quotes] == [q.text for q in first.quotes]
        found = qa.retrieve("Where does he work?", k=3, index=seed_index, history=history)
        assert [(h.id, h.score) for h in found] == [(h.id, h.score) for h in as_records]
    # the answer shapes the follow-up's search, so dropping it would have shown
    assert [(h.id, h.score) for h in without_answer] != [(h.id, h.score) for h in as_records]


@pytest.mark.parametrize("verifier", ["on", "off"])
def test_a_follow_up_is_answered_from_the_sentence_about_the_earlier_subject(
    seed_index: Index, verifier: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_VERIFIER", verifier)
    qa.reload_settings()
    first = qa.answer("How much profit does a fentanyl investment yield?", index=seed_index)
    followed = qa.answer(
        "What about heroin?",
        index=seed_index,
        history=[Turn("How much profit does a fentanyl investment yield?", first)],
    )
    assert followed.answered and "$80,000" in followed.quotes[0].text
    assert followed.notes[-1].startswith("Read as a follow-up to “How much profit does a fentanyl investment yield?”")
    quote = followed.quotes[0]
    assert seed_index.source_text(quote.source)[quote.start : quote.end] == quote.text
    if verifier == "off":  # the fusion alone needs the history for it (the verifier finds it even alone)
        assert "$80,000" not in qa.retrieve("What about heroin?", k=1, index=seed_index)[0].text


def test_a_standalone_question_after_an_unrelated_turn_is_answered_as_alone(seed_index: Index) -> None:
    earlier = Turn("Who is Kirsten Madison?", qa.answer("Who is Kirsten Madison?", index=seed_index))
    for question in [
        "Who chairs the Senate Judiciary Committee?",
        "Where is fentanyl produced?",
        "Is fentanyl cheaper to make than heroin?",
    ]:
        alone = qa.answer(question, index=seed_index)
        after = qa.answer(question, index=seed_index, history=[earlier])
        assert after.to_dict() == alone.to_dict()


def test_the_note_of_a_long_follow_up_chain_is_cut() -> None:
    from qa.search.followup import NOTE_CHARS, Carry

    note = Carry("", {}, (), earlier="Who is Derek Scissors? " * 20).note()
    quoted = note.split("“")[1].split("”")[0]
    assert len(quoted) == NOTE_CHARS and quoted.endswith("…") and "Derek Scissors" in quoted


def test_the_seed_follow_up_set_is_well_formed() -> None:
    rows = [json.loads(line) for line in FOLLOWUPS.read_text(encoding="utf-8").splitlines() if line.strip()]
    text = (REPO / "seeds" / "senate-caucus-hearing-fentanyl-from-china.txt").read_text(encoding="utf-8").lower()
    assert len(rows) >= 20 and len({row["id"] for row in rows}) == len(rows)
    for row in rows:
        assert row["answer"].lower() in text and refers_back(row["question"]) and not refers_back(row["first"])


def test_follow_up_figures_are_computed(seed_index: Index, tmp_path: Path) -> None:
    from qa.measure.followups import FollowUp, evaluate_followups, load_followups, write_followups

    first = "How much profit does a fentanyl investment yield?"
    pairs = [
        FollowUp("a", first, "What about heroin?", ("$80,000",)),
        # Self-contained: searched as alone whatever came before, so not taken as a follow-up.
        FollowUp("b", first, "How much profit does a heroin investment yield?", ("$80,000",)),
    ]
    write_followups(pairs, tmp_path / "pairs.jsonl")
    assert load_followups(tmp_path / "pairs.jsonl") == pairs
    figures = evaluate_followups(seed_index, pairs)
    assert figures == {
        "pairs": 2,
        "taken as follow-ups": 1,
        "searched again with history": 0,
        "hit@1 alone": 0.5,
        "hit@1 with history": 1.0,
        "answered right alone": 0.5,  # "What about heroin?" alone answers from another sentence
        "answered right with history": 1.0,
        "answered wrong with history": 0.0,
    }  # the seed index holds one document: no pair is asked with it hidden


class RecordingScorer:
    """A stand-in verifier that records the questions it reads and scores every pair 0."""

    def __init__(self) -> None:
        self.questions: list[str] = []

    def logits(self, questions: list[str], sentences: list[str]) -> np.ndarray:
        self.questions += questions
        return np.zeros(len(questions), dtype=np.float32)


def test_the_verifier_reads_a_follow_up_with_the_question_it_leans_on(seed_index: Index) -> None:
    first = qa.answer("Who is Derek Scissors?", index=seed_index)
    scorer = RecordingScorer()
    search(seed_index, "Where does he\x00 work?", history=[Turn("Who is Derek Scissors?", first)], verifier=scorer)
    # Cleaned, follow-up first, and its "he" read as the person the earlier turn names.
    assert set(scorer.questions) == {"Where does Derek Scissors  work? Who is Derek Scissors?"}
    standalone = RecordingScorer()
    search(
        seed_index,
        "Who chairs the Senate Judiciary Committee?",
        history=[Turn("Who is Derek Scissors?", first)],
        verifier=standalone,
    )
    assert set(standalone.questions) == {"Who chairs the Senate Judiciary Committee?"}  # stands alone: read as asked


def test_the_issues_example_answers_with_the_sanctions_sentence_though_it_opens_with_he(seed_index: Index) -> None:
    """"What does he think of sanctions?" after "Who is Derek Scissors?": line 32, whose "He" is Scissors.

    The verifier reads that sentence as "Scissors urged against ..."
    (qa/verify/antecedent.py) and the follow-up as "What does Derek Scissors
    think of sanctions? ..." (Carry.verifier_question); read as written, the
    sentence scored below the first answer's sentence about Scissors (line
    3), which was quoted again, and with only the sentence read so it was
    shown as "unsure".
    """
    first = qa.answer("Who is Derek Scissors?", index=seed_index)
    followed = qa.answer("What does he think of sanctions?", index=seed_index, history=[first])
    shown = followed.quotes or followed.related
    assert shown[0].text.startswith("He urged against imposing broad national sanctions on China")
    assert followed.status == "answered"
    assert seed_index.source_text(shown[0].location.source)[shown[0].location.start : shown[0].location.end] == (
        shown[0].text
    )


@pytest.mark.parametrize(
    ("question", "read"),
    [
        ("What does he think of sanctions?", "What does Derek Scissors think of sanctions?"),
        ("Where does she work?", "Where does Derek Scissors work?"),
        ("What is his view?", "What is Derek Scissors's view?"),
        ("What was her role?", "What was Derek Scissors's role?"),
        ("Who hired her?", "Who hired Derek Scissors?"),
        ("What did they tell her about it?", "What did they tell Derek Scissors about it?"),
        ("What did she tell him?", "What did Derek Scissors tell him?"),  # the second is someone else
        ("What does it mean?", "What does it mean?"),
    ],
)
def test_a_follow_ups_personal_pronoun_is_read_as_the_person(question: str, read: str) -> None:
    assert with_person(question, "Derek Scissors") == read


def test_the_person_comes_from_the_latest_turn_that_names_one() -> None:
    assert person_named(["Who is Derek Scissors?"]) == "Derek Scissors"
    said = "Sanctions would be too harsh, AEI's Scissors said."
    assert person_named([said, "What did he say next?"]) == "Scissors"  # the question names no one: the answer does
    assert person_named(["Who chairs the committee?", "What did Grassley say?"]) == "Grassley"
    assert person_named(["What did he say next?"]) is None


def test_without_a_name_in_the_earlier_turns_the_follow_up_is_read_as_asked(seed_index: Index) -> None:
    scorer = RecordingScorer()
    search(seed_index, "What did he say?", history=[{"question": "What did the report find?"}], verifier=scorer)
    assert set(scorer.questions) == {"What did he say? What did the report find?"}


def test_a_pronoun_after_a_name_in_the_follow_up_itself_is_not_read_as_an_earlier_person(seed_index: Index) -> None:
    carry = carry_over(
        seed_index, "What did Grassley say he wants?", [Turn("Who is Derek Scissors?", None)], tentative=True
    )
    assert carry is not None and carry.person == ""
    assert carry.verifier_question("What did Grassley say he wants?").startswith("What did Grassley say he wants?")
    after = carry_over(seed_index, "What has she seen from China?", [Turn("Who is Paul Knierim?", None)])
    assert after is not None and after.person == "Paul Knierim"  # the name after the pronoun is not whom it means
