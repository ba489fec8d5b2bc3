"""Which plates exist at each order, on which storage unit, in which order to run them.

Pure functions of a :class:`MapSpec`, cached: task classes call them from ``requires`` and
``output`` many times.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from hipsluigi.config import MapSpec
from hipsluigi.geometry.platelist import plate_list
from hipsluigi.geometry.plates import PlateGrid, base_plate, grid_at_order


@dataclass(frozen=True)
class PlatePlan:
    """Plates of the deepest order in submission order, with their bin and rank."""

    plates: tuple[tuple[int, int], ...]   # round-robin order of platelist.tbl
    bins: dict                            # (i, j) -> storage bin
    rank: dict                            # (i, j) -> row in platelist.tbl (0 = first)


@lru_cache(maxsize=8)
def plate_plan(spec: MapSpec) -> PlatePlan:
    table = plate_list(spec.grid, spec.layout.nunits, spec.region_spec)
    plates = tuple((int(i), int(j)) for i, j in zip(table["i"], table["j"], strict=True))
    return PlatePlan(
        plates=plates,
        bins={p: int(b) for p, b in zip(plates, table["bin"], strict=True)},
        rank={p: k for k, p in enumerate(plates)},
    )


def grid(spec: MapSpec, order: int) -> PlateGrid:
    """The unpadded plate grid at ``order``."""
    return grid_at_order(spec.grid, order)


@lru_cache(maxsize=64)
def plates_at_order(spec: MapSpec, order: int, duplicates: bool = False
                    ) -> tuple[tuple[int, int], ...]:
    """Plates at ``order`` built from the plate list, in submission order.

    Without ``duplicates``, plates of cell (4, 4) (the face-6 copy, which yields no tile) are
    left out.
    """
    base = spec.grid
    lower = grid(spec, order)
    f = base.nplate // lower.nplate
    seen: dict[tuple[int, int], None] = {}
    for i, j in plate_plan(spec).plates:
        p = (i // f, j // f)
        if duplicates or not lower.is_duplicate(*p):
            seen.setdefault(p)
    return tuple(seen)


def bin_of(spec: MapSpec, order: int, i: int, j: int) -> int:
    """Storage bin of plate ``(i, j)`` at ``order``: that of its lower-left deepest plate, or
    of the first listed deepest plate under it when a region cut that one out."""
    plan = plate_plan(spec)
    corner = base_plate(spec.grid, order, i, j)
    if corner in plan.bins:
        return plan.bins[corner]
    return plan.bins[first_base_plates(spec, order)[(i, j)]]


def rank_of(spec: MapSpec, order: int, i: int, j: int) -> int:
    """Row in ``platelist.tbl`` of the first listed deepest plate under plate ``(i, j)``."""
    return plate_plan(spec).rank[first_base_plates(spec, order)[(i, j)]]


@lru_cache(maxsize=64)
def first_base_plates(spec: MapSpec, order: int) -> dict[tuple[int, int], tuple[int, int]]:
    """For every plate at ``order``: the first deepest plate under it in submission order."""
    f = spec.grid.nplate // grid(spec, order).nplate
    first: dict[tuple[int, int], tuple[int, int]] = {}
    for i, j in plate_plan(spec).plates:
        first.setdefault((i // f, j // f), (i, j))
    return first


@lru_cache(maxsize=8)
def plate_ids(spec: MapSpec) -> dict[tuple[int, int], int]:
    """Row (``cntr``) of each deepest plate in ``images.tbl``: i-major order."""
    return {p: k for k, p in enumerate(sorted(plates_at_order(spec, spec.order)))}


@lru_cache(maxsize=8)
def overlap_pairs(spec: MapSpec) -> tuple[tuple[tuple[int, int], tuple[int, int], str], ...]:
    """``(plus, minus, kind)`` of every pair of neighbouring deepest plates in the map."""
    from hipsluigi.geometry.plates import PlateGrid, plate_neighbours

    grid = spec.grid
    present = set(plates_at_order(spec, spec.order))
    pairs = plate_neighbours(PlateGrid(grid.order, grid.tile_width, grid.nplate, 0))
    return tuple(((i1, j1), (i2, j2), kind) for (i1, j1, i2, j2), kind in sorted(pairs.items())
                 if (i1, j1) in present and (i2, j2) in present)
