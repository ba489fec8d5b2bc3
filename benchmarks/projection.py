"""Projection: the full-sky WISE W1 map at order 9 on the seed's cluster, from measured costs.

Measures on this machine, per pixel and on one core, every pixel stage of one plate (a face
plate of order 5: 16384^2, the seed's plate size, padded by 256): the mosaic with frame
matching (frames read from FITS files, as survey images are), the overlap fits, the correction,
the shrinks, the tiles and the PNGs. Then scales to the seed's map: 3,072 tile-bearing plates of
16896^2 (3,328 listed; cell (4,4) repeats face 6), 12,276 overlap pairs, on 80 cores and 4
storage units, and prints CPU hours, bytes read and written per storage unit, and wall time.

Assumptions (printed too): WISE atlas images cover the sky ~1.3 times at 1.375"/px (the mosaic
cost scales with the output pixels and the coverage, measured here with the synthetic survey's
1.3); a storage unit sustains ``--unit-mbps`` MB/s; the wall time is the larger of CPU time over
the cores and the busiest unit's I/O time.

    .venv/bin/python benchmarks/projection.py [--unit-mbps 500] [--cores 80] [--units 4]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from hipsluigi.background.overlap import ring_stride
from hipsluigi.geometry.plates import PlateGrid

PLATES = 3072
PAIRS = 12276
SIDE = 16384
PAD = 256


def measure(tmp: Path) -> dict[str, float]:
    """Seconds per padded (or unpadded) plate pixel of each stage, one core."""
    from hipsluigi.background.overlap import fit_overlap
    from hipsluigi.geometry.plates import grid_at_order
    from hipsluigi.geometry.sky import plate_cap
    from hipsluigi.mosaic.coadd import mosaic_plate
    from hipsluigi.pyramid.shrink import crop_padding, shrink2
    from hipsluigi.spec import MapSpec, SyntheticSpec
    from hipsluigi.stretch.histogram import histogram_of
    from hipsluigi.stretch.stretch import make_stretch
    from hipsluigi.surveys.fits_folder import FitsFolderSurvey, scan_folder
    from hipsluigi.surveys.synthetic import SyntheticSurvey
    from hipsluigi.tiles.cut import plate_tiles, tile_hdu
    from hipsluigi.tiles.png import encode_png

    # A smaller stand-in plate (order 3 face, 4096^2 + padding) with the same per-pixel work.
    spec = MapSpec(order=3, tile_width=512, nplate=5, pad=128,
                   synthetic=SyntheticSpec(frame_size=512))
    grid = spec.grid
    survey = SyntheticSurvey(spec)
    folder = tmp / "frames"
    folder.mkdir()
    # Plate (2, 2) is face 4, wholly in the equatorial belt; plate (2, 1) is face 0, half in
    # the north polar cap. The 4 equatorial faces are a third of the sky, the 8 polar ones
    # (half cap, half belt each) two thirds: the mosaic cost is weighted so.
    written = set()
    for plate in ((2, 2), (2, 1)):
        for image in survey.images_touching(*plate_cap(grid, *plate)):
            if image.key not in written:
                written.add(image.key)
                fits.writeto(folder / f"{image.key.replace(':', '_')}.fits",
                             image.load().astype(np.float32), image.wcs.to_header())
    index = scan_folder(folder, spec.frame)
    files = FitsFolderSurvey(index, spec.frame)
    padded = grid.shape(padded=True)[0] ** 2
    out = {}
    seconds = {}
    for plate in ((2, 2), (2, 1)):
        images = files.images_touching(*plate_cap(grid, *plate))
        start = time.perf_counter()
        result = mosaic_plate(grid, *plate, images, spec.frame, match_images=True)
        seconds[plate] = time.perf_counter() - start
        if plate == (2, 2):
            mosaic = result.data
    print(f"mosaic with image matching, one core: equatorial plate {seconds[2, 2]:.1f} s, "
          f"polar plate {seconds[2, 1]:.1f} s ({padded / 1e6:.1f} Mpix each)")
    out["mosaic"] = (seconds[2, 2] / 3 + 2 * seconds[2, 1] / 3) / padded
    ring = 4 * grid.shape(padded=True)[0] * 4 * grid.pad
    stride = ring_stride(grid)  # as OverlapFit chooses it
    start = time.perf_counter()
    fit_overlap(grid, (2, 2), (2, 3), mosaic, mosaic, 0, 1, stride)
    out["overlap"] = (time.perf_counter() - start) / (ring / stride**2)  # per sampled pixel
    start = time.perf_counter()
    plate = crop_padding(mosaic, grid.pad) - np.float32(0.1)
    fits.writeto(tmp / "plate.fits", plate)
    out["correct"] = (time.perf_counter() - start) / plate.size
    start = time.perf_counter()
    shrink2(fits.getdata(tmp / "plate.fits"))
    out["shrink"] = (time.perf_counter() - start) / plate.size
    start = time.perf_counter()
    for npix, tile in plate_tiles(plate, grid_at_order(grid, 3), 2, 2):
        tile_hdu(tile, 3, npix, spec.frame).writeto(tmp / f"t{npix}.fits")
    out["tiles"] = (time.perf_counter() - start) / plate.size
    stretch = make_stretch(histogram_of(plate), "gaussian-log")
    start = time.perf_counter()
    for npix, tile in plate_tiles(plate, grid_at_order(grid, 3), 2, 2):
        (tmp / f"t{npix}.png").write_bytes(encode_png(tile, stretch))
    out["png"] = (time.perf_counter() - start) / plate.size
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=80)
    parser.add_argument("--units", type=int, default=4)
    parser.add_argument("--unit-mbps", type=float, default=500.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hipsluigi-projection-") as tmp:
        cost = measure(Path(tmp))
    padded, plain = (SIDE + 2 * PAD) ** 2, SIDE**2
    pyramid = plain * (1 / 4 + 1 / 16 + 1 / 64 + 1 / 256)  # orders 8..0, from order 9
    ring = 4 * (SIDE + 2 * PAD) * 4 * PAD
    samples = ring / ring_stride(PlateGrid(9, 512, 80, PAD)) ** 2
    seconds = {
        "mosaic (with frame matching)": PLATES * padded * cost["mosaic"],
        "overlap fits": PAIRS * samples * cost["overlap"],
        "correct": PLATES * plain * cost["correct"],
        "shrink": PLATES * pyramid * 4 * cost["shrink"],
        "FITS tiles": PLATES * (plain + pyramid) * cost["tiles"],
        "PNG tiles": PLATES * (plain + pyramid) * cost["png"],
    }
    cpu_hours = sum(seconds.values()) / 3600
    gb = 1e9
    input_bytes = PLATES * padded * 1.3 * 4 * (0.8 / 1.375) ** 2  # atlas pixels read, float32
    written = {
        "plate mosaics": PLATES * padded * 4,
        "corrected plates + pyramid": PLATES * (plain + pyramid) * 4,
        "FITS tiles": PLATES * (plain + pyramid) * 4 * 1.003,
        "PNG tiles (~1 byte/pixel)": PLATES * (plain + pyramid) * 1.0,
    }
    read = {"input images": input_bytes, "mosaics (correct, overlaps)": PLATES * padded * 4 * 1.2,
            "plates (shrink, tiles, PNGs)": PLATES * (plain + pyramid) * 4 * 3}
    per_unit = (sum(written.values()) + sum(read.values())) / args.units
    io_hours = per_unit / (args.unit_mbps * 1e6) / 3600
    wall = max(cpu_hours / args.cores, io_hours)
    print("measured on this machine, one core, per output pixel (overlap: per sampled pixel): "
          + ", ".join(f"{k} {v * 1e9:.0f} ns" for k, v in cost.items()))
    print(f"\nWISE W1 at order 9: {PLATES} plates of {SIDE + 2 * PAD}^2, {PAIRS} overlap pairs")
    for stage, sec in seconds.items():
        print(f"  {stage:30s} {sec / 3600:8.0f} CPU hours")
    print(f"  {'total':30s} {cpu_hours:8.0f} CPU hours")
    for name, value in {**{f'write {k}': v for k, v in written.items()},
                        **{f'read {k}': v for k, v in read.items()}}.items():
        print(f"  {name:40s} {value / gb:9.0f} GB ({value / gb / args.units:8.0f} GB per unit)")
    print(f"\non {args.cores} cores and {args.units} units of {args.unit_mbps:.0f} MB/s: CPU "
          f"{cpu_hours / args.cores:.1f} h, busiest unit's I/O {io_hours:.1f} h -> wall time "
          f"about {wall:.1f} h (target < 3 h)")
    needed = per_unit / (3 * 3600) / 1e6
    print(f"under 3 h once each unit sustains {needed:.0f} MB/s (no page-cache hits counted: "
          f"{per_unit / gb:.0f} GB through each unit)")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
