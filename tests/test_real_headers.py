"""Real headers, end to end: every image lands in the tiles where reproject puts it.

The corpus is built at test time from astropy's and reproject's own test files (a DSS plate
solution, an AZP image at the pole, a SIP image, a Rice-compressed image, a TPV header) and
from real images changed the way real files differ: int16 with BSCALE/BZERO, SCAMP's TAN with
PV, latitude-first axes, an FK4 (B1950) frame, a file of four CCD-like extensions, unsigned
16-bit with BLANK. Most test images cover arcminutes; their headers are widened to a few
degrees, keeping what makes them hard, so that an order-3 map holds hundreds of pixels of each:

* plain and SIP headers: the pixel scale times ``s`` (SIP is in pixel units, unchanged);
* TPV: binned (pixel scale and CRPIX) and magnified, each PV term of degree ``d`` times
  ``m**(1 - d)``, which draws the same distortion ``m`` times larger;
* DSS: binned, through the plate's pixel size (``XPIXELSZ``, ``YPIXELSZ``, ``CNPIX``).

Each map's tiles are read into a HEALPix NESTED array with healpy's ``xyf2pix`` (row ``r``,
column ``c`` of a tile of width ``w`` holds ``ix = w-1-r, iy = c``) and compared, image by
image, with reproject's HEALPix resampling (``reproject_to_healpix``, bilinear): the direction
of each healpy pixel centre as a SkyCoord, astropy's ``world_to_pixel`` in the image, scipy's
``map_coordinates`` of order 1. To stay fast that computation runs on the pixels around each
image only (:func:`_reproject_bilinear`); one test holds it to ``reproject_to_healpix`` itself.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import astropy
import healpy as hp
import luigi
import numpy as np
import pytest
from astropy.coordinates import FK4, Galactic, SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from reproject import reproject_to_healpix
from scipy.ndimage import map_coordinates

from hipsluigi import AllSkyPNGs
from hipsluigi.testing import luigi_options

ASTROPY = Path(astropy.__file__).parent
M13 = ASTROPY / "io/fits/hdu/compressed/tests/data/m13.fits"
M13_RICE = ASTROPY / "io/fits/hdu/compressed/tests/data/m13_rice.fits"
DSS = ASTROPY / "wcs/tests/data/dss.14.29.56-62.41.05.fits.gz"
TPV = ASTROPY / "wcs/tests/data/tpvonly.hdr"
AZP = ASTROPY / "modeling/tests/data/1904-66_AZP.fits"
SIP = ASTROPY / "nddata/tests/data/sip-wcs.fits"

ORDER = 3
WIDTH = 64
NSIDE = WIDTH << ORDER


@dataclass
class Image:
    """One image of the corpus: what the file holds, as the test means it."""

    name: str
    path: Path
    hdu: int
    data: np.ndarray  # physical values, NaN where blank
    wcs: WCS


def _wcs(header: fits.Header) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return WCS(header).celestial


def _clean(header: fits.Header) -> fits.Header:
    """The header's WCS and other keys, without structure or checksum cards, nor BUNIT
    (the survey does not mix units, and the corpus's files disagree)."""
    out = header.copy()
    for key in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "CHECKSUM",
                "DATASUM", "BSCALE", "BZERO", "BLANK", "PCOUNT", "GCOUNT", "XTENSION",
                "BUNIT"):
        out.remove(key, ignore_missing=True, remove_all=True)
    return out


def _widened(header: fits.Header, s: float) -> fits.Header:
    """The pixel scale times ``s``."""
    out = header.copy()
    if "CD1_1" in out:
        for key in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"):
            out[key] = out.get(key, 0.0) * s
    else:
        out["CDELT1"] = out.get("CDELT1", 1.0) * s
        out["CDELT2"] = out.get("CDELT2", 1.0) * s
    return out


def _moved(header: fits.Header, lon: float, lat: float) -> fits.Header:
    out = header.copy()
    out["CRVAL1"], out["CRVAL2"] = lon, lat
    return out


#: Total degree of the monomial of each TPV term (0 .. 39), x, y and r = sqrt(x^2 + y^2).
_TPV_DEGREE = [0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5,
               6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7]


