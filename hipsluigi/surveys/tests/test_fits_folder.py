"""``survey = fits``: the folder index and the pixel loader on files made from astropy's images.

Expected values are computed independently: pixels from the stored integers scaled by hand (or
astropy's own scaled read), sky positions from astropy's ``pixel_to_world`` and ``SkyCoord``.
:func:`write_bad_inputs` is shared with the end-to-end test ``tests/test_bad_inputs.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import astropy
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from hipsluigi.surveys.base import BadImageError
from hipsluigi.surveys.fits_folder import (
    FitsFolderSurvey,
    _load,
    footprint_cap,
    physical_pixels,
    scan_folder,
)

DATA = Path(astropy.__file__).parent
M13 = DATA / "io/fits/hdu/compressed/tests/data/m13.fits"             # int16, TAN, 300 x 300
M13_RICE = DATA / "io/fits/hdu/compressed/tests/data/m13_rice.fits"   # the same, compressed
AZP = DATA / "modeling/tests/data/1904-66_AZP.fits"                   # float32, BUNIT
SCALE = DATA / "io/fits/tests/data/scale.fits"                        # int16, BSCALE, BZERO, MAGZP
BLANK = DATA / "io/fits/tests/data/blank.fits"                        # int64, BLANK, no WCS

HTML_PAGE = ("<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n"
             "<body><h1>Service Unavailable</h1><p>Try again later.</p></body></html>\n")


def _m13() -> tuple[np.ndarray, fits.Header]:
    with fits.open(M13) as hdul:
        return hdul[0].data.copy(), hdul[0].header.copy()


def _replace_card(path: Path, key: str, value_text: str) -> None:
    """Rewrite one header card in the file's bytes (astropy refuses to write e.g. NaN)."""
    raw = path.read_bytes()
    start = raw.index(key.ljust(8).encode() + b"=")
    card = f"{key.ljust(8)}= {value_text:>20}".ljust(80).encode()
    path.write_bytes(raw[:start] + card + raw[start + 80:])


def write_bad_inputs(folder: Path) -> dict[str, tuple[str, ...]]:
    """Write one file per kind of bad input; ``{file name: substrings its reason must hold}``."""
    data, header = _m13()
    expect: dict[str, tuple[str, ...]] = {}

    fits.writeto(folder / "no_wcs.fits", data)
    expect["no_wcs.fits"] = ("HDU 0", "no WCS")

    linear = header.copy()
    linear["CTYPE1"], linear["CTYPE2"] = "LINEAR", "LINEAR"
    fits.writeto(folder / "not_celestial.fits", data, linear)
    expect["not_celestial.fits"] = ("HDU 0", "not celestial", "LINEAR")

    (folder / "truncated.fits").write_bytes(M13.read_bytes()[:5000])
    expect["truncated.fits"] = ("HDU 0", "truncated", "5000 bytes")

    # Tile-compressed pixels overwritten with a byte pattern: the header is intact, the
    # decompression fails.
    rice = bytearray(M13_RICE.read_bytes())
    rice[20000:40000] = bytes(range(256)) * 78 + bytes(range(32))
    (folder / "corrupt.fits").write_bytes(bytes(rice))
    expect["corrupt.fits"] = ("HDU 1", "cannot read the pixels")

    (folder / "zero_bytes.fits").write_bytes(b"")
    expect["zero_bytes.fits"] = ("empty file", "0 bytes")

    with fits.open(AZP) as hdul:
        hdul[0].data[:] = np.nan
        hdul.writeto(folder / "all_nan.fits")
    expect["all_nan.fits"] = ("HDU 0", "every pixel is blank")

    (folder / "html_page.fits").write_text(HTML_PAGE)
    expect["html_page.fits"] = ("HTML page", "503 Service Unavailable", "not FITS")

    cube = header.copy()
    cube["CTYPE3"], cube["CRVAL3"], cube["CDELT3"], cube["CRPIX3"] = "FREQ", 1e9, 1e6, 1.0
    fits.writeto(folder / "cube_3_planes.fits", np.stack([data, data, data]), cube)
    expect["cube_3_planes.fits"] = ("HDU 0", "cube of 3 planes")

    singular = header.copy()
    singular["CDELT1"] = 0.0
    fits.writeto(folder / "singular_wcs.fits", data, singular)
    expect["singular_wcs.fits"] = ("HDU 0", "singular WCS", "CDELT1 = 0")

    fits.writeto(folder / "nan_crval.fits", data, header)
    _replace_card(folder / "nan_crval.fits", "CRVAL1", "NaN")
    expect["nan_crval.fits"] = ("HDU 0", "CRVAL1 = NaN is not a number")

    cunit = header.copy()
    cunit["CUNIT1"], cunit["CUNIT2"] = "furlong", "furlong"
    fits.writeto(folder / "bad_cunit.fits", data, cunit)
    expect["bad_cunit.fits"] = ("HDU 0", "invalid WCS", "CUNIT1", "furlong")
    return expect


