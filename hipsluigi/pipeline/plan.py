"""Which plates exist at each order, on which storage unit, in which order to run them.

The plan of a map is its ``platelist.tbl``: the graph reads it (writing it first, from the
geometry, when it is missing), so an edited plate list (plates removed, units reassigned) is
what runs. Everything else here is derived from it and cached: task classes call these
functions from ``requires`` and ``output`` many times.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from hipsluigi.geometry.hpx import DIR_SIZE
from hipsluigi.geometry.platelist import plate_list
from hipsluigi.geometry.plates import PlateGrid, base_plate, grid_at_order, plate_neighbours
from hipsluigi.pipeline.worktree import check_work_tree, layout_of, prepare_work_tree
from hipsluigi.spec import MapSpec
from hipsluigi.storage.artifacts import read_plate_list, write_plate_list


@dataclass(frozen=True)
class PlatePlan:
    """Plates of the deepest order in submission order, with their storage unit and rank."""

    plates: tuple[tuple[int, int], ...]   # the rows of platelist.tbl, in order
    units: dict                           # (i, j) -> storage unit
    rank: dict                            # (i, j) -> row in platelist.tbl (0 = first)


def ensure_plate_list(spec: MapSpec) -> None:
    """Write ``platelist.tbl`` from the geometry unless it exists, in a work tree prepared for
    ``spec`` (``WorkTreeMismatch`` if the tree belongs to other settings).

    The graph is built from the plate list, so this runs while the graph is built, before any
    task; ``Setup`` and ``PlateList`` are then found complete.
    """
    layout = layout_of(spec)
    if not layout.fingerprint.exists():
        prepare_work_tree(spec)
    if not layout.platelist.exists():
        write_plate_list(layout.platelist,
                         plate_list(spec.grid, len(spec.storage), spec.region_spec))


@lru_cache(maxsize=8)
def plate_plan(spec: MapSpec) -> PlatePlan:
    """The plan ``platelist.tbl`` holds (written first if missing).

    Raises
    ------
    WorkTreeMismatch
        If the work tree was built with other pixel settings.
    ValueError
        Naming ``platelist.tbl`` if it lists a plate outside the grid or a unit outside
        ``[hips] storage``.
    """
    check_work_tree(spec)
    ensure_plate_list(spec)
    path = layout_of(spec).platelist
    table = read_plate_list(path)
    plates = tuple((int(i), int(j)) for i, j in zip(table["i"], table["j"], strict=True))
    nunits = len(spec.storage)
    units = {p: int(u) for p, u in zip(plates, table["unit"], strict=True)}
    for p, u in units.items():
        if not 0 <= u < nunits:
            raise ValueError(f"{path}: plate {p} on unit {u}, but [hips] storage has {nunits}")
        if not (0 <= p[0] < spec.grid.nplate and 0 <= p[1] < spec.grid.nplate):
            raise ValueError(f"{path}: plate {p} outside the {spec.grid.nplate}-plate grid")
    return PlatePlan(plates=plates, units=units, rank={p: k for k, p in enumerate(plates)})


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
    lower = grid(spec, order)
    f = spec.grid.nplate // lower.nplate
    seen: dict[tuple[int, int], None] = {}
    for i, j in plate_plan(spec).plates:
        p = (i // f, j // f)
        if duplicates or not lower.is_duplicate(*p):
            seen.setdefault(p)
    return tuple(seen)


def unit_of(spec: MapSpec, order: int, i: int, j: int) -> int:
    """Storage unit of plate ``(i, j)`` at ``order``: that of its lower-left deepest plate, or
    of the first listed deepest plate under it when the plate list left that one out."""
    plan = plate_plan(spec)
    corner = base_plate(spec.grid, order, i, j)
    if corner in plan.units:
        return plan.units[corner]
    return plan.units[first_base_plates(spec, order)[(i, j)]]


@lru_cache(maxsize=64)
def shared_dirs(spec: MapSpec, order: int) -> frozenset[int]:
    """The ``Dir`` folders of ``order`` (numbered ``npix // DIR_SIZE``) that hold tiles of plates
    on more than one storage unit: real folders of the published HiPS, whose tiles are linked
    one by one (:mod:`hipsluigi.storage.tile_links`); every other ``Dir`` is one link."""
    import numpy as np

    lower = grid(spec, order)
    owner: dict[int, int] = {}
    shared: set[int] = set()
    for i, j in plates_at_order(spec, order):
        u = unit_of(spec, order, i, j)
        for d in np.unique(lower.tiles(i, j)[0] // DIR_SIZE).tolist():
            if owner.setdefault(d, u) != u:
                shared.add(d)
    return frozenset(shared)


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
    g = spec.grid
    present = set(plates_at_order(spec, spec.order))
    pairs = plate_neighbours(PlateGrid(g.order, g.tile_width, g.nplate, 0))
    return tuple(((i1, j1), (i2, j2), kind) for (i1, j1, i2, j2), kind in sorted(pairs.items())
                 if (i1, j1) in present and (i2, j2) in present)


@lru_cache(maxsize=8)
def pairs_of(spec: MapSpec) -> dict[tuple[int, int], tuple[tuple[tuple[int, int],
                                                               tuple[int, int]], ...]]:
    """For every deepest plate: the overlap pairs ``(plus, minus)`` it belongs to."""
    out: dict[tuple[int, int], list] = {}
    for plus, minus, _ in overlap_pairs(spec):
        out.setdefault(plus, []).append((plus, minus))
        out.setdefault(minus, []).append((plus, minus))
    return {p: tuple(v) for p, v in out.items()}


def cones_icrs(spec: MapSpec, caps) -> list[tuple[float, float, float]]:
    """Plate caps ``(centre, radius)`` (map-frame unit vector, radians) as ICRS cones
    ``(ra, dec, radius)`` in degrees, for archive queries."""
    import numpy as np
    from astropy.coordinates import ICRS

    from hipsluigi.geometry.frames import astropy_frame, rotation_matrix, vec_to_lonlat

    rot = rotation_matrix(astropy_frame(spec.frame), ICRS())
    cones = []
    for centre, radius in caps:
        ra, dec = vec_to_lonlat(rot @ np.asarray(centre))
        cones.append((float(ra), float(dec), float(np.degrees(radius))))
    return cones
