"""Atomic, verified file writes: a reader (or a resumed run) never sees half a file.

Every output is written to a temporary name in its final folder, checked to be whole, and
renamed into place. The temporary name starts with a dot and does not end in the final
extension, so a crash leaves nothing that looks like a tile or a plate, and the temporary is
removed when the writer raises. (Luigi's ``LocalTarget.temporary_path()`` does not fit: it
refuses to replace an existing file, which a rebuilt output must do, and leaves its temporary
behind when the writer raises.)

"Whole" means the temporary holds every byte meant for it: a full disk may cut a write short
without an error (``write(2)`` returns fewer bytes), and numpy's ``tofile``, which astropy writes
arrays with, ignores an error at ``fclose``. So each helper knows the size its file must have,
checks it before the rename, and raises ``OSError`` naming the file otherwise.
"""

from __future__ import annotations

import errno
import locale
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from hipsluigi.storage.iometer import count_write


def write_atomic(path: str | os.PathLike, write: Callable[[Path], int | None], *,
                 fsync: bool = False) -> None:
    """Write ``path`` through ``write(tmp)``, a size check and a rename; parent folders are
    created.

    Parameters
    ----------
    path : path-like
        The final file.
    write : callable
        ``write(tmp)`` writes the whole file at ``tmp`` and returns its size in bytes, checked
        against the temporary before the rename; or returns None when it cannot tell (a
        library's writer through a Python file object, which raises on a short write itself).
        Not ``Path.write_text``, which returns a count of characters.
    fsync : bool, optional
        Flush the file to the disk before the rename, so that a crash of the machine cannot
        leave the new name on an empty or partial file, and a write error the file system
        reports late (network file systems, quotas) fails here. Off by default for bulk data,
        where it would slow the default map noticeably (README, "Performance"); a tile lost
        in a crash is caught by the metadata step's size check of every tile a manifest
        lists. The small records written as text (tile manifests and every other completion
        record) are flushed (:func:`write_text_atomic`).

    Raises
    ------
    OSError
        The writer's own error, or a temporary of another size than the writer reported (the
        file is then left as it was and no temporary remains).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        size = write(tmp)
        if size is not None:
            check_file_size(tmp, size, name=path)
        if fsync:
            _fsync(tmp)
        info = os.stat(tmp)
        # A hard link to an existing file (link_or_copy_atomic) moves no data.
        count_write(path, 0 if info.st_nlink > 1 else info.st_size)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_file_size(path: str | os.PathLike, size: int, *, name: str | os.PathLike | None = None
                    ) -> None:
    """Raise ``OSError`` unless ``path`` exists and holds exactly ``size`` bytes.

    ``name`` is the file the message names (the final path of a temporary); ``path`` by
    default.
    """
    try:
        found = os.stat(path).st_size
    except FileNotFoundError:
        raise OSError(errno.ENOENT, f"{name or path}: missing, expected {size} bytes") from None
    if found != size:
        raise OSError(errno.EIO, f"{name or path}: {found} bytes written of {size} "
                                 f"({'short write: disk full?' if found < size else 'too long'})")


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` atomically, its size checked (see :func:`write_atomic`)."""
    write_atomic(path, lambda tmp: tmp.write_bytes(data), fsync=fsync)


def write_text_atomic(path: str | os.PathLike, text: str, *, fsync: bool = True) -> None:
    """Write ``text`` to ``path`` atomically in the encoding ``open()`` uses by default (the
    locale's, UTF-8 in Python's UTF-8 mode), its size checked, and flushed to the disk by
    default: text files are the small completion records (tile manifests, difference fits,
    markers), a few milliseconds each."""
    write_bytes_atomic(path, text.encode(locale.getpreferredencoding(False)), fsync=fsync)


def write_fits_atomic(path: str | os.PathLike, hdu, *, fsync: bool = False) -> None:
    """Write an astropy HDU or HDUList atomically, verifying it first; the temporary must read
    back as every HDU written, and end where the last one's data ends."""
    from astropy.io import fits

    # an extension HDU is written after an empty primary one
    nhdus = (len(hdu) if isinstance(hdu, fits.HDUList)
             else 1 if isinstance(hdu, fits.PrimaryHDU) else 2)

    def write(tmp: Path) -> None:
        hdu.writeto(tmp, output_verify="exception")
        _check_fits_extent(tmp, nhdus, path)

    write_atomic(path, write, fsync=fsync)


def _check_fits_extent(tmp: Path, nhdus: int, name: str | os.PathLike) -> None:
    import warnings

    from astropy.io import fits
    from astropy.utils.exceptions import AstropyUserWarning

    # astropy warns, and drops the HDU, where a file is cut: this check says so instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        try:
            with fits.open(tmp, memmap=False, lazy_load_hdus=False) as hdul:
                found = len(hdul)
                info = hdul.fileinfo(found - 1) if found else None
        except (OSError, ValueError, IndexError) as err:
            raise OSError(errno.EIO, f"{name}: the file written does not read back as FITS "
                                     f"({err})") from err
    if found != nhdus:
        raise OSError(errno.EIO, f"{name}: {found} HDUs read back of {nhdus} written "
                                 "(short write: disk full?)")
    check_file_size(tmp, info["datLoc"] + info["datSpan"], name=name)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def link_or_copy_atomic(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """Make ``path`` a hard link to ``source`` (a copy where links are impossible), atomically.

    Outputs are replaced by rename, never rewritten in place, so the link keeps ``source``'s
    content even if ``source`` is rebuilt later, exactly as a copy would.
    """
    def link(tmp: Path) -> int:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        return os.stat(source).st_size

    write_atomic(path, link)
