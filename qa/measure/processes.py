"""Child processes of the tools: this qa package on their path, and their peak memory."""

from __future__ import annotations

import os
import re
import resource
from pathlib import Path

# The folder holding the qa package, put first on a child's PYTHONPATH so that
# it runs this very code, installed or from a checkout.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def package_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with `env` over it, and this qa package first on PYTHONPATH."""
    merged = {**os.environ, **(env or {})}
    paths = [str(PACKAGE_ROOT), *filter(None, merged.get("PYTHONPATH", "").split(os.pathsep))]
    return {**merged, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def peak_rss_mb(pid: int | None = None) -> float:
    """The peak resident memory in MB of this process, or of process `pid`.

    The kernel's VmHWM, which starts afresh at exec; ru_maxrss would carry over
    the high-water mark of the benchmark process a child was forked from.
    """
    try:
        with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as status:
            match = re.search(r"VmHWM:\s+(\d+)", status.read())
        if match:
            return int(match.group(1)) / 1024
    except OSError:
        pass
    if pid is not None:
        return float("nan")  # another process's memory is only in /proc
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
