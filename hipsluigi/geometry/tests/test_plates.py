"""Plate grid, plate list, pyramid grids and regions."""

import healpy as hp
import numpy as np
import pytest
from astropy.wcs import WCS

from hipsluigi.geometry.platelist import plate_list
from hipsluigi.geometry.plates import PlateGrid, children, default_nplate, grid_at_order
from hipsluigi.geometry.region import parse_region
from hipsluigi.geometry.sky import block_cap, plane_pixel_vectors, plate_pixel_vectors


def _bearing(grid, table) -> np.ndarray:
    """Which rows of a plate list bear tiles (all but cell (4, 4), face 6's copy)."""
    return np.array([not grid.is_duplicate(i, j)
                     for i, j in zip(table["i"], table["j"], strict=True)])


def test_order9_plate_list_has_3328_plates_balanced_units_round_robin():
    grid = PlateGrid(9, 512, 80, 256)
    table = plate_list(grid, 4)
    assert len(table) == 3328
    assert sorted(table["id"]) == list(range(3328))
    # The 3,072 plates that bear tiles are shared out evenly (768 a unit); the 256 of cell
    # (4, 4), face 6's copy, which make no task, go with the last unit.
    bearing = _bearing(grid, table)
    assert bearing.sum() == 3072
    assert list(np.bincount(table["unit"][bearing], minlength=4)) == [768] * 4
    assert list(np.bincount(table["unit"], minlength=4)) == [768, 768, 768, 1024]
    # Each unit holds a contiguous run of ids (plates contiguous on the sky)...
    for b in range(4):
        ids = np.sort(table["id"][table["unit"] == b])
        assert np.all(np.diff(ids) == 1)
    # ...and rows cycle through the units: 0, 1, 2, 3, 0, 1, ... while every unit has plates
    assert list(table["unit"][:8]) == [0, 1, 2, 3, 0, 1, 2, 3]
    assert np.all(table["unit"][:3072] == np.arange(3072) % 4)
    assert np.all(table["unit"][3072:] == 3)
    for b in range(4):
        assert np.all(np.diff(table["id"][table["unit"] == b]) > 0)
    # ids are i-major over on-sky plates
    first = table[table["id"] == 0][0]
    assert (first["i"], first["j"], first["plate"]) == (0, 0, "plate_00_00")


def test_plate_list_units_balanced_for_uneven_counts():
    grid = PlateGrid(6, 64, 10, 0)
    table = plate_list(grid, 3)  # 52 plates over 3 units, 48 of them bearing tiles
    bearing = _bearing(grid, table)
    counts = np.bincount(table["unit"][bearing])
    assert len(table) == 52 and bearing.sum() == 48 and counts.max() - counts.min() <= 1
    table = plate_list(grid, 5)  # 48 over 5: 9 or 10 each
    bearing = _bearing(grid, table)
    counts = np.bincount(table["unit"][bearing], minlength=5)
    assert counts.max() - counts.min() <= 1


def test_plate_header_follows_mtilehdr_montage_example():
    """Montage notes: mTileHdr hpx9.hdr plate.hdr 80 80 47 28 256 256."""
    h = PlateGrid(9, 512, 80, 256).plate_header(47, 28)
    assert h["NAXIS1"] == h["NAXIS2"] == 16896
    assert h["CRPIX1"] == -114431.5
    assert h["CRPIX2"] == 196864.5


def test_default_nplate_is_the_seed_table():
    assert [default_nplate(k) for k in (0, 3, 5, 6, 7, 9)] == [5, 5, 5, 10, 20, 80]


@pytest.mark.parametrize("order,width,nplate", [(2, 16, 5), (3, 8, 10)])
def test_plate_tiles_are_the_healpy_tiles_under_their_pixels(order, width, nplate):
    grid = PlateGrid(order, width, nplate, 0)
    for i, j in grid.sky_plates:
        npix, rows0, cols0 = grid.tiles(i, j)
        if grid.is_duplicate(i, j):
            assert len(npix) == 0
            continue
        w = WCS(grid.plate_header(i, j, padded=False))
        w.wcs.bounds_check(False, False)
        lon, lat = w.wcs_pix2world(cols0 + width / 2 - 0.5, rows0 + width / 2 - 0.5, 0)
        assert np.all(npix == hp.ang2pix(1 << order, lon, lat, nest=True, lonlat=True))


