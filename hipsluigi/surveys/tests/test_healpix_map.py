"""``survey = healpix``: HEALPix map files written by healpy, sampled onto plates.

Truth is independent of hipsluigi's geometry: plate pixel directions come from the plate's HPX
WCS header evaluated by astropy (WCSLIB), the frames from astropy's ``SkyCoord`` or healpy's
``Rotator``, and map values from healpy's ``get_interp_val`` or from the smooth function the
map was made of.
"""

import os
import warnings

import healpy as hp
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.surveys.healpix_map import HealpixMapSurvey

NSIDE = 64
#: Order 1 with 64-pixel tiles: a HiPS Nside of 128, twice the maps', so every plate pixel is
#: interpolated; the 13 sky plates cover both poles and the +/-180 degree wrap.
GRID = PlateGrid(order=1, tile_width=64, nplate=5, pad=8)


def smooth(vec: np.ndarray) -> np.ndarray:
    """A dipole plus quadrupole terms of the direction (unit vectors ``(..., 3)``)."""
    x, y, z = vec[..., 0], vec[..., 1], vec[..., 2]
    return 1 + 0.6 * x - 0.3 * y + 0.5 * z + 0.2 * (3 * z**2 - 1) + 0.3 * x * y


def ring_map(nside: int = NSIDE) -> np.ndarray:
    """:func:`smooth` at the RING pixel centres."""
    return smooth(np.stack(hp.pix2vec(nside, np.arange(hp.nside2npix(nside))), axis=-1))


