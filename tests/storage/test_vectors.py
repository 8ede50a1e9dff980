"""The FAISS vector store: keyed rows, exact cosine search, IVF-SQ8 past a size, and a readable file round trip."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest

from qa.embed.encoder import normalize
from qa.records import content_id
from qa.storage import vectors, windows
from qa.storage.vectors import FaissStore, vector_key
from qa.storage.windows import RowFile, WindowVectors


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


def test_a_search_runs_faiss_on_its_search_threads_and_restores_the_count_after() -> None:
    import faiss

    store = FaissStore(8)
    store.add(np.array([1, 2, 3]), unit_rows(3))
    seen = []

    class Recording:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        def search(self, *args: object, **kwargs: object) -> object:
            seen.append(faiss.omp_get_max_threads())
            if len(seen) > 1:
                raise RuntimeError("a failing search")
            return self.inner.search(*args, **kwargs)  # type: ignore[attr-defined]

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    store._index = Recording(store._index)  # type: ignore[assignment]
    saved = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        assert len(store.search(unit_rows(1)[0], 2)[1]) == 2
        assert faiss.omp_get_max_threads() == 2
        with pytest.raises(RuntimeError, match="a failing search"):
            store.search(unit_rows(1)[0], 2)
        assert seen == [1, 1] and faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(saved)


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


# --- approximate search past EXACT_LIMIT ----------------------------------------------


def clustered(count: int, dimension: int = 32, seed: int = 0) -> np.ndarray:
    """Unit vectors around 50 centres, as sentence embeddings cluster by topic."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dimension))
    points = centres[rng.integers(0, 50, count)] + 0.5 * rng.standard_normal((count, dimension))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(vectors, "EXACT_LIMIT", 2_000)
    return 2_000


def test_small_stores_are_exact_and_large_ones_ivf(small_limit: int) -> None:
    points = clustered(small_limit + 1_000)
    keys = np.arange(len(points), dtype=np.int64) * 3 + 1
    exact = FaissStore.assemble(32, keys[:small_limit], points[:small_limit])
    assert exact.kind == "exact" and exact.trained_on == 0
    approximate = FaissStore.assemble(32, keys, points)
    assert approximate.kind.startswith("ivf-sq8 (") and approximate.trained_on == len(points)
    assert len(approximate) == len(points)


def test_ivf_search_recalls_the_exact_top_50(small_limit: int) -> None:
    points = clustered(20_000)
    keys = np.arange(len(points), dtype=np.int64)
    store = FaissStore.assemble(32, keys, points)
    queries = clustered(50, seed=1)
    recalls = []
    for query in queries:
        truth = set(np.argsort(-(points @ query))[:50].tolist())
        _, found = store.search(query, 50)
        recalls.append(len(truth & set(found.tolist())) / 50)
    assert np.mean(recalls) >= 0.95
    # Vectors by key come back 8-bit quantised: close, not equal.
    np.testing.assert_allclose(store.vectors(keys[:10]), points[:10], atol=0.02)


def test_an_incremental_ivf_store_reuses_its_lists_and_drops_removed_keys(small_limit: int, tmp_path: Path) -> None:
    points = clustered(6_000)
    keys = np.arange(len(points), dtype=np.int64)
    first = FaissStore.assemble(32, keys[:5_000], points[:5_000])
    first.save(tmp_path / "s.faiss")
    previous = FaissStore.load(tmp_path / "s.faiss", trained_on=first.trained_on)
    assert previous.kind == first.kind
    kept, removed = keys[100:5_000], keys[:100]
    second = FaissStore.assemble(32, keys[5_000:], points[5_000:], previous=previous, kept=kept, removed=removed)
    assert second.trained_on == 5_000  # the same lists, not trained again
    assert len(second) == 5_900
    _, found = second.search(points[0], 5)
    assert 0 not in found.tolist()
    _, found = second.search(points[5_500], 1)
    assert found.tolist() == [5_500]
    # Grown past RETRAIN_GROWTH times what it was trained on, it is trained afresh.
    grown = FaissStore.assemble(
        32, np.arange(6_000, 26_000, dtype=np.int64), clustered(20_000, seed=2), previous=second, kept=keys[100:]
    )
    assert grown.trained_on == len(grown) == 25_900


