"""Embed a build's new records: sentences with their word windows, and paragraphs, a chunk at a time.

A million sentences' vectors are made in chunks of EMBED_CHUNK texts, and
each chunk's word-window vectors are written to the new segment's file
(qa/storage/windows.py) as soon as they are made, so a build never holds
them all. Only the sentence and paragraph vectors are returned, for the
vector stores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from qa.embed.encoder import Encoder
from qa.split import word_windows
from qa.storage.tables import Tables

Progress = Callable[[int, int], None]
# Sentences of more words than this get their word windows embedded as texts
# of their own; shorter ones pool them from their own token vectors. The
# longest 10% of SQuAD's sentences, whose windows cost a build about 15%
# more time: `python -m qa.measure.ablate_build` measures the choice.
LONG_SENTENCE_WORDS = 40
# Texts embedded per call.
EMBED_CHUNK = 32_768


class WindowSink(Protocol):
    """Where word-window vectors go as they are made: a segment's file (qa/storage/windows.py WindowWriter) or a list."""

    def write(self, vectors: np.ndarray) -> None: ...


class NewVectors(Protocol):
    """The vectors of a build's new records, in their row order: embedded here, or made elsewhere and handed over."""

    def sentences(self, new: Tables, encoder: Encoder, progress: Progress | None, windows: WindowSink) -> np.ndarray:
        """The new sentences' vectors; their word windows' vectors are written to `windows`, in sentence order."""
        ...

    def passages(self, new: Tables, encoder: Encoder, progress: Progress | None) -> np.ndarray:
        """The new paragraphs' vectors."""
        ...


class EmbedHere:
    """NewVectors made by this process's encoder: what a local build does."""

    def sentences(self, new: Tables, encoder: Encoder, progress: Progress | None, windows: WindowSink) -> np.ndarray:
        return embed_sentences(new, encoder, progress, windows)

    def passages(self, new: Tables, encoder: Encoder, progress: Progress | None) -> np.ndarray:
        return embed_passages(new, encoder, progress)


def progress_of(progress: Progress | None, done: int, size: int, total: int) -> Progress | None:
    """Progress of one encode call of `size` texts, as part of a build's `total` after `done`."""
    if progress is None:
        return None

    def report(count: int, pieces: int) -> None:
        progress(done + round(count * size / max(pieces, 1)), total)

    return report


def embed_sentences(new: Tables, encoder: Encoder, progress: Progress | None, windows: WindowSink) -> np.ndarray:
    """The new sentences' vectors, in chunks; their word windows' vectors are written as each chunk is done.

    Windows are pooled from the sentence's own token vectors, except in a long
    sentence: its token vectors carry so much of the rest of it that a clause
    pooled from them no longer stands out, so its windows are embedded as
    texts of their own.
    """
    count = len(new.sentences)
    total = count + len(new.passages)
    vectors = np.empty((count, encoder.fingerprint.dimension), dtype=np.float32)
    for first in range(0, count, EMBED_CHUNK):
        texts = list(new.sentence_texts(np.arange(first, min(first + EMBED_CHUNK, count))))
        spans = [word_windows(text, 0, len(text)) for text in texts]
        vectors[first : first + len(texts)], pooled = encoder.encode_with_spans(
            texts, spans, progress_of(progress, first, len(texts), total)
        )
        first_window = np.cumsum([0, *(len(row) for row in spans)])
        long_rows = [row for row, text in enumerate(texts) if len(text.split()) > LONG_SENTENCE_WORDS]
        window_texts = [texts[row][a:b] for row in long_rows for a, b in spans[row]]
        if window_texts:
            rows = [first_window[row] + number for row in long_rows for number in range(len(spans[row]))]
            pooled[np.asarray(rows, dtype=np.int64)] = encoder.encode(window_texts)
        windows.write(pooled)
    return vectors


def embed_passages(new: Tables, encoder: Encoder, progress: Progress | None) -> np.ndarray:
    """The new paragraphs' vectors, in chunks, so that progress moves and no chunk's working memory grows with the corpus.

    Progress counts on from the sentences, which a build embeds first.
    """
    passage_texts = list(new.passage_texts())
    done = len(new.sentences)
    total = done + len(passage_texts)
    vectors = np.empty((len(passage_texts), encoder.fingerprint.dimension), dtype=np.float32)
    for first in range(0, len(passage_texts), EMBED_CHUNK):
        part = passage_texts[first : first + EMBED_CHUNK]
        vectors[first : first + len(part)] = encoder.encode(part, progress_of(progress, done + first, len(part), total))
    return vectors
