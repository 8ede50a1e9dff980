"""Kill `python -m qa build --full` with SIGKILL at random moments inside the build, many times over.

    python tests/system/kill_builds.py --times 20 [--seeds seeds] [--seed 0]

After each kill the index must load (manifest checksums pass) and be either
the previous build or a complete new one, with every sentence a slice of its
source text; a final build must remove every leftover temporary folder.
Prints one line per kill and a summary; exits 1 if anything did not hold.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from builds import build_holds_the_lock  # noqa: E402

from qa import indexing  # noqa: E402  (after the repository is on the path)
from qa.embed.encoder import Encoder  # noqa: E402
from qa.reader import index  # noqa: E402
from qa.storage import layout  # noqa: E402

LOCK_WAIT_SECONDS = 300.0


def start_build(seeds: Path, index_dir: Path) -> tuple[subprocess.Popen[bytes], float]:
    """Start a full build; return it once it holds the lock, with the time that took."""
    command = [sys.executable, "-m", "qa", "build", "--full", "--seeds", str(seeds), "--index", str(index_dir)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    began = time.monotonic()
    # Read from /proc/locks: probing by taking the lock could make the build's own attempt fail.
    while not build_holds_the_lock(index_dir, process.pid) and process.poll() is None:
        if time.monotonic() - began > LOCK_WAIT_SECONDS:
            process.kill()
            raise SystemExit("the build never took the lock")
        time.sleep(0.01)
    return process, time.monotonic() - began


def check(index_dir: Path, encoder: Encoder, allowed: set[str]) -> str:
    """'' when the live index loads, is one of `allowed` builds or a new one, and slices its texts; else why not."""
    try:
        loaded = index.load_index(index_dir, encoder)
    except Exception as error:  # noqa: BLE001  (any failure to load is what this script looks for)
        return f"does not load: {error}"
    for sentence in loaded.sentences:
        if loaded.source_text(sentence.source)[sentence.start : sentence.end] != sentence.text:
            return f"{sentence.id} is not a slice of {sentence.source}"
    return "" if loaded.path.name in allowed or loaded.path.name.startswith("build-") else "unexpected build"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--times", type=int, default=20)
    parser.add_argument("--seeds", type=Path, default=REPO / "seeds")
    parser.add_argument("--seed", type=int, default=0, help="random.Random seed for the kill moments")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qa-kill-builds-"))
    seeds, index_dir = work / "seeds", work / "index"
    shutil.copytree(args.seeds, seeds)
    encoder = Encoder()
    indexing.build_index(seeds, index_dir, encoder)

    # One uninterrupted build: how long it runs once it holds the lock.
    process, _ = start_build(seeds, index_dir)
    began = time.monotonic()
    process.wait()
    inside = time.monotonic() - began
    print(f"a full build holds the lock for {inside:.2f} s (model load, embedding, writing); killing at random "
          "moments within that")

    rng = random.Random(args.seed)
    failures, killed, leftovers_seen = 0, 0, 0
    for number in range(1, args.times + 1):
        before = layout.live_build(index_dir).name
        process, _ = start_build(seeds, index_dir)
        # Up to 5% past a typical build's end, so some kills come after a finished build.
        delay = rng.uniform(0, 1.05 * inside)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed += process.returncode == -signal.SIGKILL
        leftovers = [p.name for p in index_dir.iterdir() if p.name.startswith(".tmp-")]
        leftovers_seen += bool(leftovers)
        problem = check(index_dir, encoder, {before})
        failures += bool(problem)
        live = layout.live_build(index_dir).name
        state = "same build" if live == before else "new build"
        print(f"{number:3d}: killed {delay:5.2f} s in (exit {process.returncode}), {state}, "
              f"{len(leftovers)} temp left, {problem or 'loads and slices'}")

    final = indexing.build_index(seeds, index_dir, encoder)
    remaining = [p.name for p in index_dir.iterdir() if p.name.startswith(".tmp-")]
    print(f"{args.times} kills ({killed} mid-build), {failures} failed to load or slice; "
          f"temp folders left after {leftovers_seen} kills, {len(remaining)} after the next build ({final.path.name})")
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failures or remaining else 0


if __name__ == "__main__":
    sys.exit(main())
