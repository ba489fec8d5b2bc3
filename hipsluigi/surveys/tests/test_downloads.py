"""The download cache against the loopback archive server (tests/sia_server.py): resumed cuts,
retried server errors, HTML bodies reported, files downloaded once."""

import os
import subprocess
import sys
import threading

import pytest
from astropy.io import fits

from hipsluigi.surveys.base import BadImageError
from hipsluigi.surveys.downloads import DownloadCache, fits_problem
from tests.sia_server import Faults, SiaServer, make_atlas_image


@pytest.fixture
def server(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    with SiaServer([make_atlas_image(folder, 1, ra, 2.0) for ra in (149.0, 150.0)]) as served:
        yield served


def _cache(tmp_path, retries=3):
    return DownloadCache([tmp_path / "unit0", tmp_path / "unit1"], retries=retries,
                         backoff=0.01, timeout=10)


def test_cut_download_resumes_with_a_range_request_into_an_identical_file(server, tmp_path):
    fixture = server.fixtures[0]
    name, size = fixture.path.name, fixture.path.stat().st_size
    server.faults[name] = Faults(cut_after=size // 2)
    path = _cache(tmp_path).fetch(server.base + fixture.url_path, name)
    assert path.read_bytes() == fixture.path.read_bytes()
    first, second = server.headers_for(name)
    assert "Range" not in first
    assert second["Range"] == f"bytes={size // 2}-"
    assert not path.with_name(name + ".part").exists()


def test_cut_download_restarts_when_the_server_ignores_range(server, tmp_path):
    fixture = server.fixtures[0]
    name, size = fixture.path.name, fixture.path.stat().st_size
    server.faults[name] = Faults(cut_after=size // 3, ranges=False)
    path = _cache(tmp_path).fetch(server.base + fixture.url_path, name)
    assert path.read_bytes() == fixture.path.read_bytes()
    assert [h.get("Range") for h in server.headers_for(name)] == [None, f"bytes={size // 3}-"]


def test_server_error_is_retried_until_success(server, tmp_path):
    fixture = server.fixtures[0]
    name = fixture.path.name
    server.faults[name] = Faults(status_500=2)
    path = _cache(tmp_path).fetch(server.base + fixture.url_path, name)
    assert path.read_bytes() == fixture.path.read_bytes()
    assert server.file_requests(name) == 3


def test_html_body_is_retried_then_reported_naming_the_image(server, tmp_path):
    fixture = server.fixtures[0]
    name, url = fixture.path.name, server.base + fixture.url_path
    server.faults[name] = Faults(html=100)
    cache = _cache(tmp_path, retries=2)
    with pytest.raises(BadImageError) as err:
        cache.fetch(url, name)
    message = str(err.value)
    assert message.startswith(name) and url in message and "HTML" in message
    assert server.file_requests(name) == 3
    # Nothing of the HTML page is kept, finished or partial.
    assert not cache.path(name).exists()
    assert not cache.path(name).with_name(name + ".part").exists()


def test_client_error_is_not_retried(server, tmp_path):
    url = server.base + "/ibe/data/wise/allwise/p3am_cdd/00/0000/missing-w1-int-3.fits"
    with pytest.raises(BadImageError, match="HTTP 404"):
        _cache(tmp_path).fetch(url, "missing-w1-int-3.fits")
    assert server.file_requests("missing-w1-int-3.fits") == 1


def test_cached_file_is_not_downloaded_again_by_another_cache(server, tmp_path):
    fixture = server.fixtures[0]
    url, name = server.base + fixture.url_path, fixture.path.name
    first = _cache(tmp_path).fetch(url, name)
    # Another cache on the same folders, as another task's process would make.
    second = _cache(tmp_path).fetch(url, name)
    assert first == second
    assert server.file_requests(name) == 1


def test_a_corrupt_cached_file_is_downloaded_again(server, tmp_path):
    fixture = server.fixtures[0]
    url, name = server.base + fixture.url_path, fixture.path.name
    cache = _cache(tmp_path)
    cache.path(name).parent.mkdir(parents=True)
    cache.path(name).write_bytes(fixture.path.read_bytes()[:2880 * 3])
    assert cache.fetch(url, name).read_bytes() == fixture.path.read_bytes()
    assert server.file_requests(name) == 1


def test_two_threads_wanting_one_file_download_it_once(server, tmp_path):
    fixture = server.fixtures[0]
    url, name = server.base + fixture.url_path, fixture.path.name
    # Slow answers, so that the second thread asks while the first is downloading.
    server.faults[name] = Faults(delay=0.5)
    start = threading.Barrier(2)
    paths, errors = [], []

    def fetch():
        start.wait()
        try:
            paths.append(_cache(tmp_path).fetch(url, name))
        except Exception as err:  # noqa: BLE001  (reported by the assertion below)
            errors.append(err)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert len(paths) == 2 and paths[0] == paths[1]
    assert paths[0].read_bytes() == fixture.path.read_bytes()
    assert server.file_requests(name) == 1


def test_two_processes_find_one_file_in_the_same_place_and_download_it_once(server, tmp_path):
    fixture = server.fixtures[1]
    url, name = server.base + fixture.url_path, fixture.path.name
    dirs = [str(tmp_path / f"unit{u}") for u in range(3)]
    code = ("import sys; from hipsluigi.surveys.downloads import DownloadCache; "
            "print('ready', flush=True); "
            "print(DownloadCache(sys.argv[1:4]).fetch(sys.argv[4], sys.argv[5]))")
    # Another string-hash salt than this process's: the folder must not depend on hash().
    seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    # Slow answers: whichever process asks second does so while the first downloads.
    server.faults[name] = Faults(delay=1.0)
    other = subprocess.Popen([sys.executable, "-c", code, *dirs, url, name], text=True,
                             stdout=subprocess.PIPE, env={**os.environ, "PYTHONHASHSEED": seed})
    assert other.stdout.readline().strip() == "ready"
    here = DownloadCache(dirs).fetch(url, name)
    there = other.communicate(timeout=60)[0].strip()
    assert other.returncode == 0
    assert there == str(here) and here.read_bytes() == fixture.path.read_bytes()
    assert server.file_requests(name) == 1


def test_files_spread_over_the_folders(tmp_path):
    dirs = [tmp_path / "unit0", tmp_path / "unit1", tmp_path / "unit2"]
    names = [f"{k:04d}p000_ac51-w1-int-3.fits" for k in range(30)]
    paths = [DownloadCache(dirs).path(name) for name in names]
    assert {p.parent for p in paths} == set(dirs)
    assert [p.name for p in paths] == names
    with pytest.raises(ValueError):
        DownloadCache(dirs).path("../escape.fits")


def test_fits_problem_tells_whole_files_from_truncated_ones_and_html(tmp_path):
    image = make_atlas_image(tmp_path, 1, 150.0, 2.0)
    whole = image.read_bytes()
    assert fits_problem(image) is None
    assert fits_problem(image, size=len(whole)) is None
    assert "expected" in fits_problem(image, size=len(whole) + 2880)
    header_blocks = len(fits.getheader(image).tostring()) // 2880
    cut = tmp_path / "cut.fits"
    cut.write_bytes(whole[:(header_blocks + 1) * 2880])
    assert "truncated" in fits_problem(cut)
    odd = tmp_path / "odd.fits"
    odd.write_bytes(whole[:-100])
    assert "2880" in fits_problem(odd)
    page = tmp_path / "page.fits"
    page.write_bytes(b"<!DOCTYPE html><html><body>Service unavailable</body></html>")
    assert "HTML" in fits_problem(page)
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    assert fits_problem(empty) == "empty file"
