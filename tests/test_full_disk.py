"""A full disk never ships a truncated tile, and a rerun after freeing space finishes the map.

The disk holding the HiPS fills while the tiles are written: a real small file system (a tmpfs
mounted on the HiPS folder, as root, with a ballast file that leaves room for part of the
tiles), and the same fault injected into ``os.writev`` (the tile writer's system call: part of
a write, then ENOSPC), which runs as any user. The run fails part-way; then every tile file
present is whole and reads back, every tile a finished group lists is there, no temporary is
left, and a rerun after freeing space ends with tiles identical to a clean build's.
"""

import errno
import hashlib
import json
import logging
import os
import re
import subprocess
import warnings
from pathlib import Path

import luigi
import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from hipsluigi import AllSkyPNGs
from hipsluigi.testing import luigi_options

NAME = "disk"
WIDTH = 64
HIPS = Path("u0") / NAME / "HiPS"
#: One 2880-byte header block, then the float32 data padded to 2880 bytes: 20,160 bytes.
TILE_BYTES = 2880 + -(-WIDTH * WIDTH * 4 // 2880) * 2880


def _unavailable(reason: str):
    """As tests/conftest.py: under CI=true a missing capability fails the test."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: every service must be up)")
    pytest.skip(reason)


def _config(root: Path) -> dict:
    return {"hips": {"name": NAME, "order": 1, "tile_width": WIDTH, "nplate": "", "region": "",
                     "background": "none", "executor": "local", "frame": "galactic",
                     "storage": f"{root}/u0,{root}/u1"},
            "synthetic": {"seed": 4, "frame_size": 64, "sources": 50, "blobs": 20}}


def _build(root: Path) -> luigi.LuigiStatusCode:
    # One worker: the tasks run in this process, where the tests watch os.writev.
    with luigi_options(_config(root)):
        return luigi.build([AllSkyPNGs()], local_scheduler=True, workers=1,
                           detailed_summary=True).status


def _hashes(hips: Path) -> dict[str, str]:
    return {str(p.relative_to(hips)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(hips.glob("Norder*/Dir*/Npix*.*"))}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("disk") / "clean"
    assert _build(root) == luigi.LuigiStatusCode.SUCCESS
    hashes = _hashes(root / HIPS)
    fits_sizes = {(root / HIPS / k).stat().st_size for k in hashes if k.endswith(".fits")}
    assert fits_sizes == {TILE_BYTES}
    return hashes


def _assert_every_output_whole(root: Path) -> tuple[int, int]:
    """Every tile file is whole and reads back; every tile a manifest lists exists; no
    temporary is left. Returns (FITS tiles present, manifests present)."""
    hips = root / HIPS
    tiles = sorted(hips.glob("Norder*/Dir*/Npix*.fits"))
    for path in tiles:
        assert path.stat().st_size == TILE_BYTES, path
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # astropy warns on a truncated file
            data = fits.getdata(path, memmap=False)  # no open file left in the mount
        assert data.shape == (WIDTH, WIDTH) and np.isfinite(data).any(), path
    for path in sorted(hips.glob("Norder*/Dir*/Npix*.png")):
        with Image.open(path) as image:
            image.load()  # decodes every byte: a cut PNG raises
            assert image.size == (WIDTH, WIDTH), path
    manifests = sorted(root.glob(f"u*/{NAME}/manifests/order*/*.json"))
    for manifest in manifests:
        record = json.loads(manifest.read_text())
        ext = "fits" if manifest.name.endswith(".fits.json") else "png"
        for npix in record["tiles"]:
            tile = hips / f"Norder{record['order']}" / f"Dir{npix // 10000 * 10000}" / \
                f"Npix{npix}.{ext}"
            assert tile.is_file(), f"{manifest} lists {tile}, which is missing"
    temporaries = [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    assert not temporaries
    return len(tiles), len(manifests)


class WritevWatch:
    """``os.writev`` as the tile writer sees it: counts short writes and ENOSPC errors, and
    with ``budget`` set, acts as a disk with that many bytes free (part of the write that
    crosses it, then ENOSPC). With ``folder``, that disk holds only the files under it (as
    the tmpfs of the other test holds the HiPS folder, not the task records beside it)."""

    def __init__(self, budget: int | None = None, folder: Path | None = None):
        self.real = os.writev
        self.budget = budget
        self.folder = folder
        self.short = self.nospace = 0

    def __call__(self, fd, buffers):
        if self.folder is not None and not os.readlink(f"/proc/self/fd/{fd}").startswith(
                f"{self.folder}/"):
            return self.real(fd, buffers)  # another disk
        wanted = sum(memoryview(b).nbytes for b in buffers)
        if self.budget is not None:
            if self.budget <= 0:
                self.nospace += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            if wanted > self.budget:
                data = b"".join(bytes(memoryview(b).cast("B")) for b in buffers)
                buffers = [data[:self.budget]]
        try:
            n = self.real(fd, buffers)
        except OSError as err:
            self.nospace += err.errno == errno.ENOSPC
            raise
        if self.budget is not None:
            self.budget -= n
        self.short += n < wanted
        return n


def _check_failed_run_and_recover(clean: dict, root: Path, watch: WritevWatch, monkeypatch,
                                  caplog, free_space) -> None:
    monkeypatch.setattr(os, "writev", watch)
    with caplog.at_level(logging.ERROR, logger="luigi-interface"):
        assert _build(root) == luigi.LuigiStatusCode.FAILED
    monkeypatch.undo()
    assert watch.short >= 1 and watch.nospace >= 1, "the disk never filled during a tile"
    # the tile the disk filled in is named, with how much of it was written
    assert re.search(rf"/\.Npix\d+\.fits\.[-\w]+\.tmp: No space left on device after [1-9]\d* "
                     rf"of {TILE_BYTES} bytes", caplog.text)
    ntiles, nmanifests = _assert_every_output_whole(root)
    assert 0 < ntiles < sum(k.endswith(".fits") for k in clean), "the run did not fail part-way"
    assert nmanifests > 0
    free_space()
    assert _build(root) == luigi.LuigiStatusCode.SUCCESS
    _assert_every_output_whole(root)
    assert _hashes(root / HIPS) == clean


def test_a_full_tmpfs_fails_the_run_with_every_output_whole_and_a_rerun_completes(
        clean, tmp_path, monkeypatch, caplog):
    if os.geteuid() != 0:
        _unavailable("mounting a tmpfs needs root (the injected fault runs as any user)")
    root = tmp_path / "work"
    hips = root / HIPS
    hips.mkdir(parents=True)
    size = 16 << 20  # the tiles, their metadata, the QA report and a copy of Aladin Lite
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                              str(hips)], capture_output=True, text=True)
    if mounted.returncode != 0:
        _unavailable(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        # Room for 25 of the 60 FITS tiles (20,160 bytes: 5 pages each) and 2 pages: the disk
        # fills inside the 26th, as in the issue (a tile cut at a page boundary).
        ballast = hips / "ballast"
        with open(ballast, "wb") as f:
            f.write(b"\0" * (size - (25 * 5 + 2) * 4096))
        _check_failed_run_and_recover(clean, root, WritevWatch(), monkeypatch, caplog,
                                      ballast.unlink)
    finally:
        if subprocess.run(["umount", str(hips)]).returncode != 0:
            subprocess.run(["umount", "--lazy", str(hips)], check=True)  # detached when free


def test_an_injected_short_write_and_enospc_fail_the_run_with_every_output_whole(
        clean, tmp_path, monkeypatch, caplog):
    watch = WritevWatch(budget=25 * TILE_BYTES + 4096, folder=tmp_path / "work" / HIPS)

    def free_space():
        watch.budget = None

    _check_failed_run_and_recover(clean, tmp_path / "work", watch, monkeypatch, caplog,
                                  free_space)
