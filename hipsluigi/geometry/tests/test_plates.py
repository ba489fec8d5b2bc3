"""Plate grid, plate list, pyramid grids and regions."""

import healpy as hp
import numpy as np
import pytest
from astropy.wcs import WCS

from hipsluigi.geometry.platelist import plate_list
from hipsluigi.geometry.plates import PlateGrid, children, default_nplate, grid_at_order
from hipsluigi.geometry.region import parse_region
from hipsluigi.geometry.sky import block_cap, plane_pixel_vectors, plate_pixel_vectors


def test_order9_plate_list_has_3328_plates_balanced_units_round_robin():
    grid = PlateGrid(9, 512, 80, 256)
    table = plate_list(grid, 4)
    assert len(table) == 3328
    assert sorted(table["id"]) == list(range(3328))
    counts = np.bincount(table["unit"], minlength=4)
    assert counts.max() - counts.min() <= 1
    # Each unit holds a contiguous run of ids (plates contiguous on the sky)...
    for b in range(4):
        ids = np.sort(table["id"][table["unit"] == b])
        assert np.all(np.diff(ids) == 1)
    # ...and rows cycle through the units: 0, 1, 2, 3, 0, 1, ...
    assert list(table["unit"][:8]) == [0, 1, 2, 3, 0, 1, 2, 3]
    assert np.all(table["unit"] == np.arange(3328) % 4)
    for b in range(4):
        assert np.all(np.diff(table["id"][table["unit"] == b]) > 0)
    # ids are i-major over on-sky plates
    first = table[table["id"] == 0][0]
    assert (first["i"], first["j"], first["plate"]) == (0, 0, "plate_00_00")


def test_plate_list_units_balanced_for_uneven_counts():
    table = plate_list(PlateGrid(6, 64, 10, 0), 3)  # 52 plates over 3 units
    counts = np.bincount(table["unit"])
    assert len(table) == 52 and counts.max() - counts.min() <= 1


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
            assert closest < 5 + 4.5  # radius + one 17-point lattice diagonal of a 29 deg plate


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


def test_sampled_plate_neighbours_equal_a_full_boundary_search():
    from hipsluigi.geometry.plates import plate_neighbours

    grid = PlateGrid(1, 16, 10, 0)  # 16-pixel plates
    assert plate_neighbours(grid, samples=5) == plate_neighbours(grid, samples=16)