def test_every_healpix_tile_is_cut_from_exactly_one_plate():
    grid = PlateGrid(3, 8, 10, 2)
    tiles = np.concatenate([grid.tiles(i, j)[0] for i, j in grid.sky_plates])
    assert np.array_equal(np.sort(tiles), np.arange(12 * 4**3))


def test_pyramid_keeps_grid_while_plates_are_a_tile_wide_then_halves():
    base = PlateGrid(9, 512, 80, 256)
    grids = {k: grid_at_order(base, k) for k in range(10)}
    assert [grids[k].nplate for k in range(10)] == [5, 10, 20, 40, 80, 80, 80, 80, 80, 80]
    assert all(g.plate_side >= 512 for g in grids.values())
    assert grids[0].plate_side == 512
    assert children(base, 5, 3, 4) == [(3, 4)]
    assert children(base, 3, 3, 4) == [(6, 8), (7, 8), (6, 9), (7, 9)]


def test_grid_rejects_plates_narrower_than_a_tile():
    with pytest.raises(ValueError, match="narrower than one tile"):
        PlateGrid(2, 64, 40, 0)
    with pytest.raises(ValueError, match="5 \\* 2\\*\\*m"):
        PlateGrid(2, 64, 15, 0)


def test_block_cap_holds_every_pixel_of_the_block():
    grid = PlateGrid(2, 16, 5, 8)
    rng = np.random.default_rng(0)
    for i, j in grid.sky_plates:
        r0, c0 = rng.integers(0, 60, 2)
        rows, cols = slice(r0, r0 + 23), slice(c0, c0 + 17)
        centre, radius = block_cap(grid, i, j, rows, cols)
        vec = plate_pixel_vectors(grid, i, j, rows, cols).reshape(-1, 3)
        vec = vec[np.isfinite(vec[:, 0])]
        assert np.all(np.arccos(np.clip(vec @ centre, -1, 1)) <= radius)


def test_region_plates_selects_the_inclusive_range():
    grid = PlateGrid(6, 64, 10, 0)
    region = parse_region("plates 2 3 4 5", "galactic")
    picked = [p for p in grid.sky_plates if region.contains_plate(grid, *p)]
    assert picked and all(2 <= i <= 4 and 3 <= j <= 5 for i, j in picked)
    assert len(plate_list(grid, 1, region)) == len(picked)


def test_region_cone_keeps_plates_touching_the_cone_only():
    grid = PlateGrid(6, 64, 10, 0)
    region = parse_region("cone 30 10 5", "galactic")
    picked = [p for p in grid.sky_plates if region.contains_plate(grid, *p)]
    centre = hp.ang2vec(30, 10, lonlat=True)
    lattice = np.arange(0, grid.plate_side, 8)
    for i, j in grid.sky_plates:
        p1_0, p2_0 = grid.origin(i, j)
        vec = plane_pixel_vectors(p1_0 + lattice[None, :], p2_0 + lattice[:, None],
                                  grid.face_side).reshape(-1, 3)
        closest = np.degrees(np.arccos(np.clip(vec @ centre, -1, 1)).min())
        if closest < 4.5:
            assert (i, j) in picked
        if (i, j) in picked:
            # the selection is healpy's, exact to 1/1024 of a tile: the radius plus the
            # 8-pixel sampling here (8 * 0.014 deg across a diagonal)
            assert closest < 5 + 0.2


def test_region_cone_in_another_frame_is_converted():
    from astropy.coordinates import SkyCoord

    region = parse_region("cone 83.633 22.0145 1 icrs", "galactic")  # the Crab
    gal = SkyCoord(83.633, 22.0145, unit="deg", frame="icrs").galactic
    assert region.lon == pytest.approx(gal.l.deg, abs=1e-6)
    assert region.lat == pytest.approx(gal.b.deg, abs=1e-6)


@pytest.mark.parametrize("text", ["plates 1 2 3", "cone 1 2", "box 1 2 3 4", "cone 0 95 1",
                                  "plates 5 0 1 3"])
