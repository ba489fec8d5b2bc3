"""Tiles on their plate's storage unit, and ``keep_intermediate = false``.

One small map (order 3, 64-pixel tiles, global background matching, two storage units) is built
twice with the ``luigi`` command: once keeping its mosaics and plates, once removing them, with
the run killed in the middle and run again. The published tiles must be identical, the removed
files must not come back, and each unit must hold its own plates' tiles.
"""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hipsluigi.execution.records import read_records
from hipsluigi.execution.slurm_jobs import config_text

LUIGI = Path(sys.executable).with_name("luigi")
NAME = "inter"


def _options(root: Path, keep: bool) -> dict:
    return {
        "core": {"autoload_range": "false", "no_lock": "true"},
        "hips": {"name": NAME, "order": 3, "tile_width": 64, "nplate": "", "region": "",
                 "background": "global", "frame": "galactic", "executor": "local",
                 "storage": f"{root}/u0,{root}/u1", "keep_intermediate": str(keep).lower()},
        "synthetic": {"seed": 3, "frame_size": 128, "noise": 0.02, "backgrounds": 0.5,
                      "sources": 100, "blobs": 60},
    }


def _start(root: Path, keep: bool) -> subprocess.Popen:
    cfg = root / "luigi.cfg"
    cfg.write_text(config_text(_options(root, keep)))
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
    # to a file: a pipe nobody reads while the test polls would fill and stop the run
    log = open(root / f"run-{time.time_ns()}.log", "w+")  # noqa: SIM115  (closed in _finish)
    proc = subprocess.Popen([str(LUIGI), "--module", "hipsluigi", "AllSkyPNGs",
                             "--local-scheduler", "--workers", "1"], cwd=root, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log = log
    return proc


def _output(proc: subprocess.Popen) -> str:
    proc.log.seek(0)
    out = proc.log.read()
    proc.log.close()
    return out


def _finish(proc: subprocess.Popen) -> str:
    proc.wait(timeout=900)
    out = _output(proc)
    assert proc.returncode == 0, out[-4000:]
    return out


def _tile_hashes(hips: Path) -> dict[str, str]:
    """sha256 of every tile of the published tree, links followed, by relative path."""
    return {str(p.relative_to(hips)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(hips.glob("Norder*/Dir*/Npix*.*"))}


def _intermediates(root: Path) -> list[Path]:
    return [p for u in ("u0", "u1") for p in (root / u / NAME).glob("mosaics/**/plate_*.fits")
            ] + [p for u in ("u0", "u1") for p in (root / u / NAME).glob("plates/order*/*.fits")]


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("kept")
    return root, _finish(_start(root, keep=True))


@pytest.fixture(scope="module")
def kept(kept_run):
    return kept_run[0]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """keep_intermediate = false: killed once a plate has been removed, then run again."""
    root = tmp_path_factory.mktemp("removed")
    proc = _start(root, keep=False)
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        if any(p for u in ("u0", "u1") for p in (root / u / NAME / "plates").glob(
                "order*/*.removed")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before any plate was removed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _output(proc)
    state = {"mosaics_after_kill": len(list((root / "u0" / NAME).glob(
                 "mosaics/**/plate_*.fits"))),
             "properties_after_kill": (root / "u0" / NAME / "HiPS" / "properties").exists(),
             "removed_after_kill": sorted(str(p) for u in ("u0", "u1") for p in
                                          (root / u / NAME / "plates").glob("order*/*.removed"))}
    started = time.time()
    out = _finish(_start(root, keep=False))
    return {"root": root, "out": out, "resumed_at": started, **state}


def test_killed_run_had_removed_files_and_was_unfinished(resumed):
    assert resumed["removed_after_kill"], "no plate was removed before the kill"
    assert not resumed["properties_after_kill"], "the run had finished before the kill"


def test_resumed_run_with_removed_intermediates_gives_identical_tiles(kept, resumed):
    expected = _tile_hashes(kept / "u0" / NAME / "HiPS")
    assert len(expected) == 2 * 12 * sum(4**k for k in range(4))  # FITS and PNG, orders 0-3
    assert _tile_hashes(resumed["root"] / "u0" / NAME / "HiPS") == expected


def test_removed_files_are_not_asked_for_again(resumed):
    # Every mosaic and plate is gone at the end, and the resumed run made none of them again
    # for the groups that were complete before the kill.
    assert _intermediates(resumed["root"]) == []
    families = {r.family for r in read_records(resumed["root"] / "u0" / NAME / "records",
                                               since=resumed["resumed_at"])}
    assert "PlateMosaic" not in families and "CorrectPlate" not in families
    assert "removed" in resumed["out"]


def test_kept_run_keeps_its_intermediates(kept):
    assert len(_intermediates(kept)) > 0
    assert not list(kept.glob(f"u*/{NAME}/plates/order*/*.removed"))


def test_a_third_run_runs_nothing(resumed):
    started = time.time()
    out = _finish(_start(resumed["root"], keep=False))
    assert read_records(resumed["root"] / "u0" / NAME / "records", since=started) == []
    assert "already done" in out or "were already done" in out or "complete" in out


def test_a_tile_healed_after_the_halves_went_has_them_made_again_with_their_mosaics(kept,
                                                                                    resumed):
    """With ``keep_intermediate = false`` the half plates go with the rest. A deleted order-2
    tile needs its plate again: its shrink needs the deepest plates' corrections, whose
    mosaics are made again with their halves; the tiles come back identical and the files
    made for it are removed again."""
    root = resumed["root"]
    assert not list(root.glob(f"u*/{NAME}/plates/order3/*.half.fits"))
    assert list(root.glob(f"u*/{NAME}/plates/order3/*.half.fits.removed"))
    tile = root / "u0" / NAME / "HiPS" / "Norder2" / "Dir0" / "Npix0.png"
    tile.resolve().unlink()
    started = time.time()
    _finish(_start(root, keep=False))
    ran = [r.family for r in read_records(root / "u0" / NAME / "records", since=started)]
    assert ran.count("ShrinkPlate") == 1 and ran.count("PlatePNGs") >= 1
    assert ran.count("PlateMosaic") >= 1 and "PlateTiles" not in ran
    assert _tile_hashes(root / "u0" / NAME / "HiPS") == _tile_hashes(kept / "u0" / NAME / "HiPS")
    assert _intermediates(root) == []


def test_each_unit_holds_its_own_plates_tiles_and_the_base_links_them(kept):
    """Tiles of unit 1's plates are files under u1/NAME/tiles, seen from the base HiPS through
    links; unit 0's are files in the HiPS folder; nothing is stored twice."""
    from astropy.table import Table

    root = kept
    plates = Table.read(root / "u0" / NAME / "platelist.tbl", format="ascii.ipac")
    assert set(plates["unit"]) == {0, 1}
    hips = root / "u0" / NAME / "HiPS"
    on_unit1 = {p.relative_to(root / "u1" / NAME / "tiles")
                for p in (root / "u1" / NAME / "tiles").glob("Norder*/Dir*/Npix*.*")}
    assert on_unit1, "no tile was written on unit 1"
    for rel in on_unit1:
        public = hips / rel
        assert public.is_symlink() or public.parent.is_symlink(), public
        assert public.resolve() == (root / "u1" / NAME / "tiles" / rel).resolve()
    files_u0 = {p.relative_to(hips) for p in hips.glob("Norder*/Dir*/Npix*.*")
                if not p.is_symlink() and not p.parent.is_symlink()}
    assert files_u0 and not files_u0 & on_unit1
    assert len(files_u0) + len(on_unit1) == 2 * 12 * sum(4**k for k in range(4))
    # the deepest order's tiles split between the units as the plates do
    deepest = {p for p in on_unit1 if p.parts[0] == "Norder3" and p.suffix == ".fits"}
    assert 0.25 < len(deepest) / (12 * 4**3) < 0.75


def test_records_count_exactly_the_tile_bytes_each_unit_holds_and_the_run_says_so(kept_run):
    root, out = kept_run
    records = read_records(root / "u0" / NAME / "records")
    for unit in ("u0", "u1"):
        label = f"unit{unit[1]}"
        tiles = (root / unit / NAME / ("HiPS" if unit == "u0" else "tiles"))
        on_disk = sum(p.stat().st_size for p in tiles.glob("Norder*/Dir*/Npix*.*")
                      if not p.is_symlink())
        on_disk += sum(p.stat().st_size for p in (root / unit / NAME / "manifests").glob(
            "order*/*.*"))  # the groups' manifests and Allsky parts, beside their tiles
        counted = sum(r.written_by_unit.get(label, 0) for r in records
                      if r.family in ("PlateTiles", "PlatePNGs"))
        assert counted == on_disk > 0
        plates = sum(p.stat().st_size for p in (root / unit / NAME / "plates").glob(
            "order[012]/*.fits"))
        plates += sum(p.stat().st_size for p in (root / unit / NAME / "plates").glob(
            "order3/*.correction.npz"))  # the deepest order's corrections, not plates
        assert sum(r.written_by_unit.get(label, 0) for r in records
                   if r.family in ("CorrectPlate", "ShrinkPlate")) == plates > 0
        mosaics = sum(p.stat().st_size for p in (root / unit / NAME / "mosaics").glob(
            "**/plate_*.fits"))
        halves = sum(p.stat().st_size for p in (root / unit / NAME / "plates").glob(
            "order3/*.half.fits"))  # written with the mosaics
        assert sum(r.written_by_unit.get(label, 0) for r in records
                   if r.family == "PlateMosaic") == mosaics + halves and halves > 0
        assert f"map {NAME}: {label}: " in out


def _pixel_bytes(path: Path, pad: int = 0) -> int:
    """The bytes of the 4-kB pages holding a FITS file's primary image without ``pad``
    pixels on each side (all of it when 0): what reading those pixels of a memory map
    touches, from its header's NAXIS1, NAXIS2 and BITPIX."""
    import numpy as np
    from astropy.io import fits

    header = fits.getheader(path)
    ncols, nrows, size = header["NAXIS1"], header["NAXIS2"], abs(header["BITPIX"]) // 8
    if pad == 0:
        return ncols * nrows * size
    r, c = np.mgrid[pad:nrows - pad, pad:ncols - pad]
    return np.unique((r * ncols + c).ravel() * size // 4096).size * 4096


def test_every_plate_is_read_once_for_both_its_fits_and_png_tiles_and_never_copied(kept_run):
    """The passes over the pixels. The deepest plates are their mosaics, corrected as they
    are read (no corrected copy on disk), and read once: the FITS and PNG tiles of every plate
    come from one read of it (the PNG groups read each plate's pixels exactly once, the FITS
    groups never run on their own). The shrink from the deepest order reads the half plates
    the mosaics' tasks wrote, a quarter of the bytes; a lower order's plate is read once more,
    by the shrink below it."""
    from hipsluigi import CorrectPlate
    from hipsluigi.testing import luigi_options

    root, _ = kept_run
    with luigi_options(_options(root, keep=True)):
        pad = CorrectPlate(order=3, i=0, j=0).spec.grid.pad
    assert pad > 0
    records = read_records(root / "u0" / NAME / "records")
    assert "PlateTiles" not in {r.family for r in records}
    for unit in ("u0", "u1"):
        label = f"unit{unit[1]}"
        work = root / unit / NAME

        def read(family, label=label):
            return sum(r.read_by_unit.get(label, 0) for r in records if r.family == family)

        assert not [p for p in work.glob("plates/order3/*.fits")
                    if not p.name.endswith(".half.fits")]  # no corrected copy
        mosaics = sorted(work.glob("mosaics/**/plate_*.fits"))
        halves = sorted(work.glob("plates/order3/*.half.fits"))
        corrections = sorted(work.glob("plates/order3/*.correction.npz"))
        assert mosaics and len(corrections) == len(halves) == len(mosaics)
        deepest = sum(_pixel_bytes(p, pad) for p in mosaics)  # its padding rows are not read
        plates = {k: sum(_pixel_bytes(p) for p in work.glob(f"plates/order{k}/*.fits"))
                  for k in (0, 1, 2)}
        half = sum(p.stat().st_size for p in halves)
        assert half < deepest / 3 and all(plates.values())
        assert read("PlatePNGs") == deepest + sum(plates.values())
        assert read("ShrinkPlate") == half + plates[2] + plates[1]


def test_a_deepest_plate_read_through_its_correction_is_the_corrected_copy_bit_for_bit(kept):
    """What 0.6.0 wrote as the corrected plate (the mosaic cropped, less the background model's
    plane and edge field, written as float32 FITS and read back) is what the readers now get
    from the mosaic and the few-kB correction."""
    import numpy as np
    from astropy.io import fits

    from hipsluigi import CorrectPlate
    from hipsluigi.background.seams import correct_plate
    from hipsluigi.geometry.hpx import plane_crpix
    from hipsluigi.pipeline import plan, tasks
    from hipsluigi.storage import artifacts
    from hipsluigi.testing import luigi_options

    with luigi_options(_options(kept, keep=True)):
        checked = 0
        for i, j in plan.plates_at_order(CorrectPlate(order=3, i=0, j=0).spec, 3)[:6]:
            task = CorrectPlate(order=3, i=i, j=j)
            spec, layout = task.spec, task.layout
            grid, pad = spec.grid, spec.grid.pad
            with fits.open(layout.mosaic(i, j, task.unit)) as hdul:
                mosaic = hdul[0].data.astype(np.float64)  # independent of the readers' path
            pid = plan.plate_ids(spec)[(i, j)]
            plane = artifacts.read_corrections(layout.corrections_table)[pid]
            edges = artifacts.read_seam_field(layout.seams, pid)
            copy = correct_plate(mosaic[pad:-pad, pad:-pad].astype(np.float32),
                                 grid.origin(i, j), plane, edges, plane_crpix(grid.face_side))
            fits.writeto(kept / "copy.fits", copy, overwrite=True)
            copy = fits.getdata(kept / "copy.fits")
            read = tasks._read_plate(task, 3, i, j, task.output())
            assert read.dtype.kind == "f" and read.dtype.itemsize == 4
            assert np.array_equal(read, copy, equal_nan=True)
            assert read.astype(">f4").tobytes() == copy.astype(">f4").tobytes()
            checked += 1
    assert checked == 6


@pytest.mark.parametrize("damage", ["deleted", "unreadable"])
def test_a_half_plate_gone_or_unreadable_is_made_again_from_the_mosaic_to_the_same_bits(
        kept, damage):
    """An order-2 plate deleted, and the deepest half plate it was shrunk from deleted or
    overwritten (the mosaics kept): its shrink makes the half again from the mosaic, naming
    an unreadable one, and the tiles are identical."""
    before = _tile_hashes(kept / "u0" / NAME / "HiPS")
    plates = sorted(kept.glob(f"u*/{NAME}/plates/order2/plate_*.fits"))
    plate = plates[0 if damage == "deleted" else 1]  # a plate of its own for each case
    half = plate.parents[1] / "order3" / plate.name.replace(".fits", ".half.fits")
    assert half.exists()  # at order 3 with 5 x 5 plates, each plate has one child
    plate.unlink()
    if damage == "deleted":
        half.unlink()
    else:
        half.write_text("not a FITS file\n")
    started = time.time()
    out = _finish(_start(kept, keep=True))
    ran = [r.family for r in read_records(kept / "u0" / NAME / "records", since=started)]
    assert ran.count("ShrinkPlate") == 1 and "PlateMosaic" not in ran
    assert plate.exists()
    assert (str(half) in out and "made again from the mosaic" in out) == (damage != "deleted")
    assert _tile_hashes(kept / "u0" / NAME / "HiPS") == before