def _rows(index: Table) -> dict[tuple[str, int], dict]:
    return {(Path(str(r["path"])).name, int(r["hdu"])): {c: r[c] for c in index.colnames}
            for r in index}


def _angles(centre: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Angles (radians) from a unit vector to points given in degrees."""
    lon, lat = np.radians(lon), np.radians(lat)
    vec = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)
    return np.arccos(np.clip(vec @ centre, -1, 1))


def _edge_pixels(ny: int, nx: int, n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """0-based ``(x, y)`` along the outer pixel edges of an image."""
    ex, ey = np.linspace(-0.5, nx - 0.5, n), np.linspace(-0.5, ny - 0.5, n)
    x = np.concatenate([ex, ex, np.full(n, -0.5), np.full(n, nx - 0.5)])
    y = np.concatenate([np.full(n, -0.5), np.full(n, ny - 0.5), ey, ey])
    return x, y


def _cap_holds_image(row: dict, wcs: WCS, shape: tuple[int, int], frame: str) -> float:
    """Largest angle from the row's cap centre to the image's edges, in units of its radius
    (<= 1 when the cap holds the image); the edges from astropy in the map ``frame``."""
    x, y = _edge_pixels(*shape)
    sky = wcs.pixel_to_world(x, y).transform_to(frame)
    sph = sky.spherical
    centre = SkyCoord(row["lon"], row["lat"], unit="deg", frame=frame).cartesian.xyz.value
    return float(_angles(centre, sph.lon.deg, sph.lat.deg).max() / row["radius"])


def test_every_image_hdu_of_a_multi_extension_file_is_a_row(tmp_path):
    data, header = _m13()
    wcs = WCS(header)
    quads = []
    hdus = [fits.PrimaryHDU()]
    for k, (r0, c0) in enumerate([(0, 0), (0, 150), (150, 0), (150, 150)]):
        quad = header.copy()
        quad["CRPIX1"] -= c0
        quad["CRPIX2"] -= r0
        quads.append((data[r0:r0 + 150, c0:c0 + 150], r0, c0))
        cls = fits.CompImageHDU if k == 2 else fits.ImageHDU   # one tile-compressed CCD
        hdus.append(cls(data[r0:r0 + 150, c0:c0 + 150], quad, name=f"CCD{k + 1}"))
    hdus.append(fits.BinTableHDU.from_columns([fits.Column("x", "E", array=[1.0])]))
    fits.HDUList(hdus).writeto(tmp_path / "four_ccds.fits")
    shutil.copy(M13, tmp_path / "a_single.fits")

    index = scan_folder(tmp_path, "equatorial")

    assert [(Path(p).name, int(k)) for p, k in zip(index["path"], index["hdu"], strict=True)] \
        == [("a_single.fits", 0)] + [("four_ccds.fits", k) for k in (1, 2, 3, 4)]
    assert list(index["status"]) == ["ok"] * 5
    rows = _rows(index)
    for k, (pixels, r0, c0) in enumerate(quads, start=1):
        row = rows["four_ccds.fits", k]
        assert (row["naxis1"], row["naxis2"]) == (150, 150)
        # the quadrant's edges, placed by the whole image's WCS, lie in the quadrant's cap
        x, y = _edge_pixels(150, 150)
        sky = wcs.pixel_to_world(x + c0, y + r0)
        centre = SkyCoord(row["lon"], row["lat"], unit="deg").cartesian.xyz.value
        assert _angles(centre, sky.ra.deg, sky.dec.deg).max() <= row["radius"]
        assert row["radius"] < np.radians(150 * 2.8e-4 * 1.5)   # about the quadrant, not more
        np.testing.assert_array_equal(_load(str(tmp_path / "four_ccds.fits"), k), pixels)

    survey = FitsFolderSurvey(index, "equatorial")
    centre = SkyCoord(250.4226, 36.4602, unit="deg").cartesian.xyz.value
    images = survey.images_touching(centre, np.radians(0.01))
    keys = sorted(image.key for image in images)
    path = str(tmp_path / "four_ccds.fits")
    assert keys == [str(tmp_path / "a_single.fits") + "[0]"] + [f"{path}[{k}]" for k in range(1, 5)]
    ccd3 = next(image for image in images if image.key == f"{path}[3]")
    np.testing.assert_array_equal(ccd3.load(), quads[2][0])
    assert ccd3.wcs.wcs.crpix[1] == header["CRPIX2"] - 150


def test_uint16_blank_is_nan_and_other_pixels_exact(tmp_path):
    data, header = _m13()
    physical = data.astype(np.int64) * 16 + 1000           # 0 .. 65535: needs unsigned 16 bits
    physical[:3, :] = 65535                               # blank rows at the top
    physical[100, 100] = 0                                # the smallest value is not blank
    stored = (physical - 32768).astype(np.int16)          # what BZERO = 32768 stores
    hdu = fits.PrimaryHDU(stored, header)
    # Set after the data so that astropy writes the integers as they are.
    hdu.header["BZERO"], hdu.header["BSCALE"], hdu.header["BLANK"] = 32768, 1, 32767
    hdu.writeto(tmp_path / "u16.fits")
    with fits.open(tmp_path / "u16.fits", do_not_scale_image_data=True) as hdul:
        np.testing.assert_array_equal(hdul[0].data, stored)    # the file is what we meant
        assert hdul[0].header["BITPIX"] == 16 and hdul[0].header["BZERO"] == 32768

    loaded = _load(str(tmp_path / "u16.fits"), 0)

    expected = stored.astype(np.float64) + 32768.0
    expected[stored == 32767] = np.nan
    np.testing.assert_array_equal(loaded, expected)
    assert np.isnan(loaded[:3]).all() and not np.isnan(loaded[3:]).any()
    assert loaded[100, 100] == 0.0
    # and the same values astropy's own unsigned reading gives
    with fits.open(tmp_path / "u16.fits") as hdul:
        assert hdul[0].data.dtype == np.uint16
        np.testing.assert_array_equal(loaded[3:], hdul[0].data[3:].astype(np.float64))


def test_compressed_uint16_blank_is_nan(tmp_path):
    data, header = _m13()
    physical = (data.astype(np.int64) * 16 + 1000).astype(np.uint16)
    physical[:, :5] = 65535
    comp = fits.CompImageHDU(physical, header)
    comp.header["BLANK"] = 32767                          # stored value of 65535
    fits.HDUList([fits.PrimaryHDU(), comp]).writeto(tmp_path / "u16_rice.fits")
    with fits.open(tmp_path / "u16_rice.fits", do_not_scale_image_data=True) as hdul:
        assert isinstance(hdul[1], fits.CompImageHDU) and hdul[1].header["BZERO"] == 32768

    loaded = _load(str(tmp_path / "u16_rice.fits"), 1)

    expected = physical.astype(np.float64)
    expected[:, :5] = np.nan
    np.testing.assert_array_equal(loaded, expected)
    row = _rows(scan_folder(tmp_path, "equatorial"))["u16_rice.fits", 1]
    assert row["status"] == "ok" and (row["naxis1"], row["naxis2"]) == (300, 300)


def test_compressed_integer_zblank_is_nan(tmp_path):
    data, header = _m13()
    data[10:20, 30:40] = -999
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header)]).writeto(
        tmp_path / "zblank.fits")
    # ZBLANK in the compressed table's header (as CFITSIO may write it), and no BLANK
    with fits.open(tmp_path / "zblank.fits", disable_image_compression=True,
                   mode="update") as hdul:
        assert "BLANK" not in hdul[1].header
        hdul[1].header["ZBLANK"] = -999

    loaded = _load(str(tmp_path / "zblank.fits"), 1)

    expected = data.astype(np.float64)
    expected[10:20, 30:40] = np.nan
    np.testing.assert_array_equal(loaded, expected)


def test_bscale_bzero_and_blank_applied_to_the_stored_integers():
    with fits.open(SCALE, do_not_scale_image_data=True) as hdul:
        stored = hdul[0].data.astype(np.float64)
        bscale, bzero = hdul[0].header["BSCALE"], hdul[0].header["BZERO"]
    loaded = _load(str(SCALE), 0)
    np.testing.assert_array_equal(loaded, stored * bscale + bzero)
    np.testing.assert_allclose(loaded, fits.getdata(SCALE), rtol=1e-6)   # astropy's float32
    # blank.fits stores BLANK = 2 in its only (int64) pixel
    assert np.isnan(_load(str(BLANK), 0)).all()
    # the kernel itself: BLANK compared before scaling, floats keep their NaN
    raw = np.array([[-32768, 32767], [0, 5]], dtype=np.int16)
    np.testing.assert_array_equal(physical_pixels(raw, 2.0, 32768.0, -32768),
                                  [[np.nan, 98302.0], [32768.0, 32778.0]])
    floats = np.array([1.0, np.nan, np.inf], dtype=np.float32)
    np.testing.assert_array_equal(physical_pixels(floats, 1.0, 0.0, 1), [1.0, np.nan, np.nan])


def test_unit_columns_record_bunit_and_magzp(tmp_path):
    for path in (AZP, SCALE, M13):
        shutil.copy(path, tmp_path / path.name)
    rows = _rows(scan_folder(tmp_path, "equatorial"))
    azp, scale, m13 = rows["1904-66_AZP.fits", 0], rows["scale.fits", 0], rows["m13.fits", 0]
    assert (azp["bunit"], scale["bunit"], m13["bunit"]) == ("JY/BEAM", "", "")
    assert scale["magzp"] == 20.4871
    assert np.isnan(azp["magzp"]) and np.isnan(m13["magzp"])


def test_cube_with_one_long_axes_uses_its_first_two(tmp_path):
    data, header = _m13()
    cube = header.copy()
    cube["CTYPE3"], cube["CRVAL3"], cube["CDELT3"], cube["CRPIX3"] = "FREQ", 1.4e9, 1e6, 1.0
    cube["CTYPE4"], cube["CRVAL4"], cube["CDELT4"], cube["CRPIX4"] = "STOKES", 1.0, 1.0, 1.0
    fits.writeto(tmp_path / "cube.fits", data[None, None], cube)
    shutil.copy(M13, tmp_path / "plain.fits")

    rows = _rows(scan_folder(tmp_path, "galactic"))

    row, plain = rows["cube.fits", 0], rows["plain.fits", 0]
    assert row["status"] == "ok", row["reason"]
    assert (row["naxis1"], row["naxis2"]) == (300, 300)
    for key in ("lon", "lat", "radius"):
        assert row[key] == pytest.approx(plain[key], abs=1e-12)
    assert _cap_holds_image(row, WCS(header), (300, 300), "galactic") <= 1.0
    np.testing.assert_array_equal(_load(str(tmp_path / "cube.fits"), 0), data)


def test_latitude_first_cap_holds_every_pixel(tmp_path):
    data, header = _m13()
    # A wide image (15 degrees) so that swapping longitude and latitude would be far off.
    header["CDELT1"], header["CDELT2"] = -0.05, 0.05
    swapped = header.copy()
    for a, b in (("CTYPE1", "CTYPE2"), ("CRVAL1", "CRVAL2"), ("CRPIX1", "CRPIX2"),
                 ("CDELT1", "CDELT2")):
        swapped[a], swapped[b] = header[b], header[a]
    fits.writeto(tmp_path / "dec_first.fits", data.T, swapped)
    wcs = WCS(swapped)
    assert wcs.wcs.lng == 1 and wcs.wcs.lat == 0                    # DEC--TAN first

    for frame, astropy_name in (("equatorial", "icrs"), ("galactic", "galactic")):
        row = _rows(scan_folder(tmp_path, frame))["dec_first.fits", 0]
        assert row["status"] == "ok", row["reason"]
        assert _cap_holds_image(row, wcs, (300, 300), astropy_name) <= 1.0
        # not a loose cap: the image is 15 x 15 degrees, half-diagonal about 10.6 degrees
        assert np.degrees(row["radius"]) < 1.3 * 10.6
        centre = wcs.pixel_to_world(149.5, 149.5).transform_to(astropy_name).spherical
        vec = SkyCoord(row["lon"], row["lat"], unit="deg").cartesian.xyz.value
        assert np.degrees(_angles(vec, centre.lon.deg, centre.lat.deg)) < 1.0
    # footprint_cap alone, straight from the WCS
    centre, radius = footprint_cap(wcs.celestial, (300, 300), "equatorial")
    x, y = _edge_pixels(300, 300)
    sky = wcs.pixel_to_world(x, y)
    assert _angles(centre, sky.ra.deg, sky.dec.deg).max() <= radius


def test_each_bad_input_is_a_skipped_row_with_its_reason(tmp_path):
    expect = write_bad_inputs(tmp_path)
    shutil.copy(AZP, tmp_path / "good.fits")

    index = scan_folder(tmp_path, "equatorial")

    status = {Path(str(p)).name: (s, str(r)) for p, s, r in
              zip(index["path"], index["status"], index["reason"], strict=True)}
    assert set(status) == set(expect) | {"good.fits"}
    assert status["good.fits"] == ("ok", "")
    for name, words in expect.items():
        state, reason = status[name]
        assert state == "skipped", (name, reason)
        for word in words:
            assert word in reason, (name, word, reason)
        assert "\n" not in reason and "|" not in reason and len(reason) <= 300
    print("\n".join(f"{name}: {status[name][1]}" for name in sorted(expect)))


def test_headers_that_wcslib_would_silently_fix_are_rejected(tmp_path):
    data, header = _m13()
    cd = header.copy()
    for key in ("CDELT1", "CDELT2", "CROTA1"):
        del cd[key]
    for key in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"):
        cd[key] = 0.0                                       # WCSLIB makes this the identity
    fits.writeto(tmp_path / "cd_zero.fits", data, cd)
    for key in ("CRPIX2", "CDELT1"):                        # WCSLIB reads these as 0 and 1
        fits.writeto(tmp_path / f"nan_{key}.fits", data, header)
        _replace_card(tmp_path / f"nan_{key}.fits", key, "NaN")
    degenerate = header.copy()
    degenerate["CDELT1"], degenerate["CDELT2"] = 1e-3, 1e-3
    degenerate["PC1_1"], degenerate["PC1_2"], degenerate["PC2_1"], degenerate["PC2_2"] = 1, 1, 1, 1
    fits.writeto(tmp_path / "pc_singular.fits", data, degenerate)

    rows = _rows(scan_folder(tmp_path, "equatorial"))

    assert rows["cd_zero.fits", 0]["status"] == "skipped"
    assert "singular WCS: the CD matrix" in rows["cd_zero.fits", 0]["reason"]
    assert "singular WCS: the PC matrix" in rows["pc_singular.fits", 0]["reason"]
    for key in ("CRPIX2", "CDELT1"):
        reason = rows[f"nan_{key}.fits", 0]["reason"]
        assert f"{key} = NaN is not a number" in reason, reason


def test_bad_hdus_of_a_multi_extension_file_leave_the_good_ones(tmp_path):
    data, header = _m13()
    nan = np.full((50, 50), np.nan, dtype=np.float32)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header), fits.ImageHDU(nan, header),
                  fits.ImageHDU(data)]).writeto(tmp_path / "mixed.fits")
    raw = (tmp_path / "mixed.fits").read_bytes()
    (tmp_path / "cut.fits").write_bytes(raw[:len(raw) - 2880])          # last HDU's data cut
    with fits.open(tmp_path / "mixed.fits") as hdul:
        start = hdul.fileinfo(3)["hdrLoc"]
    (tmp_path / "cut_header.fits").write_bytes(raw[:start + 1000])       # mid-header

    rows = _rows(scan_folder(tmp_path, "equatorial"))

    assert rows["mixed.fits", 1]["status"] == "ok"
    assert rows["mixed.fits", 2]["reason"] == "HDU 2: every pixel is blank (NaN or BLANK)"
    assert rows["mixed.fits", 3]["reason"].startswith("HDU 3: no WCS")
    assert rows["cut.fits", 1]["status"] == "ok"
    assert "HDU 3: truncated file" in rows["cut.fits", 3]["reason"]
    assert rows["cut_header.fits", 1]["status"] == "ok"
    assert "HDU 3: truncated or corrupt header" in rows["cut_header.fits", 3]["reason"]


def test_not_fits_files_and_folders_without_images(tmp_path):
    (tmp_path / "notes.fits").write_text("plain text, not FITS\n")
    fits.BinTableHDU.from_columns([fits.Column("x", "E", array=[1.0])]).writeto(
        tmp_path / "table_only.fits")
    (tmp_path / "header_cut.fits").write_bytes(M13.read_bytes()[:1000])

    rows = _rows(scan_folder(tmp_path, "equatorial"))

    assert rows["notes.fits", -1]["reason"].startswith("not a FITS file")
    assert rows["table_only.fits", -1]["reason"].startswith("no image HDU")
    reason = rows["header_cut.fits", -1]["reason"]
    assert reason.startswith("not a readable FITS file") and "2880" in reason, reason
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(scan_folder(empty, "equatorial")) == 0
    with pytest.raises(ValueError, match="is not a folder"):
        scan_folder(tmp_path / "missing", "equatorial")


def test_load_names_the_file_when_pixels_cannot_be_read(tmp_path):
    bad = tmp_path / "corrupt.fits"
    rice = bytearray(M13_RICE.read_bytes())
    rice[20000:40000] = bytes(range(256)) * 78 + bytes(range(32))
    bad.write_bytes(bytes(rice))
    with pytest.raises(BadImageError, match=r"corrupt\.fits\[1\]: cannot read the pixels"):
        _load(str(bad), 1)


def test_index_survives_an_ipac_round_trip(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    write_bad_inputs(folder)
    shutil.copy(AZP, folder / "good.fits")
    index = scan_folder(folder, "equatorial")
    index.write(str(tmp_path / "index.tbl"), format="ascii.ipac")

    back = Table.read(str(tmp_path / "index.tbl"), format="ascii.ipac")

    assert len(back) == len(index)
    # an empty reason (a usable row) reads back masked
    assert ["" if np.ma.is_masked(r) else str(r) for r in back["reason"]] \
        == [str(r) for r in index["reason"]]
    survey = FitsFolderSurvey(back, "equatorial")
    assert survey.paths == [str(folder / "good.fits")]


def test_an_image_of_one_row_is_too_small(tmp_path):
    data, header = _m13()
    fits.writeto(tmp_path / "strip.fits", data[:1], header)
    row = _rows(scan_folder(tmp_path, "equatorial"))["strip.fits", 0]
    assert row["reason"] == ("HDU 0: too small (NAXIS1 x NAXIS2 = 300 x 1); at least 2 x 2 "
                             "pixels are needed")


def test_pixels_are_checked_block_by_block(tmp_path, monkeypatch):
    import hipsluigi.surveys.fits_folder as fits_folder

    monkeypatch.setattr(fits_folder, "_BLOCK_PIXELS", 300 * 7)    # blocks of 7 rows (6 tiled)
    data, header = _m13()
    last_row_only = np.full(data.shape, np.nan, dtype=np.float32)
    last_row_only[-1] = data[-1]
    blank = np.full(data.shape, np.nan, dtype=np.float32)
    for name, pixels in (("last_row_only", last_row_only), ("blank", blank)):
        fits.writeto(tmp_path / f"{name}.fits", pixels, header)
        comp = fits.CompImageHDU(pixels, header, tile_shape=(3, 100))
        fits.HDUList([fits.PrimaryHDU(), comp]).writeto(tmp_path / f"{name}_tiled.fits")

    rows = _rows(scan_folder(tmp_path, "equatorial"))

    assert rows["last_row_only.fits", 0]["status"] == "ok"
    assert rows["last_row_only_tiled.fits", 1]["status"] == "ok"
    assert rows["blank.fits", 0]["reason"] == "HDU 0: every pixel is blank (NaN or BLANK)"
    assert rows["blank_tiled.fits", 1]["reason"] == "HDU 1: every pixel is blank (NaN or BLANK)"
    tiled = tmp_path / "last_row_only_tiled.fits"
    np.testing.assert_array_equal(_load(str(tiled), 1), fits.getdata(tiled, 1))  # dequantized


def test_error_and_quality_planes_beside_a_science_image_are_not_used(tmp_path):
    data, header = _m13()
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header, name="SCI"),
                  fits.ImageHDU(np.sqrt(np.abs(data)), header, name="ERR"),
                  fits.ImageHDU(np.zeros_like(data), header, name="DQ")]).writeto(
        tmp_path / "flt.fits")
    index = scan_folder(tmp_path, "equatorial")
    assert list(index["hdu"]) == [1, 2, 3]
    assert list(index["status"]) == ["ok", "skipped", "skipped"]
    assert index["reason"][1].startswith("HDU 2: EXTNAME 'ERR' is an auxiliary plane")
    assert index["reason"][2].startswith("HDU 3: EXTNAME 'DQ' is an auxiliary plane")


def test_an_image_gone_since_indexing_is_skipped_with_the_reason(tmp_path):
    from hipsluigi.geometry.frames import lonlat_to_vec

    data, header = _m13()
    names = ["stays.fits", "gone\n\u00e9.fits"]
    for name in names:
        fits.writeto(tmp_path / name, data, header)
    index = scan_folder(tmp_path, "equatorial")
    (tmp_path / names[1]).unlink()
    survey = FitsFolderSurvey(index, "equatorial")
    centre = lonlat_to_vec(float(index["lon"][0]), float(index["lat"][0])).reshape(3)

    images = survey.images_touching(centre, 0.01)

    assert [image.key for image in images] == [f"{tmp_path / names[0]}[0]"]
    key = f"{tmp_path / names[1]}[0]"
    assert list(survey.skipped) == [key]
    assert survey.skipped[key] == (f"{key}: the file is gone since the survey was indexed; "
                                   "the next run refreshes the index")


def test_listing_fingerprint_changes_when_a_file_is_added_removed_or_rewritten(tmp_path):
    import os

    from hipsluigi.surveys.fits_folder import listing_fingerprint

    data, header = _m13()
    fits.writeto(tmp_path / "a.fits", data, header)
    (tmp_path / "notes.txt").write_text("not an input")
    seen = [listing_fingerprint(tmp_path)]
    (tmp_path / "notes.txt").write_text("still not an input")
    assert listing_fingerprint(tmp_path) == seen[0]
    fits.writeto(tmp_path / "b\n.fits", data, header)           # added
    seen.append(listing_fingerprint(tmp_path))
    os.utime(tmp_path / "a.fits", ns=(1, 1))                      # rewritten (same size)
    seen.append(listing_fingerprint(tmp_path))
    (tmp_path / "b\n.fits").rename(tmp_path / "c.fits")           # renamed
    seen.append(listing_fingerprint(tmp_path))
    (tmp_path / "c.fits").unlink()                                # removed
    seen.append(listing_fingerprint(tmp_path))
    assert len(set(seen)) == len(seen)
    index = scan_folder(tmp_path, "equatorial")
    info = (tmp_path / "a.fits").stat()
    assert (int(index["size"][0]), int(index["mtime"][0])) == (info.st_size, 1)
