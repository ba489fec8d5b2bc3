"""A download cache for archive files (FITS images) spread over the storage units.

:class:`DownloadCache` keeps each file under its *name* in one of several folders (one per
storage unit, chosen by a stable hash of the name, so the files spread over the units and every
process finds a file in the same place). A download goes to ``<name>.part`` and is renamed only
once it is whole and looks like FITS; a cut download is resumed with an HTTP ``Range`` request;
connection errors, HTTP 5xx, 408, 429 and bad bodies (an HTML error page, a short file) are
retried with exponential backoff, then reported as a :class:`~hipsluigi.surveys.base.BadImageError`
naming the file, the URL and the last reason. Two processes or threads wanting the same file
download it once (a ``fcntl.flock`` lock file per name).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import requests
import urllib3

from hipsluigi.storage.iometer import count_write
from hipsluigi.surveys.base import BadImageError

#: Retries after the first attempt.
DEFAULT_RETRIES = 4
#: Seconds before the first retry; doubled before each further one.
DEFAULT_BACKOFF = 2.0
#: Seconds to wait for a connection or for the next bytes of a body.
DEFAULT_TIMEOUT = 60.0
#: Longest wait between two attempts, seconds.
MAX_BACKOFF = 120.0

FITS_BLOCK = 2880
_CHUNK = 1 << 20
_RETRIED_STATUS = frozenset({408, 429})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class _Transient(Exception):
    """An attempt failed in a way another attempt may not."""


class _Permanent(Exception):
    """An attempt failed in a way every attempt will (HTTP 4xx)."""


def stable_hash(name: str) -> int:
    """A hash of ``name`` that is the same in every process and Python version (not ``hash``)."""
    return int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:8], "big")


def fits_problem(path: Path, size: int | None = None) -> str | None:
    """Why a file is not a whole FITS file, or ``None`` if it looks whole.

    Checks the size (``size`` bytes if given, else a whole number of 2880-byte FITS blocks),
    the ``SIMPLE  =`` card that opens every FITS file (so an HTML error page never passes), and
    that the file holds the whole primary HDU its header announces (``BITPIX``, ``NAXISn``,
    ``PCOUNT``, ``GCOUNT``). Extensions after the primary HDU are not checked.

    Parameters
    ----------
    path : pathlib.Path
        The file.
    size : int, optional
        Its expected length in bytes.

    Returns
    -------
    str or None
        A short reason, or ``None``.
    """
    length = path.stat().st_size
    if length == 0:
        return "empty file"
    with open(path, "rb") as f:
        head = f.read(FITS_BLOCK)
        if not head.startswith(b"SIMPLE  ="):
            text = head[:200].lstrip().lower()
            if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<")):
                return "an HTML or XML page, not FITS"
            return f"not FITS (starts with {head[:16]!r})"
        if size is not None and length != size:
            return f"{length} bytes, expected {size}"
        if length % FITS_BLOCK:
            return f"{length} bytes: not a whole number of {FITS_BLOCK}-byte FITS blocks"
        cards: dict[str, str] = {}
        block = head
        header_bytes = 0
        while True:
            if len(block) < FITS_BLOCK:
                return "truncated in the primary header (no END card)"
            header_bytes += FITS_BLOCK
            for k in range(0, FITS_BLOCK, 80):
                card = block[k:k + 80].decode("ascii", "replace")
                key = card[:8].strip()
                if key == "END":
                    return _primary_hdu_problem(cards, header_bytes, length)
                if card[8:10] == "= " and key not in cards:
                    cards[key] = card[10:].split("/", 1)[0].strip()
            block = f.read(FITS_BLOCK)


def _primary_hdu_problem(cards: dict[str, str], header_bytes: int, length: int) -> str | None:
    try:
        bitpix = int(cards["BITPIX"])
        naxis = int(cards["NAXIS"])
        dims = [int(cards[f"NAXIS{n}"]) for n in range(1, naxis + 1)]
        pcount = int(cards.get("PCOUNT", "0"))
        gcount = int(cards.get("GCOUNT", "1"))
    except (KeyError, ValueError) as err:
        return f"unreadable primary header ({err})"
    count = 0
    if naxis > 0:
        count = 1
        for d in dims:
            count *= d
    data = abs(bitpix) // 8 * gcount * (pcount + count)
    needed = header_bytes + -(-data // FITS_BLOCK) * FITS_BLOCK
    if length < needed:
        return f"truncated: {length} bytes, the primary HDU needs {needed}"
    return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing). Each call opens its own
    file description, so the lock excludes other threads of this process as well as other
    processes."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class DownloadCache:
    """Archive files kept on disk under their names, each downloaded once.

    Parameters
    ----------
    dirs : sequence of path-like
        The cache's folders (one per storage unit); the file ``name`` lives in
        ``dirs[stable_hash(name) % len(dirs)]``. Created when needed.
    retries : int, optional
        Attempts after the first one, for connection errors, HTTP 5xx, 408 and 429, and bodies
        that are not a whole FITS file.
    backoff : float, optional
        Seconds before the first retry, doubled before each further one (at most
        :data:`MAX_BACKOFF`); :data:`DEFAULT_BACKOFF` if not given.
    timeout : float, optional
        Seconds to wait for a connection or for the next bytes of a body.
    """

    def __init__(self, dirs: Sequence[str | os.PathLike], retries: int = DEFAULT_RETRIES,
                 backoff: float | None = None, timeout: float = DEFAULT_TIMEOUT):
        if not dirs:
            raise ValueError("a download cache needs at least one folder")
        self.dirs = [Path(d) for d in dirs]
        self.retries = int(retries)
        self.backoff = DEFAULT_BACKOFF if backoff is None else float(backoff)
        self.timeout = float(timeout)
        self._local = threading.local()

    def path(self, name: str) -> Path:
        """Where the file ``name`` is (or will be) kept."""
        if not name or "/" in name or name in (".", "..") or "\0" in name:
            raise ValueError(f"{name!r} is not a plain file name")
        return self.dirs[stable_hash(name) % len(self.dirs)] / name

    def fetch(self, url: str, name: str, size: int | None = None) -> Path:
        """The local copy of ``url``, downloaded unless a whole copy is already there.

        Parameters
        ----------
        url : str
            Where the file is (http or https).
        name : str
            The file's name in the cache (unique per file: the archive's file name).
        size : int, optional
            The file's expected length in bytes, when known.

        Returns
        -------
        pathlib.Path
            The cached file.

        Raises
        ------
        BadImageError
            Naming the file, the URL and the reason, when the download failed on every attempt
            or failed for good (HTTP 4xx other than 408 and 429).
        """
        path = self.path(name)
        if path.exists() and fits_problem(path, size) is None:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path.with_name(name + ".lock")):
            # Another process may have finished it while this one waited for the lock.
            if path.exists():
                if fits_problem(path, size) is None:
                    return path
                path.unlink()
            return self._download(url, name, path, size)

    def _download(self, url: str, name: str, path: Path, size: int | None) -> Path:
        part = path.with_name(name + ".part")
        validator: dict[str, str] = {}
        attempts = self.retries + 1
        last = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(MAX_BACKOFF, self.backoff * 2 ** (attempt - 1)))
            try:
                self._get(url, part, validator)
            except _Transient as err:
                last = str(err)
                continue
            except _Permanent as err:
                raise BadImageError(f"{name}: download failed ({err}) from {url}") from None
            problem = fits_problem(part, size)
            if problem is not None:
                # A bad whole body is not resumed from: the next attempt starts afresh.
                part.unlink(missing_ok=True)
                last = problem
                continue
            count_write(path, os.path.getsize(part))
            os.replace(part, path)
            return path
        raise BadImageError(f"{name}: download failed ({last}) after {attempts} attempts "
                            f"from {url}")

    def _session(self) -> requests.Session:
        # One session (connection pool) per thread: requests' sessions are not thread-safe.
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _get(self, url: str, part: Path, validator: dict[str, str]) -> None:
        """One attempt: append the rest of ``url`` to ``part`` (or write it afresh)."""
        offset = part.stat().st_size if part.exists() else 0
        # Compressed transfer would make Content-Length and Range count other bytes.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if validator:
                # The rest of the same file, or else the whole (new) file with a 200.
                headers["If-Range"] = validator.get("etag") or validator["last-modified"]
        try:
            with self._session().get(url, headers=headers, stream=True,
                                     timeout=self.timeout) as response:
                status = response.status_code
                if status == 416 and offset:
                    # Nothing left to send: the .part file may already be whole.
                    whole = re.match(r"bytes\s+\*/(\d+)", response.headers.get("Content-Range",
                                                                                 ""))
                    if whole is not None and int(whole.group(1)) == offset:
                        return
                    part.unlink(missing_ok=True)
                    raise _Transient("the server refused to resume (HTTP 416)")
                if status >= 500 or status in _RETRIED_STATUS:
                    raise _Transient(f"HTTP {status} {response.reason or ''}".rstrip())
                if status >= 400:
                    raise _Permanent(f"HTTP {status} {response.reason or ''}".rstrip())
                if status == 206:
                    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                    if match is None or int(match.group(1)) != offset:
                        part.unlink(missing_ok=True)
                        raise _Transient("the server resumed at another offset")
                    total = None if match.group(3) == "*" else int(match.group(3))
                    mode = "ab"
                else:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    offset, mode = 0, "wb"
                for key in ("etag", "last-modified"):
                    if response.headers.get(key):
                        validator[key] = response.headers[key]
                with open(part, mode) as out:
                    _copy_body(response.raw, out)
                    out.flush()
                    os.fsync(out.fileno())
        except (requests.ConnectionError, requests.Timeout) as err:
            raise _Transient(f"connection error: {_short(err)}") from None
        except requests.RequestException as err:
            # A malformed URL, too many redirects: no attempt will do better.
            raise _Permanent(f"{type(err).__name__}: {_short(err)}") from None
        got = part.stat().st_size
        if total is not None and got != total:
            raise _Transient(f"{got} of {total} bytes received")


def _copy_body(raw: urllib3.HTTPResponse, out) -> None:
    """Copy a response body to ``out`` as it arrives. ``read1`` hands over every byte received
    before a cut or a reset (a plain ``read`` of a larger amount drops them), so that whatever
    arrived stays in the ``.part`` file for the next attempt to resume from."""
    while True:
        try:
            chunk = raw.read1(_CHUNK)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise _Transient(f"connection error: {_short(err)}") from None
        if not chunk:
            return
        out.write(chunk)


def _short(err: Exception) -> str:
    """The innermost message of a requests/urllib3 error, on one line."""
    text = str(err.args[0] if err.args else err)
    return " ".join(text.split())[:160]
