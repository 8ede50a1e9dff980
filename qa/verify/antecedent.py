"""Whom a sentence's opening "He" or "She" names, so that the verifier can read the sentence with the name.

The verifier reads one sentence at a time (qa/verify/rerank.py). "He urged
against imposing broad national sanctions on China ..." then answers no
question about Derek Scissors: the name is in the sentence before ("...,
AEI's Scissors said."). The verifier was trained on sentences as they stand,
and it matches names: asked "What does Derek Scissors think of sanctions?",
it gives that sentence a logit of −5.4 as written and +0.4 as "Scissors
urged against imposing ...".

So a candidate that opens with a personal pronoun is read with the pronoun
replaced by the name it most likely stands for. The quote shown is still the
sentence as written; only what the verifier reads changes. The name is found
without a model, by two rules that cover the two kinds of prose indexed most:

- in reporting, the speaker of the sentence before ("..., Scissors said.",
  "said Sen. Chuck Grassley, R-Iowa, ..."): a name next to a verb of saying;
- otherwise, the first name in the sentence before, not after a preposition
  or "the" ("Tesla was born ...", "In 1882, Tesla moved ..."; not "in
  Paris", "the Senate").

A sentence before that opens with a pronoun too is about the same person, so
the search goes on back, up to `MAX_BACK` sentences, within one document. A
name is a run of up to `MAX_NAME_WORDS` capitalised words, less any leading
ones the nearby text also writes in lower case ("The", "In"), that holds a
word written capitalised inside a sentence nearby and never in lower case
there, and not a month or a day: "Martin Luther" is a name, "Students" or
"Trade" opening a sentence is not. When no name is found, the sentence is
read as it stands.

The same rules tell whom a follow-up question's "he" means, from the earlier
turns (`person_named`, used by qa/search/followup.py), and read the
verifier's training sentences (`named`, used by qa/measure/verifier_data.py).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from qa.records import Sentence

# How far back the name may be: a chain of "He ..." sentences rarely runs longer.
MAX_BACK = 3
# How many sentences before the candidate tell which capitalised words are names.
NAME_WINDOW = 20

# Not a contraction ("He's", "She'd"): its name would read "Scissors's".
_OPENING = re.compile(r"(He|She|His|Her)\b(?!['’])")
_PART = r"[A-Z][\w.'’-]*"
# A name is at most this many words ("Sen. Chuck Grassley", "Drug Enforcement Administration"); the bound
# also keeps the searches below linear in a sentence's length, however many capitalised words it holds.
MAX_NAME_WORDS = 6
_RUN = re.compile(rf"{_PART}(?:\s+{_PART}){{0,{MAX_NAME_WORDS - 1}}}")
_SAYING = r"(?:said|says|told|added|noted|testified|argued|urged|warned|explained|wrote)"
_SAID_THEN_NAME = re.compile(rf"\b{_SAYING}\s+({_RUN.pattern})")
_NAME_THEN_SAID = re.compile(rf"({_RUN.pattern})\s+{_SAYING}\b")
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_POSSESSIVE = re.compile(r"(?:'s|’s)$")
_TOKEN = re.compile(r"\S+")
_CALENDAR = frozenset(
    [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ]
)
_PRONOUNS = frozenset(["He", "She", "His", "Her", "Him", "They", "Their", "Them", "It", "Its", "We", "I", "You"])
# A name right after one of these is a place or an object, not whom "He" is.
_PREPOSITIONS = frozenset(
    [
        "in",
        "at",
        "to",
        "from",
        "of",
        "on",
        "into",
        "for",
        "by",
        "with",
        "near",
        "across",
        "through",
        "toward",
        "towards",
        "against",
        "the",
    ]
)


def verifier_text(sentences: Sequence[Sentence], row: int) -> str:
    """Sentence `row` as the verifier reads it: an opening He/She/His/Her replaced by its name, if one is found."""
    text = sentences[row].text
    if _OPENING.match(text) is None:
        return text  # the common case, without gathering the sentences before
    return named(text, preceding(sentences, row, NAME_WINDOW))


def antecedent(sentences: Sequence[Sentence], row: int) -> str | None:
    """The name sentence `row`'s opening pronoun most likely stands for, from the sentences before it."""
    return name_for(preceding(sentences, row, NAME_WINDOW))


def named(text: str, before: Sequence[str]) -> str:
    """`text` with an opening He/She/His/Her replaced by the name it stands for, or as it stands.

    `before` holds the texts of the sentences before it in its document, oldest
    first, as `preceding` gives them; only the last `NAME_WINDOW` are read. The
    training data (qa/measure/verifier_data.py) is read through this too, so
    that the verifier trains on sentences as question time gives them.
    """
    opening = _OPENING.match(text)
    if opening is None:
        return text
    name = name_for(before)
    if name is None:
        return text
    replacement = name if opening.group(1) in ("He", "She") else f"{name}'s"
    return replacement + text[opening.end() :]