def test_region_errors_name_the_text(text):
    with pytest.raises(ValueError, match="region"):
        parse_region(text, "galactic")


def test_face_plate_neighbours_are_healpy_base_pixel_neighbours():
    from hipsluigi.geometry.hpx import FACE_GRID
    from hipsluigi.geometry.plates import plate_neighbours

    pairs = plate_neighbours(PlateGrid(0, 16, 5, 0))
    ours = {frozenset((int(FACE_GRID[j1, i1]), int(FACE_GRID[j2, i2])))
            for i1, j1, i2, j2 in pairs}
    expected = set()
    for face in range(12):
        for other in hp.get_all_neighbours(1, face, nest=True):
            if other >= 0:
                expected.add(frozenset((face, int(other))))
    assert ours == expected
    kinds = {frozenset((int(FACE_GRID[j1, i1]), int(FACE_GRID[j2, i2]))): kind
             for (i1, j1, i2, j2), kind in pairs.items()}
    # face 6 straddles l = 180: its neighbours 7, 2 and 10 lie across the wrap
    assert {f for f in kinds if kinds[f] == "wrap"} == {frozenset((6, k)) for k in (7, 2, 10)}
    # the four north faces (0-3) meet each other only across polar cuts; so do the south ones
    for group in ((0, 1, 2, 3), (8, 9, 10, 11)):
        for a in group:
            for b in group:
                if a < b:
                    assert kinds[frozenset((a, b))] == "cut"


