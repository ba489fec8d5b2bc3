import healpy as hp
import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from mocpy import MOC

from hipsluigi.metadata.moc import icrs_coverage, moc_sky_fraction, tiles_moc, write_moc

MOC_DEPTH = 29  # MOC 2.0 RANGE values count cells of order 29


def _area_fraction(order, ncells):
    """Sky fraction of ``ncells`` HEALPix cells of ``order``, from healpy's pixel area."""
    return ncells * hp.nside2pixarea(hp.order2nside(order)) / (4 * np.pi)


def _cells_from_fits(path, order):
    """The order-``order`` cells of a MOC 2.0 FITS file (RANGE ordering), read with astropy."""
    with fits.open(path) as hdul:
        header, data = hdul[1].header, hdul[1].data
        assert header["ORDERING"].strip() == "RANGE"
        ranges = np.asarray(data.field(0), dtype=np.int64).reshape(-1, 2)
    step = 4 ** (MOC_DEPTH - order)
    assert (ranges % step == 0).all()
    return sorted(int(c) for lo, hi in ranges for c in range(lo // step, hi // step))


def test_all_order1_tiles_cover_the_sky():
    moc = tiles_moc(1, range(48))
    assert _area_fraction(1, 48) == pytest.approx(1.0)
    assert moc_sky_fraction(moc) == pytest.approx(1.0, abs=1e-12)


def test_one_order0_tile_is_one_twelfth_of_the_sky():
    moc = tiles_moc(0, [7])
    assert moc_sky_fraction(moc) == pytest.approx(_area_fraction(0, 1), abs=1e-12)
    assert moc_sky_fraction(moc) == pytest.approx(1 / 12, abs=1e-12)


def test_sky_fraction_of_random_tiles_matches_healpy_area():
    rng = np.random.default_rng(3)
    npix = rng.choice(12 * 4**4, size=300, replace=False)
    moc = tiles_moc(4, list(npix) + list(npix[:10]))  # duplicates count once
    assert moc_sky_fraction(moc) == pytest.approx(_area_fraction(4, 300), rel=1e-12)


def test_empty_tile_list_gives_empty_moc():
    assert moc_sky_fraction(tiles_moc(3, [])) == 0.0


@pytest.mark.parametrize("order, npix", [(0, [12]), (2, [-1]), (30, [0])])
def test_rejects_cells_outside_the_order(order, npix):
    with pytest.raises(ValueError):
        tiles_moc(order, npix)


def test_written_moc_is_icrs_with_the_input_cells_and_reads_back_in_mocpy(tmp_path):
    npix = [0, 1, 2, 3, 17, 100, 191]
    path = tmp_path / "Moc.fits"
    write_moc(path, icrs_coverage("equatorial", 2, npix))
    assert fits.getval(path, "COORDSYS", ext=1).strip() == "C"
    assert _cells_from_fits(path, 2) == npix
    back = MOC.load(str(path), "fits")
    assert back.sky_fraction == pytest.approx(len(npix) / 192)


def _galactic_tiles(order, npix):
    """Centres and corners of galactic tiles, in ICRS degrees, by healpy and astropy."""
    nside = hp.order2nside(order)
    vecs = [np.array(hp.pix2vec(nside, npix, nest=True))]
    corners = hp.boundaries(nside, np.asarray(npix), step=1, nest=True)
    vecs += [corners[..., k].T for k in range(4)]
    lon, lat = hp.vec2ang(np.concatenate(vecs, axis=1).T, lonlat=True)
    icrs = SkyCoord(lon * u.deg, lat * u.deg, frame="galactic").icrs
    return icrs.ra, icrs.dec


@pytest.mark.parametrize("order, region", [(2, "cone"), (3, "cone"), (3, "band"), (1, "all")])
def test_galactic_coverage_in_icrs_covers_every_tile_and_little_more(order, region):
    nside = hp.order2nside(order)
    lon, lat = hp.pix2ang(nside, np.arange(12 * nside**2), nest=True, lonlat=True)
    if region == "cone":  # 40 degrees around (l, b) = (30, 20)
        cos_d = (np.sin(np.radians(lat)) * np.sin(np.radians(20)) + np.cos(np.radians(lat))
                 * np.cos(np.radians(20)) * np.cos(np.radians(lon - 30)))
        npix = np.flatnonzero(cos_d > np.cos(np.radians(40)))
    elif region == "band":  # |b| < 10: the Galactic plane
        npix = np.flatnonzero(np.abs(lat) < 10)
    else:
        npix = np.arange(12 * nside**2)
    moc = icrs_coverage("galactic", order, npix)
    ra, dec = _galactic_tiles(order, npix)
    assert moc.contains_lonlat(ra, dec).all()
    tiles_fraction = npix.size / (12 * nside**2)
    # at most about one ring of cells of this order around the coverage
    ring = 4 * np.sqrt(npix.size) / (12 * nside**2) * 2
    assert tiles_fraction <= moc.sky_fraction <= tiles_fraction + ring + 1e-12
    if region == "all":
        assert moc.sky_fraction == pytest.approx(1.0)


def test_galactic_coverage_excludes_the_icrs_cells_far_from_the_tiles():
    order, nside = 3, 8
    npix = hp.query_disc(nside, hp.ang2vec(30, 20, lonlat=True), np.radians(10), nest=True)
    moc = icrs_coverage("galactic", order, npix)
    # the opposite side of the sky, 180 degrees from the cone
    far = SkyCoord(210 * u.deg, -20 * u.deg, frame="galactic").icrs
    assert not moc.contains_lonlat(far.ra, far.dec).any()