def _tpv_header(binning: int, magnify: float) -> fits.Header:
    """The PTF CCD header with TPV distortions, binned and magnified (module docstring)."""
    header = fits.Header.fromfile(TPV, sep="", endcard=True, padding=False)
    out = _widened(header, binning * magnify)
    for axis in (1, 2):
        out[f"CRPIX{axis}"] = (header[f"CRPIX{axis}"] - 0.5) / binning + 0.5
        out[f"NAXIS{axis}"] = header[f"NAXIS{axis}"] // binning
        for k, degree in enumerate(_TPV_DEGREE):
            key = f"PV{axis}_{k}"
            if key in out:
                out[key] = header[key] * magnify ** (1 - degree)
    return out


def _dss_header(binning: int, size: int) -> fits.Header:
    """The DSS cut-out's plate solution for ``size`` x ``size`` pixels binned ``binning``."""
    header = fits.getheader(DSS)
    out = header.copy()
    out.remove("SKEW", ignore_missing=True)  # not valid FITS (two numbers), and unused
    for axis, c in ((1, "X"), (2, "Y")):
        out[f"{c}PIXELSZ"] = header[f"{c}PIXELSZ"] * binning
        out[f"CNPIX{axis}"] = round(header[f"CNPIX{axis}"] / binning)
        out[f"NAXIS{axis}"] = size
    return out


def _latitude_first(header: fits.Header) -> fits.Header:
    out = header.copy()
    for a, b in (("CTYPE1", "CTYPE2"), ("CRVAL1", "CRVAL2"), ("CRPIX1", "CRPIX2"),
                 ("CDELT1", "CDELT2")):
        out[a], out[b] = header[b], header[a]
    return out


def _write_int16(path: Path, raw: np.ndarray, header: fits.Header, bscale: float,
                 bzero: float, blank: int | None = None) -> None:
    """16-bit integers as FITS stores them: ``raw`` (int16 values) with BSCALE, BZERO and
    BLANK cards, physical value = ``bzero + bscale * raw``."""
    card = fits.Header()
    card["SIMPLE"], card["BITPIX"], card["NAXIS"] = True, 16, 2
    card["NAXIS1"], card["NAXIS2"] = raw.shape[1], raw.shape[0]
    card["BSCALE"], card["BZERO"] = bscale, bzero
    if blank is not None:
        card["BLANK"] = blank
    card.extend(_clean(header))
    body = np.asarray(raw, dtype=">i2").tobytes()
    path.write_bytes(card.tostring().encode("ascii") + body + b"\0" * (-len(body) % 2880))


def _corpus_a(folder: Path) -> list[Image]:
    """Images whose reading the survey already gets right: DSS, AZP, SIP, compressed,
    int16 scaled, TPV, TAN+PV, latitude-first, FK4."""
    m13_header = _clean(fits.getheader(M13))
    m13 = fits.getdata(M13).astype(np.int16)
    images = []

    header = _dss_header(24, 256)
    data = m13[:256, :256]
    fits.PrimaryHDU(data, _clean(header)).writeto(folder / "dss.fits")
    images.append(Image("DSS", folder / "dss.fits", 0, data.astype(float), _wcs(header)))

    with fits.open(AZP) as hdul:  # float32, NaN beyond the projection's edge
        header, data = hdul[0].header, hdul[0].data
        fits.PrimaryHDU(data, _clean(header)).writeto(folder / "azp.fits")
    images.append(Image("AZP", folder / "azp.fits", 0, data.astype(float), _wcs(header)))

    with fits.open(SIP) as hdul:  # uint16 (BZERO 32768), SIP, FK5
        header = _moved(_widened(hdul[0].header, 200.0), 240.0, -45.0)
        data = hdul[0].data
        fits.PrimaryHDU(data, _clean(header)).writeto(folder / "sip.fits")
    images.append(Image("SIP", folder / "sip.fits", 0, data.astype(float), _wcs(header)))

    with fits.open(M13_RICE) as hdul:
        header = _moved(_widened(_clean(hdul[1].header), 40.0), 258.0, -38.0)
        data = hdul[1].data
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header)]).writeto(
        folder / "rice.fits")
    images.append(Image("Rice-compressed", folder / "rice.fits", 1, data.astype(float),
                        _wcs(header)))

    header = _moved(_widened(m13_header, 40.0), 272.0, -44.0)
    _write_int16(folder / "int16_scaled.fits", m13, header, 0.25, -50.0)
    physical = m13 * 0.25 - 50.0
    images.append(Image("int16 BSCALE/BZERO", folder / "int16_scaled.fits", 0, physical,
                        _wcs(header)))

    tpv = _moved(_tpv_header(8, 4.0), 232.0, -30.0)
    data = np.vstack([m13[:256, :256], m13[::-1][:256, :256]]).astype(np.float32)
    fits.PrimaryHDU(data, _clean(tpv)).writeto(folder / "tpv.fits")
    images.append(Image("TPV", folder / "tpv.fits", 0, data.astype(float), _wcs(tpv)))

    scamp = _moved(tpv, 262.0, -22.0)
    scamp["CTYPE1"], scamp["CTYPE2"] = "RA---TAN", "DEC--TAN"
    fits.PrimaryHDU(data, _clean(scamp)).writeto(folder / "scamp.fits")
    images.append(Image("TAN+PV (SCAMP)", folder / "scamp.fits", 0, data.astype(float),
                        _wcs(scamp)))

    header = _latitude_first(_moved(_widened(m13_header, 40.0), 245.0, -58.0))
    data = np.ascontiguousarray(m13.T)
    fits.PrimaryHDU(data, header).writeto(folder / "latitude_first.fits")
    images.append(Image("latitude-first", folder / "latitude_first.fits", 0,
                        data.astype(float), _wcs(header)))

    b1950 = SkyCoord(290.0, -45.0, unit="deg").transform_to(FK4(equinox="B1950"))
    header = _moved(_widened(m13_header, 40.0), b1950.ra.deg, b1950.dec.deg)
    header["RADESYS"], header["EQUINOX"] = "FK4", 1950.0
    fits.PrimaryHDU(m13, header).writeto(folder / "fk4.fits")
    images.append(Image("FK4 B1950", folder / "fk4.fits", 0, m13.astype(float),
                        _wcs(header)))
    return images


