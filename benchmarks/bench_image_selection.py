"""Choosing the images of every plate of an order-9 sky from an index of 20,000 footprints.

As each ``PlateMosaic`` does (``hipsluigi.pipeline.tasks``): the padded plate's bounding cap
(``hipsluigi.geometry.sky.plate_cap``), then ``hipsluigi.surveys.base.caps_intersect`` of that
cap with every image's cap, one call per plate. The index holds random caps of AllWISE Atlas
size (1.56 deg square tiles: a cap of half the diagonal, 1.10 deg) with centres uniform over
the sphere. The plates are the default grid of an order-9 map with 512-pixel tiles (80 plates
a side, the 3,328 on the sky less the cell (4, 4) copies of face 6, which make no mosaic).

Prints the plates and images, the images chosen per plate, and the median of ``--runs`` runs
of the whole selection (plate caps included), with the caps and the intersections apart; then
the same with ``hipsluigi.surveys.base.caps_touching`` (a k-d tree of the image centres, all
plates in one call), checked to choose exactly the same images.

    .venv/bin/python benchmarks/bench_image_selection.py [--images 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from hipsluigi.geometry.frames import lonlat_to_vec
from hipsluigi.geometry.plates import PlateGrid, default_nplate, default_pad
from hipsluigi.geometry.sky import plate_cap
from hipsluigi.surveys.base import caps_intersect, caps_touching

ORDER, TILE_WIDTH = 9, 512
ATLAS_SIDE_DEG = 1.56


def footprint_index(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(centres (count, 3), radii (count,) in radians)`` of random Atlas-sized caps."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(0.0, 360.0, count)
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, count)))  # uniform over the sphere
    radius = np.radians(ATLAS_SIDE_DEG / np.sqrt(2.0))
    return lonlat_to_vec(lon, lat), np.full(count, radius)


def select(grid: PlateGrid, plates, centres, radii) -> tuple[list[np.ndarray], float, float]:
    """Images per plate, and the seconds spent on the plate caps and on the intersections."""
    chosen, caps_s, hits_s = [], 0.0, 0.0
    for i, j in plates:
        t0 = time.perf_counter()
        centre, radius = plate_cap(grid, i, j)
        t1 = time.perf_counter()
        chosen.append(np.flatnonzero(caps_intersect(centres, radii, centre, radius)))
        caps_s += t1 - t0
        hits_s += time.perf_counter() - t1
    return chosen, caps_s, hits_s


def select_with_tree(grid: PlateGrid, plates, centres, radii
                     ) -> tuple[list[np.ndarray], float, float]:
    """As :func:`select`, the intersections by :func:`caps_touching` for all plates at once."""
    t0 = time.perf_counter()
    caps = [plate_cap(grid, i, j) for i, j in plates]
    t1 = time.perf_counter()
    chosen = caps_touching(centres, radii, np.array([c for c, _ in caps]),
                           np.array([r for _, r in caps]))
    return chosen, t1 - t0, time.perf_counter() - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    nplate = default_nplate(ORDER)
    grid = PlateGrid(ORDER, TILE_WIDTH, nplate, default_pad(ORDER, TILE_WIDTH, nplate))
    plates = [p for p in grid.sky_plates if not grid.is_duplicate(*p)]
    centres, radii = footprint_index(args.images)

    print(f"order {ORDER}, {TILE_WIDTH}-pixel tiles: {len(plates)} plates "
          f"({nplate} a side, padding {grid.pad} px); {args.images} images "
          f"(caps of {np.degrees(radii[0]):.2f} deg)")
    results = {}
    for name, method in (("caps_intersect per plate", select),
                         ("caps_touching, all plates", select_with_tree)):
        totals, caps, hits = [], [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            chosen, caps_s, hits_s = method(grid, plates, centres, radii)
            totals.append(time.perf_counter() - t0)
            caps.append(caps_s)
            hits.append(hits_s)
        results[name] = chosen
        print(f"{name}: median of {args.runs} runs {statistics.median(totals):.2f} s "
              f"(plate caps {statistics.median(caps):.2f} s, selection "
              f"{statistics.median(hits):.2f} s); runs: " + ", ".join(f"{t:.2f}" for t in totals))
    first, second = results.values()
    same = all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    per_plate = np.array([len(c) for c in first])
    print(f"images per plate: median {np.median(per_plate):.0f}, max {per_plate.max()}, "
          f"{np.count_nonzero(per_plate == 0)} plates with none; both choose the same images: "
          f"{same}")
    if not same:
        raise SystemExit("caps_touching chose other images than caps_intersect")


if __name__ == "__main__":
    main()
