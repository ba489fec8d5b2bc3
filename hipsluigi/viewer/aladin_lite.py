"""A local Aladin Lite 3 for ``index.html``, so that the page works with no internet.

Aladin Lite 3 is published on the npm registry as the package ``aladin-lite``; its tarball
holds one ES module, ``package/dist/aladin.js``, with the WebAssembly core, the CSS and the
icons inlined, so that file (and its licence files: it is GPL-3) is all a page needs.

The newest 3.x release (no pre-release) is downloaded once, checked against the registry's
``dist.integrity`` (SRI: ``sha512-<base64>``) before anything is read from it, and unpacked
into the user cache, ``$XDG_CACHE_HOME/hipsluigi/aladin-lite-<version>/`` (``~/.cache`` by
default). The unpacked folder appears by one ``rename``: a reader never sees half of it, and two
processes unpacking at once both end up with one whole copy. Once a copy is cached the
registry is not asked again (offline builds, login nodes); delete the cache folder to update.

``HIPSLUIGI_ALADIN_LITE`` may name a local copy instead: a folder holding ``aladin.js`` (or an
unpacked npm package, ``dist/aladin.js``) or an npm tarball (``.tgz``), e.g. from
``npm pack aladin-lite``. ``NPM_CONFIG_REGISTRY`` (npm's own setting) names another registry.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Iterable
from pathlib import Path

from hipsluigi.storage.atomic import link_or_copy_atomic

#: The environment variable naming a local copy (folder or tarball).
ENV_VAR = "HIPSLUIGI_ALADIN_LITE"

#: The folder, in a HiPS, the page loads Aladin Lite from (``aladin-lite/aladin.js``).
HIPS_FOLDER = "aladin-lite"

#: The npm package and the files taken from its tarball; ``dist/aladin.js`` is required.
PACKAGE = "aladin-lite"
MAIN_FILE = "aladin.js"
_TARBALL_FILES = {"package/dist/aladin.js": "aladin.js", "package/LICENSE": "LICENSE",
                  "package/COPYING": "COPYING", "package/COPYING.LESSER": "COPYING.LESSER",
                  "package/package.json": "package.json"}

#: A tarball larger than this is refused (the 3.8 one is under 1 MB).
MAX_TARBALL_BYTES = 64 << 20

_STABLE_3X = re.compile(r"3\.(\d+)\.(\d+)")

#: Registry failures of this process, by registry URL: a build writing many maps offline
#: waits for the network once, not once per map.
_failed: dict[str, str] = {}


class AladinLiteUnavailable(RuntimeError):
    """No local Aladin Lite could be found or fetched; the message says why."""


class IntegrityError(ValueError):
    """A downloaded tarball whose digest is not the one the registry states."""


class AladinLiteWarning(UserWarning):
    """The page will load Aladin Lite from the CDS web site (the reason is in the message)."""


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/hipsluigi`` (``~/.cache/hipsluigi`` when unset or empty)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hipsluigi"


def newest_stable_3x(versions: Iterable[str]) -> str:
    """The newest ``3.x.y`` release among npm version strings (pre-releases left out).

    Raises
    ------
    ValueError
        If there is none.
    """
    found = [(int(m[1]), int(m[2]), v) for v in versions if (m := _STABLE_3X.fullmatch(v))]
    if not found:
        raise ValueError(f"the npm package {PACKAGE!r} has no 3.x release")
    return max(found)[2]


def check_integrity(data: bytes, integrity: str, name: str) -> None:
    """Raise :class:`IntegrityError` unless ``data`` matches the SRI string ``integrity``.

    Parameters
    ----------
    data : bytes
        The downloaded file.
    integrity : str
        npm's ``dist.integrity``: space-separated ``<algorithm>-<base64 digest>``; the sha512
        ones are checked (npm publishes sha512 for every recent package).
    name : str
        The file, for the message.
    """
    digests = [part.split("-", 1)[1] for part in integrity.split()
               if part.startswith("sha512-")]
    if not digests:
        raise IntegrityError(f"{name}: the registry gives no sha512 digest ({integrity!r})")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")
    if actual not in digests:
        raise IntegrityError(f"{name}: sha512 {actual} is not the registry's {digests[0]}; "
                             "the download is corrupt or was tampered with, nothing was used")


def unpack(tarball: bytes, dest: Path, name: str, source: dict | None = None) -> Path:
    """Unpack the files a page needs from an ``aladin-lite`` npm tarball into ``dest``.

    ``dest`` appears whole or not at all (a temporary folder renamed into place); if another
    process made it first, its copy is kept. Only the regular files of ``_TARBALL_FILES`` are
    read, by name, so no path from the archive is ever used.

    Parameters
    ----------
    tarball : bytes
        The ``.tgz``, already checked.
    dest : pathlib.Path
        The folder to make.
    name : str
        The tarball, for messages.
    source : dict, optional
        Written into ``dest/source.json`` (where the copy came from and its digest).

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    ValueError
        If the tarball cannot be read or has no regular ``package/dist/aladin.js``.
    """
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
            files = {}
            for member in tar.getmembers():
                if member.name in _TARBALL_FILES and member.isreg():
                    files[_TARBALL_FILES[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ValueError(f"{name}: not a readable npm tarball ({err})") from err
    if MAIN_FILE not in files:
        raise ValueError(f"{name}: no regular file package/dist/{MAIN_FILE} in the tarball")
    if (dest / MAIN_FILE).is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.mkdir()
        for fname, data in files.items():
            (tmp / fname).write_bytes(data)
        (tmp / "source.json").write_text(json.dumps(source or {"tarball": name}, indent=1))
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / MAIN_FILE).is_file():  # not a lost race: a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _registry() -> str:
    return os.environ.get("NPM_CONFIG_REGISTRY") or "https://registry.npmjs.org/"


def _get(url: str, timeout: float, limit: int) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data = response.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{url}: larger than {limit} bytes")
    return data


def fetch_from_registry(cache: Path | None = None, registry: str | None = None,
                        timeout: float = 20.0) -> Path:
    """Download the newest Aladin Lite 3.x into the cache (if not there) and return its folder.

    Raises
    ------
    AladinLiteUnavailable
        Naming the URL and the reason (no network, HTTP error, bad metadata, integrity).
    """
    cache = cache_root() if cache is None else Path(cache)
    registry = (registry or _registry()).rstrip("/") + "/"
    meta_url = registry + PACKAGE
    if meta_url in _failed:
        raise AladinLiteUnavailable(_failed[meta_url])
    try:
        meta = json.loads(_get(meta_url, timeout, 16 << 20))
        version = newest_stable_3x(meta["versions"])
        dist = meta["versions"][version]["dist"]
        dest = cache / f"aladin-lite-{version}"
        if (dest / MAIN_FILE).is_file():
            return dest
        tarball = _get(dist["tarball"], timeout, MAX_TARBALL_BYTES)
        check_integrity(tarball, dist.get("integrity", ""), dist["tarball"])
        return unpack(tarball, dest, dist["tarball"],
                      {"version": version, "tarball": dist["tarball"],
                       "integrity": dist["integrity"]})
    except (OSError, ValueError, KeyError, TypeError) as err:
        # URLError and timeouts are OSErrors; JSON and integrity errors ValueErrors
        reason = f"cannot fetch {PACKAGE} from {meta_url} ({type(err).__name__}: {err})"
        _failed[meta_url] = reason
        raise AladinLiteUnavailable(reason) from err


def _from_env(value: str, cache: Path) -> Path:
    path = Path(value).expanduser()
    if path.is_dir():
        for folder in (path, path / "dist", path / "package" / "dist"):
            if (folder / MAIN_FILE).is_file():
                return folder
        raise AladinLiteUnavailable(f"{ENV_VAR}={value}: no {MAIN_FILE} in that folder "
                                    "(nor in dist/ or package/dist/)")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise AladinLiteUnavailable(f"{ENV_VAR}={value}: {err.strerror or err}") from err
    digest = hashlib.sha256(data).hexdigest()[:16]
    try:
        return unpack(data, cache / f"aladin-lite-file-{digest}", str(path))
    except ValueError as err:
        raise AladinLiteUnavailable(f"{ENV_VAR}={value}: {err}") from err


def _cached(cache: Path) -> Path | None:
    found = []
    if cache.is_dir():
        for folder in cache.iterdir():
            m = _STABLE_3X.fullmatch(folder.name.removeprefix("aladin-lite-"))
            if m and (folder / MAIN_FILE).is_file():
                found.append((int(m[1]), int(m[2]), folder))
    return max(found)[2] if found else None


def aladin_lite_folder(cache: Path | None = None) -> Path:
    """A folder holding Aladin Lite 3's ``aladin.js``: from ``HIPSLUIGI_ALADIN_LITE``, else the
    newest cached 3.x, else freshly fetched from the npm registry.

    Raises
    ------
    AladinLiteUnavailable
        Saying why none could be had.
    """
    cache = cache_root() if cache is None else Path(cache)
    env = os.environ.get(ENV_VAR)
    if env:
        return _from_env(env, cache)
    return _cached(cache) or fetch_from_registry(cache)


def install_aladin_lite(hips_dir: str | os.PathLike, cache: Path | None = None) -> Path | None:
    """Put Aladin Lite into ``<hips_dir>/aladin-lite/`` (hard links to the cache, or copies).

    ``aladin.js`` is placed last and each file atomically, so ``aladin-lite/aladin.js`` exists
    only once the copy is whole.

    Returns
    -------
    pathlib.Path or None
        The folder; None (with an :class:`AladinLiteWarning` naming the reason) when no copy
        could be had: ``index.html`` then loads the CDS copy.
    """
    target = Path(hips_dir) / HIPS_FOLDER
    try:
        source = aladin_lite_folder(cache)
    except AladinLiteUnavailable as err:
        warnings.warn(f"{target}: no local Aladin Lite ({err}); index.html will load Aladin "
                      "Lite from the CDS web site, so it needs the internet",
                      AladinLiteWarning, stacklevel=2)
        return None
    files = sorted((p for p in source.iterdir() if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: p.name == MAIN_FILE)
    for path in files:
        link_or_copy_atomic(path, target / path.name)
    return target
