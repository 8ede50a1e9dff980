"""The question as search sees it: cleaned, checked, embedded and tokenised."""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from qa.errors import BadQuestionError
from qa.reader.index import Index
from qa.storage.lexical import tokenize

MAX_QUESTION_CHARS = 1000


def prepare_question(question: object) -> tuple[str, list[str]]:
    """The question cleaned for search, with notes about anything changed.

    Raises:
        BadQuestionError: not a string, empty, or without a word to search for.
    """
    if not isinstance(question, str):
        raise BadQuestionError("the question must be text")
    # A lone surrogate (a str can hold one, e.g. from bytes that were not UTF-8)
    # cannot be encoded, so the tokenizers and any output would fail on it.
    try:
        question.encode("utf-8")
    except UnicodeEncodeError as error:
        raise BadQuestionError(
            f"the question is not valid text (it holds a lone surrogate, U+{ord(question[error.start]):04X}); "
            "check the encoding it was typed or sent in"
        ) from None
    notes = []
    # Control characters (NUL included) carry no meaning for search.
    cleaned = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in question).strip()
    length = len(question)
    if not cleaned:
        raise BadQuestionError("the question is empty; type a question about the sources")
    if not re.search(r"\w", cleaned):
        raise BadQuestionError("the question has no words to search for")
    if len(cleaned) > MAX_QUESTION_CHARS:
        notes.append(
            f"The question was {length:,} characters long; only the first {MAX_QUESTION_CHARS:,} were searched."
        )
        cleaned = cleaned[:MAX_QUESTION_CHARS]
    return cleaned, notes


def encode_question(index: Index, question: object, prefix: str = "") -> tuple[np.ndarray, list[str], list[str]]:
    """The question's vector, BM25 tokens and notes about how it was shortened.

    `prefix` (earlier questions of a conversation, for a follow-up) is embedded
    in front of the question; the BM25 tokens are the question's own.
    """
    text, notes = prepare_question(question)
    query, shortened = index.encoder.encode_query(f"{prefix} {text}" if prefix else text)
    if shortened:
        notes.append(
            f"The question is longer than the model reads; it was embedded from its first "
            f"{index.encoder.max_tokens} tokens."
        )
    return query, tokenize([text])[0], notes
