"""A build whose new files are read, split and embedded elsewhere (qa/cluster/): the seam, the shards, the edges.

The pipeline runs in this process here (tests/ray_builds.py InProcessBuild);
tests/system/test_ray.py runs it on a real two-node Ray cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from builds import DOCS, live_state, write_docs
from conftest import REPO
from ray_builds import InProcessBuild, assert_same_index
from samples import two_page_pdf

from qa.cluster.shards import Shards
from qa.config import Settings
from qa.embed.encoder import Encoder
from qa.errors import SettingsError
from qa.indexing import build_index
from qa.measure.loopback import free_port


def mixed_seeds(folder: Path) -> Path:
    """The small documents, a PDF, an unreadable PDF and a duplicate: every way reading can go."""
    write_docs(folder, DOCS)
    (folder / "report.pdf").write_bytes(two_page_pdf())
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7 not really")
    (folder / "zz-copy.txt").write_bytes((folder / "beta.txt").read_bytes())
    return folder


def remote(encoder: Encoder, tmp_path: Path, **options: object) -> InProcessBuild:
    return InProcessBuild(encoder, None, Shards(tmp_path / "shards", encoder.fingerprint), **options)


def test_a_build_made_elsewhere_equals_a_local_one(tmp_path: Path, encoder: Encoder) -> None:
    seeds = mixed_seeds(tmp_path / "seeds")
    local = build_index(seeds, tmp_path / "local", encoder)
    cluster = remote(encoder, tmp_path)
    ours = build_index(seeds, tmp_path / "ours", encoder, remote=cluster)
    assert_same_index(ours, local)
    assert ours.report is not None and local.report is not None
    assert ours.report.added == local.report.added and ours.report.skipped == local.report.skipped
    # The duplicate and the files the build never needed to read are not sent.
    assert sorted(cluster.embedded) == ["alpha.txt", "beta.txt", "broken.pdf", "notes/gamma.md", "report.pdf"]


def test_an_incremental_build_sends_only_new_and_changed_files(tmp_path: Path, encoder: Encoder) -> None:
    seeds = mixed_seeds(tmp_path / "seeds")
    first = remote(encoder, tmp_path)
    build_index(seeds, tmp_path / "ours", encoder, remote=first)
    first.forget()  # as qa.build_index does once a build has committed
    build_index(seeds, tmp_path / "local", encoder)
    (seeds / "alpha.txt").write_text("Alpha river is dry this year.\n", encoding="utf-8")
    (seeds / "new.md").write_text("# New\n\nA new harbour opened in May.\n", encoding="utf-8")
    cluster = remote(encoder, tmp_path)
    ours = build_index(seeds, tmp_path / "ours", encoder, remote=cluster)
    assert sorted(cluster.embedded) == ["alpha.txt", "broken.pdf", "new.md"]  # a skipped file is read again, as here
    assert ours.report is not None and ours.report.changed == ["alpha.txt"] and ours.report.added == ["new.md"]
    assert_same_index(ours, build_index(seeds, tmp_path / "local", encoder))  # incremental, as ours


def test_a_failed_build_elsewhere_leaves_the_live_index_and_its_finished_documents(
    tmp_path: Path, encoder: Encoder
) -> None:
    seeds = write_docs(tmp_path / "seeds", DOCS)
    index_dir = tmp_path / "index"
    build_index(seeds, index_dir, encoder)
    before = live_state(index_dir, encoder)
    write_docs(seeds, {f"more-{n}.txt": f"Harbour {n} has {n} cranes.\n" for n in range(4)})
    with pytest.raises(RuntimeError):
        build_index(seeds, index_dir, encoder, remote=remote(encoder, tmp_path, fail_after=2))
    assert live_state(index_dir, encoder) == before
    retry = remote(encoder, tmp_path)
    index = build_index(seeds, index_dir, encoder, remote=retry)
    assert len(retry.embedded) == 2  # the two finished before the failure come from their shards
    assert len(index.manifest.sources) == 7
    retry.forget()
    assert not any((tmp_path / "shards").iterdir())


def test_a_duplicate_of_a_file_the_cluster_cannot_read_is_read_itself(tmp_path: Path, encoder: Encoder) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    text = b"These bytes are no PDF but they are good text.\n"
    (seeds / "a.pdf").write_bytes(text)
    (seeds / "b.txt").write_bytes(text)
    (seeds / "c.txt").write_bytes(text)
    ours = build_index(seeds, tmp_path / "ours", encoder, remote=remote(encoder, tmp_path))
    assert_same_index(ours, build_index(seeds, tmp_path / "local", encoder))  # incremental, as ours
    assert set(ours.manifest.sources) == {"b.txt"} and ours.manifest.skipped["c.txt"].duplicate_of == "b.txt"


def test_the_ray_address_setting_is_checked() -> None:
    assert Settings.from_env({"QA_RAY_ADDRESS": "auto"}).ray_address == "auto"
    assert Settings.from_env({"QA_RAY_ADDRESS": "10.0.0.5:6379"}).ray_address == "10.0.0.5:6379"
    assert Settings.from_env({}).ray_address is None
    for bad in ("10.0.0.5", "ray://10.0.0.5:10001", "head:99999", "head:0", "a b:1"):
        with pytest.raises(SettingsError, match="QA_RAY_ADDRESS"):
            Settings.from_env({"QA_RAY_ADDRESS": bad})


def qa_process(
    *arguments: str, prelude: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m qa ARGUMENTS` in a fresh interpreter, after `prelude`."""
    script = f"import sys\n{prelude}\nfrom qa.cli import main\nsys.exit(main(sys.argv[1:]))"
    environment = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", script, *arguments],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )


def test_building_on_ray_without_ray_says_what_to_install(tmp_path: Path) -> None:
    seeds = write_docs(tmp_path / "seeds", DOCS)
    done = qa_process(
        "build",
        "--seeds",
        str(seeds),
        "--index",
        str(tmp_path / "index"),
        "--ray",
        "auto",
        prelude="sys.modules['ray'] = None  # as if Ray were not installed",
    )
    assert done.returncode == 1
    assert "requirements-ray.txt" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "index").exists()


def test_importing_qa_and_a_local_build_never_import_ray(tmp_path: Path) -> None:
    seeds = write_docs(tmp_path / "seeds", DOCS)
    check = (
        "import atexit\natexit.register(lambda: print('ray imported' if 'ray' in sys.modules else 'no ray'))\nimport qa"
    )
    done = qa_process("build", "--seeds", str(seeds), "--index", str(tmp_path / "index"), prelude=check)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("no ray")


def test_an_unreachable_cluster_is_reported_at_once(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    seeds = write_docs(tmp_path / "seeds", DOCS)
    address = f"127.0.0.1:{free_port('127.0.0.1')}"  # nothing listens there
    done = qa_process("build", "--seeds", str(seeds), "--index", str(tmp_path / "index"), "--ray", address)
    assert done.returncode == 1
    assert f"cannot reach a Ray cluster at {address}" in done.stderr and "Traceback" not in done.stderr


def test_a_bad_ray_option_is_a_one_line_error(tmp_path: Path) -> None:
    done = qa_process("build", "--seeds", str(tmp_path), "--ray", "nowhere")
    assert done.returncode == 1 and "--ray='nowhere' is not auto or the HOST:PORT" in done.stderr
