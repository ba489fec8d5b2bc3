"""Image positions of map-frame directions, for real headers, against astropy's own path.

Every expected position comes from astropy alone: the direction as a ``SkyCoord`` in the map
frame, ``transform_to`` the image's frame (astropy's ``wcs_to_celestial_frame``), then
``wcs.world_to_pixel``. The headers are astropy's and reproject's test files (TPV, DSS, ZPN,
AZP, SIP, CAR), some changed the way real files differ: SCAMP's TAN with PV, latitude-first
axes, an FK4 frame, a lookup-table distortion on a celestial WCS.
"""

import warnings
from pathlib import Path

import astropy
import astropy.units as u
import numpy as np
import pytest
import reproject
from astropy.coordinates import (
    FK4,
    ICRS,
    BarycentricMeanEcliptic,
    Galactic,
    SkyCoord,
    UnitSphericalRepresentation,
)
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import wcs_to_celestial_frame

from hipsluigi.geometry.tan import CarProjection, TanProjection
from hipsluigi.geometry.wcs_mapping import ROUND_TRIP_PIXELS, WcsProjection
from hipsluigi.mosaic.images import ImageCache
from hipsluigi.surveys.base import SurveyImage

ASTROPY = Path(astropy.__file__).parent
WCS_DATA = ASTROPY / "wcs/tests/data"
REPROJECT = Path(reproject.__file__).parent / "tests/data"
MAP_FRAMES = {"equatorial": ICRS(), "galactic": Galactic()}


def _header_file(name: str) -> fits.Header:
    return fits.Header.fromfile(WCS_DATA / name, sep="", endcard=True, padding=False)


def _wcs(header, fobj=None) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header, fobj)


def _shape(header) -> tuple[int, int]:
    return int(header["NAXIS2"]), int(header["NAXIS1"])


def _m13() -> fits.Header:
    return fits.getheader(ASTROPY / "io/fits/hdu/compressed/tests/data/m13.fits")


def _latitude_first(header: fits.Header) -> fits.Header:
    """The header of the transposed image: axis 1 is declination."""
    out = header.copy()
    for a, b in (("CTYPE1", "CTYPE2"), ("CRVAL1", "CRVAL2"), ("CRPIX1", "CRPIX2"),
                 ("CDELT1", "CDELT2"), ("NAXIS1", "NAXIS2"), ("CUNIT1", "CUNIT2")):
        if a in header:
            out[a], out[b] = header[b], header[a]
    return out


def _cases():
    """name -> (header, shape, WCS), built lazily by the tests."""
    m13 = _m13()
    tpv = _header_file("tpvonly.hdr")
    scamp = tpv.copy()
    scamp["CTYPE1"], scamp["CTYPE2"] = "RA---TAN", "DEC--TAN"  # SCAMP's TAN with PV1_*/PV2_*
    dss = fits.getheader(WCS_DATA / "dss.14.29.56-62.41.05.fits.gz")
    fk4 = m13.copy()
    fk4["RADESYS"], fk4["EQUINOX"] = "FK4", 1950.0
    fk5 = m13.copy()
    fk5["RADESYS"], fk5["EQUINOX"] = "FK5", 1975.0
    sin = m13.copy()
    sin["CTYPE1"], sin["CTYPE2"] = "RA---SIN", "DEC--SIN"
    car = fits.getheader(REPROJECT / "galactic_2d.fits")
    oblique = car.copy()
    oblique["CRVAL2"] = 30.0
    ait = car.copy()
    ait["CTYPE1"], ait["CTYPE2"], ait["CDELT1"], ait["CDELT2"] = ("GLON-AIT", "GLAT-AIT",
                                                                  -2.0, 2.0)
    zea = ait.copy()
    zea["CTYPE1"], zea["CTYPE2"], zea["CRVAL2"] = "GLON-ZEA", "GLAT-ZEA", 60.0
    lookup = fits.open(REPROJECT / "image_with_distortion_map.fits")
    table = lookup[0].header.copy()
    table.update(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRVAL1=150.0, CRVAL2=2.0,
                 CDELT1=-1e-3, CDELT2=1e-3, CRPIX1=50.0, CRPIX2=50.0)
    cases = {
        "TAN": (m13, None), "TAN latitude-first": (_latitude_first(m13), None),
        "TAN FK4 B1950": (fk4, None), "TAN FK5 J1975": (fk5, None), "SIN": (sin, None),
        "TPV": (tpv, None), "TAN+PV (SCAMP)": (scamp, None), "DSS": (dss, None),
        "ZPN": (_header_file("zpn-hole.hdr"), None),
        "AZP": (fits.getheader(ASTROPY / "modeling/tests/data/1904-66_AZP.fits"), None),
        "SIP": (fits.getheader(ASTROPY / "nddata/tests/data/sip-wcs.fits"), None),
        "SIP (IRAC)": (_header_file("irac_sip.hdr"), None),
        "SIP (2048 x 4096)": (_header_file("siponly.hdr"), None),
        "lookup table": (table, lookup),
        "CAR": (car, None), "CAR oblique": (oblique, None), "AIT": (ait, None),
        "ZEA": (zea, None),
    }
    return {name: (header, _shape(header), _wcs(header, fobj))
            for name, (header, fobj) in cases.items()}


