"""Index: full and incremental builds, checked loads, model and schema checks, staleness.

Failed, killed and concurrent builds and damaged files: tests/system/test_faults.py.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from builds import (
    DOCS,
    RecordingEncoder,
    edit_manifest,
    live_build_dir,
    live_pointer,
    live_state,
    write_docs,
)
from conftest import REPO, SEED_NAME

import qa.storage.manifest
from qa.embed.documents import LONG_SENTENCE_WORDS
from qa.embed.encoder import Encoder, ModelFingerprint
from qa.errors import (
    IndexCorruptError,
    IndexMissingError,
    ModelMismatchError,
    SeedsError,
)
from qa.indexing import build_index
from qa.ingest.seeds import read_sources
from qa.quotes import answer_question
from qa.reader.index import Index, load_index
from qa.split import WINDOW_WORDS, split_document, word_windows
from qa.storage import vectors
from qa.storage.layout import BUILD_FILES
from qa.storage.segments import segment_files
from qa.storage.vectors import vector_key


class OtherModel:
    """Stands in for an encoder with other weights; load_index only reads its fingerprint."""

    fingerprint = ModelFingerprint("other-model", 384, "0" * 64)


def texts_of(seeds_dir: Path, source: str) -> tuple[list[str], list[str]]:
    """Sentence and passage texts of one seed file, as ingest splits it."""
    readable, _ = read_sources(seeds_dir)
    [source_file] = [f for f in readable if f.source == source]
    document = split_document(source_file)
    return [s.text for s in document.sentences], [p.text for p in document.passages]


def sentence_keys(index: Index, source: str | None = None) -> np.ndarray:
    return np.asarray(
        [vector_key(s.id) for s in index.sentences if source is None or s.source == source], dtype=np.int64
    )


# --- build and load -------------------------------------------------------------------


def test_first_build_loads_back_identically(built: tuple[Path, Path, Index], encoder: Encoder) -> None:
    seeds_dir, index_dir, index = built
    assert index.report is not None and index.report.full
    assert index.report.added == sorted(DOCS)
    loaded = load_index(index_dir, encoder)
    assert loaded.path == index.path
    assert loaded.sentences == index.sentences
    assert loaded.passages == index.passages
    assert loaded.report is None
    assert len(loaded.sentence_store) == len(loaded.sentences)
    assert len(loaded.passage_store) == len(loaded.passages)
    assert {s.source for s in loaded.sentences} == set(DOCS)
    for sentence in loaded.sentences:
        text = (seeds_dir / sentence.source).read_text(encoding="utf-8")
        assert text[sentence.start : sentence.end] == sentence.text


def test_loaded_vectors_are_the_unit_embeddings_of_their_texts(
    built: tuple[Path, Path, Index], encoder: Encoder
) -> None:
    _, index_dir, _ = built
    loaded = load_index(index_dir, encoder)
    stored = loaded.sentence_store.vectors(sentence_keys(loaded))
    expected = encoder.encode([s.text for s in loaded.sentences])
    np.testing.assert_allclose(stored, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-5)


def test_manifest_describes_the_build(built: tuple[Path, Path, Index], encoder: Encoder) -> None:
    seeds_dir, index_dir, index = built
    manifest = load_index(index_dir, encoder).manifest.to_dict()
    assert manifest["schema_version"] == qa.storage.manifest.SCHEMA_VERSION
    assert manifest["model"] == {
        "name": "all-MiniLM-L6-v2",
        "dimension": 384,
        "weights_sha256": encoder.fingerprint.weights_sha256,
    }
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["model"]["weights_sha256"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", manifest["built_at"])
    counts = manifest["counts"]
    assert (counts["sources"], counts["passages"], counts["sentences"]) == (
        len(DOCS),
        len(index.passages),
        len(index.sentences),
    )
    assert sorted(manifest["sources"]) == sorted(DOCS)
    for name, entry in manifest["sources"].items():
        assert entry["sha256"] == hashlib.sha256((seeds_dir / name).read_bytes()).hexdigest()
        assert entry["sentences"] == sum(1 for s in index.sentences if s.source == name)
        assert entry["passages"] == sum(1 for p in index.passages if p.source == name)
    build = live_build_dir(index_dir)
    # CURRENT names the build and pins its manifest, as the manifest pins every file.
    manifest_sha256 = hashlib.sha256((build / "manifest.json").read_bytes()).hexdigest()
    assert live_pointer(index_dir) == f"{build.name}\n{manifest_sha256}\n"
    # A small index is one segment, written by this build.
    [segment] = manifest["segments"]
    assert segment == {
        "name": f"segment-{build.name.removeprefix('build-')}",
        "sentences": len(index.sentences),
        "passages": len(index.passages),
        "windows": len(index.windows),
    }
    assert set(manifest["files"]) == {*BUILD_FILES, *segment_files(segment["name"])}
    # Every file of the build is listed with its checksum; nothing else (no pickle) sits there.
    files = {p.relative_to(build).as_posix() for p in build.rglob("*") if p.is_file()}
    assert files == set(manifest["files"]) | {"manifest.json"}
    assert all(name.endswith((".jsonl", ".json", ".npy", ".faiss")) for name in manifest["files"])
    for name, checksum in manifest["files"].items():
        assert checksum == hashlib.sha256((build / name).read_bytes()).hexdigest()


def test_seed_index_covers_the_real_seed(seed_index: Index) -> None:
    assert seed_index.report is not None and seed_index.report.added == [SEED_NAME]
    assert seed_index.manifest.counts.sources == 1
    assert len(seed_index.sentences) == seed_index.manifest.counts.sentences > 30


# --- incremental builds ---------------------------------------------------------------


def test_rebuild_without_changes_embeds_nothing(built: tuple[Path, Path, Index], encoder: Encoder) -> None:
    seeds_dir, index_dir, first = built
    recorder = RecordingEncoder(encoder)
    second = build_index(seeds_dir, index_dir, recorder)  # type: ignore[arg-type]
    report = second.report
    assert report is not None and not report.full
    assert (report.added, report.changed, report.removed) == ([], [], [])
    assert report.unchanged == sorted(DOCS)
    assert (report.embedded_sentences, report.embedded_passages) == (0, 0)
    assert recorder.encoded == []
    assert second.sentences == first.sentences
    loaded = load_index(index_dir, encoder)
    np.testing.assert_array_equal(
        loaded.sentence_store.vectors(sentence_keys(loaded)), first.sentence_store.vectors(sentence_keys(first))
    )


def test_changed_file_reembeds_only_its_own_texts(built: tuple[Path, Path, Index], encoder: Encoder) -> None:
    seeds_dir, index_dir, first = built
    (seeds_dir / "beta.txt").write_text(
        "Beta mountain is covered in snow. Guides lead climbers up in August. The hut sleeps ten.\n",
        encoding="utf-8",
    )
    beta_sentences, beta_passages = texts_of(seeds_dir, "beta.txt")
    recorder = RecordingEncoder(encoder)
    second = build_index(seeds_dir, index_dir, recorder)  # type: ignore[arg-type]
    report = second.report
    assert report is not None and not report.full
    assert report.changed == ["beta.txt"]
    assert report.unchanged == ["alpha.txt", "notes/gamma.md"]
    assert (report.added, report.removed) == ([], [])
    assert report.embedded_sentences == len(beta_sentences) == 3
    assert report.embedded_passages == len(beta_passages) == 1
    assert recorder.encoded == beta_sentences + beta_passages

    loaded = load_index(index_dir, encoder)
    assert sorted(s.text for s in loaded.sentences if s.source == "beta.txt") == sorted(beta_sentences)
    assert "Climbers reach the summit in July." not in {s.text for s in loaded.sentences}
    for source in ("alpha.txt", "notes/gamma.md"):
        keys = sentence_keys(first, source)
        assert len(keys)
        np.testing.assert_array_equal(loaded.sentence_store.vectors(keys), first.sentence_store.vectors(keys))
    # Reused and new vectors alike still sit under the key of their own text.
    np.testing.assert_allclose(
        loaded.sentence_store.vectors(sentence_keys(loaded)),
        encoder.encode([s.text for s in loaded.sentences]),
        atol=1e-5,
    )


def test_added_file_is_embedded_alone(built: tuple[Path, Path, Index], encoder: Encoder) -> None:
    seeds_dir, index_dir, _ = built
    write_docs(seeds_dir, {"delta.txt": "Delta plains grow wheat. Delta towns hold fairs.\n"})
    index = build_index(seeds_dir, index_dir, encoder)
    report = index.report
    assert report is not None
    assert report.added == ["delta.txt"]
    assert report.unchanged == sorted(DOCS)
    assert report.embedded_sentences == 2
    assert load_index(index_dir, encoder).manifest.counts.sources == len(DOCS) + 1


def test_removed_file_leaves_the_index(built: tuple[Path, Path, Index], encoder: Encoder) -> None:
    seeds_dir, index_dir, first = built
    gone = sentence_keys(first, "alpha.txt")
    (seeds_dir / "alpha.txt").unlink()
    index = build_index(seeds_dir, index_dir, encoder)
    report = index.report
    assert report is not None
    assert report.removed == ["alpha.txt"]
    assert report.unchanged == ["beta.txt", "notes/gamma.md"]
    assert report.embedded_sentences == 0
    loaded = load_index(index_dir, encoder)
    assert "alpha.txt" not in {s.source for s in loaded.sentences} | {p.source for p in loaded.passages}
    assert "alpha.txt" not in loaded.manifest.sources
    assert len(loaded.sentence_store) == len(loaded.sentences)
    assert len(loaded.passage_store) == len(loaded.passages)
    assert (loaded.sentence_rows(gone) == -1).all()


def test_full_build_reembeds_everything(built: tuple[Path, Path, Index], encoder: Encoder) -> None:
    seeds_dir, index_dir, first = built
    recorder = RecordingEncoder(encoder)
    index = build_index(seeds_dir, index_dir, recorder, full=True)  # type: ignore[arg-type]
    report = index.report
    assert report is not None and report.full
    # Reported against the live build (nothing changed), embedded all the same.
    assert report.unchanged == sorted(DOCS) and report.added == report.changed == report.removed == []
    assert report.embedded_sentences == len(first.sentences)
    assert report.embedded_passages == len(first.passages)
    assert sorted(recorder.encoded) == sorted([s.text for s in first.sentences] + [p.text for p in first.passages])


def test_skipped_files_are_reported_and_not_indexed(small_seeds: Path, tmp_path: Path, encoder: Encoder) -> None:
    (small_seeds / "broken.txt").write_bytes(b"\xff\xfe broken")
    index = build_index(small_seeds, tmp_path / "index", encoder)
    assert index.report is not None
    assert [s.source for s in index.report.skipped] == ["broken.txt"]
    assert "broken.txt" not in index.manifest.sources


def test_old_builds_are_pruned(built: tuple[Path, Path, Index], encoder: Encoder) -> None:
    seeds_dir, index_dir, _ = built
    for number in range(3):
        write_docs(seeds_dir, {"beta.txt": f"Beta version {number} is here.\n"})
        build_index(seeds_dir, index_dir, encoder)
    builds = sorted(p.name for p in index_dir.iterdir() if p.name.startswith("build-"))
    assert live_build_dir(index_dir).name in builds
    assert len(builds) <= 2  # the live build, and at most the one it replaced


@pytest.mark.parametrize(
    "content", [{}, {"slides.pdf": "Not indexable.", "blank.txt": "  \n"}], ids=["empty", "nothing-readable"]
)
def test_nothing_to_index_raises_and_keeps_the_index(
    built: tuple[Path, Path, Index], encoder: Encoder, tmp_path: Path, content: dict[str, str]
) -> None:
    _, index_dir, _ = built
    before = live_state(index_dir, encoder)
    empty = write_docs(tmp_path / "empty-seeds", content)
    empty.mkdir(exist_ok=True)
    with pytest.raises(SeedsError, match="nothing to index"):
        build_index(empty, index_dir, encoder)
    assert live_state(index_dir, encoder) == before
    assert before[1].counts.sources == len(DOCS)


def test_missing_seeds_folder_raises_seeds_error(tmp_path: Path, encoder: Encoder) -> None:
    with pytest.raises(SeedsError, match="does not exist"):
        build_index(tmp_path / "no-seeds", tmp_path / "index", encoder)


def test_missing_index_says_how_to_build_one(tmp_path: Path, encoder: Encoder) -> None:
    with pytest.raises(IndexMissingError, match=re.escape("python -m qa build")):
        load_index(tmp_path / "index", encoder)


def test_other_schema_version_is_refused(built: tuple[Path, Path, Index], encoder: Encoder) -> None:
    _, index_dir, _ = built
    edit_manifest(index_dir, lambda m: m.update(schema_version=qa.storage.manifest.SCHEMA_VERSION + 1))
    with pytest.raises(IndexCorruptError, match="--full"):
        load_index(index_dir, encoder)


def test_index_from_other_weights_is_a_model_mismatch(built: tuple[Path, Path, Index], encoder: Encoder) -> None:
    _, index_dir, _ = built
    edit_manifest(index_dir, lambda m: m["model"].update(weights_sha256="f" * 64))
    with pytest.raises(ModelMismatchError, match=re.escape("python -m qa build --full")):
        load_index(index_dir, encoder)


def test_encoder_with_other_weights_is_a_model_mismatch(built: tuple[Path, Path, Index]) -> None:
    _, index_dir, _ = built
    with pytest.raises(ModelMismatchError, match=re.escape("python -m qa build --full")) as raised:
        load_index(index_dir, OtherModel())  # type: ignore[arg-type]
    assert "all-MiniLM-L6-v2" in str(raised.value) and "other-model" in str(raised.value)


def test_build_after_a_model_change_reembeds_everything(built: tuple[Path, Path, Index], encoder: Encoder) -> None:
    seeds_dir, index_dir, first = built
    edit_manifest(index_dir, lambda m: m["model"].update(weights_sha256="f" * 64))
    index = build_index(seeds_dir, index_dir, encoder)
    assert index.report is not None and index.report.full
    assert index.report.embedded_sentences == len(first.sentences)
    assert load_index(index_dir, encoder).manifest.model.weights_sha256 == encoder.fingerprint.weights_sha256


# --- staleness ----------------------------------------------------------------------------


def test_stale_reports_added_changed_and_removed(built: tuple[Path, Path, Index], encoder: Encoder) -> None:
    seeds_dir, index_dir, _ = built
    index = load_index(index_dir, encoder)
    assert index.stale(seeds_dir) == {"added": [], "changed": [], "removed": []}
    write_docs(seeds_dir, {"beta.txt": "Beta is different now.\n", "new/epsilon.txt": "Epsilon is new.\n"})
    (seeds_dir / "alpha.txt").unlink()
    assert index.stale(seeds_dir) == {
        "added": ["new/epsilon.txt"],
        "changed": ["beta.txt"],
        "removed": ["alpha.txt"],
    }


# --- word windows and large stores -------------------------------------------------------

LONG = (
    "Fentanyl is produced at big labs and by amateur chemists in small shops in China and then shipped "
    "into the country through the mail, said the senator from Iowa, chairman of the Senate Judiciary "
    "Committee, who leads the caucus with a senator from California who spoke after him at the hearing."
)
MEDIUM = "Delta farmers who grow wheat on the wide plains east of the river sell their grain at the fair."


def test_windows_are_pooled_except_in_long_sentences(tmp_path: Path, encoder: Encoder) -> None:
    assert len(LONG.split()) > LONG_SENTENCE_WORDS >= len(MEDIUM.split()) > WINDOW_WORDS
    write_docs(tmp_path / "seeds", {"a.txt": f"{LONG}\n\n{MEDIUM}\n\nShort one here.\n"})
    recorder = RecordingEncoder(encoder)
    index = build_index(tmp_path / "seeds", tmp_path / "index", recorder)  # type: ignore[arg-type]
    long_windows = [LONG[a:b] for a, b in word_windows(LONG, 0, len(LONG))]
    medium_windows = [MEDIUM[a:b] for a, b in word_windows(MEDIUM, 0, len(MEDIUM))]
    # Only the long sentence's windows are embedded as texts of their own.
    assert set(long_windows) <= set(recorder.encoded) and not set(medium_windows) & set(recorder.encoded)
    counts = [int(c) for c in index.tables.sentences["windows"]]
    assert counts == [len(long_windows), len(medium_windows), 0] == [int(c) for c in index.windows.counts]
    stored = index.windows.in_row_order()[0].astype(np.float32)
    np.testing.assert_allclose(stored[: len(long_windows)], encoder.encode(long_windows), atol=2e-3)
    _, pooled = encoder.encode_with_spans([MEDIUM], [word_windows(MEDIUM, 0, len(MEDIUM))])
    np.testing.assert_allclose(stored[len(long_windows) :], pooled.astype(np.float32), atol=2e-3)
    # A question about one clause finds it through the long sentence's window.
    query, _ = encoder.encode_query("Who chairs the Senate Judiciary Committee?")
    own = index.sentence_store.vectors(index.sentence_keys[:1]) @ query
    assert index.windows.best_cosines(np.asarray([0]), query, own)[0] > own[0] + 0.1
    loaded = load_index(tmp_path / "index", encoder)
    np.testing.assert_array_equal(loaded.windows.in_row_order()[0], index.windows.in_row_order()[0])


def test_an_incremental_build_keeps_the_windows_of_unchanged_sources(tmp_path: Path, encoder: Encoder) -> None:
    write_docs(tmp_path / "seeds", {"a.txt": f"{LONG}\n", "b.txt": f"{MEDIUM}\n"})
    first = build_index(tmp_path / "seeds", tmp_path / "index", encoder)
    write_docs(tmp_path / "seeds", {"b.txt": "Something else entirely, and short.\n", "c.txt": f"{MEDIUM}\n"})
    second = build_index(tmp_path / "seeds", tmp_path / "index", encoder)
    assert second.report is not None and second.report.unchanged == ["a.txt"]
    a_windows = int(first.tables.sentences["windows"][0])
    np.testing.assert_array_equal(
        second.windows.of_sentences(np.asarray([0])), first.windows.of_sentences(np.asarray([0]))
    )
    assert len(second.windows) == a_windows + len(word_windows(MEDIUM, 0, len(MEDIUM)))


def test_a_large_index_switches_to_ivf_and_says_so(
    tmp_path: Path, encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past EXACT_LIMIT the stores are IVF-SQ8 (the limit lowered here to the seed's size)."""
    monkeypatch.setattr(vectors, "EXACT_LIMIT", 20)
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / SEED_NAME).write_bytes((REPO / "seeds" / SEED_NAME).read_bytes())
    index = build_index(seeds, tmp_path / "index", encoder)
    assert index.sentence_store.kind.startswith("ivf-sq8") and index.passage_store.kind.startswith("ivf-sq8")
    manifest = load_index(tmp_path / "index", encoder).manifest
    assert manifest.stores["sentences"].kind == "ivf-sq8"
    assert manifest.stores["sentences"].trained_on == len(index.sentences)
    answer = answer_question(index, "Which committee does Grassley lead?")
    assert answer.answered and "Judiciary Committee" in answer.quotes[0].text
    # Adding a document reuses the trained lists.
    write_docs(seeds, {"b.txt": "Another short document about something else.\n"})
    grown = build_index(seeds, tmp_path / "index", encoder)
    assert grown.sentence_store.trained_on == len(index.sentences) < len(grown.sentences)
    # A restriction to one small document still finds its sentences, whichever lists they fell in.
    scoped = answer_question(grown, "Which committee does Grassley lead?", sources=["b.txt"])
    assert scoped.related and {hit.source for hit in scoped.related} == {"b.txt"}
