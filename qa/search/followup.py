"""Follow-up questions: when a question leans on earlier turns, and what those turns lend its search.

Nothing is generated. An earlier turn only shapes how a follow-up is
searched: its words join the BM25 query at a lower weight, the question's
vector moves toward the sentence its answer quoted (or, with no answer, the
earlier question is embedded in front), the paragraph that quote came from
joins the candidates, and the sentences already quoted weigh a little less.
The answer is still a sentence quoted from the sources.

A question that stands on its own is searched exactly as it would be alone:
the carry-over applies only when the question holds a reference to something
outside itself (a pronoun, "that report", "the agency", "what about ...")
with nothing it could refer to before it in the question itself.

A pronoun after words it could refer to ("Which NFL team won it?") is
ambiguous: such a question is searched alone first (qa.search.ranking.search).
When that finds no confident answer, it is searched again with the
carry-over, and the more confident of the two is kept. When it answers from
another document than the one the previous answer quoted ("What is the
Latin name for it?" after a turn about the Black Death, answered from a page
on oaks), it is searched again too, and the carried search is kept only if
it answers from the conversation's document. A question answered confidently
on its own from the document the conversation is in, or after an unanswered
turn, is therefore still answered as alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qa.errors import BadHistoryError
from qa.reader.index import Index
from qa.records import Answer, Citation, Quote, Turn
from qa.storage.lexical import STOPWORDS, tokenize
from qa.storage.vectors import vector_key
from qa.verify.antecedent import person_named

# Pronouns that point outside the question. "there" and "then" are left out:
# "Is there ...?" and "What then?" rarely name an earlier subject.
PRONOUNS = frozenset(
    [
        "he",
        "him",
        "his",
        "himself",
        "she",
        "her",
        "hers",
        "herself",
        "they",
        "them",
        "their",
        "theirs",
        "themselves",
        "it",
        "its",
        "itself",
    ]
)
# A question's "he" or "she" points inside it only when it names someone
# ("What did Grassley say he wants?"); "it" and "they" often point at a
# thing named earlier in the question itself, counted by ANTECEDENT_WORDS.
PERSONAL_PRONOUNS = frozenset(["he", "him", "his", "himself", "she", "her", "hers", "herself"])
# Demonstratives are also conjunctions ("Who warned that lone dealers ..."),
# so they count only as a pronoun before any content word ("Who would that
# help?"), at the end ("What did he call that?") or before a generic noun.
DEMONSTRATIVES = frozenset(["this", "that", "these", "those"])
# "the agency", "the senator": a definite description that names no one, the
# way people refer back to whoever the previous answer was about.
GENERIC_NOUNS = frozenset(
    [
        "agency",
        "organization",
        "organisation",
        "group",
        "institute",
        "office",
        "department",
        "bureau",
        "committee",
        "caucus",
        "company",
        "country",
        "city",
        "state",
        "government",
        "man",
        "woman",
        "person",
        "people",
        "official",
        "senator",
        "witness",
        "scholar",
        "report",
        "hearing",
        "bill",
        "drug",
        "program",
        "team",
        "article",
        "topic",
        "subject",
    ]
)
# Openers that continue the previous question rather than ask a new one,
# matched as whole words ("How so?", never "How soon ...").
ELLIPSIS_OPENERS = re.compile(r"(?:and|what about|how about|what else|anything else|how so|tell me more)\b")
# Words after a reference that say in place what it is: "those from
# Jacksonville", "those who sold it", "the team that won", "the city of
# Paris". Not "in" or "with": "the city in 2010" and "that in dollars" still
# point back.
RESTRICTIVE = frozenset(["who", "whom", "whose", "which", "that", "from", "of"])
# "What is it called when ...", "What does it mean for a knot to be ...": an
# "it" that stands for the clause after it, not for anything said before
# ("What does it mean for China?" still points back). So is the "it" of "How
# long did it take ...", "How much does it cost ..." and, for a closed list
# of words that take such a clause, "it is difficult to ...", "Why was it
# decided that ..." ("What was it used to treat?" still points back).
_EXTRAPOSING = (
    "difficult|easy|hard|possible|impossible|necessary|important|likely|unlikely|true|"
    "said|declared|suggested|assumed|believed|thought|reported|known|estimated|expected|argued|claimed|decided|agreed"
)
_EXPLETIVE_IT = re.compile(
    r"\bit\s+(?:is\s+)?(?:called|mean|means|meant)\s+(?:when|if)\b|\bit\s+(?:mean|means|meant)\s+for\b.*\bto\b"
    r"|\bit\s+(?:take|takes|took|cost|costs)\b(?!\s+place\b)"
    rf"|\bit\s+(?:is|was|has\s+been|will\s+be)\s+(?:\w+ly\s+)?(?:{_EXTRAPOSING})\s+(?:to|that)\b"
    rf"|\b(?:is|was)\s+it\s+(?:\w+ly\s+)?(?:{_EXTRAPOSING})\s+(?:to|that)\b"
)
# "Who made their commercial debut ...?", "What gave its name to ...?": after
# a "who", "what" or "which" that is the subject, a possessive or personal
# pronoun may stand for it. It does not after an auxiliary, as the subject
# of an inverted question ("What did he say?", "What is its name?", "What
# has she seen?"), so "Which university has its origins ...?" still counts.
# "Who" is a person and "what" a thing: "What event took away his ability of
# speech?" still points back.
SUBJECT_BOUND = {
    "who": frozenset(["he", "she", "his", "her", "their"]),
    "what": frozenset(["its", "their"]),
    "which": frozenset(["its", "their"]),
}
# Auxiliaries: before a pronoun, the sign of an inverted question (qa.measure.followups reads them too).
AUXILIARIES = frozenset(
    [
        "do",
        "does",
        "did",
        "is",
        "was",
        "are",
        "were",
        "has",
        "have",
        "had",
        "will",
        "would",
        "can",
        "could",
        "should",
        "may",
        "might",
        "must",
    ]
)

# A reference with at least this many content words before it most likely
# points inside its own question ("What does mixing fentanyl into other
# street drugs do to them?"); fewer, and it points at an earlier turn
# ("What does he think of sanctions?"). 2 rather than 1: "Where does it
# say ..." has one content word before nothing.
ANTECEDENT_WORDS = 2

# Weight of the earlier questions' words against the follow-up's own (1.0)
# in BM25 and in IDF coverage: below 1 so that the follow-up's own words
# decide between sentences about the same subject. Names taken from the
# previous answer's quote were tried as well (at 0.25): they cost hit@1 on
# the seed set (0.750 with them, 0.792 without, both at carry 0.5) and gained
# nothing on SQuAD, so only the questions' words are carried; 0.75 gave
# 0.833 on the seed and 0.543 on SQuAD (0.5: 0.792 and 0.524). These three constants come from a small grid
# (carry 0.25-1.0, blend 0-0.5, penalty 0.1-0.3) on our own follow-up set
# (eval/followups_seed.jsonl) and the pairs derived from SQuAD's even
# articles, never on the shared seed dev sets (README, "Follow-up questions").
QUESTION_CARRY_WEIGHT = 0.75
# A follow-up asks for something the previous answer did not say, so the
# sentences it quoted lose this much fused score (fused scores of answers
# run about 0.4 to 0.8): one still wins when the follow-up's own words point
# at it clearly ("Which office does he work in?" after "Who is Paul Knierim?").
REPEAT_PENALTY = 0.1
# Weight of the previous answer's sentence vector added to the follow-up's
# own before renormalising: enough to pull "What does he think?" toward the
# person just quoted, not enough to outweigh what the follow-up asks.
DENSE_BLEND = 0.3
# How much of the earlier questions an answer's note shows (Carry.note).
NOTE_CHARS = 160
# How many earlier turns a chain of follow-ups may reach back through
# ("Who is X?" / "What does he think?" / "Why?").
MAX_TURNS_BACK = 3

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
# The personal pronouns read as the person the earlier turns name (Carry.verifier_question); not
# a reflexive, which means the question's own subject, nor the rare "hers".
_PERSONAL = re.compile(
    r"\b(" + "|".join(sorted(PERSONAL_PRONOUNS - {"himself", "herself", "hers"})) + r")\b", re.IGNORECASE
)
# After these "her" is whom something is done to ("told her about", "her?"), not whose.
_NOT_AFTER_POSSESSIVE = frozenset(["about", "to", "for", "in", "on", "at", "with", "as", "that", "and", "or", "if"])
# A name: a capitalised word not at the start of its sentence, or a run of
# them ("Drug Enforcement Administration").
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w.'’-]*(?:\s+[A-Z][\w.'’-]*)*")


# Earlier turns as the API takes them: Turn records, their JSON form, or the answers they got.
History = Sequence[Turn | Answer | Mapping[str, Any]]


@dataclass(frozen=True)
class Carry:
    """What earlier turns lend a follow-up's search.

    `prefix` is embedded in front of the follow-up when there is no previous
    answer to blend in; `weights` are carried BM25 tokens with their weights
    (the follow-up's own tokens weigh 1 and are not here); `focus_passages`
    are passage rows the previous answer quoted; `earlier` is the earlier
    questions the follow-up leans on, oldest first, joined.
    """

    prefix: str
    weights: dict[str, float]
    focus_passages: tuple[int, ...]
    vector: np.ndarray | None = None  # the previous answer's sentences, blended into the question's vector
    quoted_rows: tuple[int, ...] = ()  # sentence rows the previous answer quoted
    earlier: str = ""
    person: str = ""  # whom the follow-up's "he" or "she" most likely means, from the earlier turns

    def verifier_question(self, question: str) -> str:
        """What the answer verifier reads for the follow-up: the follow-up, then the questions it leans on.

        The follow-up comes first, so that the verifier's cut of an over-long
        question side (qa/verify/scorer.py) falls on the earlier questions.
        Its "he", "she", "him", "his" or "her" is read as the person the
        earlier turns name ("What does Derek Scissors think of sanctions?"),
        the way a candidate's opening "He" is (qa/verify/antecedent.py): the
        verifier matches names.
        """
        read = with_person(question, self.person) if self.person else question
        return f"{read} {self.earlier}".strip()

    def note(self) -> str:
        """The answer's note that the earlier turns shaped its search, so that a reader can tell and rephrase."""
        earlier = self.earlier if len(self.earlier) <= NOTE_CHARS else self.earlier[: NOTE_CHARS - 1].rstrip() + "…"
        return f"Read as a follow-up to “{earlier}”; ask it in full to search it on its own."


def parse_history(history: object) -> list[Turn]:
    """Earlier turns from Turn records, JSON-like dicts ({"question": ..., "answer": Answer dict or None}) or answers.

    An answer stands for the turn that asked its question and got it: an
    Answer, or its JSON form (Answer.to_dict(), what the MCP tool `answer`
    returns), so that a caller can pass back what it was given.

    Raises:
        BadHistoryError: history is not a list of turns; the message names the bad item.
    """
    if history is None:
        return []
    if isinstance(history, (str, bytes, Mapping)) or not isinstance(history, Sequence):
        raise BadHistoryError(
            'history must be a list of earlier turns, each {"question": text, "answer": an answer or null}'
        )
    return [_turn(item, number) for number, item in enumerate(history, start=1)]


def _turn(item: object, number: int) -> Turn:
    if isinstance(item, Turn):
        return item
    if isinstance(item, Answer):
        return Turn(item.question, item)
    if not isinstance(item, Mapping) or not isinstance(item.get("question"), str):
        raise BadHistoryError(
            f'history turn {number} must be {{"question": text, "answer": ...}} or an answer, not {item!r:.80}'
        )
    if "answer" not in item and ("quotes" in item or "answered" in item):  # an answer's own JSON form
        return Turn(item["question"], _answer_from_dict(item, item["question"], number))
    answer = item.get("answer")
    if answer is None or isinstance(answer, Answer):
        return Turn(item["question"], answer)
    if not isinstance(answer, Mapping):
        raise BadHistoryError(f"history turn {number}: the answer must be an answer object or null")
    return Turn(item["question"], _answer_from_dict(answer, item["question"], number))


def _answer_from_dict(data: Mapping[str, Any], question: str, number: int) -> Answer:
    """The parts of an Answer.to_dict() a follow-up uses: whether it answered and its quotes' text and place."""
    try:
        quotes = [
            Quote(
                text=str(quote["text"]),
                location=Citation(
                    str(quote["source"]),
                    int(quote["start"]),
                    int(quote["end"]),
                    quote.get("section"),
                    int(quote.get("paragraph", 0)),
                    int(quote.get("line", 0)),
                    quote.get("page"),
                ),
                score=float(quote.get("score", 0.0)),
                context="",
                context_start=int(quote["start"]),
                sentence_ids=tuple(str(key) for key in quote.get("sentence_ids", ())),
            )
            for quote in data.get("quotes") or []
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise BadHistoryError(
            f"history turn {number}: a quote needs text, source, start and end as Answer.to_dict() gives them ({error})"
        ) from None
    return Answer(question, bool(data.get("answered", bool(quotes))), float(data.get("confidence", 0.0)), quotes)


def words(text: str) -> list[str]:
    """The question's words, lower-cased, in order."""
    return [word.lower() for word in _WORD.findall(text)]


def refers_back(question: str) -> bool:
    """Whether the question leans on an earlier turn (a reference with no antecedent in the question)."""
    lowered = question.strip().lower()
    said = words(question)
    content = [word not in STOPWORDS and word not in PRONOUNS | DEMONSTRATIVES for word in said]
    if ELLIPSIS_OPENERS.match(lowered) or not any(content):
        return True
    expletive = bool(_EXPLETIVE_IT.search(lowered))
    written = _WORD.findall(question)
    bound = SUBJECT_BOUND.get(said[0], frozenset())
    for position, word in enumerate(said):
        before = sum(content[:position])
        following = said[position + 1] if position + 1 < len(said) else None
        if word == "it" and expletive:
            continue
        if word in bound and position > 0 and said[position - 1] not in AUXILIARIES:
            continue  # "Who made their debut?", "What company changed its name?"
        if word in PRONOUNS and _named_after_its_clause(question, position):
            continue  # "In his defense of Doctor Who, what did Philip Howard say?"
        if word in PERSONAL_PRONOUNS and not _names_someone(question):
            return True
        described = word == "the" and following in GENERIC_NOUNS and not _defined_in_place(written, position + 2)
        if word in PRONOUNS or described:
            if before < ANTECEDENT_WORDS:
                return True
        elif word == "those" and following in RESTRICTIVE:  # "those from Jacksonville", "those who ..."
            continue
        elif word in DEMONSTRATIVES and (before == 0 or following is None or following in GENERIC_NOUNS):
            return True
    return False


def _named_after_its_clause(question: str, position: int) -> bool:
    """Whether the pronoun at word `position` stands before the question's first comma, and a name follows it.

    "After its re-opening, which films did the Tower Theatre show?": the name
    it stands for comes after it. "Why do they like it, according to her?"
    names no one after the comma, so its pronouns still point back.
    """
    spans = [match.span() for match in _WORD.finditer(question)]
    comma = question.find(",", spans[position][1])
    if comma < 0 or "," in question[: spans[position][0]]:
        return False
    return bool(_NAME.search(question, comma + 1))


def _defined_in_place(written: list[str], position: int) -> bool:
    """Whether the words from `position` on say what the description before them is.

    "the team the Carolina Panthers played", "the city of Paris", "the agency
    that ...": a relative word or a name follows the noun.
    """
    after = [*written[position : position + 2], "", ""]
    return after[0].lower() in RESTRICTIVE or after[0][:1].isupper() or (after[0] == "the" and after[1][:1].isupper())


def might_refer_back(question: str) -> bool:
    """Whether the question holds a pronoun refers_back() took to point inside it, which may point at an earlier turn.

    "Which NFL team won it?" names a team before "it", yet "it" is what an
    earlier turn was about; "What does mixing fentanyl into street drugs do to
    them?" holds its own antecedent. Only search can tell them apart
    (qa.search.ranking.search tries such a question alone first).
    """
    return not refers_back(question) and any(word in PRONOUNS for word in words(question))


def _names_someone(question: str) -> bool:
    """Whether the question holds a capitalised word after its first (a name it could refer to)."""
    return bool(_NAME.search(question.strip()))


def carry_over(index: Index, question: str, turns: list[Turn], tentative: bool = False) -> Carry | None:
    """What the earlier turns lend the question's search, or None when it stands on its own.

    `tentative` also carries over for a question that only might refer back
    (might_refer_back), for the second search of such a question.
    """
    if not turns or not (refers_back(question) or (tentative and might_refer_back(question))):
        return None
    chain = _antecedent_chain(turns)
    own = set(tokenize([question])[0])
    weights: dict[str, float] = {}
    for turn in chain:
        for token in tokenize([turn.question])[0]:
            weights[token] = max(weights.get(token, 0.0), QUESTION_CARRY_WEIGHT)
    last = chain[-1].answer if chain else None
    quote = last.quotes[0] if last and last.answered and last.quotes else None
    weights = {token: weight for token, weight in weights.items() if token not in own}
    rows = _sentence_rows(index, quote) if quote is not None else []
    focus = tuple(sorted({int(index.sentence_passage_rows[row]) for row in rows}))
    earlier = " ".join(turn.question.strip() for turn in chain)
    person = ""
    pronoun = _PERSONAL.search(question)
    # Not when a name comes before it: in "What did Grassley say he wants?" he is Grassley
    # ("What has she seen from China?": China comes after).
    if pronoun and not _names_someone(question[: pronoun.start()]):
        said = [quote.text] if quote is not None else []
        person = person_named([*said, *(turn.question for turn in chain)]) or ""
    if not rows:  # nothing quoted to blend in: embed the earlier questions in front instead
        return Carry(earlier, weights, focus, earlier=earlier, person=person)
    vectors = index.sentence_store.vectors(index.sentence_keys[np.asarray(rows, dtype=np.int64)])
    return Carry("", weights, focus, vectors.mean(axis=0), tuple(rows), earlier, person)


def with_person(question: str, person: str) -> str:
    """The question with its first personal pronoun replaced by `person` ("his" and a possessive "her" by "person's").

    Only the first: in "What did she tell him?" the second is someone else.
    """

    def replace(match: re.Match[str]) -> str:
        word = match.group(1).lower()
        following = question[match.end() :].lstrip()
        possessive = word == "his" or (
            word == "her"
            and bool(following)
            and following[0].isalnum()
            and following.split()[0].lower() not in _NOT_AFTER_POSSESSIVE
        )
        return f"{person}'s" if possessive else person

    return _PERSONAL.sub(replace, question, count=1)


def conversation_sources(turns: list[Turn]) -> frozenset[str]:
    """The sources the last turn's answer quoted: the document the conversation is in (none when unanswered)."""
    last = turns[-1].answer if turns else None
    if last is None or not last.answered:
        return frozenset()
    return frozenset(quote.source for quote in last.quotes)


def repeat_penalty(rows: np.ndarray, carry: Carry | None) -> np.ndarray | None:
    """REPEAT_PENALTY for each candidate row the previous answer quoted, 0 for the others; None without carry."""
    if carry is None or not carry.quoted_rows:
        return None
    return REPEAT_PENALTY * np.isin(rows, np.asarray(carry.quoted_rows, dtype=np.int64))


def blend(query: np.ndarray, carry: Carry | None) -> np.ndarray:
    """The question's vector moved toward the previous answer's (unit length again), or as it was."""
    if carry is None or carry.vector is None:
        return query
    mixed = query + DENSE_BLEND * carry.vector
    norm = float(np.linalg.norm(mixed))
    return (mixed / norm).astype(query.dtype) if norm > 0 else query


def _antecedent_chain(turns: list[Turn]) -> list[Turn]:
    """The last turn, and the turns before it back to the first that stood on its own, oldest first."""
    chain: list[Turn] = []
    for turn in reversed(turns[-MAX_TURNS_BACK:]):
        chain.insert(0, turn)
        if not refers_back(turn.question):
            break
    return chain


def _sentence_rows(index: Index, quote: Quote) -> list[int]:
    """Sentence rows of the quote in this index (none when the quote came from another build)."""
    if quote.sentence_ids:
        rows = index.sentence_rows(np.asarray([vector_key(sentence_id) for sentence_id in quote.sentence_ids]))
    else:
        sentences = index.tables.sentences
        overlapping = (sentences["start"] < quote.end) & (quote.start < sentences["end"])
        rows = np.flatnonzero(overlapping & index.source_mask(only=frozenset([quote.source])))
    return [int(row) for row in rows if row >= 0]