def test_search_skips_excluded_keys_in_both_kinds(small_limit: int) -> None:
    points = clustered(small_limit + 500)
    keys = np.arange(len(points), dtype=np.int64) + 100
    for store in (FaissStore.assemble(32, keys[:1_000], points[:1_000]), FaissStore.assemble(32, keys, points)):
        _, best = store.search(points[0], 10)
        _, others = store.search(points[0], 10, exclude=best[:3])
        assert len(others) == 10 and not set(best[:3].tolist()) & set(others.tolist())
        assert set(best[3:].tolist()) <= set(others.tolist())


def test_window_rows_are_read_from_the_file_in_any_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = unit_rows(40).astype(np.float16)
    counts = np.asarray([3, 0, 5, 32])
    WindowVectors(rows, counts).save(tmp_path / "windows.npy")
    loaded = WindowVectors.load(tmp_path / "windows.npy", counts)
    [part] = loaded.parts
    assert isinstance(part, RowFile) and len(loaded) == 40
    np.testing.assert_array_equal(part.take(np.asarray([39, 0, 1, 2, 17, 3])), rows[[39, 0, 1, 2, 17, 3]])
    np.testing.assert_array_equal(np.asarray(part), rows)
    monkeypatch.setattr(windows, "_READ_BYTES", 3 * rows.shape[1] * 2)  # long runs are read in pieces
    np.testing.assert_array_equal(part.take(np.arange(40)[::-1]), rows[::-1])
    np.testing.assert_array_equal(part[5:30], rows[5:30])
    np.testing.assert_array_equal(loaded.of_sentences(np.asarray([2, 0])), rows[[3, 4, 5, 6, 7, 0, 1, 2]])
    query = unit_rows(1, seed=9)[0]
    own = np.zeros(4, dtype=np.float32) - 1
    best = loaded.best_cosines(np.asarray([0, 1, 3]), query, own[:3])
    expected = rows.astype(np.float32) @ query
    assert best[0] == pytest.approx(expected[0:3].max(), abs=1e-6) and best[1] == -1
    assert best[2] == pytest.approx(expected[8:].max(), abs=1e-6)
    with pytest.raises(ValueError, match="window vectors for sentences"):
        WindowVectors.load(tmp_path / "windows.npy", np.asarray([1]))
    (tmp_path / "windows.npy").write_bytes((tmp_path / "windows.npy").read_bytes()[:-10])
    with pytest.raises(ValueError, match="not as long"):
        WindowVectors.load(tmp_path / "windows.npy", counts)


def test_window_vectors_of_several_parts_are_read_by_each_rows_part_and_first_row(tmp_path: Path) -> None:
    rows = unit_rows(12).astype(np.float16)
    first = windows.WindowWriter(tmp_path / "a.npy", 7, rows.shape[1])
    first.write(rows[:4])
    first.write(rows[4:7])
    first.close()
    second = windows.WindowWriter(tmp_path / "b.npy", 5, rows.shape[1])
    second.write(rows[7:])
    second.close()
    # Sentence rows: two in part 1, then two in part 0 (whose rows 0-2 belong to a removed source).
    counts, parts, firsts = np.asarray([2, 3, 1, 3]), np.asarray([1, 1, 0, 0]), np.asarray([0, 2, 3, 4])
    loaded = WindowVectors.load([tmp_path / "a.npy", tmp_path / "b.npy"], counts, parts, firsts)
    assert len(loaded) == 9
    np.testing.assert_array_equal(loaded.of_sentences(np.asarray([3, 0])), rows[[4, 5, 6, 7, 8]])
    in_order, bounds = loaded.in_row_order()
    np.testing.assert_array_equal(in_order, rows[[7, 8, 9, 10, 11, 3, 4, 5, 6]])
    assert bounds.tolist() == [0, 2, 5, 6, 9]
    with pytest.raises(ValueError, match="past the 7 window vectors of part 0"):
        WindowVectors.load([tmp_path / "a.npy", tmp_path / "b.npy"], counts, parts, firsts + 1)


def test_a_window_file_must_get_every_row_it_was_opened_for(tmp_path: Path) -> None:
    rows = unit_rows(3).astype(np.float16)
    writer = windows.WindowWriter(tmp_path / "w.npy", 3, rows.shape[1])
    writer.write(rows[:2])
    with pytest.raises(ValueError, match="more window vectors"):
        writer.write(rows)
    with pytest.raises(ValueError, match="2 window vectors written to a file of 3"):
        writer.close()
