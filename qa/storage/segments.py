"""Segments: the parts of a build that a later build keeps as they are.

BM25 (for sentences and for paragraphs), the word windows' vectors and the
source texts are written in segments, as Lucene and tantivy write theirs. A
segment is written once and never changed. A build that adds a document to a
large index writes one segment for what is new and links the other segments'
files into its own folder, so adding a document to a million sentences costs
about what that document costs, not a rewrite of gigabytes.

Each record names its segment and its row there (qa/storage/tables.py). A
removed or changed source leaves its rows in their segment, unreferenced and
never scored, until that segment is merged: its live rows are written again
into the new segment. A build merges

- every segment while the kept records number fewer than SEGMENT_FLOOR
  sentences, so a small index is always one segment and its BM25 is exactly
  that of the whole corpus (rebuilding it takes well under a second);
- a segment that has lost half its rows or more;
- all but the largest segment when there would be more than MAX_SEGMENTS.

In a build folder, segment NAME's files are under `segments/NAME/`:
SEGMENT_FILES, listed with their checksums in the manifest like every file.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np

from qa.storage.manifest import SegmentEntry
from qa.storage.tables import Tables

SEGMENTS = "segments"
STORES = ("sentences", "passages")
TEXTS = "texts.jsonl"
WINDOWS = "windows.npy"
# What bm25s.BM25.save writes for the BM25 method qa uses.
BM25_FILES = (
    "data.csc.index.npy",
    "indices.csc.index.npy",
    "indptr.csc.index.npy",
    "vocab.index.json",
    "params.index.json",
)
SEGMENT_FILES = (*(f"{name}.bm25/{file}" for name in STORES for file in BM25_FILES), WINDOWS, TEXTS)
# Below this many kept sentences a build writes everything as one new segment.
SEGMENT_FLOOR = 100_000
MAX_SEGMENTS = 8


def segment_files(name: str) -> list[str]:
    """The files of segment `name`, as paths inside a build folder."""
    return [f"{SEGMENTS}/{name}/{file}" for file in SEGMENT_FILES]


def carried(segments: list[SegmentEntry], kept: Tables) -> list[int]:
    """The numbers of the previous build's segments that a build keeps as they are (see the module doc).

    `kept` are the previous build's records that stay, with their segment columns.
    """
    live = np.bincount(kept.sentences["segment"], minlength=len(segments))
    if int(live.sum()) < SEGMENT_FLOOR:
        return []
    keep = [number for number, entry in enumerate(segments) if live[number] and 2 * live[number] > entry.sentences]
    if len(keep) + 1 > MAX_SEGMENTS:
        keep = [max(keep, key=lambda number: int(live[number]))]
    return keep


def assign(
    tables: Tables, carried: list[int], kept_sentences: int, kept_passages: int
) -> tuple[Tables, np.ndarray, np.ndarray]:
    """The records with their segment columns as the new build has them.

    The first `kept_sentences` and `kept_passages` rows are the previous
    build's, numbered by its segments; the rest are new. A carried segment
    takes its place in `carried` as its number and keeps its rows; every
    other record joins the new segment (numbered last), in row order.

    Returns:
        The tables, and the sentence rows and passage rows of the new segment.
    """
    sentences, passages = tables.sentences.copy(), tables.passages.copy()
    members = []
    for table, kept in ((sentences, kept_sentences), (passages, kept_passages)):
        renumber = np.full(max([*carried, -1]) + 1, len(carried), dtype=np.int16)
        renumber[carried] = np.arange(len(carried), dtype=np.int16)
        old = table["segment"][:kept].astype(np.int64)
        in_carried = np.isin(old, carried)
        member = np.ones(len(table), dtype=bool)
        member[:kept] = ~in_carried
        table["segment"][:kept][in_carried] = renumber[old[in_carried]]
        table["segment"][member] = len(carried)
        table["segment_row"][member] = np.arange(int(member.sum()))
        members.append(np.flatnonzero(member))
    counts = sentences["windows"][members[0]].astype(np.int64)
    sentences["first_window"][members[0]] = np.cumsum(counts) - counts
    return Tables(passages, sentences, tables.sources, tables.sections, tables.texts), members[0], members[1]


def touched_since(build: Path, names: list[str], written: Path) -> list[str]:
    """Those of a build's files that are missing or were modified after `written` (its manifest) was.

    A segment file is never written again once its build is done, so one
    modified since was damaged in place: a build checks its checksum before
    linking it into a new build. Damage that leaves the modification time
    alone is found when the build is loaded, as every file's checksum is then.
    """
    since = written.stat().st_mtime_ns
    touched = []
    for name in names:
        try:
            if (build / name).stat().st_mtime_ns > since:
                touched.append(name)
        except FileNotFoundError:
            touched.append(name)
    return touched


def link_files(source: Path, target: Path, files: list[str]) -> None:
    """Give `target` (a build folder) these files of `source` (another), as hard links where the file system allows.

    Segment files are never changed once written, so two builds can share them.
    """
    for name in files:
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source / name, destination)
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            shutil.copyfile(source / name, destination)