def _corpus_b(folder: Path) -> list[Image]:
    """Images that need the survey's reading of every HDU and of unsigned BLANK."""
    m13_header = _clean(fits.getheader(M13))
    m13 = fits.getdata(M13).astype(np.int16)
    images = []

    header = _moved(_widened(m13_header, 60.0), 228.0, -45.0)
    hdus = [fits.PrimaryHDU()]
    for k, (r0, c0) in enumerate(((0, 0), (0, 160), (160, 0), (160, 160))):
        ccd = header.copy()
        ccd["CRPIX1"] -= c0
        ccd["CRPIX2"] -= r0
        ccd["EXTNAME"] = f"CCD{k + 1}"
        data = m13[r0:r0 + 140, c0:c0 + 140]
        hdus.append(fits.ImageHDU(data, ccd))
        images.append(Image(f"extension {k + 1}", folder / "mef.fits", k + 1,
                            data.astype(float), _wcs(ccd)))
    fits.HDUList(hdus).writeto(folder / "mef.fits")

    header = _moved(_widened(m13_header, 40.0), 258.0, -52.0)
    physical = m13.astype(float) * 10.0 + 30000.0  # beyond int16's range, below 65535
    physical[120:150, 90:170] = np.nan
    physical[::37, ::41] = np.nan
    blank = 32767  # the raw value of 65535
    raw = np.where(np.isnan(physical), blank, physical - 32768).astype(np.int16)
    _write_int16(folder / "uint16_blank.fits", raw, header, 1, 32768, blank)
    images.append(Image("uint16 BLANK", folder / "uint16_blank.fits", 0, physical,
                        _wcs(header)))
    return images


#: The plates holding the corpus (all its images lie within 35 degrees of this point).
REGION = "cone 255 -45 40 icrs"


def _build(root: Path, name: str, folder: Path, frame: str) -> Path:
    options = {"hips": {"name": name, "order": ORDER, "tile_width": WIDTH, "nplate": "",
                        "survey": "fits", "survey_path": str(folder), "frame": frame,
                        "background": "none", "region": REGION, "executor": "local",
                        "storage": f"{root}/{name}"}}
    with luigi_options(options):
        assert luigi.build([AllSkyPNGs()], local_scheduler=True, workers=2)
    return root / name / name / "HiPS"


