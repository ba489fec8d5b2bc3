"""The global background solve for the order-9 overlap network, on one core.

Builds the real pairs of the 80 x 80 order-9 plate grid (every 8-connected plane pair, and the
pairs across the polar cuts and the +/-180 degree wrap, from ``plate_neighbours``), gives every
plate a known correction plane, derives each pair's fitted difference from them (with noise),
and times ``solve_background`` (levels, then levels and slopes). Prints the time, the number of
plates and fits, and how well the known corrections come back.

    .venv/bin/python benchmarks/bench_background_model.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from types import SimpleNamespace

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the target says
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from hipsluigi.background.model import solve_background  # noqa: E402
from hipsluigi.geometry.plates import PlateGrid, plate_neighbours  # noqa: E402


def synthetic_fits(grid: PlateGrid, slopes: bool, seed: int = 1):
    """Fits for every neighbour pair, from known corrections ``(a, b, c)`` per plate
    (``b = a = 0`` without ``slopes``)."""
    rng = np.random.default_rng(seed)
    plates = [p for p in grid.sky_plates if not grid.is_duplicate(*p)]
    ids = {p: k for k, p in enumerate(plates)}
    n = grid.face_side
    crpix = (5 * n + 1) / 2
    side = grid.plate_side
    tilt = 1e-6 if slopes else 0.0  # per pixel: ~0.26 across a face, ~0.016 across a plate
    truth = {k: (rng.normal(0, tilt), rng.normal(0, tilt), rng.normal(0, 1.0))
             for k in ids.values()}
    fits = []
    for (i1, j1, i2, j2), kind in plate_neighbours(grid).items():
        plus, minus = ids[(i1, j1)], ids[(i2, j2)]
        # overlap strip centred on the shared boundary (in plus plane pixels)
        cx = (i1 + 0.5 + 0.5 * np.sign(i2 - i1)) * side - crpix
        cy = (j1 + 0.5 + 0.5 * np.sign(j2 - j1)) * side - crpix
        lin, t = np.eye(2), np.zeros(2)
        if kind == "wrap":
            t = np.full(2, 4.0 * n * (1 if i2 + j2 > i1 + j1 else -1))
        elif kind == "cut":  # a 90 degree turn (about the plane centre, for the benchmark)
            lin = np.array([[0.0, -1.0], [1.0, 0.0]])
            t = crpix - lin @ np.full(2, crpix)
        # D(p) = Q_plus(p) - Q_minus(T p): a plane in plus coordinates
        c0, a, b = (_difference(truth[plus], truth[minus], lin, t, crpix, x, y)
                    for x, y in ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)))
        a, b = a - c0, b - c0
        noise = rng.normal(0, 0.01)
        fits.append(SimpleNamespace(
            plus=plus, minus=minus, a=a, b=b, c=c0 + noise, npixel=side * 512,
            xcenter=cx, ycenter=cy, sxx=side**2 / 12, sxy=0.0, syy=256.0**2 / 3,
            l11=lin[0, 0], l12=lin[0, 1], l21=lin[1, 0], l22=lin[1, 1], t1=t[0], t2=t[1],
            crpix1=crpix, crpix2=crpix))
    centres = {ids[p]: ((p[0] + 0.5) * side - crpix, (p[1] + 0.5) * side - crpix)
               for p in plates}
    return list(ids.values()), fits, truth, centres


def _value(q, xy) -> float:
    return q[0] * xy[0] + q[1] * xy[1] + q[2]


def _difference(qp, qm, lin, t, crpix, x, y) -> float:
    m = lin @ np.array([x + crpix, y + crpix]) + t - crpix
    return (qp[0] * x + qp[1] * y + qp[2]) - (qm[0] * m[0] + qm[1] * m[1] + qm[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    grid = PlateGrid(9, 512, 80, 0)
    for slopes in (False, True):
        ids, fits, truth, centres = synthetic_fits(grid, slopes)
        if not slopes:
            print(f"order-9 network: {len(ids)} plates (cell (4,4) copies excluded), "
                  f"{len(fits)} fits")
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            solution = solve_background(fits, ids, grid.face_side, slopes=slopes)
            times.append(time.perf_counter() - start)
        # each plate's correction where it matters: at the plate's centre
        got = np.array([_value(solution.planes[k], centres[k]) for k in ids])
        want = np.array([_value(truth[k], centres[k]) for k in ids])
        err = (got - got.mean()) - (want - want.mean())
        kind = "levels and slopes" if slopes else "levels"
        print(f"{kind}: median {statistics.median(times):.2f} s over {args.repeat} (min "
              f"{min(times):.2f} s); error at plate centres rms {err.std():.4f} (offsets 1.0, "
              f"fit noise 0.01); {len(solution.rejected)} fits rejected")


if __name__ == "__main__":
    main()
