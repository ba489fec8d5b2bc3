"""HPX plane geometry, checked against healpy and WCSLIB (astropy), never against itself."""

import healpy as hp
import numpy as np
import pytest
from astropy.wcs import WCS

from hipsluigi.geometry.hpx import (
    FACE_GRID,
    nested_to_plane,
    plane_to_nested,
    plane_wcs_header,
    tile_header,
    tile_plane_position,
    tile_relpath,
)


def _wcs(header, bounds=True):
    w = WCS(header)
    if not bounds:
        w.wcs.bounds_check(False, False)
    return w


@pytest.mark.parametrize("frame", ["galactic", "equatorial"])
@pytest.mark.parametrize("order,width", [(0, 8), (1, 16), (2, 8)])
def test_plane_pixel_nested_index_agrees_with_wcslib_and_healpy(order, width, frame):
    n = width << order
    p1, p2 = np.meshgrid(np.arange(5 * n), np.arange(5 * n))
    lon, lat = _wcs(plane_wcs_header(order, width, frame)).wcs_pix2world(p1, p2, 0)
    ok = np.isfinite(lon)
    expected = hp.ang2pix(n, lon[ok], lat[ok], nest=True, lonlat=True)
    got = plane_to_nested(p1, p2, n)[ok]
    assert np.count_nonzero(got != expected) == 0
    # Off-sky cells (|I - J| > 1) are -1 and WCSLIB finds no sky there either.
    off = np.abs(p1 // n - p2 // n) > 1
    assert np.all(plane_to_nested(p1, p2, n)[off] == -1)
    assert not np.any(ok & off)


def test_face_grid_is_healpy_base_pixel_of_each_cell_centre():
    n = 64
    header = plane_wcs_header(0, n)
    w = _wcs(header, bounds=False)
    for cj in range(5):
        for ci in range(5):
            if abs(ci - cj) > 1:
                assert FACE_GRID[cj, ci] == -1
                continue
            lon, lat = w.wcs_pix2world([ci * n + n / 2 - 0.5], [cj * n + n / 2 - 0.5], 0)
            assert FACE_GRID[cj, ci] == hp.ang2pix(1, lon[0], lat[0], nest=True, lonlat=True)


def test_pixels_past_the_wrap_get_the_sky_position_wcslib_gives_without_bounds_check():
    """Cell (0,0), cell (4,4) and padding beyond the plane edges (the +/-180 deg wrap)."""
    n = 32
    w = _wcs(plane_wcs_header(1, 16), bounds=False)
    rng = np.random.default_rng(3)
    p1 = np.concatenate([rng.integers(-20, n, 500), rng.integers(4 * n, 5 * n + 20, 500)])
    p2 = p1 + rng.integers(-n // 2, n // 2, 1000)
    nest = plane_to_nested(p1, p2, n)
    sky = nest >= 0
    assert sky.sum() > 800
    lon, lat = w.wcs_pix2world(p1[sky], p2[sky], 0)
    assert np.all(hp.ang2pix(n, lon, lat, nest=True, lonlat=True) == nest[sky])


def test_nested_to_plane_inverts_plane_to_nested_on_every_pixel():
    nside = 16
    nest = np.arange(12 * nside * nside)
    p1, p2 = nested_to_plane(nest, nside)
    assert np.all(plane_to_nested(p1, p2, nside) == nest)
    assert np.all(np.abs(p1 // nside - p2 // nside) <= 1)


def test_tile_header_matches_the_hips_standard_worked_example():
    """HiPS 2.0 WD, FITS tile WCS enabler: tile 0/7 of 512 x 512."""
    h = tile_header(0, 7, 512, "equatorial")
    assert (h["CTYPE1"], h["CTYPE2"]) == ("RA---HPX", "DEC--HPX")
    assert h["CRPIX1"] == h["CRPIX2"] == -255.5
    assert (h["CRVAL1"], h["CRVAL2"]) == (0, 0)
    assert h["CD1_1"] == pytest.approx(-0.087890625)
    assert h["CD1_2"] == pytest.approx(-0.087890625)
    assert h["CD2_1"] == pytest.approx(0.087890625)
    assert h["CD2_2"] == pytest.approx(-0.087890625)
    assert (h["PV2_1"], h["PV2_2"]) == (4, 3)


@pytest.mark.parametrize("order,width", [(0, 16), (2, 8), (3, 4)])
def test_tile_wcs_puts_each_pixel_on_the_standard_healpix_subpixel(order, width):
    """row r, column c of tile N holds ix = w-1-r, iy = c (HiPS convention), via healpy."""
    rng = np.random.default_rng(order)
    n_tiles = 12 * 4**order
    nside_pix = width << order
    rows, cols = np.meshgrid(np.arange(width), np.arange(width), indexing="ij")
    for npix in rng.choice(n_tiles, size=min(n_tiles, 24), replace=False):
        w = _wcs(tile_header(order, int(npix), width, "galactic"), bounds=False)
        lon, lat = w.wcs_pix2world(cols, rows, 0)
        got = hp.ang2pix(nside_pix, lon, lat, nest=True, lonlat=True)
        tx, ty, face = hp.pix2xyf(1 << order, int(npix), nest=True)
        expected = hp.xyf2pix(nside_pix, tx * width + (width - 1 - rows), ty * width + cols,
                              face, nest=True)
        assert np.all(got == expected)


def test_montage_notes_tile_example_centre():
    """Montage notes: Norder9/Npix1746330 is centred at GLON 144.23, GLAT 0 (512 tiles)."""
    tc, tr = tile_plane_position(9, np.array(1746330))
    w = _wcs(plane_wcs_header(9, 512), bounds=False)
    lon, lat = w.wcs_pix2world([tc * 512 + 255.5], [tr * 512 + 255.5], 0)
    assert lon[0] == pytest.approx(144.23, abs=0.01)
    assert lat[0] == pytest.approx(0.0, abs=0.01)
    hp_lon, hp_lat = hp.pix2ang(512, 1746330, nest=True, lonlat=True)
    assert (lon[0], lat[0]) == pytest.approx((hp_lon, hp_lat), abs=0.06)


def test_tile_relpath_uses_the_standard_directory_rule():
    assert tile_relpath(6, 10302, "fits") == "Norder6/Dir10000/Npix10302.fits"
    assert tile_relpath(9, 1746330, "png") == "Norder9/Dir1740000/Npix1746330.png"
    assert tile_relpath(0, 7, "png") == "Norder0/Dir0/Npix7.png"


@pytest.mark.parametrize("cell", [(1, 0), (2, 1), (3, 2), (4, 3), (0, 1), (1, 2), (2, 3), (3, 4)])
def test_padding_unfolded_across_polar_cuts_continues_the_sky(cell):
    """Plane neighbours in a polar cell's padding strips are HEALPix neighbours (healpy)."""
    from hipsluigi.geometry.hpx import unfold_across_cuts

    n, pad = 16, 5
    ci, cj = cell
    p1, p2 = np.meshgrid(np.arange(ci * n - pad, (ci + 1) * n + pad),
                         np.arange(cj * n - pad, (cj + 1) * n + pad))
    u1, u2 = unfold_across_cuts(p1, p2, ci, cj, n)
    nest = plane_to_nested(u1, u2, n)
    in_cols = (p1 >= ci * n) & (p1 < (ci + 1) * n)
    in_rows = (p2 >= cj * n) & (p2 < (cj + 1) * n)
    usable = (in_cols | in_rows) & (nest >= 0)  # the cell and its four edge strips
    assert usable[in_cols | in_rows].all()  # every strip pixel, cut side included, is sky
    moved = (u1 != p1) | (u2 != p2)
    assert moved.sum() == 2 * n * pad  # the two strips beyond the cuts
    checked = 0
    for a, b in (((slice(None), slice(0, -1)), (slice(None), slice(1, None))),
                 ((slice(0, -1), slice(None)), (slice(1, None), slice(None)))):
        both = usable[a] & usable[b]
        same_side = (in_cols[a] == in_cols[b]) | (in_rows[a] == in_rows[b])
        pairs = both & same_side
        around = hp.get_all_neighbours(n, nest[a][pairs], nest=True)
        assert (around == nest[b][pairs][None, :]).any(axis=0).all()
        checked += pairs.sum()
    assert checked > 2 * (n + 2 * pad) * n


def _healpy_tile_centres(order, npix, width, step=1):
    """healpy's centres (lon, lat, degrees) of tile ``npix``'s pixels ``[row, col]`` (every
    ``step``-th row and column) under the HiPS FITS convention: row r, column c holds the
    sub-pixel ``ix = w-1-r, iy = c`` of the tile's face-local ``(x, y)``."""
    rows, cols = np.meshgrid(np.arange(0, width, step), np.arange(0, width, step), indexing="ij")
    tx, ty, face = hp.pix2xyf(1 << order, npix, nest=True)
    ipix = hp.xyf2pix(width << order, tx * width + (width - 1 - rows), ty * width + cols, face,
                      nest=True)
    lon, lat = hp.pix2ang(width << order, ipix, nest=True, lonlat=True)
    return rows, cols, ipix, lon, lat


@pytest.mark.parametrize("order,width,step", [(0, 64, 1), (1, 64, 1), (2, 64, 1), (3, 64, 1),
                                              (0, 512, 3), (1, 512, 5)])
def test_every_tile_wcs_maps_its_pixel_centres_to_healpy_centres(order, width, step):
    """Every tile's WCS (WCSLIB bounds checks on), face 6 across the +/-180 degree cut
    included, puts healpy's centres of the tile's pixels within 0.01 pixel of their
    row and column, and maps each pixel centre back into that pixel."""
    worst = 0.0
    for npix in range(12 * 4**order):
        rows, cols, ipix, lon, lat = _healpy_tile_centres(order, npix, width, step)
        # The convention, checked apart from any WCS: the sub-pixels lie in tile npix (NESTED
        # hierarchy) and fill it once each.
        assert np.all(ipix >> (2 * int(np.log2(width))) == npix)
        assert len(np.unique(ipix)) == ipix.size
        w = WCS(tile_header(order, npix, width, "galactic"))
        x, y = w.world_to_pixel_values(lon, lat)
        err = np.maximum(np.abs(x - cols), np.abs(y - rows))
        assert np.all(np.isfinite(err)), f"tile {order}/{npix}: WCSLIB maps no sky"
        worst = max(worst, float(err.max()))
        assert err.max() < 0.01, f"tile {order}/{npix}: {err.max():.3g} pixel off"
        back_lon, back_lat = w.pixel_to_world_values(cols, rows)
        assert np.array_equal(hp.ang2pix(width << order, back_lon, back_lat, nest=True,
                                         lonlat=True), ipix)
    assert worst < 1e-6  # the mapping is exact up to rounding


def test_split_face_tile_wcs_keeps_the_others_on_the_shared_plane():
    """Only face 6's tiles take the plane turned by 180 degrees; each of their headers still
    has the standard CD matrix and differs from the plane's by the reference point only."""
    order, width = 2, 64
    for npix in range(12 * 4**order):
        h = tile_header(order, npix, width, "equatorial")
        tc, tr = tile_plane_position(order, np.array(npix))
        plane = plane_wcs_header(order, width, "equatorial")
        if npix >> (2 * order) == 6:
            assert h["CRVAL1"] == 180.0
            # the same tile 2 face cells (2 * 4**order / 4 tiles) further along both axes
            assert h["CRPIX1"] == plane["CRPIX1"] - (int(tc) + 2 * 2**order) * width
        else:
            assert h["CRVAL1"] == 0.0
            assert h["CRPIX1"] == plane["CRPIX1"] - int(tc) * width
            assert h["CRPIX2"] == plane["CRPIX2"] - int(tr) * width
        assert [h[k] for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2", "CRVAL2")] == [
            plane[k] for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2", "CRVAL2")]