def _pixel_contacts(grid):
    """Plate pairs from every boundary pixel's healpy neighbours, each contact classed by
    the two pixels' plane positions (adjacent; adjacent across the (4N, 4N) wrap; else cut),
    the strongest kind kept (cut > wrap > plane)."""
    from hipsluigi.geometry.hpx import nested_to_plane, plane_to_nested

    n, side = grid.face_side, grid.plate_side
    edge = np.arange(side)
    du = np.concatenate([edge, edge, np.zeros_like(edge), np.full_like(edge, side - 1)])
    dv = np.concatenate([np.zeros_like(edge), np.full_like(edge, side - 1), edge, edge])
    pairs = {}
    for i, j in grid.sky_plates:
        if grid.is_duplicate(i, j):
            continue
        a1, a2 = i * side + du, j * side + dv
        around = hp.get_all_neighbours(n, plane_to_nested(a1, a2, n), nest=True)
        ok = around >= 0
        q1, q2 = nested_to_plane(np.where(ok, around, 0), n)
        d1, d2 = q1 - a1, q2 - a2
        near = [np.maximum(np.abs(d1 + s), np.abs(d2 + s)) <= 1 for s in (0, 4 * n, -4 * n)]
        kind = np.where(near[0], 0, np.where(near[1] | near[2], 1, 2))
        for k, m, c in zip((q1 // side)[ok], (q2 // side)[ok], kind[ok], strict=True):
            if (k, m) != (i, j):
                key = min((i, j), (k, m)) + max((i, j), (k, m))
                pairs[key] = max(pairs.get(key, 0), int(c))
    return {key: ("plane", "wrap", "cut")[c] for key, c in pairs.items()}


@pytest.mark.parametrize("order,width,nplate", [(0, 4, 5), (1, 4, 10), (2, 2, 20), (2, 8, 10),
                                                (3, 2, 20)])
def test_plate_neighbours_equal_a_search_of_every_boundary_pixel(order, width, nplate):
    from hipsluigi.geometry.plates import plate_neighbours

    grid = PlateGrid(order, width, nplate, 0)
    assert plate_neighbours(grid) == _pixel_contacts(grid)


def _cone_vec(lon, lat):
    return hp.ang2vec(lon, lat, lonlat=True)


#: Cones (lon, lat, radius in degrees): on the +/-180 degree cut, near a pole, at face corners
#: (latitude +/-41.8 degrees, where z = 2/3), inside a face, and a wide one.
CONES = [(180.0, 0.0, 2.0), (0.0, 89.5, 1.0), (45.0, -41.81, 3.0), (301.3, 17.2, 0.7),
         (123.4, -64.0, 5.0), (30.0, 10.0, 20.0)]


@pytest.mark.parametrize("order", range(7))
def test_cone_plates_cover_every_healpy_pixel_touching_the_cone(order):
    """At orders 0-6, with the cone's default nplate: every pixel healpy finds touching the
    cone (query_disc inclusive, at the pixel order) is in a tile of a selected plate; every
    selected plate holds a pixel within the cone (plus a pixel); cell (4, 4) plates are
    selected with their face-6 twins."""
    width = 16
    nside = width << order
    for lon, lat, radius in CONES:
        grid = PlateGrid(order, width, default_nplate(order, radius), 0)
        region = parse_region(f"cone {lon} {lat} {radius}", "galactic")
        picked = [p for p in grid.sky_plates if region.contains_plate(grid, *p)]
        tiles = {p: grid.tiles(*p)[0] for p in picked if not grid.is_duplicate(*p)}
        selected = np.concatenate(list(tiles.values()))
        vec = _cone_vec(lon, lat)
        touching = hp.query_disc(nside, vec, np.radians(radius), inclusive=True, nest=True)
        assert np.isin(np.unique(touching >> (2 * int(np.log2(width)))), selected).all()
        slack = np.radians(radius) + 2 * hp.max_pixrad(nside)
        for p, plate_tiles in tiles.items():
            pixels = (plate_tiles[:, None] << (2 * int(np.log2(width)))) + np.arange(width**2)
            centres = np.array(hp.pix2vec(nside, pixels.ravel(), nest=True))
            assert np.arccos(np.clip(vec @ centres, -1, 1)).min() <= slack, p
        ppf4 = 4 * grid.plates_per_face
        for i, j in picked:
            if grid.is_duplicate(i, j):
                assert (i - ppf4, j - ppf4) in picked


def test_small_cone_plates_cover_little_more_than_the_cone():
    """Where plates no wider than the radius are allowed, the selected tiles' area is at most
    3.5 times the cone's (measured: 3.2 at worst); a 1 degree cone at order 3 takes at most 4
    one-tile plates, not a face."""
    for order, radius in ((4, 5.0), (5, 2.0), (6, 1.0), (6, 2.0), (7, 1.0)):
        grid = PlateGrid(order, 64, default_nplate(order, radius), 0)
        plate_deg = np.degrees(np.sqrt(np.pi / 3)) / grid.plates_per_face
        assert plate_deg <= radius
        for lon, lat, _ in CONES:
            region = parse_region(f"cone {lon} {lat} {radius}", "galactic")
            ntiles = sum(len(grid.tiles(*p)[0]) for p in grid.sky_plates
                         if region.contains_plate(grid, *p))
            area = ntiles * hp.nside2pixarea(1 << order)
            cone = 2 * np.pi * (1 - np.cos(np.radians(radius)))
            assert area <= 3.5 * cone, (order, radius, lon, lat, area / cone)
    grid = PlateGrid(3, 64, default_nplate(3, 1.0), 0)
    assert grid.tiles_per_plate_side == 1
    region = parse_region("cone 30 10 1", "galactic")
    assert 1 <= sum(region.contains_plate(grid, *p) for p in grid.sky_plates) <= 4


def test_cone_default_nplate_sizes_plates_to_the_cone_within_limits():
    from hipsluigi.geometry.plates import CONE_NPLATE_MAX, default_pad

    for order in range(13):
        for radius in (0.01, 0.3, 1.0, 4.0, 15.0, 60.0, 180.0):
            nplate = default_nplate(order, radius)
            grid = PlateGrid(order, 64, nplate, default_pad(order, 64, nplate))
            assert nplate >= default_nplate(order)  # never coarser than the plain default
            assert grid.plate_side >= 64 and 8 <= grid.pad < grid.face_side
            plate_deg = np.degrees(np.sqrt(np.pi / 3)) / grid.plates_per_face
            finest = max(default_nplate(order), min(5 << order, CONE_NPLATE_MAX))
            assert nplate <= finest
            if plate_deg > radius:  # as small as allowed
                assert nplate == finest
            elif nplate > default_nplate(order):  # the largest plates no wider than the radius
                assert 2 * plate_deg > radius
