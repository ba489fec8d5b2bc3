"""Each pixel stage against what a user would pick instead, on the same data, in the same run.

    .venv/bin/python benchmarks/bench_stages.py [stage ...] [--repeat 3]

Stages (all by default):

* ``pipeline``: the whole pipeline (``AllSkyFITS``: FITS tiles of every order) on one all-sky
  CAR image, ``background = none``, against ``reproject.hips.reproject_to_hips`` with the same
  order, tile width and resampling (bilinear), both with 2 workers/threads.
* ``mosaic``: one plate mosaic's output rate (Mpix/s per core) against reproject_interp on the
  same plate and the same survey images (preloaded, so neither pays for the synthetic survey).
* ``shrink``: an 8192 x 8192 plate shrunk by 2 (read, shrink, write FITS) against Montage's
  ``mShrink`` (MontagePy from PyPI) on the same file.
* ``tiles``: cutting a plate into FITS tiles (``PlateTiles``'s work: ``write_plate_tiles``,
  each tile written to a temporary name and renamed) against the disk's write bandwidth
  measured in the same run (the same bytes written as one file), both synced.
* ``png``: a plate's PNG tiles (stretch, flip, encode, write) against pillow's bare encode of the
  same 8-bit arrays; and the gray levels alone, ``Stretch.gray`` against ``searchsorted``.

Every figure is a median over ``--repeat`` runs; ratios compare runs of the same repeat.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

REPO = Path(__file__).resolve().parents[1]


def _median(values):
    return statistics.median(values)


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def timed_each(repeat: int, first, second) -> tuple[list[float], list[float]]:
    """Seconds of ``repeat`` runs of ``first``, then of ``repeat`` runs of ``second``."""
    return [timed(first) for _ in range(repeat)], [timed(second) for _ in range(repeat)]


# -- pipeline ----------------------------------------------------------------------------------

def car_grid(width: int):
    """A galactic all-sky CAR grid ``width x width/2`` (longitude increasing to the left): its
    astropy WCS and the longitude and latitude (degrees) of every pixel ``[row, col]``."""
    from astropy.wcs import WCS

    height = width // 2
    scale = 360.0 / width
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["GLON-CAR", "GLAT-CAR"]
    wcs.wcs.crval = [0.0, 0.0]
    wcs.wcs.crpix = [(width + 1) / 2, (height + 1) / 2]
    wcs.wcs.cdelt = [-scale, scale]
    ys, xs = np.mgrid[0:height, 0:width]
    lon, lat = wcs.wcs_pix2world(xs, ys, 0)
    return wcs, lon, lat


def _allsky_car(path: Path, width: int) -> None:
    """A CAR all-sky image (galactic) of the synthetic truth."""

    from hipsluigi.geometry.frames import lonlat_to_vec
    from hipsluigi.spec import MapSpec
    from hipsluigi.surveys.synthetic import SyntheticSky

    wcs, lon, lat = car_grid(width)
    sky = SyntheticSky(MapSpec().synthetic, np.radians(360.0 / width))
    data = sky(lonlat_to_vec(lon, lat)).astype(np.float32)
    fits.writeto(path, data, wcs.to_header(), overwrite=True)


def run_reproject_to_hips(image: Path, out: Path, order: int, width: int) -> None:
    """``reproject_to_hips`` of one galactic image to ``out``: bilinear, 2 threads."""
    from reproject import reproject_interp
    from reproject.hips import reproject_to_hips

    reproject_to_hips(str(image), coord_system_out="galactic", reproject_function=reproject_interp,
                      output_directory=str(out), level=order, tile_size=width, threads=2)


def bench_pipeline(repeat: int, order: int = 3, width: int = 512) -> None:
    with tempfile.TemporaryDirectory(prefix="hipsluigi-stage-") as tmp:
        tmp = Path(tmp)
        folder = tmp / "images"
        folder.mkdir()
        image = folder / "allsky.fits"
        _allsky_car(image, 2880)
        ours, theirs = [], []
        for k in range(repeat):
            work = tmp / f"ours{k}"
            cmd = [str(Path(sys.executable).with_name("luigi")), "--module", "hipsluigi",
                   "AllSkyFITS", "--local-scheduler", "--workers", "2", "--hips-order",
                   str(order), "--hips-tile-width", str(width), "--hips-survey", "fits",
                   "--hips-survey-path", str(folder), "--hips-background", "none",
                   "--hips-storage", str(work), "--log-level", "WARNING"]
            ours.append(timed(lambda cmd=cmd: subprocess.run(cmd, check=True, cwd=tmp)))
            out = tmp / f"theirs{k}"
            theirs.append(timed(lambda out=out: run_reproject_to_hips(image, out, order, width)))
            n_ours = len(list(work.rglob("Npix*.fits")))
            n_theirs = len(list(out.rglob("Npix*.fits")))
        ratio = [a / b for a, b in zip(ours, theirs, strict=True)]
        print(f"pipeline, one 2880x1440 all-sky image to order {order}, {width}-px tiles: "
              f"hipsluigi {_median(ours):.1f} s ({n_ours} FITS tiles), reproject_to_hips "
              f"{_median(theirs):.1f} s ({n_theirs} tiles); ratio {_median(ratio):.2f} "
              "(target <= 0.5)")


# -- mosaic ------------------------------------------------------------------------------------

def bench_mosaic(repeat: int, order: int = 3, width: int = 256) -> None:
    from hipsluigi.geometry.sky import plate_cap
    from hipsluigi.mosaic.coadd import mosaic_plate
    from hipsluigi.spec import MapSpec, SyntheticSpec
    from hipsluigi.surveys.base import SurveyImage
    from hipsluigi.surveys.synthetic import SyntheticSurvey

    spec = MapSpec(order=order, tile_width=width, nplate=5, pad=width // 4,
                   synthetic=SyntheticSpec(frame_size=width))
    survey = SyntheticSurvey(spec)
    grid = spec.grid
    images = survey.images_touching(*plate_cap(grid, 2, 2))
    preloaded = [SurveyImage(f.key, f.wcs, f.shape, f.centre, f.radius,
                             loader=functools.partial(np.asarray, f.load())) for f in images]
    pixels = grid.shape(padded=True)[0] ** 2
    rates = {}
    for method in ("interp", "reproject_interp"):
        times = [timed(lambda m=method: mosaic_plate(grid, 2, 2, preloaded, spec.frame,
                                                     engine=m)) for _ in range(repeat)]
        rates[method] = pixels / _median(times) / 1e6
    print(f"plate mosaic ({int(np.sqrt(pixels))}^2 px, {len(images)} images, one core): "
          f"hipsluigi {rates['interp']:.2f} Mpix/s, reproject_interp "
          f"{rates['reproject_interp']:.2f} Mpix/s; ratio "
          f"{rates['interp'] / rates['reproject_interp']:.1f} (target >= 2)")


# -- shrink ------------------------------------------------------------------------------------

def bench_shrink(repeat: int, side: int = 8192) -> None:
    from hipsluigi.pyramid.shrink import shrink2
    from hipsluigi.storage.artifacts import read_plate, read_plate_header, write_plate

    try:
        from MontagePy.main import mShrink
    except ImportError:
        print("shrink: MontagePy is not installed (pip install MontagePy); skipped")
        return
    with tempfile.TemporaryDirectory(prefix="hipsluigi-stage-") as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        data = rng.normal(size=(side, side)).astype(np.float32)
        data[rng.random(data.shape) < 0.01] = np.nan
        src = tmp / "plate.fits"
        header = fits.Header()
        for key, value in (("CTYPE1", "GLON-HPX"), ("CTYPE2", "GLAT-HPX"), ("CRPIX1", 1.0),
                           ("CRPIX2", 1.0), ("CDELT1", -0.001), ("CDELT2", 0.001),
                           ("CRVAL1", 0.0), ("CRVAL2", 0.0)):
            header[key] = value
        fits.writeto(src, data, header)

        def ours():
            plate = read_plate(src)  # as ShrinkPlate reads and writes plates
            write_plate(tmp / "ours.fits", shrink2(plate), read_plate_header(src))

        def montage():
            mShrink(str(src), str(tmp / "montage.fits"), 2)

        a, b = timed_each(repeat, ours, montage)
        ratio = [x / y for x, y in zip(a, b, strict=True)]
    print(f"shrink {side}^2 by 2 (read, shrink, write): hipsluigi {_median(a):.2f} s, "
          f"Montage mShrink {_median(b):.2f} s; ratio {_median(ratio):.2f} (lower is faster)")


# -- tiles -------------------------------------------------------------------------------------

def bench_tiles(repeat: int, side: int = 8192, width: int = 512) -> None:
    from hipsluigi.geometry.plates import PlateGrid
    from hipsluigi.storage.atomic import write_atomic
    from hipsluigi.tiles.cut import write_plate_tiles

    grid = PlateGrid(4, width, 5 * 2 ** (4 - int(np.log2(side // width))), 0)
    plate = np.random.default_rng(0).normal(size=grid.shape()).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="hipsluigi-stage-", dir=REPO) as tmp:
        tmp = Path(tmp)
        cut_rates, disk_rates = [], []
        for k in range(repeat):
            out = tmp / f"tiles{k}"

            def cut(out=out):
                out.mkdir()
                write_plate_tiles(plate, grid, 2, 2, "galactic",
                                  lambda npix, out=out: out / f"Npix{npix}.fits",
                                  write_file=write_atomic)
                os.sync()

            os.sync()  # each timed section starts with nothing left to flush
            elapsed = timed(cut)
            nbytes = sum(p.stat().st_size for p in out.glob("*.fits"))
            cut_rates.append(nbytes / elapsed / 1e6)
            blob = np.random.default_rng(k).bytes(nbytes)
            raw = tmp / f"raw{k}.bin"

            def write_raw(raw=raw, blob=blob):
                with open(raw, "wb") as f:
                    f.write(blob)
                os.sync()

            os.sync()
            disk_rates.append(nbytes / timed(write_raw) / 1e6)
            shutil.rmtree(out)
            raw.unlink()
    ratio = [a / b for a, b in zip(cut_rates, disk_rates, strict=True)]
    print(f"tiles: cutting a {side}^2 plate into {(side // width) ** 2} FITS tiles "
          f"{_median(cut_rates):.0f} MB/s, the disk (one file, same bytes) "
          f"{_median(disk_rates):.0f} MB/s; ratio {_median(ratio):.2f} (target >= 0.5)")


# -- PNG ---------------------------------------------------------------------------------------

def bench_png(repeat: int, side: int = 4096, width: int = 512) -> None:
    from PIL import Image

    from hipsluigi.stretch.histogram import histogram_of
    from hipsluigi.stretch.stretch import float32_edges, make_stretch
    from hipsluigi.tiles.png import COMPRESS_LEVEL, encode_png, png_pixels

    rng = np.random.default_rng(0)
    plate = (rng.normal(size=(side, side)) + 3).astype(np.float32)
    plate[:100, :100] = np.nan
    stretch = make_stretch(histogram_of(plate), "gaussian-log")
    tiles = [plate[r:r + width, c:c + width] for r in range(0, side, width)
             for c in range(0, side, width)]
    pixels = [png_pixels(t, stretch) for t in tiles]
    with tempfile.TemporaryDirectory(prefix="hipsluigi-stage-") as tmp:
        tmp = Path(tmp)

        def ours():
            for k, tile in enumerate(tiles):
                (tmp / f"{k}.png").write_bytes(encode_png(tile, stretch))

        def bare():
            for arr in pixels:
                Image.fromarray(arr, mode="LA").save(io.BytesIO(), format="PNG",
                                                     compress_level=COMPRESS_LEVEL)

        a, b = timed_each(repeat, ours, bare)
    ratio = [x / y for x, y in zip(a, b, strict=True)]
    print(f"PNG: {len(tiles)} tiles of {width}^2, hipsluigi (stretch, flip, encode, write) "
          f"{_median(a) / len(tiles) * 1e3:.1f} ms/tile, pillow's bare encode "
          f"{_median(b) / len(tiles) * 1e3:.1f} ms/tile; ratio {_median(ratio):.2f}")

    # The gray levels alone: Stretch.gray (its look-up table) against searchsorted.
    edges32 = float32_edges(stretch.edges)
    flipped = [t[::-1].astype(np.float32) for t in tiles]

    def table():
        for t in flipped:
            stretch.gray(t)

    def search():
        for t in flipped:
            np.searchsorted(edges32, t, side="left").astype(np.uint8)

    a, b = timed_each(repeat, table, search)
    ratio = [y / x for x, y in zip(a, b, strict=True)]
    print(f"gray levels: Stretch.gray {_median(a) / len(tiles) * 1e3:.2f} ms/tile, "
          f"searchsorted {_median(b) / len(tiles) * 1e3:.2f} ms/tile; the table is "
          f"{_median(ratio):.1f}x faster")


STAGES = {"pipeline": bench_pipeline, "mosaic": bench_mosaic, "shrink": bench_shrink,
          "tiles": bench_tiles, "png": bench_png}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="*", metavar="stage",
                        help=f"any of {', '.join(STAGES)} (default: all)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    unknown = set(args.stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stage(s) {sorted(unknown)}; choose from {list(STAGES)}")
    print(f"machine: {os.cpu_count()} cores")
    for name in args.stages or STAGES:
        STAGES[name](args.repeat)


if __name__ == "__main__":
    main()
