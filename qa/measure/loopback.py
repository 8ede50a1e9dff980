"""A real two-node Ray cluster on loopback addresses, started with the `ray` CLI, for the tests and the Ray benchmark.

The head node listens on 127.0.0.2 and the worker node on 127.0.0.3, each
with its own temporary folder, ports and token-authenticated control plane
(RAY_AUTH_MODE=token with one random RAY_AUTH_TOKEN, which `environment`
gives any driver). Each node is started in a process group of its own, so
that it is stopped, or killed mid-build, by its processes alone: never with
`ray stop`, which would stop every Ray node on the machine.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HEAD_IP = "127.0.0.2"
WORKER_IP = "127.0.0.3"


def free_port(host: str) -> int:
    """A port nothing listens on at `host` now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _ray_command() -> str:
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else "ray"


@dataclass
class Node:
    """One `ray start` and the process group its daemons run in."""

    ip: str
    folder: Path
    group: int = 0

    def processes(self) -> list[int]:
        """The live processes of this node (its process group), from /proc."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == self.group and _state(entry) != "Z":
                        found.append(int(entry.name))
                except (OSError, ValueError):
                    continue
        return found

    def kill(self) -> None:
        """SIGKILL every process of the node, as a machine that loses power would stop."""
        if self.group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.group, signal.SIGKILL)


def _state(entry: Path) -> str:
    try:
        return (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


@dataclass
class LoopbackCluster:
    """A head and a worker node on loopback, `cpus` CPUs each; `address` is the head's HOST:PORT."""

    cpus: int = 2
    object_store_mb: int = 300
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="qa-ray-", dir="/tmp")))
    head: Node = field(init=False)
    worker: Node = field(init=False)
    address: str = ""

    def __post_init__(self) -> None:
        # Short folders: Ray's socket paths inside them must stay under 108 bytes.
        self.head = Node(HEAD_IP, self.root / "h")
        self.worker = Node(WORKER_IP, self.root / "w")

    def environment(self) -> dict[str, str]:
        """The variables a driver of this cluster needs: the same authentication as the nodes."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token, "HF_HUB_OFFLINE": "1"}

    def _start(self, node: Node, arguments: list[str], first_worker_port: int) -> None:
        command = [
            _ray_command(),
            "start",
            *arguments,
            f"--node-ip-address={node.ip}",
            f"--num-cpus={self.cpus}",
            f"--object-store-memory={self.object_store_mb * 1024 * 1024}",
            f"--temp-dir={node.folder}",
            f"--min-worker-port={first_worker_port}",
            f"--max-worker-port={first_worker_port + 999}",
            "--disable-usage-stats",
        ]
        started = subprocess.run(
            command,
            env={**os.environ, **self.environment()},
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,
            check=False,
        )
        node.group = self._group_of(node)
        if started.returncode != 0:
            raise RuntimeError(f"`ray start` for {node.ip} failed:\n{started.stdout}\n{started.stderr}")

    def _group_of(self, node: Node) -> int:
        """The process group of the node's raylet, found by its temporary folder in its command line."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes().decode(errors="replace")
                if "raylet" in command and f"{node.folder}/" in command:
                    return os.getpgid(int(entry.name))
            except (OSError, ValueError):
                continue
        return 0

    def start(self) -> LoopbackCluster:
        """Start the head, then the worker node joined to it; stop both if either fails."""
        port = free_port(HEAD_IP)
        # Workers' ports below the kernel's ephemeral range (32768 up), where free_port finds the others.
        base = 10_000 + 2_000 * (os.getpid() % 10)
        self.address = f"{HEAD_IP}:{port}"
        try:
            self._start(
                self.head,
                [
                    "--head",
                    f"--port={port}",
                    "--include-dashboard=false",
                    f"--dashboard-port={free_port(HEAD_IP)}",
                    f"--dashboard-host={HEAD_IP}",
                    f"--ray-client-server-port={free_port(HEAD_IP)}",
                ],
                base,
            )
            self._start(self.worker, [f"--address={self.address}"], base + 1_000)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill both nodes' processes and remove their folders."""
        for node in (self.worker, self.head):
            node.kill()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (self.worker.processes() or self.head.processes()):
            time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LoopbackCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