def write(path, m, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hp.write_map(str(path), m, overwrite=True, **kwargs)
    return path


def plate_directions(i: int, j: int, frame: str = "galactic"):
    """Galactic ``(lon, lat)`` degrees of the padded plate's pixels from its WCS (astropy);
    NaN where WCSLIB refuses (beyond the +/-180 degree wrap, padding past a polar cut)."""
    rows, cols = np.indices(GRID.shape(padded=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return WCS(GRID.plate_header(i, j, frame, padded=True)).pixel_to_world_values(cols, rows)


def every_plate(survey: HealpixMapSurvey):
    """``(data, lon, lat)`` of every sky plate of GRID side by side (galactic HiPS)."""
    plates = [(survey.plate_mosaic(GRID, i, j, "galactic").data, *plate_directions(i, j))
              for i, j in GRID.sky_plates]
    return tuple(np.concatenate([p[k] for p in plates], axis=1) for k in range(3))


def test_missing_coordsys_is_an_error_naming_healpix_frame(tmp_path):
    path = write(tmp_path / "no_coordsys.fits", ring_map())
    assert "COORDSYS" not in fits.getheader(path, 1)
    with pytest.raises(ValueError, match=r"healpix_frame") as err:
        HealpixMapSurvey.open(path)
    assert str(path) in str(err.value)
    assert HealpixMapSurvey.open(path, "", "equatorial").frame == "equatorial"


def test_coordsys_wins_over_healpix_frame_and_unknown_ones_are_errors(tmp_path):
    assert HealpixMapSurvey.open(write(tmp_path / "g.fits", ring_map(), coord="G"), "",
                                 "ecliptic").frame == "galactic"
    with pytest.raises(ValueError, match=r"COORDSYS = 'X'"):
        HealpixMapSurvey.open(write(tmp_path / "x.fits", ring_map(), coord="X"))


def test_column_by_name_and_by_number(tmp_path):
    maps = [ring_map() * (k + 1) for k in range(3)]
    path = write(tmp_path / "three.fits", maps, coord="G", column_names=["A", "BETA", "C"])
    first = HealpixMapSurvey.open(path)
    assert first.column == "A" and np.array_equal(first.values, maps[0])
    for column in ("BETA", "beta", "1", " 1 "):
        survey = HealpixMapSurvey.open(path, column)
        assert survey.column == "BETA" and np.array_equal(survey.values, maps[1]), column
    assert np.array_equal(HealpixMapSurvey.open(path, "2").values, maps[2])
    for column in ("GAMMA", "3"):
        with pytest.raises(ValueError) as err:
            HealpixMapSurvey.open(path, column)
        message = str(err.value)
        assert str(path) in message and column in message
        assert "A" in message and "BETA" in message and "C" in message


def test_nested_and_ring_files_give_the_same_plate(tmp_path):
    m = ring_map()
    ring = HealpixMapSurvey.open(write(tmp_path / "ring.fits", m, coord="G"))
    nest = HealpixMapSurvey.open(write(tmp_path / "nest.fits", hp.reorder(m, r2n=True),
                                       nest=True, coord="G"))
    assert not ring.nest and nest.nest
    for i, j in ((1, 1), (0, 0), (2, 1)):
        a = ring.plate_mosaic(GRID, i, j, "galactic").data
        b = nest.plate_mosaic(GRID, i, j, "galactic").data
        assert np.isfinite(a).sum() > 0.5 * a.size and np.nanstd(a) > 0.1
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, equal_nan=True)


def test_unseen_nan_and_infinite_pixels_have_no_value(tmp_path):
    m = ring_map()
    centre = hp.ang2vec(90.0, 0.0, lonlat=True)
    hole = hp.query_disc(NSIDE, centre, np.radians(10.0))
    m[hole[::2]] = hp.UNSEEN
    # UNSEEN once stored as float32 is only close to hp.UNSEEN (healpy's mask_bad tolerance)
    m[hole[1::2]] = np.float64(np.float32(hp.UNSEEN))
    assert np.float64(np.float32(hp.UNSEEN)) != hp.UNSEEN
    m[hp.ang2pix(NSIDE, 200.0, 30.0, lonlat=True)] = np.nan
    m[hp.ang2pix(NSIDE, 300.0, -30.0, lonlat=True)] = np.inf
    survey = HealpixMapSurvey.open(write(tmp_path / "holes.fits", m, coord="G"))
    assert np.isnan(survey.values[hole]).all() and np.isnan(survey.values).sum() == len(hole) + 2

    data, lon, lat = every_plate(survey)
    ok = np.isfinite(lon)
    angle = np.full(lon.shape, np.nan)
    angle[ok] = np.degrees(np.arccos(np.clip(hp.ang2vec(lon[ok], lat[ok], lonlat=True)
                                             @ centre, -1, 1)))
    pixel = np.degrees(hp.nside2resol(NSIDE))
    inside, outside = angle < 10 - 2 * pixel, angle > 10 + 2 * pixel
    assert inside.sum() > 500 and outside.sum() > 100000
    assert np.isnan(data[inside]).all()
    # the lone NaN and infinite pixels blank a few neighbours, nothing else
    assert np.isnan(data[outside]).mean() < 1e-3
    # bilinear weights are >= 0 and sum to 1: nothing outside the good pixels' range, so
    # no UNSEEN (-1.6e30) or infinity was blended in
    good = m[np.isfinite(m) & (m > -1e30)]
    assert good.min() - 1e-6 <= np.nanmin(data) and np.nanmax(data) <= good.max() + 1e-6
    for lon0, lat0 in ((200.0, 30.0), (300.0, -30.0)):
        vec = np.array([hp.ang2vec(lon0, lat0, lonlat=True)])
        assert np.isnan(survey.sample(vec, "galactic")).all()


def test_partial_sky_map_reads_as_healpy_does(tmp_path):
    m = ring_map()
    m[hp.query_strip(NSIDE, np.radians(60), np.pi)] = hp.UNSEEN  # keep the north only
    path = write(tmp_path / "partial.fits", m, coord="G", partial=True)
    header = fits.getheader(path, 1)
    assert header["INDXSCHM"] == "EXPLICIT" and header["NAXIS2"] < hp.nside2npix(NSIDE)
    survey = HealpixMapSurvey.open(path)
    expected = hp.read_map(str(path))
    assert survey.partial
    np.testing.assert_array_equal(survey.values, np.where(expected == hp.UNSEEN, np.nan,
                                                          expected))
    data, _, lat = every_plate(survey)
    pixel = np.degrees(hp.nside2resol(NSIDE))
    north, south = lat > 30 + 2 * pixel, lat < 30 - 2 * pixel
    assert north.sum() > 50000 and south.sum() > 100000
    assert np.isfinite(data[north]).all() and np.isnan(data[south]).all()


def _errors(survey: HealpixMapSurvey, to_map_frame) -> tuple[np.ndarray, np.ndarray]:
    """|plate - smooth| and |plate - healpy.get_interp_val| on every sky plate of GRID."""
    truth_err, healpy_err = [], []
    for i, j in GRID.sky_plates:
        data = survey.plate_mosaic(GRID, i, j, "galactic").data
        lon, lat = plate_directions(i, j)
        ok = np.isfinite(lon)
        assert np.isfinite(data[ok]).all(), (i, j)
        map_lon, map_lat = to_map_frame(lon[ok], lat[ok])
        truth_err.append(np.abs(data[ok] - smooth(hp.ang2vec(map_lon, map_lat, lonlat=True))))
        interp = hp.get_interp_val(survey.values, map_lon, map_lat, nest=survey.nest,
                                   lonlat=True)
        healpy_err.append(np.abs(data[ok] - interp))
    return np.concatenate(truth_err), np.concatenate(healpy_err)


def _astropy_to(frame):
    def convert(lon, lat):
        sky = SkyCoord(lon, lat, unit="deg", frame="galactic").transform_to(frame)
        return sky.spherical.lon.deg, sky.spherical.lat.deg
    return convert


def _healpy_to(coord):
    rotator = hp.Rotator(coord=["G", coord])

    def convert(lon, lat):
        return rotator(lon, lat, lonlat=True)
    return convert


@pytest.mark.parametrize("coordsys, nest, to_map_frame", [
    ("G", False, lambda lon, lat: (lon, lat)),
    ("G", True, lambda lon, lat: (lon, lat)),
    ("C", False, _astropy_to("icrs")),
    ("C", True, _healpy_to("C")),
    ("E", False, _healpy_to("E")),
], ids=["G-ring", "G-nested", "C-ring-vs-astropy-ICRS", "C-nested-vs-healpy", "E-vs-healpy"])
def test_smooth_map_sampled_on_plates_matches_the_function(tmp_path, coordsys, nest,
                                                           to_map_frame):
    """A map of a smooth function of direction, in its own frame, onto a galactic HiPS.

    Tolerance: bilinear interpolation errs by O(h^2 |f''|), with h = 0.016 rad (0.92 deg) the
    pixel spacing at Nside 64 and |f''| <= 2 here: ~1e-4 (the 95th percentile bound below,
    3e-4). Inside the first ring around each pole healpy blends the ring's four pixels and
    errs up to ~2e-3 (the max bound, 3e-3). 3e-3 is a fifth of f's change across one map pixel
    (|grad f| ~ 1 times h), so a placement error of a fifth of a map pixel would fail; a wrong
    frame or ordering fails by far more. Against healpy's own get_interp_val at the same
    directions the plate agrees to float32 rounding (1e-6 for values up to 2.3: ~4 float32
    steps), which also holds the frame conventions to ~0.2 arcsec (|grad f| ~ 1: 1e-6 rad);
    healpy's C (FK5 J2000) and astropy's ICRS differ by 0.02 arcsec.
    """
    m = ring_map()
    path = write(tmp_path / f"{coordsys}.fits", hp.reorder(m, r2n=True) if nest else m,
                 nest=nest, coord=coordsys)
    survey = HealpixMapSurvey.open(path)
    truth_err, healpy_err = _errors(survey, to_map_frame)
    print(f"COORDSYS {coordsys} nest {nest}: {truth_err.size} pixels, |plate - f| p95 "
          f"{np.percentile(truth_err, 95):.1e} max {truth_err.max():.1e}; |plate - healpy| "
          f"max {healpy_err.max():.1e}")
    assert truth_err.size > 0.9 * 13 * GRID.plate_side**2
    assert np.percentile(truth_err, 95) < 3e-4
    assert truth_err.max() < 3e-3
    assert healpy_err.max() < 1e-6


@pytest.mark.parametrize("make, reason", [
    (lambda p: fits.writeto(p, np.zeros((4, 4))), "no binary table"),
    (lambda p: fits.BinTableHDU.from_columns([fits.Column("T", "E", array=np.zeros(12))])
     .writeto(p), "NSIDE"),
    (lambda p: _table(p, {"NSIDE": 1}), "ORDERING"),
    (lambda p: _table(p, {"NSIDE": 1, "ORDERING": "SPIRAL"}), "SPIRAL"),
    (lambda p: _table(p, {"NSIDE": 3, "ORDERING": "NESTED"}), "NSIDE = 3"),
    (lambda p: _table(p, {"NSIDE": 2, "ORDERING": "RING"}), "has 12 values"),
    (lambda p: p.write_text("<html>502 Bad Gateway</html>"), "FITS"),
    (lambda p: write(p, np.full(hp.nside2npix(4), hp.UNSEEN), coord="G"), "no pixel with a"),
])
def test_files_that_are_not_healpix_maps_are_errors_naming_file_and_reason(tmp_path, make,
                                                                           reason):
    path = tmp_path / "bad.fits"
    make(path)
    with pytest.raises(ValueError, match=reason) as err:
        HealpixMapSurvey.open(path, "", "galactic")
    assert str(path) in str(err.value)


def _table(path, keys):
    hdu = fits.BinTableHDU.from_columns([fits.Column("T", "E", array=np.arange(12.0))])
    hdu.header.update(keys)
    hdu.writeto(path)


def test_map_is_read_once_per_file_version_and_column(tmp_path):
    path = write(tmp_path / "m.fits", [ring_map(), -ring_map()], coord="G")
    first = HealpixMapSurvey.open(path)
    assert HealpixMapSurvey.open(path).values is first.values
    assert not first.values.flags.writeable  # shared: nobody may change it
    assert HealpixMapSurvey.open(path, "1").values is not first.values
    write(path, [2 * ring_map(), -ring_map()], coord="G")
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a surely newer mtime
    np.testing.assert_allclose(HealpixMapSurvey.open(path).values, 2 * ring_map())


def test_reading_one_column_keeps_one_copy_of_it_not_the_table(tmp_path):
    import tracemalloc

    nside = 256
    maps = np.random.default_rng(0).normal(size=(3, hp.nside2npix(nside))).astype(np.float32)
    path = write(tmp_path / "iqu.fits", list(maps), coord="G")  # 3 columns, 1024-wide rows
    tracemalloc.start()
    try:
        survey = HealpixMapSurvey.open(path, "U_POLARISATION")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    column = maps[2].nbytes
    print(f"peak {peak / 1e6:.1f} MB for a {column / 1e6:.1f} MB column of a 3-column table")
    assert survey.values.dtype == np.float32 and np.array_equal(survey.values, maps[2])
    assert peak < 2.5 * column  # the whole table in memory would be 3 columns at least
