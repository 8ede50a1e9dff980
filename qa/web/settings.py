"""The web chat's settings: where it listens and what its index panel may do, from flags over QA_* variables."""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from qa.config import Settings
from qa.errors import SettingsError
from qa.web.uploads import DEFAULT_MAX_UPLOAD_BYTES

DEFAULT_EXAMPLES = (
    "Who chairs the Senate Judiciary Committee?",
    "Where is fentanyl produced?",
    "Who is Paul Knierim?",
    "How much profit does a fentanyl investment yield?",
)

LOOPBACK_NAMES = {"localhost"}


@dataclass(frozen=True)
class AppConfig:
    """Where the app listens and what its index panel may do."""

    host: str
    port: int
    allow_upload: bool
    allow_rebuild: bool
    admin_password: str | None
    max_upload_bytes: int
    examples: tuple[str, ...]
    mcp: bool = False  # serve answer and retrieve as MCP tools too (gradio[mcp])

    @property
    def loopback(self) -> bool:
        if self.host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def changes_index(self) -> bool:
        """Whether users may change the index: uploads (which need rebuilds) or rebuilds were enabled."""
        return self.allow_upload or self.allow_rebuild

    @property
    def admin(self) -> bool:
        """Whether the index panel is shown: when enabled, on loopback or behind a password."""
        return self.changes_index and (self.loopback or bool(self.admin_password))

    @property
    def needs_login(self) -> bool:
        return not self.loopback and bool(self.admin_password)


def _parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Web chat over the seeds, with quoted and cited answers.")
    parser.add_argument("--host", default=environ.get("QA_HOST", "127.0.0.1"), help="address to listen on (QA_HOST)")
    # A string default goes through type=int too, so a bad QA_PORT gets argparse's message.
    parser.add_argument("--port", type=int, default=environ.get("QA_PORT", "7860"), help="port (QA_PORT)")
    parser.add_argument(
        "--allow-upload",
        action="store_true",
        default=environ.get("QA_ALLOW_UPLOAD", "") == "1",
        help="let users add seed files from the browser and rebuild (QA_ALLOW_UPLOAD=1)",
    )
    parser.add_argument(
        "--allow-rebuild",
        action="store_true",
        default=environ.get("QA_ALLOW_REBUILD", "") == "1",
        help="let users rebuild the index from the seeds folder (QA_ALLOW_REBUILD=1)",
    )
    parser.add_argument(
        "--mcp",
        action="store_true",
        default=environ.get("QA_MCP", "") == "1",
        help="also serve answer and retrieve as MCP tools at /gradio_api/mcp/ (QA_MCP=1)",
    )
    parser.add_argument(
        "--examples",
        type=Path,
        default=environ.get("QA_EXAMPLES") or None,
        help="file of example questions, one per line (QA_EXAMPLES)",
    )
    return parser


def _examples(path: Path | None) -> tuple[str, ...]:
    if path is None:
        return DEFAULT_EXAMPLES
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip())


def _max_upload_bytes(environ: Mapping[str, str]) -> int:
    """QA_MAX_UPLOAD_MB, but never above QA_MAX_FILE_MB: a larger upload would be saved, then skipped by every build."""
    value = environ.get("QA_MAX_UPLOAD_MB")
    only_the_limit = {name: environ[name] for name in ("QA_MAX_FILE_MB",) if name in environ}
    largest_seed = int(Settings.from_env(only_the_limit).max_file_mb * 1024 * 1024)
    if not value:
        return min(DEFAULT_MAX_UPLOAD_BYTES, largest_seed)
    megabytes = float(value)
    if not megabytes > 0:
        raise ValueError(f"QA_MAX_UPLOAD_MB={value!r} must be a number of megabytes above 0")
    return min(int(megabytes * 1024 * 1024), largest_seed)


def parse_config(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> AppConfig:
    """Command line over QA_* variables; exits with a message on a setting that cannot work."""
    env = os.environ if environ is None else environ
    parser = _parser(env)
    args = parser.parse_args(argv)
    try:
        examples = _examples(args.examples)
        max_bytes = _max_upload_bytes(env)
    except (OSError, ValueError, SettingsError) as error:
        parser.error(f"cannot use the examples file, QA_MAX_UPLOAD_MB or QA_MAX_FILE_MB: {error}")
    config = AppConfig(
        args.host,
        args.port,
        args.allow_upload,
        args.allow_rebuild,
        env.get("QA_ADMIN_PASSWORD") or None,
        max_bytes,
        examples,
        args.mcp,
    )
    if config.changes_index and not config.admin:
        parser.error(
            f"uploads and rebuilds on {config.host}, which is not loopback, need a password: set "
            "QA_ADMIN_PASSWORD (users then log in as 'admin'), or listen on 127.0.0.1"
        )
    return config
