"""The web chat as a process on a loopback port, and clients that call it: for `qa loadtest` and the tests."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from qa.errors import QAError
from qa.measure.processes import package_environment, peak_rss_mb

APP_COMMAND = (sys.executable, "-m", "qa.web")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
STARTUP_SECONDS = 300.0  # model load, ONNX export and a first build on a busy machine
CALL_SECONDS = 600.0  # a bound on any one call; the longest is a rebuild through the app


def check_loopback(url: str) -> str:
    """The URL, normalised with a trailing slash, if it points at this machine; else QAError."""
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK_HOSTS:
        raise QAError(f"the load test only sends traffic to 127.0.0.1, not {host or url!r}")
    return url if url.endswith("/") else url + "/"


class RestClient:
    """Gradio's REST API (POST /gradio_api/call/NAME, then read its event stream), called with httpx.

    gradio_client checks for a finished event every 50 ms, which adds tens of
    milliseconds to each call; this client waits on the stream itself, so its
    timings are closer to the server's own.
    """

    def __init__(self, url: str) -> None:
        import httpx

        self.url = url
        self.http = httpx.Client(timeout=CALL_SECONDS)

    def predict(self, *data: Any, api_name: str) -> Any:
        name = api_name.strip("/")
        # ASCII JSON (escapes for everything else) can carry any str, lone surrogates included.
        body = json.dumps({"data": list(data)})
        started = self.http.post(
            f"{self.url}gradio_api/call/{name}", content=body, headers={"Content-Type": "application/json"}
        )
        started.raise_for_status()
        stream = self.http.get(f"{self.url}gradio_api/call/{name}/{started.json()['event_id']}")
        stream.raise_for_status()
        event = ""
        for line in stream.text.splitlines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event in ("complete", "error"):
                payload = json.loads(line.removeprefix("data: "))
                if event == "error":
                    raise QAError(f"the app answered with an error: {payload}")
                return payload[0] if len(payload) == 1 else payload
        raise QAError(f"the app's event stream ended without a result: {stream.text[:200]!r}")


class GradioClient:
    """gradio_client's Client, with every call bounded by CALL_SECONDS."""

    def __init__(self, url: str) -> None:
        from gradio_client import Client

        self.client = Client(url, verbose=False)

    def predict(self, *data: Any, api_name: str) -> Any:
        """The call's result; concurrent.futures.TimeoutError when the app takes longer than CALL_SECONDS."""
        return self.client.submit(*data, api_name=api_name).result(timeout=CALL_SECONDS)


def make_client(kind: str, url: str) -> GradioClient | RestClient:
    """A client of the app at `url` with a `predict(*data, api_name=...)` method, each call bounded in time."""
    return RestClient(url) if kind == "rest" else GradioClient(url)


class App:
    """The web chat (`python -m qa.web ARGS`) on a free 127.0.0.1 port, its output in `log`; `wait()`, then `stop()`."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> None:
        """Start the app with `env` over this process's environment (QA_SEEDS, QA_INDEX, ...)."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = log
        command = [*APP_COMMAND, "--host", "127.0.0.1", "--port", str(self.port), *args]
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                command,
                cwd=cwd,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**package_environment(env), "PYTHONUNBUFFERED": "1"},
            )

    def wait(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise QAError(f"the app exited with {self.process.returncode}; its log is {self.log}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise QAError(f"the app did not answer on {self.url} within {STARTUP_SECONDS:.0f} s; its log is {self.log}")

    def stop(self) -> float | None:
        """Stop the app; its peak resident memory in MB, read just before."""
        rss = peak_rss_mb(self.process.pid)
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return None if math.isnan(rss) else rss  # NaN: /proc is not readable here