with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the DSS header's malformed SKEW card
    CASES = _cases()
FAST = {"TAN", "TAN FK5 J1975", "CAR"}


def _cache(wcs, shape, map_frame: str, key: str = "image") -> ImageCache:
    image = SurveyImage(key, wcs, shape, np.array([1.0, 0.0, 0.0]), 1.0,
                        loader=lambda: np.ones(shape))
    cache = ImageCache([image], map_frame)
    assert cache.get(0) is not None
    return cache


def _directions(wcs, shape, image_frame, map_frame, margin=3.0, n=17):
    """Map-frame directions (a SkyCoord) of a lattice over the image and ``margin`` pixels
    beyond, plus random interior points, through astropy's forward mapping."""
    ny, nx = shape
    rng = np.random.default_rng(0)
    x = np.concatenate([np.repeat(np.linspace(-margin, nx - 1 + margin, n), n),
                        rng.uniform(-0.5, nx - 0.5, 300)])
    y = np.concatenate([np.tile(np.linspace(-margin, ny - 1 + margin, n), n),
                        rng.uniform(-0.5, ny - 0.5, 300)])
    world = wcs.pixel_to_world_values(x, y)
    lon, lat = world[wcs.wcs.lng], world[wcs.wcs.lat]
    ok = np.isfinite(lon) & np.isfinite(lat)
    sky = SkyCoord(lon[ok], lat[ok], unit="deg", frame=image_frame)
    return sky.transform_to(map_frame)


def _vectors(sky: SkyCoord) -> np.ndarray:
    unit = sky.represent_as(UnitSphericalRepresentation).to_cartesian()
    return np.stack([unit.x.value, unit.y.value, unit.z.value], axis=-1)


@pytest.mark.parametrize("map_frame", ["equatorial", "galactic"])
@pytest.mark.parametrize("name", list(CASES))
def test_positions_agree_with_astropy_skycoord_and_world_to_pixel(name, map_frame):
    header, shape, wcs = CASES[name]
    cache = _cache(wcs, shape, map_frame)
    image_frame = wcs_to_celestial_frame(wcs)
    sky = _directions(wcs, shape, image_frame, MAP_FRAMES[map_frame])
    x, y = cache.positions(0, _vectors(sky))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ex, ey = wcs.world_to_pixel(sky.transform_to(image_frame))
    finite = np.isfinite(ex) & np.isfinite(ey)
    assert finite.sum() > 200
    assert np.array_equal(np.isfinite(x), finite), name
    assert np.abs(x - ex)[finite].max() < 1e-6 and np.abs(y - ey)[finite].max() < 1e-6
    fast = isinstance(cache.projections["image"], TanProjection | CarProjection)
    assert fast == (name in FAST), (name, type(cache.projections["image"]))


@pytest.mark.parametrize("name", ["TPV", "TAN+PV (SCAMP)", "DSS", "TAN latitude-first",
                                  "TAN FK4 B1950", "SIP", "lookup table", "CAR oblique"])
def test_fast_path_is_refused(name):
    header, shape, wcs = CASES[name]
    projection = _cache(wcs, shape, "equatorial").projections["image"]
    assert isinstance(projection, WcsProjection)
    if name == "TAN FK4 B1950":  # E-terms: astropy's full transformation, no rotation matrix
        assert projection.rotation is None


def test_hidden_distortions_would_move_the_fast_path_by_pixels():
    """What the refusals above avoid: the plain TAN that astropy's ``ctype`` shows for a TPV,
    SCAMP or DSS header (WCSLIB's own header without its distortion records), used alone, is
    pixels off astropy's mapping (how far is printed)."""
    for name in ("TPV", "TAN+PV (SCAMP)", "DSS"):
        header, shape, wcs = CASES[name]
        assert list(wcs.wcs.ctype) == ["RA---TAN", "DEC--TAN"] and not wcs.has_distortion
        written = fits.Header.fromstring(wcs.wcs.to_header(True))
        plain = fits.Header([card for card in written.cards
                             if not card.keyword.startswith(("PV", "CQDIS", "DQ"))])
        plain["CTYPE1"], plain["CTYPE2"] = "RA---TAN", "DEC--TAN"
        sky = _directions(wcs, shape, ICRS(), ICRS(), margin=0.0)
        x, y = wcs.world_to_pixel_values(sky.ra.deg, sky.dec.deg)
        px, py = _wcs(plain).world_to_pixel_values(sky.ra.deg, sky.dec.deg)
        offset = np.hypot(px - x, py - y).max()
        print(f"{name}: the TAN part alone is up to {offset:.1f} pixels off")
        assert offset > 1


