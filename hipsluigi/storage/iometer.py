"""Bytes read and written, counted where hipsluigi moves them, by folder.

The artifact layer calls :func:`count_read` and :func:`count_write` for the bulk data it
moves: every file written through :func:`hipsluigi.storage.atomic.write_atomic` (plates,
mosaics, tiles, tables, records), plates and mosaics read (:func:`read_plate`'s callers), the
survey images read, the tiles the metadata reads back, and archive downloads. Small reads of
headers, tables and JSON are not counted. A task measures its own work with ``with IOMeter()
as meter:``; :func:`by_unit` then attributes the folders' bytes to storage units by path.

The counts are logical bytes (what the code asked for): the page cache may serve a read that
a cold disk would not, so they are the I/O a storage unit must sustain when nothing is cached.
A memory-mapped read counts what the caller says it touches (whole plates for most readers;
the interior's pages of a mosaic read as the deepest plate; the sampled overlap's pages for a
difference fit).
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from functools import lru_cache

_lock = threading.Lock()
_active: list[IOMeter] = []


class IOMeter:
    """Counts every :func:`count_read` and :func:`count_write` of this process (all threads)
    while its ``with`` block runs.

    Attributes
    ----------
    read, written : dict of str to int
        Bytes by folder (the absolute path of the file's parent folder, as given).
    """

    def __init__(self) -> None:
        self.read: dict[str, int] = defaultdict(int)
        self.written: dict[str, int] = defaultdict(int)

    def __enter__(self) -> IOMeter:
        with _lock:
            _active.append(self)
        return self

    def __exit__(self, *exc) -> None:
        with _lock:
            _active.remove(self)


def _add(kind: str, path: str | os.PathLike, nbytes: int) -> None:
    if not _active or nbytes <= 0:
        return
    folder = os.path.dirname(os.path.abspath(path))
    with _lock:
        for meter in _active:
            getattr(meter, kind)[folder] += int(nbytes)


def count_read(path: str | os.PathLike, nbytes: int) -> None:
    """Count ``nbytes`` read from file ``path`` in every open :class:`IOMeter`."""
    _add("read", path, nbytes)


def count_write(path: str | os.PathLike, nbytes: int) -> None:
    """Count ``nbytes`` written to file ``path`` in every open :class:`IOMeter`."""
    _add("written", path, nbytes)


@lru_cache(maxsize=4096)
def _real(folder: str) -> str:
    return os.path.realpath(folder)


def unit_label(k: int) -> str:
    """The name of storage unit ``k`` in records and summaries (``unit0`` is the base)."""
    return f"unit{k}"


#: Bytes outside every storage unit: the survey's own files (inputs read where they lie).
OUTSIDE = "outside"


def by_unit(counts: Mapping[str, int], units: Sequence[str]) -> dict[str, int]:
    """Bytes by storage unit: ``{"unit0": n, ..., "outside": m}`` (zero entries left out).

    Parameters
    ----------
    counts : mapping of str to int
        Bytes by folder (:attr:`IOMeter.read` or :attr:`IOMeter.written`).
    units : sequence of str
        The storage units' folders, in ``[hips] storage`` order. A folder belongs to the
        deepest unit holding it, links resolved (a unit may sit inside another).
    """
    roots = sorted(((_real(str(u)).rstrip(os.sep) + os.sep, k) for k, u in enumerate(units)),
                   key=lambda item: -len(item[0]))
    out: dict[str, int] = defaultdict(int)
    for folder, n in counts.items():
        real = _real(folder) + os.sep
        label = next((unit_label(k) for root, k in roots if real.startswith(root)), OUTSIDE)
        out[label] += n
    return {k: v for k, v in sorted(out.items()) if v}


__all__ = ["IOMeter", "OUTSIDE", "by_unit", "count_read", "count_write", "unit_label"]
