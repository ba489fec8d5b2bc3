"""The local Aladin Lite: version choice, integrity check, unpacking into the cache, the copy into
a HiPS, and the warning when none can be had. The registry is a local HTTP server here."""

import base64
import hashlib
import io
import json
import tarfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hipsluigi.viewer import aladin_lite
from hipsluigi.viewer.aladin_lite import (
    AladinLiteUnavailable,
    AladinLiteWarning,
    IntegrityError,
    aladin_lite_folder,
    cache_root,
    check_integrity,
    fetch_from_registry,
    install_aladin_lite,
    newest_stable_3x,
    unpack,
)

JS = b"export default {init: Promise.resolve()};\n"


def _tgz(files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def _sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


GOOD = _tgz({"package/dist/aladin.js": JS, "package/LICENSE": b"GPL-3\n",
             "package/package.json": b'{"name": "aladin-lite"}', "package/README.md": b"x"})


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(aladin_lite.ENV_VAR, raising=False)
    monkeypatch.setattr(aladin_lite, "_failed", {})


@pytest.fixture
def registry():
    """A fake npm registry on 127.0.0.1: ``files`` maps a path to bytes; records requests."""
    files: dict[str, bytes] = {}
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"

    def publish(version: str, tarball: bytes, integrity: str | None = None):
        path = f"/aladin-lite/-/aladin-lite-{version}.tgz"
        files[path] = tarball
        meta = {"versions": {"3.1.0": {"dist": {"tarball": url + "nothing.tgz",
                                                "integrity": "sha512-AAAA"}},
                             version: {"dist": {"tarball": url + path[1:],
                                                "integrity": integrity or _sri(tarball)}},
                             "3.99.0-beta": {"dist": {}}}}
        files["/aladin-lite"] = json.dumps(meta).encode()

    yield url, publish, requests
    server.shutdown()
    server.server_close()


def test_newest_stable_3x_compares_numbers_and_skips_prereleases_and_other_majors():
    versions = ["2.9.9", "3.6.1", "3.9.2", "3.10.1", "3.11.0-beta", "4.0.0", "3.10.0"]
    assert newest_stable_3x(versions) == "3.10.1"
    with pytest.raises(ValueError, match="no 3.x release"):
        newest_stable_3x(["2.1.0", "3.0.0-rc1"])


def test_integrity_accepts_the_sha512_of_the_data_and_refuses_a_tampered_tarball():
    check_integrity(GOOD, _sri(GOOD), "good.tgz")
    tampered = bytearray(GOOD)
    tampered[len(tampered) // 2] ^= 0xFF
    with pytest.raises(IntegrityError, match="tampered.tgz"):
        check_integrity(bytes(tampered), _sri(GOOD), "tampered.tgz")
    with pytest.raises(IntegrityError, match="no sha512"):
        check_integrity(GOOD, "sha1-" + base64.b64encode(hashlib.sha1(GOOD).digest()).decode(),
                        "old.tgz")


def test_unpack_keeps_only_the_needed_files(tmp_path):
    dest = unpack(GOOD, tmp_path / "aladin-lite-3.8.2", "good.tgz")
    assert (dest / "aladin.js").read_bytes() == JS
    assert (dest / "LICENSE").read_bytes() == b"GPL-3\n"
    assert not (dest / "README.md").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["aladin-lite-3.8.2"]  # no temporary left


@pytest.mark.parametrize("tarball, reason", [
    (_tgz({"package/README.md": b"x"}), "no regular file package/dist/aladin.js"),
    (_tgz({}, symlinks={"package/dist/aladin.js": "/etc/passwd"}),
     "no regular file package/dist/aladin.js"),
    (b"not a tarball", "not a readable npm tarball"),
])
def test_unpack_refuses_a_tarball_without_a_regular_aladin_js(tmp_path, tarball, reason):
    with pytest.raises(ValueError, match=reason) as err:
        unpack(tarball, tmp_path / "dest", "bad.tgz")
    assert "bad.tgz" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_unpacks_leave_one_whole_copy(tmp_path):
    dest = tmp_path / "aladin-lite-3.8.2"
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: unpack(GOOD, dest, "good.tgz"), range(16)))
    assert results == [dest] * 16
    assert (dest / "aladin.js").read_bytes() == JS
    assert [p.name for p in tmp_path.iterdir()] == [dest.name]


def test_fetch_downloads_the_newest_3x_checks_it_and_caches_it(tmp_path, registry):
    url, publish, requests = registry
    publish("3.8.2", GOOD)
    folder = fetch_from_registry(tmp_path, registry=url)
    assert folder == tmp_path / "aladin-lite-3.8.2"
    assert (folder / "aladin.js").read_bytes() == JS
    assert json.loads((folder / "source.json").read_text())["integrity"] == _sri(GOOD)
    # cached: the tarball is not downloaded again
    requests.clear()
    assert fetch_from_registry(tmp_path, registry=url) == folder
    assert requests == ["/aladin-lite"]


def test_fetch_refuses_a_tarball_that_does_not_match_its_integrity(tmp_path, registry):
    url, publish, _ = registry
    publish("3.8.2", GOOD, integrity=_sri(GOOD + b"x"))
    with pytest.raises(AladinLiteUnavailable, match="IntegrityError.*tampered"):
        fetch_from_registry(tmp_path, registry=url)
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


def test_no_network_warns_with_the_reason_and_installs_nothing(tmp_path, monkeypatch):
    # a closed port: connection refused at once
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", "http://127.0.0.1:9/")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.warns(AladinLiteWarning, match=r"127\.0\.0\.1:9/aladin-lite.*CDS"):
        assert install_aladin_lite(tmp_path / "HiPS") is None
    assert not (tmp_path / "HiPS" / "aladin-lite").exists()


def test_a_cached_copy_is_used_without_the_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", "http://127.0.0.1:9/")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root() == tmp_path / "hipsluigi"
    unpack(GOOD, cache_root() / "aladin-lite-3.7.0", "old.tgz")
    newest = unpack(_tgz({"package/dist/aladin.js": b"// 3.10\n"}),
                    cache_root() / "aladin-lite-3.10.0", "new.tgz")
    assert aladin_lite_folder() == newest


def test_install_links_the_files_into_the_hips(tmp_path):
    cache = tmp_path / "cache"
    unpack(GOOD, cache / "aladin-lite-3.8.2", "good.tgz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder = install_aladin_lite(tmp_path / "HiPS", cache)
    assert folder == tmp_path / "HiPS" / "aladin-lite"
    assert (folder / "aladin.js").read_bytes() == JS
    assert sorted(p.name for p in folder.iterdir()) == [
        "LICENSE", "aladin.js", "package.json", "source.json"]


def test_env_var_folder_or_tarball(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    package = tmp_path / "unpacked" / "package" / "dist"
    package.mkdir(parents=True)
    (package / "aladin.js").write_bytes(JS)
    monkeypatch.setenv(aladin_lite.ENV_VAR, str(tmp_path / "unpacked"))
    assert aladin_lite_folder(cache) == package
    tgz = tmp_path / "aladin-lite-3.8.2.tgz"
    tgz.write_bytes(GOOD)
    monkeypatch.setenv(aladin_lite.ENV_VAR, str(tgz))
    folder = aladin_lite_folder(cache)
    assert folder.parent == cache and (folder / "aladin.js").read_bytes() == JS
    monkeypatch.setenv(aladin_lite.ENV_VAR, str(tmp_path / "missing.tgz"))
    with pytest.raises(AladinLiteUnavailable, match="HIPSLUIGI_ALADIN_LITE=.*missing.tgz"):
        aladin_lite_folder(cache)
