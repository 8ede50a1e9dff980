"""The manifest of a build: what it holds, which model made it, and a sha256 for each of its files.

On disk it is `manifest.json` in the build folder, written once by a build
and checked on every load (qa/storage/layout.py). A manifest of another
schema is refused before its fields are read, with the command to rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from qa.config import DEFAULT_MAX_FILE_MB
from qa.embed.encoder import ModelFingerprint

# Bump when how text is split (qa/split.py) or the stored records change: an
# index of another version is then rebuilt in full rather than mixed with
# records split differently. 3: records as columns, BM25 saved, no word
# windows, IVF-SQ8 vectors for large corpora. 4: BM25, word windows and texts
# in segments (qa/storage/segments.py).
SCHEMA_VERSION = 4


@dataclass(frozen=True)
class SourceEntry:
    """One indexed source: its bytes' sha256, format, title, PDF pages and how much of it was indexed."""

    sha256: str
    format: str
    title: str | None
    pages: int | None
    passages: int
    sentences: int


@dataclass(frozen=True)
class SkippedEntry:
    """A seed file the build did not index, and why; `sha256` is None for a file never read."""

    sha256: str | None
    reason: str
    duplicate_of: str | None = None


@dataclass(frozen=True)
class Counts:
    """How many sources, passages and sentences a build holds."""

    sources: int
    passages: int
    sentences: int


@dataclass(frozen=True)
class StoreEntry:
    """Which kind of vector store holds one record kind, and how many vectors an IVF store was trained on."""

    kind: str
    trained_on: int = 0


@dataclass(frozen=True)
class SegmentEntry:
    """One segment of a build (qa/storage/segments.py): its folder's name and how many rows its files hold.

    The rows include those of sources removed since the segment was written,
    which stay in its files, unreferenced, until it is merged.
    """

    name: str
    sentences: int
    passages: int
    windows: int


@dataclass(frozen=True)
class Manifest:
    """Everything a build records about itself; `files` is filled in as the build is written."""

    schema_version: int
    model: ModelFingerprint
    built_at: str
    counts: Counts
    sources: dict[str, SourceEntry]
    skipped: dict[str, SkippedEntry] = field(default_factory=dict)
    max_file_mb: float = DEFAULT_MAX_FILE_MB
    stores: dict[str, StoreEntry] = field(default_factory=dict)
    segments: list[SegmentEntry] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def with_files(self, files: dict[str, str]) -> Manifest:
        """This manifest listing the data files' checksums."""
        return replace(self, files=dict(files))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written as manifest.json."""
        return {
            "schema_version": self.schema_version,
            "model": self.model.to_dict(),
            "built_at": self.built_at,
            "counts": _plain(self.counts),
            "sources": {source: _plain(entry) for source, entry in self.sources.items()},
            "skipped": {source: _plain(entry) for source, entry in self.skipped.items()},
            "max_file_mb": self.max_file_mb,
            "stores": {name: _plain(entry) for name, entry in self.stores.items()},
            "segments": [_plain(entry) for entry in self.segments],
            "files": dict(self.files),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """The manifest a manifest.json holds.

        Raises:
            KeyError, TypeError, ValueError: a field is missing or of the wrong kind.
        """
        model = data["model"]
        return cls(
            schema_version=int(data["schema_version"]),
            model=ModelFingerprint(str(model["name"]), int(model["dimension"]), str(model["weights_sha256"])),
            built_at=str(data["built_at"]),
            counts=Counts(**data["counts"]),
            sources={source: SourceEntry(**entry) for source, entry in data["sources"].items()},
            # Written by every build since the size limit and skip reasons were recorded.
            skipped={source: SkippedEntry(**entry) for source, entry in data.get("skipped", {}).items()},
            max_file_mb=float(data.get("max_file_mb", DEFAULT_MAX_FILE_MB)),
            stores={name: StoreEntry(**entry) for name, entry in data["stores"].items()},
            segments=[SegmentEntry(**entry) for entry in data["segments"]],
            files={str(name): str(checksum) for name, checksum in data["files"].items()},
        )


def _plain(record: Any) -> dict[str, Any]:
    return {item.name: getattr(record, item.name) for item in fields(record)}