def name_for(before: Sequence[str]) -> str | None:
    """The name a pronoun opening the sentence after `before` most likely stands for (oldest text first)."""
    texts = list(before[-NAME_WINDOW:])
    words = Vocabulary.of(texts)
    for text in reversed(texts[-MAX_BACK:]):
        if _OPENING.match(text) is None:
            return speaker(text, words) or first_name(text, words)
    return None


def person_named(texts: Sequence[str]) -> str | None:
    """The name the latest of `texts` that holds one gives: its speaker, else its first name (oldest text first).

    For a follow-up's "he" (qa/search/followup.py): the texts are the
    earlier questions and the answer they got, and a question that names no
    one ("What did he say next?") passes the search on to the text before.
    """
    words = Vocabulary.of(list(texts))
    for text in reversed(texts):
        name = speaker(text, words) or first_name(text, words)
        if name:
            return name
    return None


@dataclass(frozen=True)
class Vocabulary:
    """How the sentences near a candidate write their words: which are names, which are ever lower case."""

    names: frozenset[str]
    lower: frozenset[str]

    @classmethod
    def of(cls, texts: list[str]) -> Vocabulary:
        """Names are written capitalised inside a sentence and never in lower case, nor are they dates or pronouns."""
        capitalised: set[str] = set()
        lower: set[str] = set()
        for text in texts:
            for position, word in enumerate(_POSSESSIVE.sub("", word) for word in _WORD.findall(text)):
                if not word[:1].isupper():
                    lower.add(word)
                elif position > 0:
                    capitalised.add(word)
        names = frozenset(word for word in capitalised if word.lower() not in lower) - _CALENDAR - _PRONOUNS
        return cls(names, frozenset(lower))

    def name_in(self, run: str) -> str | None:
        """The name a run of capitalised words holds, or None.

        After any possessor ("AEI's Scissors" gives "Scissors"), and without
        leading words the text also writes in lower case ("The", "In"); what
        is left must hold a name word ("Martin Luther": "Martin" may only
        ever open sentences, but "Luther" is a name).
        """
        words = re.split(r"\S+(?:'s|’s)\s+", run.strip())[-1].split()
        while words and (words[0].lower() in self.lower or words[0] in _PRONOUNS):
            words = words[1:]
        if words:
            words[-1] = _POSSESSIVE.sub("", words[-1])
            if words[-1].endswith(".") and words[-1].count(".") == 1 and len(words[-1]) > 4:
                words[-1] = words[-1][:-1]  # the sentence's full stop, not an abbreviation's ("Sen.")
        if not any(word.rstrip(".") in self.names for word in words):
            return None
        return " ".join(words)


def speaker(text: str, words: Vocabulary) -> str | None:
    """The name next to a verb of saying nearest the end of `text` ("..., Scissors said.")."""
    found = [(match.start(1), match.group(1)) for match in _SAID_THEN_NAME.finditer(text)]
    found += [(match.start(1), match.group(1)) for match in _NAME_THEN_SAID.finditer(text)]
    for _, run in sorted(found, reverse=True):
        name = words.name_in(run)
        if name:
            return name
    return None


def first_name(text: str, words: Vocabulary) -> str | None:
    """The first name in `text` not after a preposition or "the" ("In 1882, Tesla moved to Paris" gives "Tesla")."""
    tokens = list(_TOKEN.finditer(text))
    starts = [token.start() for token in tokens]
    for match in _RUN.finditer(text):
        if _word_before(text, tokens, starts, match.start()).lower() in _PREPOSITIONS:
            continue
        name = words.name_in(match.group(0))
        if name:
            return name
    return None


def _word_before(text: str, tokens: list[re.Match[str]], starts: list[int], position: int) -> str:
    """The last whitespace-separated word of text[:position] (part of a word when `position` is inside one).

    Found by bisection over the tokens, so that looking before every run of
    capitals stays linear in the sentence's length.
    """
    at = bisect_right(starts, position) - 1
    if at >= 0 and starts[at] < position:
        return text[starts[at] : min(position, tokens[at].end())]
    return tokens[at - 1].group(0) if at >= 1 else ""


def preceding(sentences: Sequence[Sentence], row: int, count: int) -> list[str]:
    """The texts of up to `count` sentences just before `row` in its document, oldest first.

    A sentence is before `row` in its document when the index holds it in
    the row before, from the same source and ending where `row` begins or
    earlier (qa.verify.rerank.previous_sentence is this with `count` 1).
    """
    texts: list[str] = []
    current = sentences[row]
    while row > 0 and len(texts) < count:
        before = sentences[row - 1]
        if before.source != current.source or before.end > current.start:
            break
        texts.insert(0, before.text)
        row, current = row - 1, before
    return texts