def test_fk4_is_not_a_rotation_and_would_be_arcseconds_off():
    """The rotation that moves ICRS's axes to FK4's misplaces other directions by up to about
    0.7": FK4 positions must come from astropy's transformation."""
    from hipsluigi.geometry.frames import frame_rotation, rotation_matrix

    fk4 = FK4(equinox="B1950", obstime="B1950")
    assert frame_rotation(ICRS(), fk4) is None
    sky = SkyCoord(np.linspace(0, 350, 36) * u.deg, np.linspace(-80, 80, 36) * u.deg)
    rot = rotation_matrix(ICRS(), fk4) @ _vectors(sky).T
    moved = sky.transform_to(fk4)
    miss = np.degrees(np.linalg.norm(rot.T - _vectors(moved), axis=-1)) * 3600
    print(f"FK4 as a rotation: up to {miss.max():.2f} arcsec off")
    assert miss.max() > 0.1


def test_ecliptic_axes_are_placed_in_the_barycentric_mean_ecliptic():
    """astropy reads ELON/ELAT as right ascension and declination (ICRS, or FK5 here as the
    header has EQUINOX 2000); hipsluigi places them in the barycentric mean ecliptic of J2000,
    and agrees with astropy's transformation to that frame."""
    header = _m13()
    header["CTYPE1"], header["CTYPE2"] = "ELON-TAN", "ELAT-TAN"
    wcs, shape = _wcs(header), _shape(header)
    assert wcs_to_celestial_frame(wcs).name in ("icrs", "fk5")  # astropy's reading
    ecliptic = BarycentricMeanEcliptic(equinox="J2000")
    cache = _cache(wcs, shape, "galactic")
    sky = _directions(wcs, shape, ecliptic, Galactic())
    x, y = cache.positions(0, _vectors(sky))
    own = sky.transform_to(ecliptic)
    ex, ey = wcs.world_to_pixel_values(own.lon.deg, own.lat.deg)
    assert np.abs(x - ex).max() < 1e-6 and np.abs(y - ey).max() < 1e-6


def _annulus(centre: SkyCoord, inner: float, outer: float, step: float) -> SkyCoord:
    """Directions on a square lattice of ``step`` degrees between two radii (degrees)."""
    offsets = np.arange(-outer, outer + step, step)
    lon, lat = np.meshgrid(offsets, offsets)
    radius = np.hypot(lon, lat)
    keep = (radius >= inner) & (radius <= outer)
    angle = np.arctan2(lat[keep], lon[keep]) * u.rad
    return centre.directional_offset_by(angle, radius[keep] * u.deg)


def test_sip_inverse_ghosts_are_rejected():
    """IRAC's SIP header: astropy's inverse returns positions inside the image for some
    directions 13-17 degrees away (non-converged "best solutions"); they must come back NaN,
    and every genuine position must stay."""
    header, shape, wcs = CASES["SIP (IRAC)"]
    ny, nx = shape
    centre = wcs.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)
    far = _annulus(centre, 12.0, 18.0, 0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ax, ay = wcs.world_to_pixel(far)
    inside = (ax >= -0.5) & (ax <= nx - 0.5) & (ay >= -0.5) & (ay <= ny - 0.5)
    back = wcs.pixel_to_world(ax[inside], ay[inside])
    ghost_miss = back.separation(far[inside]).deg
    print(f"{inside.sum()} far directions land inside the image; they map back "
          f"{ghost_miss.min():.1f}-{ghost_miss.max():.1f} degrees away")
    assert inside.sum() > 0 and ghost_miss.min() > 1.0  # the ghosts exist
    cache = _cache(wcs, shape, "equatorial")
    x, y = cache.positions(0, _vectors(far))
    assert not np.isfinite(x[inside]).any() and not np.isfinite(y[inside]).any()
    genuine = _directions(wcs, shape, ICRS(), ICRS(), margin=0.0)
    gx, gy = cache.positions(0, _vectors(genuine))
    ex, ey = wcs.world_to_pixel(genuine)
    assert np.isfinite(gx).all()
    assert np.abs(gx - ex).max() < 1e-6 and np.abs(gy - ey).max() < 1e-6


def test_round_trip_tolerance_is_a_small_fraction_of_a_pixel():
    header, shape, wcs = CASES["SIP (IRAC)"]
    projection = _cache(wcs, shape, "equatorial").projections["image"]
    pixel = np.radians(np.abs(wcs.proj_plane_pixel_scales()[0].to_value("deg")))
    assert ROUND_TRIP_PIXELS <= 0.01
    assert projection.round_trip_chord == pytest.approx(ROUND_TRIP_PIXELS * pixel, rel=0.02)
