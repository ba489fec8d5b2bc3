"""The recommended properties keys each survey gives, and the settings that override them."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from hipsluigi.spec import MapSpec
from hipsluigi.surveys.provenance import (
    RECOMMENDED_KEYS,
    fits_folder_provenance,
    header_mjd,
    map_provenance,
    read_image_records,
    synthetic_provenance,
    wise_provenance,
)


def test_header_dates_read_as_mjd():
    assert header_mjd(fits.Header({"DATE-OBS": "2000-01-01T12:00:00"})) == pytest.approx(
        51544.5)
    assert header_mjd(fits.Header({"DATE-OBS": "1995-10-10"})) == pytest.approx(50000.0)
    # MJD-OBS wins over DATE-OBS; neither, or an unreadable date: None
    assert header_mjd(fits.Header({"MJD-OBS": 55555.25, "DATE-OBS": "2000-01-01"})) == 55555.25
    assert header_mjd(fits.Header({"DATE-OBS": "yesterday"})) is None
    assert header_mjd(fits.Header()) is None


@pytest.mark.parametrize("band, micron", [(1, 3.4), (2, 4.6), (3, 12.0), (4, 22.0)])
def test_wise_bands_hold_their_nominal_wavelength(band, micron):
    said = wise_provenance(band, "wise_allwise")
    assert said["obs_regime"] == "Infrared"
    assert said["em_min"] < micron * 1e-6 < said["em_max"]
    assert f"W{band}" in said["obs_description"]
    assert 55203 <= said["t_min"] < said["t_max"] <= 55594  # 2010-01-07 .. 2011-02-01


def test_the_synthetic_survey_says_it_is_synthetic_and_fills_every_key():
    said = synthetic_provenance(MapSpec(storage=("/nowhere",)), 0.1)
    assert "Synthetic" in said["obs_description"] and "not an observation" in \
        said["obs_description"]
    keys, missing = map_provenance(MapSpec(storage=("/nowhere",)), said)
    assert missing == [] and set(RECOMMENDED_KEYS) <= set(keys)


def test_settings_override_the_survey_and_missing_keys_are_named():
    spec = MapSpec(storage=("/nowhere",), obs_regime="Radio", em_min=0.01, em_max=0.02)
    keys, missing = map_provenance(spec, {"obs_description": "x", "obs_regime": "Optical"})
    assert (keys["obs_regime"], keys["em_min"], keys["em_max"]) == ("Radio", 0.01, 0.02)
    assert missing == ["prov_progenitor", "t_min", "t_max"]


def test_fits_headers_give_dates_scale_bitpix_and_icrs_corners(tmp_path):
    paths = []
    for k, (date, frame) in enumerate([("2012-03-10T00:00:00", "icrs"),
                                       ("2012-03-12T12:00:00", "galactic")]):
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"] if frame == "icrs" else \
            ["GLON-TAN", "GLAT-TAN"]
        wcs.wcs.crval = [150.0, 30.0]
        wcs.wcs.crpix = [10.5, 10.5]
        wcs.wcs.cdelt = [-0.002, 0.002]
        header = wcs.to_header()
        header["DATE-OBS"] = date
        path = tmp_path / f"i{k}.fits"
        fits.writeto(path, np.zeros((20, 20), np.int16), header)
        paths.append((str(path), 0))
    paths.append((str(tmp_path / "gone.fits"), 0))
    records = read_image_records(paths)
    assert len(records) == 2  # the missing file is left out
    said = fits_folder_provenance(str(tmp_path), records)
    assert said["t_min"] == pytest.approx(55996.0) and said["t_max"] == pytest.approx(55998.5)
    assert said["s_pixel_scale"] == pytest.approx(0.002, rel=1e-6)
    assert said["data_pixel_bitpix"] == 16
    assert str(tmp_path) not in said["obs_description"]  # the folder's name, not its path
    # the galactic image's corners are given in ICRS: its centre (l, b) = (150, 30)
    from astropy.coordinates import SkyCoord
    centre = SkyCoord(150, 30, unit="deg", frame="galactic").icrs
    corners = SkyCoord(records[1].corners[:, 0], records[1].corners[:, 1], unit="deg")
    assert corners.separation(centre).deg == pytest.approx(np.hypot(0.02, 0.02), rel=1e-3)
