"""`qa bench --scale`: every phase runs in its own process and the section it writes holds their figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO, SEED_NAME, write_tiny_squad

from qa.measure.processes import package_environment


def test_scale_bench_builds_serves_recalls_and_adds(tmp_path: Path) -> None:
    squad = write_tiny_squad(tmp_path / "tiny.json")
    out = tmp_path / "BENCH.md"
    out.write_text("# Benchmarks\n\nkept\n", encoding="utf-8")
    command = [sys.executable, "-m", "qa", "bench", str(squad), "--scale", "40", "--questions", "3"]
    command += ["--work", str(tmp_path / "work"), "--out", str(out), "--document", str(REPO / "seeds" / SEED_NAME)]
    done = subprocess.run(command, capture_output=True, text=True, env=package_environment(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n\nkept\n")
    section = text.split("<!-- qa bench --scale: start -->", 1)[1].split("<!-- qa bench --scale: end -->", 1)[0]
    # 5 sentences a copy of the tiny corpus: 8 copies reach 40.
    assert "8 copies of the SQuAD dev corpus, 40 sentences" in section
    assert "| recall of the exact top 50 sentences (3 questions), mean / worst | 1.000 / 1.00 |" in section
    assert "| adding one document (33 sentences, real model, model loaded) |" in section
    assert "| the same from a fresh `qa build` process (imports and model load included) |" in section
    assert "| peak RSS while serving" in section and "MB" in section
    assert "scale serve: " in done.stderr and "scale add: " in done.stderr
    # The added document is gone again, so a second run measures the same corpus.
    assert not (tmp_path / "work" / "seeds" / "added.txt").exists()
    assert not (tmp_path / "work" / "seeds" / "added-by-a-fresh-process.txt").exists()


def test_scale_bench_refuses_bad_arguments(tmp_path: Path) -> None:
    squad = write_tiny_squad(tmp_path / "tiny.json")
    for extra, message in ((["--scale", "0"], "--scale must be at least 1"), (["--scale", "9", "--document", "nope.txt"], "does not exist")):
        done = subprocess.run(
            [sys.executable, "-m", "qa", "bench", str(squad), *extra, "--work", str(tmp_path / "w")],
            capture_output=True,
            text=True,
            env=package_environment(),
            timeout=120,
        )
        assert done.returncode != 0 and message in done.stderr, done.stderr