def _tile_map(hips: Path) -> np.ndarray:
    """The deepest order's tiles as one HEALPix NESTED array (healpy's xyf2pix)."""
    sky = np.full(hp.nside2npix(NSIDE), np.nan)
    rows, cols = np.meshgrid(np.arange(WIDTH), np.arange(WIDTH), indexing="ij")
    for path in hips.glob(f"Norder{ORDER}/Dir*/Npix*.fits"):
        tx, ty, face = hp.pix2xyf(1 << ORDER, int(path.stem[4:]), nest=True)
        ipix = hp.xyf2pix(NSIDE, tx * WIDTH + WIDTH - 1 - rows, ty * WIDTH + cols, face,
                          nest=True)
        sky[ipix] = fits.getdata(path)
    return sky


def _pixel_positions(image: Image, frame, ipix: np.ndarray):
    """0-based ``(x, y)`` in ``image`` of healpy NESTED pixel centres (astropy), and whether
    each maps back to its direction within 0.01 pixel (False for inverse "ghosts")."""
    lon, lat = hp.pix2ang(NSIDE, ipix, nest=True, lonlat=True)
    sky = SkyCoord(lon, lat, unit="deg", frame=frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, y = image.wcs.world_to_pixel(sky)
        back = image.wcs.pixel_to_world(x, y)
    scale = np.abs(image.wcs.proj_plane_pixel_scales()[0].to_value("deg"))
    if image.name == "DSS":  # WCSLIB's linear part is in plate units: use the plate scale
        header = fits.getheader(image.path)
        scale = header["PLTSCALE"] * header["XPIXELSZ"] / 1000.0 / 3600.0
    with np.errstate(invalid="ignore"):
        true = back.separation(sky).deg <= 0.01 * scale
    return np.asarray(x), np.asarray(y), true


def _reproject_bilinear(image: Image, frame, ipix: np.ndarray) -> np.ndarray:
    """reproject_to_healpix's bilinear values at NESTED pixels ``ipix``, by its computation:
    SkyCoord, ``world_to_pixel``, scipy's ``map_coordinates`` of order 1 with reproject's
    edge rule (positions in the outer half of the border pixels are moved to their centres;
    beyond, NaN)."""
    lon, lat = hp.pix2ang(NSIDE, ipix, nest=True, lonlat=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, y = image.wcs.world_to_pixel(SkyCoord(lon, lat, unit="deg", frame=frame))
    ny, nx = image.data.shape
    with np.errstate(invalid="ignore"):
        inside = (x >= -0.5) & (x <= nx - 0.5) & (y >= -0.5) & (y <= ny - 0.5)
    values = map_coordinates(image.data, np.array([np.clip(y, 0, ny - 1), np.clip(x, 0, nx - 1)]),
                             order=1, mode="constant", cval=np.nan)
    values[~inside] = np.nan
    return values


def _around(image: Image, frame) -> np.ndarray:
    """NESTED pixels within the image's outer corners' cap, plus two HiPS pixels."""
    ny, nx = image.data.shape
    xs = np.array([-0.5, nx - 0.5, -0.5, nx - 0.5, (nx - 1) / 2, -0.5, nx - 0.5,
                   (nx - 1) / 2, (nx - 1) / 2])
    ys = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5, (ny - 1) / 2, (ny - 1) / 2,
                   (ny - 1) / 2, -0.5, ny - 0.5])
    corners = image.wcs.pixel_to_world(xs, ys).transform_to(frame)
    centre = corners[4]
    radius = centre.separation(corners).max().rad * 1.2 + 2 * hp.nside2resol(NSIDE)
    vec = hp.ang2vec(centre.spherical.lon.deg, centre.spherical.lat.deg, lonlat=True)
    return hp.query_disc(NSIDE, vec, radius, nest=True, inclusive=True)


def _check_image(sky: np.ndarray, image: Image, frame) -> dict:
    """Tiles against reproject's bilinear resampling around one image (see module)."""
    ipix = _around(image, frame)
    expected = _reproject_bilinear(image, frame, ipix)
    got = sky[ipix]
    x, y, true = _pixel_positions(image, frame, ipix)
    ny, nx = image.data.shape
    interior = true & (x >= 0.5) & (x <= nx - 1.5) & (y >= 0.5) & (y <= ny - 1.5)
    differ = np.isfinite(got) != np.isfinite(expected)
    footprint_mismatch = interior & differ
    # Beyond the image's outer edges the tiles hold other images (checked by
    # test_no_tile_pixel_lies_outside_every_image).
    within = true & (x >= -0.5) & (x <= nx - 0.5) & (y >= -0.5) & (y <= ny - 0.5)
    both = np.isfinite(got) & np.isfinite(expected)
    rms = float(np.nanstd(image.data))
    worst = float(np.abs(got[both] - expected[both]).max() / rms) if both.any() else np.inf
    return {"compared": int(both.sum()), "max_over_rms": worst,
            "footprint_mismatch": int(footprint_mismatch.sum()),
            "edge_mismatch": int((differ & within & ~interior).sum()),
            "interior": int(interior.sum())}


