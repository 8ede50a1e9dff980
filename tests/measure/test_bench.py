"""`qa bench`: its arithmetic on known numbers, and one real run on a tiny corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import write_tiny_squad

from qa.cli import main
from qa.embed.encoder import Encoder
from qa.measure.bench import (
    AddDocument,
    BenchResults,
    ColdStart,
    Latency,
    QueryThreads,
    ReusingEncoder,
    Throughput,
    percentile,
)
from qa.measure.benchreport import SECTION_END, SECTION_START, to_markdown, write_section


def test_percentile_interpolates() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == pytest.approx(50.5)
    assert percentile(values, 0.95) == pytest.approx(95.05)


def test_overhead_is_build_time_over_encode_time() -> None:
    assert Throughput(100, 300, build_s=11.0, encode_s=10.0).overhead == pytest.approx(0.10)


def test_reusing_encoder_embeds_only_new_texts(encoder: Encoder) -> None:
    stored = np.full(encoder.fingerprint.dimension, 0.5, dtype=np.float32)
    reusing = ReusingEncoder(encoder, {"known text": stored})
    vectors = reusing.encode(["known text", "a new text", "a new text"])
    np.testing.assert_array_equal(vectors[0], stored)  # reused, not embedded again
    np.testing.assert_allclose(vectors[1], encoder.encode(["a new text"])[0], atol=1e-6)
    np.testing.assert_array_equal(vectors[1], vectors[2])
    assert set(reusing.known) == {"known text", "a new text"}
    assert reusing.max_tokens == encoder.max_tokens  # everything else is the real encoder's


def test_markdown_says_which_targets_were_met() -> None:
    results = BenchResults(
        latencies=[Latency(60, 200, 28.0, 20.0), Latency(10_000, 200, 55.0, 80.0), Latency(100_000, 200, 90.0, 120.0)],
        throughput=Throughput(1000, 4000, build_s=10.5, encode_s=10.0),
        add=AddDocument(10_000, 6.0, 1.0),
        cold=[ColdStart(60, 12.0, 9.0, 2.0, 0.5, 700.0)],
        threads=QueryThreads(2, 8.0, 30.0, 3.0),
        peak_rss_mb=1234.0,
    )
    text = to_markdown(results, "python -m qa bench x.json")
    lines = text.splitlines()
    assert lines[0] == "Command: `python -m qa bench x.json`"
    assert "| seed, 60 sentences | 200 | 28.0 ms | 20.0 ms | p50 ≤ 30 ms (issue 12): met; p50 ≤ 25 ms (issue 15): **missed** |" in lines
    assert "| SQuAD dev, 10,000 sentences | 200 | 55.0 ms | 80.0 ms | p50 ≤ 50 ms (issue 12): **missed**; p50 ≤ 40 ms (issue 15): **missed** |" in lines
    assert any(line.startswith("| build overhead over raw encoding | +5.0% | ≤ 10%: met") for line in lines)
    assert any("6.00 s | < 5 s: **missed**" in line for line in lines)
    assert any(line.startswith("| 60 sentences | 12.0 s |") and "≤ 15 s: met" in line for line in lines)
    assert "| all-MiniLM-L6-v2, one question at a time | 3.0 ms | 8.0 ms | 30.0 ms (2 threads) |" in lines
    assert lines[-1] == "Peak RSS of the benchmark process, which held the 100,000-sentence index: 1,234 MB."


def test_peak_rss_is_this_process_high_water_mark() -> None:
    import resource

    from qa.measure.bench import peak_rss_mb

    assert 10 < peak_rss_mb() <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + 1


def test_write_section_replaces_only_its_own_part(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    write_section(path, "first")
    path.write_text("# Benchmarks\n\nQuality by hand.\n\n" + path.read_text(encoding="utf-8").split("\n\n", 1)[1] + "Footer.\n")
    write_section(path, "second")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n\nQuality by hand.\n\n")
    assert f"{SECTION_START}\nsecond\n{SECTION_END}" in text and "first" not in text
    assert text.endswith("Footer.\n")


def test_bench_command_runs_every_measurement_on_a_tiny_corpus(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    squad = write_tiny_squad(tmp_path / "tiny.json")
    out_file, plot = tmp_path / "BENCHMARKS.md", tmp_path / "docs" / "latency.png"
    code = main([
        "bench", str(squad), "--work", str(tmp_path / "work"), "--questions", "2", "--copies", "1,2",
        "--rounds", "1", "--out", str(out_file), "--plot", str(plot),
    ])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert plot.read_bytes().startswith(b"\x89PNG")
    written = out_file.read_text(encoding="utf-8")
    assert out.strip() in written
    assert "](docs/latency.png)" in written  # linked relative to the Markdown file
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    # seed, the tiny corpus once and twice: the copies double its sentences.
    assert [row.split("|")[1].strip().split(", ")[0] for row in rows[1:4]] == ["seed", "SQuAD dev", "SQuAD dev ×2"]
    sizes = [int(row.split("|")[1].split(", ")[1].split()[0].replace(",", "")) for row in rows[2:4]]
    assert sizes[1] == 2 * sizes[0]
    assert "adding one document" in out and "cold start to first answer" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--copies", "1,x"], "--copies takes whole numbers"),
        (["--questions", "1"], "--questions must be at least 2"),
    ],
)
def test_bench_refuses_bad_arguments_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    squad = write_tiny_squad(tmp_path / "tiny.json")
    assert main(["bench", str(squad), *argv]) == 1
    _, err = capsys.readouterr()
    assert err.startswith("error: ") and message in err


def test_backend_comparison_reports_speed_and_agreement_with_torch(encoder: Encoder) -> None:
    from qa.measure.backends import compare

    # The torch model standing in for every backend must agree with itself exactly.
    results = compare({"torch": encoder.model, "same": encoder.model}, ["One text.", "Another, longer text here."], ["Who?", "What now?"])
    for name in ("torch", "same"):
        assert results[name]["cosine_to_torch_min"] == pytest.approx(1.0, abs=1e-5)
        assert results[name]["question_p50_ms"] > 0 and results[name]["texts_per_s"] > 0
