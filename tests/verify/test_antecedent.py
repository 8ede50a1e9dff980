"""Whom an opening "He" or "She" names, as the verifier reads the sentence; the quote itself is never changed."""

from __future__ import annotations

from qa.reader.index import Index
from qa.records import Sentence
from qa.verify.antecedent import MAX_NAME_WORDS, antecedent, verifier_text


def document(*texts: str, source: str = "a.txt") -> list[Sentence]:
    """Sentences laid end to end in one source, one per line."""
    sentences, start = [], 0
    for number, text in enumerate(texts, start=1):
        sentences.append(
            Sentence(f"s{number}", f"p{number}", source, number, number, None, start, start + len(text), text)
        )
        start += len(text) + 1
    return sentences


def test_the_speaker_of_the_sentence_before_is_whom_he_names() -> None:
    sentences = document(
        "China will not act unless it is a priority, AEI's Scissors said.",
        "He urged against imposing broad national sanctions on China.",
    )
    assert verifier_text(sentences, 1) == "Scissors urged against imposing broad national sanctions on China."
    said_first = document("The cartels are the main threat, said Paul Knierim, a DEA official.", "She agreed.")
    assert antecedent(said_first, 1) == "Paul Knierim"


def test_without_a_speaker_the_first_name_not_after_a_preposition_or_the() -> None:
    sentences = document(
        "In 1882, Nikola Tesla moved to Paris to work for the Continental Edison Company.",
        "His work there was on electrical equipment.",
    )
    assert verifier_text(sentences, 1) == "Nikola Tesla's work there was on electrical equipment."
    hired = document("In those years the Edison Company in Paris hired Tesla.", "He stayed.")
    assert antecedent(hired, 1) == "Tesla"  # not the names after "the" and "in"


def test_a_word_capitalised_only_at_a_sentences_start_is_no_name() -> None:
    sentences = document(
        "Students thronged to the university to hear the lectures.",
        "Trade with the city grew.",
        "He published a commentary.",
    )
    assert verifier_text(sentences, 2) == "He published a commentary."
    months = document("On 30 July 1891, at the age of 35, Tesla became a citizen.", "He was 35.")
    assert antecedent(months, 1) == "Tesla"


def test_a_chain_of_pronoun_sentences_reaches_back_to_the_name() -> None:
    sentences = document(
        "Martin Luther was born in Eisleben.",
        "He studied law at the university of Erfurt.",
        "He then entered a cloister.",
    )
    assert verifier_text(sentences, 2) == "Martin Luther then entered a cloister."


def test_other_sentences_and_other_documents_are_read_as_written() -> None:
    sentences = document("Tesla was born in Smiljan.", "The village was small.", "Hence the move.")
    assert [verifier_text(sentences, row) for row in range(3)] == [sentence.text for sentence in sentences]
    two = document("Tesla was born in Smiljan.", source="a.txt") + document("He moved.", source="b.txt")
    assert verifier_text(two, 1) == "He moved."
    assert verifier_text(document("He moved."), 0) == "He moved."


def test_in_the_seed_the_sanctions_sentence_is_read_as_scissors(seed_index: Index) -> None:
    sentences = seed_index.sentences
    row = next(row for row in range(len(sentences)) if sentences[row].text.startswith("He urged against"))
    assert verifier_text(sentences, row).startswith("Scissors urged against imposing broad national sanctions")
    assert sentences[row].text.startswith("He urged")  # the sentence quoted is untouched


def test_a_name_is_a_few_words_even_in_a_sentence_of_thousands_of_capitalised_ones() -> None:
    # Unbounded, the search for a speaker backtracked over every run of capitals: this sentence took seconds.
    sentences = document(" ".join(["Word"] * 5000) + " said.", "He went home.")
    assert verifier_text(sentences, 1) == " ".join(["Word"] * MAX_NAME_WORDS) + " went home."


def test_runs_after_prepositions_in_a_sentence_of_thousands_of_them_are_all_passed_over() -> None:
    # Each run once sliced and split everything before it: 32,000 of them took 25 s.
    sentences = document("x " + " ".join(["in Paris"] * 20000) + ", then Tesla.", "He went home.")
    assert verifier_text(sentences, 1) == "Tesla went home."


def test_a_contraction_is_read_as_written() -> None:
    sentences = document("Tesla was born in Smiljan.", "He's remembered there.", "She'd left.")
    assert verifier_text(sentences, 1) == "He's remembered there."
    assert verifier_text(sentences, 2) == "She'd left."
