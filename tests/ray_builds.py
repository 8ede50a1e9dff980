"""Helpers of the Ray build tests (tests/cluster/, tests/system/test_ray.py): an in-process cluster, a corpus, a comparison."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from qa.cluster.ray_build import RayBuild
from qa.cluster.work import EmbedDocuments, split_file
from qa.ingest.seeds import SourceFile
from qa.reader.index import Index

# Vectors made in other batches differ in their last digits only: the
# tolerances tests/test_indexing.py compares stored vectors with.
VECTOR_TOLERANCE = 1e-5
WINDOW_TOLERANCE = 2e-3


class InProcessBuild(RayBuild):
    """A RayBuild whose pipeline runs here: each file through split_file and EmbedDocuments, kept as a shard.

    `fail_after` documents, it raises as a lost cluster would.
    """

    def __init__(self, *args: Any, fail_after: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fail_after = fail_after
        self.embedded: list[str] = []
        self.embedder: EmbedDocuments | None = None

    def _run(self, files: list[SourceFile]) -> None:
        if self.embedder is None:
            self.embedder = EmbedDocuments(self.model, self.encoder.batch_size, self.encoder.fingerprint.weights_sha256)
        for source_file in files:
            if self.fail_after is not None and len(self.embedded) >= self.fail_after:
                raise RuntimeError("the cluster went away")
            row = split_file(
                {
                    "source": source_file.source,
                    "suffix": f".{source_file.format}",
                    "sha256": source_file.sha256,
                    "data": source_file.data,
                }
            )
            batch = self.embedder({key: [value] for key, value in row.items()})
            self.shards.write(source_file, {key: values[0] for key, values in batch.items()})
            self.embedded.append(source_file.source)


def assert_same_index(ours: Index, local: Index) -> None:
    """The same records (ids, offsets, texts, citations), manifest sources and skips; vectors within tolerance."""
    assert list(ours.sentences) == list(local.sentences)
    assert list(ours.passages) == list(local.passages)
    assert [s.citation for s in ours.sentences] == [s.citation for s in local.sentences]
    assert ours.manifest.sources == local.manifest.sources
    assert ours.manifest.skipped == local.manifest.skipped
    assert ours.manifest.counts == local.manifest.counts
    for store, keys in (("sentence", "sentence_keys"), ("passage", "passage_keys")):
        mine = getattr(ours, f"{store}_store").vectors(getattr(ours, keys))
        theirs = getattr(local, f"{store}_store").vectors(getattr(local, keys))
        np.testing.assert_allclose(mine, theirs, atol=VECTOR_TOLERANCE)
    mine_windows, mine_bounds = ours.windows.in_row_order()
    local_windows, local_bounds = local.windows.in_row_order()
    assert np.array_equal(mine_bounds, local_bounds)
    np.testing.assert_allclose(mine_windows.astype(np.float32), local_windows.astype(np.float32), atol=WINDOW_TOLERANCE)


WORDS = [
    "river",
    "harbour",
    "mountain",
    "city",
    "bridge",
    "farmer",
    "engine",
    "market",
    "winter",
    "summer",
    "school",
    "castle",
    "forest",
    "island",
    "valley",
    "tower",
    "garden",
    "library",
    "station",
    "factory",
    "orchard",
    "canal",
    "meadow",
    "quarry",
    "lantern",
    "ferry",
]


def write_corpus(seeds_dir: Path, documents: int, paragraphs: int = 10, seed: int = 0) -> Path:
    """`documents` text files of `paragraphs` paragraphs of four sentences, each word numbered so none repeats much."""
    rng = random.Random(seed)
    seeds_dir.mkdir(parents=True, exist_ok=True)
    for number in range(documents):
        lines = []
        for _ in range(paragraphs):
            sentences = [
                " ".join(f"{rng.choice(WORDS)}{rng.randint(0, 999)}" for _ in range(rng.randint(6, 28))).capitalize()
                + "."
                for _ in range(4)
            ]
            lines.append(" ".join(sentences))
        (seeds_dir / f"doc-{number:03d}.txt").write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    return seeds_dir
