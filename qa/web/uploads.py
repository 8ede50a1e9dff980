"""Save uploaded seed files into the seeds folder, refusing anything unsafe with a reason.

An upload keeps its own name, checked rather than rewritten: a name with a
folder in it, an unsupported extension, a name that is already taken or a file
over the size cap is refused, and nothing is written. An accepted file is
copied to a hidden temporary file inside the seeds folder and then linked to
its name, so a half-written file never appears as a seed and an existing file
is never replaced, even by a concurrent upload of the same name.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import unicodedata
from pathlib import Path

from qa.errors import UploadRefused
from qa.ingest import seeds as ingest
from qa.records import UploadOutcome

DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# Letters and digits of any script, and a few punctuation marks that are safe
# in a file name on every platform; everything else (separators, control
# characters, quotes, shell metacharacters) makes the name refused.
_SAFE_NAME = re.compile(r"[\w][\w .()+,-]*")
_MAX_NAME_CHARS = 200


def allowed_suffixes() -> tuple[str, ...]:
    """The extensions ingest reads, looked up at call time so new formats are picked up."""
    return tuple(ingest.SUPPORTED_SUFFIXES)


def check_name(name: str) -> str:
    """The upload's file name if it is safe to create in the seeds folder, else UploadRefused."""
    shown = repr(name)
    if "/" in name or "\\" in name or name in {".", ".."} or "\0" in name:
        raise UploadRefused(f"{shown} names a folder or a path; upload a plain file name")
    normal = unicodedata.normalize("NFC", name)
    if len(normal) > _MAX_NAME_CHARS or not _SAFE_NAME.fullmatch(normal) or normal != normal.strip():
        raise UploadRefused(
            f"{shown} is not a safe file name; use letters, digits, spaces and . _ - ( ) + , "
            f"(starting with a letter or digit, at most {_MAX_NAME_CHARS} characters)"
        )
    suffixes = allowed_suffixes()
    if Path(normal).suffix.lower() not in suffixes:
        raise UploadRefused(f"{shown} is not a supported type; upload {', '.join(suffixes)} files")
    return normal


def save_upload(seeds_dir: Path, name: str, uploaded: Path, max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> Path:
    """Copy the uploaded file into seeds_dir under `name` and return the new path.

    Raises:
        UploadRefused: unsafe or unsupported name, file too large, or name already taken.
    """
    safe = check_name(name)
    size = uploaded.stat().st_size
    if size > max_bytes:
        raise UploadRefused(f"{name!r} is {size:,} bytes; the limit is {max_bytes:,} bytes")
    target = seeds_dir / safe
    # check_name allows no separators, but a symlinked seeds folder or an odd
    # filesystem must still never lead outside it.
    if target.parent.resolve() != seeds_dir.resolve():
        raise UploadRefused(f"{name!r} would be written outside {seeds_dir}")
    if target.exists() or target.is_symlink():
        raise UploadRefused(f"{safe!r} already exists in the seeds folder; rename the file or remove the old one")
    _copy_then_link(uploaded, target)
    return target


def _copy_then_link(uploaded: Path, target: Path) -> None:
    temporary = target.parent / f".upload-{secrets.token_hex(8)}.part"
    try:
        with uploaded.open("rb") as source, temporary.open("xb") as copy:
            shutil.copyfileobj(source, copy)
            copy.flush()
            os.fsync(copy.fileno())
        try:
            os.link(temporary, target)  # fails if the name was taken meanwhile: never overwrites
        except FileExistsError as error:
            raise UploadRefused(f"{target.name!r} already exists in the seeds folder; rename the file") from error
    finally:
        temporary.unlink(missing_ok=True)


def save_uploads(
    seeds_dir: Path, files: list[tuple[str, Path]], max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
) -> list[UploadOutcome]:
    """Save each (name, uploaded path); one refusal does not stop the others."""
    outcomes = []
    for name, uploaded in files:
        try:
            saved = save_upload(seeds_dir, name, uploaded, max_bytes)
        except UploadRefused as error:
            outcomes.append(UploadOutcome(name, False, str(error)))
        else:
            outcomes.append(UploadOutcome(saved.name, True))
    return outcomes
