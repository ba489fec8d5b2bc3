"""Helpers for tests: Luigi configuration options, tile pixel positions from healpy, and real
data fetched from the package index (PyPI) at test time."""

from __future__ import annotations

import contextlib
import hashlib
import html
import os
import re
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path

import healpy as hp
import luigi
import numpy as np


def tile_pixel_lonlat(order: int, npix: int, width: int, convention: str = "standard"
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(lon, lat)`` (degrees, the map's frame) of tile ``npix``'s pixels
    ``[row, col]``, computed by healpy alone under a pixel-order convention.

    ``standard`` is the HiPS FITS convention (``ix = w-1-row, iy = col``); ``transposed`` and
    ``flipped`` (the PNG orientation taken for FITS) are the usual mistakes, for tests to show
    that their check tells them apart.
    """
    rows, cols = np.meshgrid(np.arange(width), np.arange(width), indexing="ij")
    if convention == "standard":
        ix, iy = width - 1 - rows, cols
    elif convention == "transposed":
        ix, iy = width - 1 - cols, rows
    elif convention == "flipped":
        ix, iy = rows, cols
    else:
        raise ValueError(f"unknown convention {convention!r}")
    tx, ty, face = hp.pix2xyf(1 << order, npix, nest=True)
    ipix = hp.xyf2pix(width << order, tx * width + ix, ty * width + iy, face, nest=True)
    return hp.pix2ang(width << order, ipix, nest=True, lonlat=True)


@contextlib.contextmanager
def luigi_options(options: dict[str, dict[str, object]]):
    """Set Luigi configuration options for the duration of a block, then restore them.

    ``options`` is ``{section: {key: value}}``; values are written as strings.
    """
    cfg = luigi.configuration.get_config()
    saved = []
    for section, values in options.items():
        if not cfg.has_section(section):
            cfg.add_section(section)
        for key, value in values.items():
            old = cfg.get(section, key, raw=True) if cfg.has_option(section, key) else None
            saved.append((section, key, old))
            cfg.set(section, key, str(value))
    try:
        yield cfg
    finally:
        for section, key, old in reversed(saved):
            if old is None:
                cfg.remove_option(section, key)
            else:
                cfg.set(section, key, old)


#: The environment variable that moves the test-data cache (default: the user cache folder).
TEST_DATA_ENV = "HIPSLUIGI_TEST_DATA"

#: healpy's source distribution on PyPI, and its real all-sky map: WMAP 7-year W band, I/Q/U
#: columns, galactic, RING, Nside 32.
HEALPY_SDIST = ("healpy", "healpy-1.18.1.tar.gz")
WMAP_W_MEMBER = "healpy-1.18.1/test/data/wmap_band_iqumap_r9_7yr_W_v4_udgraded32.fits"


def data_cache_folder() -> Path:
    """The folder test data fetched from package registries is cached in.

    ``$HIPSLUIGI_TEST_DATA`` if set, else ``hipsluigi-test-data`` under ``$XDG_CACHE_HOME`` or
    ``~/.cache``.
    """
    if os.environ.get(TEST_DATA_ENV):
        return Path(os.environ[TEST_DATA_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hipsluigi-test-data"


def _read_url(url: str, timeout: float = 60.0) -> bytes:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        # A local PEP 503 index (pip's file:// index) is a tree of folders with index.html.
        path = Path(urllib.request.url2pathname(parts.path))
        return (path / "index.html" if path.is_dir() else path).read_bytes()
    request = urllib.request.Request(url, headers={"Accept": "text/html"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def sdist_link(project: str, filename: str) -> tuple[str, str]:
    """The download URL and sha256 of a file in a PEP 503 simple index.

    The index is ``$PIP_INDEX_URL`` if set, else ``https://pypi.org/simple``.

    Returns
    -------
    tuple of str
        ``(url, sha256 hex digest)`` from the index page's link to ``filename``.

    Raises
    ------
    ValueError
        If the page has no link to ``filename``, or the link carries no ``#sha256=``.
    """
    index = os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple"
    page_url = f"{index.rstrip('/')}/{project}/"
    page = _read_url(page_url).decode("utf-8", "replace")
    for href in re.findall(r'href\s*=\s*["\']([^"\']+)["\']', page, flags=re.IGNORECASE):
        url = urllib.parse.urljoin(page_url, html.unescape(href))
        location, _, fragment = url.partition("#")
        if Path(urllib.parse.urlsplit(location).path).name != filename:
            continue
        digest = dict(part.split("=", 1) for part in fragment.split("&") if "=" in part)
        if "sha256" not in digest:
            raise ValueError(f"{page_url}: the link to {filename} has no #sha256= to verify")
        return location, digest["sha256"].lower()
    raise ValueError(f"{page_url} has no link to {filename}")


def fetch_sdist(project: str, filename: str) -> Path:
    """A source distribution from the package index, downloaded once and cached.

    The download is checked against the index link's sha256 before it enters the cache
    (:func:`data_cache_folder`); a cached file is checked against the digest recorded beside it,
    so a cached file needs no network.

    Raises
    ------
    ValueError
        If the index has no verifiable link, or the download's sha256 differs.
    """
    cache = data_cache_folder()
    archive = cache / filename
    recorded = cache / f"{filename}.sha256"
    if (archive.exists() and recorded.exists()
            and _sha256(archive) == recorded.read_text().strip()):
        return archive
    url, expected = sdist_link(project, filename)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{filename}.{os.getpid()}.part"
    try:
        tmp.write_bytes(_read_url(url, timeout=300.0))
        got = _sha256(tmp)
        if got != expected:
            raise ValueError(f"{url}: sha256 {got} differs from the index's {expected}")
        recorded.write_text(expected + "\n")
        os.replace(tmp, archive)
    finally:
        tmp.unlink(missing_ok=True)
    return archive


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_sdist_member(project: str, filename: str, member: str) -> Path:
    """One file of a cached source distribution (:func:`fetch_sdist`), extracted once.

    Returns
    -------
    pathlib.Path
        ``<cache>/<member>``.

    Raises
    ------
    ValueError
        As :func:`fetch_sdist`, or if the archive has no ``member``.
    """
    target = data_cache_folder() / member
    if target.exists():
        return target
    archive = fetch_sdist(project, filename)
    with tarfile.open(archive) as tar:
        try:
            source = tar.extractfile(member)
        except KeyError:
            source = None
        if source is None:
            raise ValueError(f"{archive} has no file {member}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        tmp.write_bytes(source.read())
    os.replace(tmp, target)  # atomic: a concurrent or killed run never sees half a file
    return target


def fetch_wmap_w_map() -> Path:
    """The WMAP 7-year W-band map (Nside 32, RING, galactic, columns I, Q, U) shipped in
    healpy's source distribution on PyPI (:data:`WMAP_W_MEMBER`), fetched once and cached."""
    return fetch_sdist_member(*HEALPY_SDIST, WMAP_W_MEMBER)
