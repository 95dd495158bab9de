"""Media goes through Django's storage API (the file system by default, S3 when configured).

Workers that need a real path (ffmpeg, OpenCV) ask `local_path`, which hands out the
file itself on a file-system storage and a temporary copy anywhere else.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from django.core.files import File
from django.core.files.storage import default_storage


def sha256_of(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(1024 * 1024), b""):
        digest.update(chunk)
    handle.seek(0)
    return digest.hexdigest()


def sha256_of_path(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return sha256_of(handle)


@contextmanager
def local_path(field_file: Any) -> Iterator[Path]:
    """A path on this machine holding the file's bytes, for the duration of the block."""
    storage = field_file.storage
    try:
        yield Path(storage.path(field_file.name))
        return
    except NotImplementedError:
        pass
    suffix = Path(field_file.name).suffix
    fd, name = tempfile.mkstemp(suffix=suffix, prefix="cr-media-")
    try:
        with os.fdopen(fd, "wb") as out, storage.open(field_file.name, "rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def save_file(field_file: Any, name: str, path: str | Path) -> None:
    """Store the bytes at `path` under `name` (the storage may rename it); does not save the model."""
    with open(path, "rb") as handle:
        field_file.save(name, File(handle), save=False)


def delete_file(field_file: Any) -> None:
    if field_file and field_file.name and default_storage.exists(field_file.name):
        field_file.storage.delete(field_file.name)
