"""Split: paragraphs, sections, sentences, ids and windows, and that every offset slices the file."""

from __future__ import annotations

import tempfile
import unicodedata
from pathlib import Path

import pytest
from conftest import SEED_NAME, SEEDS
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.ingest.seeds import read_sources
from qa.records import Document, content_id
from qa.split import WINDOW_STEP, WINDOW_WORDS, split_document, word_windows

# What a quote must never start or end with: str.isspace() whitespace and the BOM.
WHITESPACE = frozenset(chr(c) for c in range(0x110000) if chr(c).isspace()) | {"\ufeff"}


def write_and_split(folder: Path, name: str, content: str | bytes) -> tuple[Document, Path]:
    """Write one seed file (bytes as given, text as UTF-8 bytes) and split it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    readable, skipped = read_sources(folder)
    assert skipped == []
    [source_file] = [f for f in readable if f.source == name]
    return split_document(source_file), path


def assert_offsets_slice_the_file(seeds_dir: Path, document: Document) -> None:
    for record in (*document.passages, *document.sentences):
        text = Path(seeds_dir, record.source).read_text(encoding="utf-8")
        assert text[record.start : record.end] == record.text, record


@pytest.fixture(scope="module")
def seed_document() -> Document:
    readable, skipped = read_sources(SEEDS)
    assert skipped == []
    [source_file] = [f for f in readable if f.source == SEED_NAME]
    return split_document(source_file)


# --- the real seed -------------------------------------------------------------------


def test_seed_offsets_slice_the_file(seed_document: Document) -> None:
    assert len(seed_document.passages) > 20
    assert len(seed_document.sentences) >= len(seed_document.passages)
    assert_offsets_slice_the_file(SEEDS, seed_document)


def test_seed_sentences_sit_inside_their_passage(seed_document: Document) -> None:
    passages = {p.id: p for p in seed_document.passages}
    for sentence in seed_document.sentences:
        passage = passages[sentence.passage_id]
        assert passage.start <= sentence.start < sentence.end <= passage.end
        assert (sentence.paragraph, sentence.section) == (passage.paragraph, passage.section)


def test_seed_headings_are_sections_not_passages(seed_document: Document) -> None:
    headings = ["Fentanyl's spread in the U.S.", "Working with China", "The stick of influence"]
    passage_texts = {p.text for p in seed_document.passages}
    for heading in headings:
        assert heading not in passage_texts
    sections = [p.section for p in seed_document.passages]
    # Sections appear in reading order, each heading governing the paragraphs after it.
    assert list(dict.fromkeys(sections)) == [None, *headings]
    lines = SEEDS.joinpath(SEED_NAME).read_text(encoding="utf-8").split("\n")
    first_under = {p.section: p for p in reversed(seed_document.passages)}
    for heading in headings:
        heading_line = lines.index(heading) + 1
        assert first_under[heading].line == heading_line + 1


def test_seed_paragraphs_are_numbered_in_order(seed_document: Document) -> None:
    assert [p.paragraph for p in seed_document.passages] == list(range(1, len(seed_document.passages) + 1))
    assert seed_document.passages[0].line == 1
    assert seed_document.passages[-1].line == 34  # the last line of the file


# --- headings and paragraphs ---------------------------------------------------------


def test_markdown_heading_becomes_the_section(tmp_path: Path) -> None:
    document, _ = write_and_split(
        tmp_path, "notes.md", "# Border checks\n\nFirst point here.\n## Second part ##\nSecond point here.\n"
    )
    assert [(p.text, p.section, p.line) for p in document.passages] == [
        ("First point here.", "Border checks", 3),
        ("Second point here.", "Second part", 5),
    ]


def test_short_last_line_is_content_not_a_heading(tmp_path: Path) -> None:
    document, _ = write_and_split(tmp_path, "doc.txt", "Opening Remarks\nThe hearing began late.\nThank you all\n")
    assert [(p.text, p.section) for p in document.passages] == [
        ("The hearing began late.", "Opening Remarks"),
        ("Thank you all", "Opening Remarks"),
    ]
    assert document.sentences[-1].text == "Thank you all"


def test_a_run_of_short_lines_stays_content(tmp_path: Path) -> None:
    text = "Witnesses\nDerek Scissors\nPaul Knierim\nKirsten Madison\nEach spoke for five minutes.\n"
    document, _ = write_and_split(tmp_path, "doc.txt", text)
    assert [(p.text, p.section) for p in document.passages] == [
        ("Witnesses", None),
        ("Derek Scissors", None),
        ("Paul Knierim", None),
        ("Kirsten Madison", None),
        ("Each spoke for five minutes.", None),
    ]


def test_markdown_heading_before_a_short_line_is_still_a_heading(tmp_path: Path) -> None:
    document, _ = write_and_split(tmp_path, "doc.md", "# Witnesses\nDerek Scissors\nPaul Knierim\n")
    assert [(p.text, p.section) for p in document.passages] == [
        ("Derek Scissors", "Witnesses"),
        ("Paul Knierim", "Witnesses"),
    ]


def test_short_line_ending_like_a_sentence_is_content(tmp_path: Path) -> None:
    document, _ = write_and_split(tmp_path, "doc.txt", "He agreed.\nThe vote passed.\n")
    assert [(p.text, p.section) for p in document.passages] == [("He agreed.", None), ("The vote passed.", None)]


def test_single_newline_ends_a_paragraph(tmp_path: Path) -> None:
    document, _ = write_and_split(tmp_path, "doc.txt", "The first line runs on.\nThe second line too.\n")
    assert [(p.paragraph, p.line, p.text) for p in document.passages] == [
        (1, 1, "The first line runs on."),
        (2, 2, "The second line too."),
    ]


def test_blank_lines_end_a_paragraph_and_count_as_lines(tmp_path: Path) -> None:
    document, _ = write_and_split(tmp_path, "doc.txt", "\n  First one here.  \n\n\n\tSecond one here.\n\n")
    assert [(p.paragraph, p.line, p.text) for p in document.passages] == [
        (1, 2, "First one here."),
        (2, 5, "Second one here."),
    ]
    assert_offsets_slice_the_file(tmp_path, document)


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"], ids=["crlf", "cr"])
def test_windows_and_old_mac_newlines_keep_offsets_exact(tmp_path: Path, newline: bytes) -> None:
    content = newline.join([b"Alpha sentence one. Alpha sentence two.", b"", b"Beta \xc3\xa9t\xc3\xa9 line.", b""])
    document, path = write_and_split(tmp_path, "doc.txt", content)
    assert [(p.line, p.text) for p in document.passages] == [
        (1, "Alpha sentence one. Alpha sentence two."),
        (3, "Beta été line."),
    ]
    assert [s.text for s in document.sentences] == ["Alpha sentence one.", "Alpha sentence two.", "Beta été line."]
    assert_offsets_slice_the_file(tmp_path, document)
    assert "\r" not in path.read_text(encoding="utf-8")


def test_sentences_split_inside_a_paragraph(tmp_path: Path) -> None:
    document, _ = write_and_split(tmp_path, "doc.txt", "Mr. Smith went to Washington. He met the U.S. team there!\n")
    assert [s.text for s in document.sentences] == ["Mr. Smith went to Washington.", "He met the U.S. team there!"]
    assert {s.passage_id for s in document.sentences} == {document.passages[0].id}


# --- ids -----------------------------------------------------------------------------


def test_content_id_golden() -> None:
    assert content_id("a", "b") == "59b271ae1bbcb1d3"
    assert content_id("a", "b") != content_id("ab")  # parts are separated, not concatenated


def test_seed_golden_ids(seed_document: Document) -> None:
    # Pinned on purpose: changing how ids are made invalidates every built index.
    assert seed_document.sentences[0].id == "179384df9da5417f"
    assert seed_document.passages[0].id == "4f02c670b3bb8c9a"
    assert seed_document.sentences[0].passage_id == "4f02c670b3bb8c9a"


def test_ids_survive_unrelated_edits_in_the_same_file(tmp_path: Path) -> None:
    original = "Keep this sentence. And this one.\nChange this line.\n"
    before, _ = write_and_split(tmp_path / "one", "doc.txt", original)
    edited = "A new opening paragraph.\n" + original.replace("Change this line.", "Change this line, now longer.")
    after, _ = write_and_split(tmp_path / "two", "doc.txt", edited)
    kept_before = {s.text: s for s in before.sentences}
    kept_after = {s.text: s for s in after.sentences}
    for text in ("Keep this sentence.", "And this one."):
        assert kept_after[text].id == kept_before[text].id
        assert kept_after[text].start != kept_before[text].start  # moved, yet same id
    assert after.passages[1].id == before.passages[0].id
    assert "Change this line." not in kept_after


def test_ids_depend_on_the_source_path(tmp_path: Path) -> None:
    # Separate folders: within one, a file with the same bytes is skipped as a duplicate.
    first, _ = write_and_split(tmp_path / "one", "a.txt", "The same words.\n")
    second, _ = write_and_split(tmp_path / "two", "b.txt", "The same words.\n")
    assert first.sentences[0].id != second.sentences[0].id
    assert first.passages[0].id != second.passages[0].id


def test_identical_sentences_get_distinct_ids(tmp_path: Path) -> None:
    document, _ = write_and_split(tmp_path, "doc.txt", "Yes it is. Yes it is.\nYes it is.\nYes it is.\n")
    texts = [s.text for s in document.sentences]
    assert texts == ["Yes it is."] * 4
    assert len({s.id for s in document.sentences}) == 4
    assert len({p.id for p in document.passages}) == 3


# --- property: any text ---------------------------------------------------------------

# Arbitrary code points of every category (unassigned and private use included),
# mixed with pieces that stress line and sentence splitting.
_ANY_TEXT = st.lists(
    st.one_of(
        st.characters(
            blacklist_categories=("Cs",),  # lone surrogates cannot be written as UTF-8
            blacklist_characters="\0",  # NUL makes a file binary: the next property
        ),
        st.sampled_from(["\n", "\r", "\r\n", "\n\n", "\u2028", ". ", "? ", "\u0301", "😀", "\ufeff", "U.S."]),
    ),
    max_size=120,
).map("".join)


@settings(max_examples=200, deadline=None, database=None)
@given(text=_ANY_TEXT)
def test_any_text_splits_into_exact_trimmed_spans(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        seeds_dir = Path(folder)
        (seeds_dir / "doc.txt").write_bytes(text.encode("utf-8"))
        readable, skipped = read_sources(seeds_dir)
        file_text = (seeds_dir / "doc.txt").read_text(encoding="utf-8")
        if not readable:
            assert [s.reason for s in skipped] == ["is empty"]
            assert set(file_text) <= WHITESPACE
            return
        assert not set(file_text) <= WHITESPACE
        document = split_document(readable[0])
        assert document.text == file_text
        assert document.passages
        for record in (*document.passages, *document.sentences):
            assert file_text[record.start : record.end] == record.text
            assert record.start < record.end
            assert record.text[0] not in WHITESPACE and record.text[-1] not in WHITESPACE
        passages = {p.id: p for p in document.passages}
        previous_end = 0
        for sentence in document.sentences:
            passage = passages[sentence.passage_id]
            assert passage.start <= sentence.start < sentence.end <= passage.end
            assert sentence.start >= previous_end  # in order, never overlapping
            previous_end = sentence.end
        covered = {i for s in document.sentences for i in range(s.start, s.end)}
        for passage in document.passages:
            for offset in range(passage.start, passage.end):
                character = file_text[offset]
                # The sentence splitter may leave out control characters at a
                # sentence edge, never words.
                if offset not in covered:
                    assert character in WHITESPACE or unicodedata.category(character) == "Cc", (
                        repr(character),
                        passage.text,
                    )



@settings(max_examples=50, deadline=None, database=None)
@given(text=_ANY_TEXT, position=st.integers(min_value=0))
def test_any_text_with_a_nul_is_skipped_as_binary(text: str, position: int) -> None:
    """NUL, the one character _ANY_TEXT leaves out, anywhere in a .txt file: skipped, never split."""
    cut = position % (len(text) + 1)
    with tempfile.TemporaryDirectory() as folder:
        seeds_dir = Path(folder)
        (seeds_dir / "doc.txt").write_bytes((text[:cut] + "\0" + text[cut:]).encode("utf-8"))
        readable, skipped = read_sources(seeds_dir)
    assert readable == []
    assert [(s.source, s.reason) for s in skipped] == [("doc.txt", "looks binary (contains NUL bytes)")]

def untrimmed_spans(folder: Path, character: str) -> list[str]:
    """Passage and sentence texts that keep `character` at an edge or consist of it."""
    content = f"First line here.\n{character}Padded words here.{character}\n{character}\nLast line here.\n"
    document, _ = write_and_split(folder, "doc.txt", content)
    expected = ["First line here.", "Padded words here.", "Last line here."]
    texts = [record.text for record in (*document.passages, *document.sentences)]
    assert texts.count("First line here.") == texts.count("Last line here.") == 2
    return [text for text in texts if text not in expected]


@pytest.mark.parametrize("character", sorted(WHITESPACE), ids=lambda c: f"U+{ord(c):04X}")
def test_whitespace_is_trimmed_from_spans(tmp_path: Path, character: str) -> None:
    """A passage or sentence never starts or ends with whitespace, nor is only whitespace."""
    assert untrimmed_spans(tmp_path, character) == []



# --- word windows of long sentences --------------------------------------------------


def test_word_windows_are_overlapping_exact_slices() -> None:
    words = [f"w{number}" for number in range(30)]
    text = "  " + " ".join(words) + "."
    spans = word_windows(text, 2, len(text))
    window_words = [text[start:end].split() for start, end in spans]
    assert window_words[0] == words[:WINDOW_WORDS]
    assert all(len(chunk) == WINDOW_WORDS for chunk in window_words[:-1])
    starts = [words.index(chunk[0].rstrip(".")) for chunk in window_words]
    assert starts == list(range(0, len(words), WINDOW_STEP))[: len(spans)]
    assert text[spans[-1][1] - 1] == "."  # the last window reaches the sentence end


def test_short_sentences_have_no_windows() -> None:
    text = " ".join(["word"] * WINDOW_WORDS)
    assert word_windows(text, 0, len(text)) == []
