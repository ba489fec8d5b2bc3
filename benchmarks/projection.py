"""Projection: the whole-sky WISE W1 map at order 9 on the seed's cluster, from a measured run.

Reads what ``benchmarks/bench_measured_run.py`` measured (a whole-sky ``fits`` survey run with
512-pixel tiles, 4 storage units, ``background = global``): the bytes each task family read and
wrote on each unit (counted by the tasks themselves), its CPU seconds and the peak disk of
each unit. Scales them to order 9 by the ratio of deepest-order pixels, ``4**(9 - order)``:

* per-plate families (mosaics, overlap fits, corrections, shrinks, tiles, PNGs) scale with
  the pixels (the default padding is 1/32 of the plate side at every order, so the mosaics'
  and the overlaps' share of a plate is the same);
* map-level families (index, plate table, background model, histogram merge, metadata, QA
  report, and the histograms of ``histogram_order`` 3) are taken as measured;
* the pixel work and the disk are spread over the units as the order-9 plate list spreads
  the tile-bearing plates (the measured map has too few plates to be balanced);
* survey images: the measured bytes per output pixel times ``(0.8 / 1.375)**2`` (AllWISE
  Atlas pixels of 1.375" against the map's 0.8", both float32, similar coverage), downloaded
  to the units evenly (``uU/_downloads``) and read from them. The mosaics' reads are the
  measured ones (an image on a plate edge is read by each plate it touches); the download is
  the survey's own bytes (``survey_bytes``, each image once, as the download cache fetches
  it), or the reads for a measurement that did not record them.

Then prints the busiest unit's bytes and time at ``--unit-mbps``, the CPU hours, the wall time
(the larger of CPU over the cores and the busiest unit's I/O), and the peak disk per unit for
one band and for W1-W4 (three finished bands plus one band at its peak), against the seed's
units (16, 6, 6, 6 TB).

    .venv/bin/python benchmarks/projection.py [--measured benchmarks/results/measured_run.json]
        [--unit-mbps 500] [--cores 80]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_ORDER = 9
#: AllWISE Atlas pixel (arcsec) against the order-9, 512-pixel map's (order 18 pixels).
INPUT_RATIO = (0.8 / 1.375) ** 2
SEED_UNITS_TB = (16, 6, 6, 6)
PER_PLATE = {"PlateMosaic", "OverlapFit", "CorrectPlate", "ShrinkPlate", "PlateTiles",
             "PlatePNGs"}
OUTSIDE = "outside"


def unit_shares(nunits: int) -> list[float]:
    """Each unit's share of the order-9 map's tile-bearing plates (the seed's 80-a-side grid,
    ``platelist.tbl``'s assignment; cell (4, 4) repeats face 6 and holds no tile)."""
    import numpy as np

    from hipsluigi.geometry.platelist import plate_list
    from hipsluigi.geometry.plates import PlateGrid

    grid = PlateGrid(TARGET_ORDER, 512, 80, 0)
    table = plate_list(grid, nunits)
    bearing = np.array([not grid.is_duplicate(int(i), int(j))
                        for i, j in zip(table["i"], table["j"], strict=True)])
    counts = np.bincount(table["unit"][bearing], minlength=nunits)
    return list(counts / counts.sum())


def project(measured: dict) -> dict:
    """Order-9 bytes by unit (read + written), by family, CPU seconds and disk."""
    scale = 4 ** (TARGET_ORDER - measured["order"])
    nunits = measured["units"]
    units = [f"unit{u}" for u in range(nunits)]
    shares = unit_shares(nunits)
    per_unit = dict.fromkeys(units, 0.0)
    per_family: dict[str, float] = {}
    inputs = 0.0
    input_scale = scale * INPUT_RATIO
    for family, counts in measured["families"].items():
        per_plate = family in PER_PLATE
        for unit, rw in counts.items():
            if unit == OUTSIDE:
                inputs += rw["read"] * input_scale
                continue
            moved = rw["read"] + rw["written"]
            per_family[family] = per_family.get(family, 0.0) + moved * (scale if per_plate
                                                                         else 1)
            if not per_plate:  # map-level work stays where it was measured
                per_unit[unit] += moved
        if per_plate:  # pixel work goes where the order-9 plates are
            total = sum(rw["read"] + rw["written"] for u, rw in counts.items() if u != OUTSIDE)
            for unit, share in zip(units, shares, strict=True):
                per_unit[unit] += total * scale * share
    downloads = (measured["survey_bytes"] * input_scale if "survey_bytes" in measured
                 else inputs)
    for unit, share in zip(units, shares, strict=True):  # downloaded, then read by mosaics
        per_unit[unit] += (downloads + inputs) * share
    per_family["survey images (download)"] = downloads
    per_family["survey images (read by the mosaics)"] = inputs
    cpu = sum(s * (scale if f in PER_PLATE else 1)
              for f, s in measured["cpu_seconds"].items())
    disk = {}
    for kind in ("peak_disk", "final_disk"):
        total = sum(measured[kind].values()) * scale
        disk[kind] = {u: total * share for u, share in zip(units, shares, strict=True)}
    return {"scale": scale, "shares": shares, "per_unit": per_unit, "per_family": per_family,
            "cpu": cpu, "peak": disk["peak_disk"], "final": disk["final_disk"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measured", type=Path,
                        default=REPO / "benchmarks" / "results" / "measured_run.json")
    parser.add_argument("--cores", type=int, default=80)
    parser.add_argument("--unit-mbps", type=float, default=500.0)
    args = parser.parse_args()
    measured = json.loads(args.measured.read_text())
    p = project(measured)
    tb, gb = 1e12, 1e9
    print(f"measured: order {measured['order']}, {measured['tile_width']}-pixel tiles, "
          f"{measured['units']} units, keep_intermediate {measured['keep_intermediate']}, "
          f"{measured['wall_seconds']:.0f} s wall on this machine; scaled x{p['scale']} to "
          f"order {TARGET_ORDER}\n")
    print("bytes moved at order 9, by task family (read + written):")
    for family, n in sorted(p["per_family"].items(), key=lambda kv: -kv[1]):
        print(f"  {family:38s} {n / tb:8.2f} TB")
    print("\nby storage unit:")
    mean = sum(p["per_unit"].values()) / len(p["per_unit"])
    for unit, n in p["per_unit"].items():
        hours = n / (args.unit_mbps * 1e6) / 3600
        print(f"  {unit}: {n / tb:6.2f} TB, {hours:4.1f} h at {args.unit_mbps:.0f} MB/s "
              f"({100 * (n / mean - 1):+.1f} % of the mean)")
    busiest_unit, busiest = max(p["per_unit"].items(), key=lambda kv: kv[1])
    io_hours = busiest / (args.unit_mbps * 1e6) / 3600
    cpu_hours = p["cpu"] / 3600
    wall = max(cpu_hours / args.cores, io_hours)
    print(f"\nCPU: {cpu_hours:.0f} CPU hours, {cpu_hours / args.cores:.1f} h on {args.cores} "
          f"cores")
    print(f"busiest unit: {busiest_unit}, {busiest / tb:.2f} TB, {io_hours:.1f} h")
    print(f"wall time: about {wall:.1f} h (goal < 3 h: {'met' if wall < 3 else 'NOT met'}); "
          f"busiest unit {100 * (busiest / mean - 1):.1f} % above the mean (goal <= 15 %: "
          f"{'met' if busiest <= 1.15 * mean else 'NOT met'})")
    print("\npeak disk per unit, one band (measured peak x scale) and W1-W4 (three finished "
          "bands + one at its peak), against the seed's units:")
    fits_all = True
    for k, unit in enumerate(sorted(p["peak"])):
        one = p["peak"][unit]
        four = 3 * p["final"][unit] + one
        cap = SEED_UNITS_TB[k] * tb if k < len(SEED_UNITS_TB) else float("nan")
        fits_all &= four <= cap
        print(f"  {unit}: one band {one / tb:5.2f} TB, W1-W4 {four / tb:5.2f} TB "
              f"(unit holds {cap / tb:.0f} TB: {'fits' if four <= cap else 'does NOT fit'}; "
              f"one band {'fits' if one <= cap else 'does NOT fit'})")
    print(f"W1-W4 within the seed's units: {'yes' if fits_all else 'no'}")
    print(f"\nunder 3 h once each unit sustains {busiest / (3 * 3600) / 1e6:.0f} MB/s "
          f"({busiest / gb:.0f} GB through the busiest unit)")


if __name__ == "__main__":
    main()
