"""Atomic file writes: a reader (or a resumed run) never sees half a file.

Every output is written to a temporary name in its final folder and renamed into place. The
temporary name starts with a dot and does not end in the final extension, so a crash leaves
nothing that looks like a tile or a plate, and the temporary is removed when the writer raises.
(Luigi's ``LocalTarget.temporary_path()`` does not fit: it refuses to replace an existing file,
which a rebuilt output must do, and leaves its temporary behind when the writer raises.)
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Write ``path`` through ``write(tmp)`` and a rename; parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text))


def write_fits_atomic(path: str | os.PathLike, hdu) -> None:
    """Write an astropy HDU or HDUList atomically, verifying it first."""
    write_atomic(path, lambda tmp: hdu.writeto(tmp, output_verify="exception"))


def link_or_copy_atomic(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """Make ``path`` a hard link to ``source`` (a copy where links are impossible), atomically.

    Outputs are replaced by rename, never rewritten in place, so the link keeps ``source``'s
    content even if ``source`` is rebuilt later, exactly as a copy would.
    """
    def link(tmp: Path) -> None:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)

    write_atomic(path, link)