def _unexplained(sky: np.ndarray, images: list[Image], frame) -> int:
    """Tile pixels with data that lie within no image's outer edges (astropy's positions,
    round trip included): misplaced pixels or inverse ghosts."""
    ipix = np.flatnonzero(np.isfinite(sky))
    covered = np.zeros(len(ipix), dtype=bool)
    for image in images:
        x, y, true = _pixel_positions(image, frame, ipix)
        ny, nx = image.data.shape
        eps = 1e-6
        covered |= true & (x >= -0.5 - eps) & (x <= nx - 0.5 + eps) & (y >= -0.5 - eps) & (
            y <= ny - 0.5 + eps)
    return int((~covered).sum())


def _report(name: str, result: dict) -> str:
    return (f"{name:20s} {result['compared']:6d} pixels compared, max |delta| = "
            f"{result['max_over_rms']:.1e} RMS, footprint differences: "
            f"{result['footprint_mismatch']} in {result['interior']} interior pixels, "
            f"{result['edge_mismatch']} in the border pixels")


def _check_corpus(images: list[Image], sky: np.ndarray, frame) -> None:
    failures = []
    for image in images:
        result = _check_image(sky, image, frame)
        print(_report(image.name, result))
        if (result["compared"] < 300 or result["max_over_rms"] > 1e-4
                or result["footprint_mismatch"]):
            failures.append(_report(image.name, result))
    assert not failures, "\n".join(failures)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Both corpora in one folder, one galactic map of it (every image changes frame)."""
    root = tmp_path_factory.mktemp("real_headers")
    folder = root / "images"
    folder.mkdir()
    images = {"a": _corpus_a(folder), "b": _corpus_b(folder)}
    hips = _build(root, "real", folder, "galactic")
    return images, _tile_map(hips)


def test_distortions_projections_axes_and_frames_land_where_reproject_puts_them(corpus):
    """DSS, AZP, SIP, Rice-compressed, int16 BSCALE/BZERO, TPV, TAN+PV, latitude-first and
    FK4 images."""
    images, sky = corpus
    _check_corpus(images["a"], sky, Galactic())


def test_every_extension_and_unsigned_blank_land_where_reproject_puts_them(corpus):
    """A file of four CCD extensions, and unsigned 16-bit pixels with BLANK."""
    images, sky = corpus
    _check_corpus(images["b"], sky, Galactic())


def test_no_tile_pixel_lies_outside_every_image(corpus):
    """No misplaced image and no inverse ghost anywhere in the map."""
    images, sky = corpus
    stray = _unexplained(sky, images["a"] + images["b"], Galactic())
    print(f"{stray} tile pixels with data outside every image")
    assert np.isfinite(sky).sum() > 10000 and stray == 0


def test_the_local_bilinear_resampling_is_reproject_to_healpix(corpus, monkeypatch):
    """:func:`_reproject_bilinear` gives reproject_to_healpix's values, to rounding (on a
    coarser sky, to stay fast): the comparisons above are against reproject."""
    images, _ = corpus
    monkeypatch.setitem(globals(), "NSIDE", 128)
    for image in (images["a"][1], images["a"][6]):  # AZP; TAN+PV in FK5
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full, _ = reproject_to_healpix((image.data, image.wcs), Galactic(), nside=NSIDE,
                                           nested=True, order="bilinear")
        ipix = _around(image, Galactic())
        mine = _reproject_bilinear(image, Galactic(), ipix)
        assert np.isfinite(full).sum() > 20
        assert np.isfinite(full[ipix]).sum() == np.isfinite(full).sum()
        assert np.array_equal(np.isnan(mine), np.isnan(full[ipix]))
        assert np.nanmax(np.abs(mine - full[ipix])) <= 1e-9 * np.nanstd(image.data)
