"""The FAISS vector store: keyed rows, exact cosine search, and a readable file round trip."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest

from qa.embed.encoder import normalize
from qa.records import content_id
from qa.storage.vectors import FaissStore, vector_key


def unit_rows(count: int, dimension: int = 8, seed: int = 3) -> np.ndarray:
    return normalize(np.random.default_rng(seed).normal(size=(count, dimension)).astype(np.float32))


def test_vector_key_is_the_first_60_bits_of_the_id() -> None:
    assert vector_key("59b271ae1bbcb1d3") == 0x59B271AE1BBCB1D
    assert vector_key("ffffffffffffffff") == 2**60 - 1  # always a positive int64
    record_id = content_id("sentence", "a.txt", "Hello.", "1")
    assert 0 <= vector_key(record_id) < 2**63


def test_search_returns_best_keys_first_with_cosines() -> None:
    vectors = unit_rows(5)
    store = FaissStore(8)
    store.add(np.array([10, 20, 30, 40, 50]), vectors)
    assert len(store) == 5
    scores, keys = store.search(vectors[2], 3)
    assert keys[0] == 30 and abs(scores[0] - 1.0) < 1e-5
    assert list(scores) == sorted(scores, reverse=True)
    np.testing.assert_allclose(scores, (vectors @ vectors[2])[[k // 10 - 1 for k in keys]], atol=1e-5)
    assert len(store.search(vectors[0], 50)[1]) == 5  # k larger than the store


def test_vectors_and_remove_by_key() -> None:
    vectors = unit_rows(4)
    store = FaissStore(8)
    store.add(np.array([7, 8, 9, 11]), vectors)
    np.testing.assert_array_equal(store.vectors(np.array([9, 7])), vectors[[2, 0]])
    assert store.remove(np.array([8, 11])) == 2
    assert len(store) == 2
    assert set(store.search(vectors[1], 10)[1].tolist()) == {7, 9}
    assert store.vectors(np.array([], dtype=np.int64)).shape == (0, 8)


def test_empty_store_searches_to_nothing() -> None:
    scores, keys = FaissStore(8).search(unit_rows(1)[0], 5)
    assert scores.size == 0 and keys.size == 0


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    vectors = unit_rows(3)
    store = FaissStore(8)
    store.add(np.array([1, 2, 3]), vectors)
    store.save(tmp_path / "v.faiss")
    loaded = FaissStore.load(tmp_path / "v.faiss")
    assert (loaded.dimension, len(loaded)) == (8, 3)
    np.testing.assert_array_equal(loaded.vectors(np.array([3, 1])), vectors[[2, 0]])


def test_a_full_disk_is_an_os_error_with_its_errno(tmp_path: Path) -> None:
    store = FaissStore(8)
    store.add(np.arange(200), unit_rows(200))  # more than the write buffer, so the write itself fails
    with pytest.raises(OSError) as raised:
        store.save(Path("/dev/full"))  # every write to it fails with ENOSPC
    assert raised.value.errno == errno.ENOSPC
    with pytest.raises(FileNotFoundError):
        store.save(tmp_path / "no-such-folder" / "v.faiss")
