import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from hipsluigi.metadata.properties import (
    format_properties,
    hips_properties,
    parse_properties,
    write_properties,
)

# The 9 keys HiPS 1.0 section 4.4.1 says must be specified.
MANDATORY = (
    "creator_did", "obs_title", "dataproduct_type", "hips_version", "hips_release_date",
    "hips_status", "hips_tile_format", "hips_order", "hips_frame",
)

WHEN = datetime(2024, 3, 5, 14, 7, 31, tzinfo=UTC)


def _props(**kw):
    args = dict(creator_did="ivo://example/P/test", obs_title="Test map", order=5,
                tile_width=512, frame="galactic", release_date=WHEN)
    args.update(kw)
    return hips_properties(**args)


def test_all_mandatory_keys_with_standard_values():
    p = _props()
    assert all(k in p for k in MANDATORY)
    assert p["creator_did"] == "ivo://example/P/test"
    assert p["obs_title"] == "Test map"
    assert p["dataproduct_type"] == "image"
    assert p["hips_version"] == "1.4"
    assert p["hips_status"] == "public master clonableOnce"
    assert p["hips_tile_format"] == "png fits"
    assert p["hips_order"] == "5"
    assert p["hips_frame"] == "galactic"
    assert p["hips_tile_width"] == "512"
    assert p["hips_order_min"] == "0"
    assert p["hips_builder"] == "hipsluigi"


def test_release_date_is_iso8601_minutes_in_utc():
    cest = timezone(timedelta(hours=2))
    p = _props(release_date=datetime(2024, 3, 5, 16, 7, 59, tzinfo=cest))
    assert p["hips_release_date"] == "2024-03-05T14:07Z"
    assert p["hips_creation_date"] == "2024-03-05T14:07Z"


def test_default_release_date_is_now_utc():
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    p = hips_properties(creator_did="ivo://x/y", obs_title="t", order=0, tile_width=64,
                        frame="equatorial")
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\dZ", p["hips_release_date"])
    stamp = datetime.strptime(p["hips_release_date"], "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
    assert before <= stamp <= after


def test_bitpix_minus32_only_when_fits_tiles():
    assert _props(tile_formats=("png", "fits"))["hips_pixel_bitpix"] == "-32"
    assert "hips_pixel_bitpix" not in _props(tile_formats=("png",))
    assert _props(tile_formats=("fits", "png"))["hips_tile_format"] == "fits png"


def test_optional_keys_formatted_and_absent_when_not_given():
    p = _props(pixel_cut=(0.5, 120), data_range=(-3, 4000.25), initial_ra=83.5,
               initial_dec=-5.25, initial_fov=30, pixel_scale=0.000214576721191,
               moc_sky_fraction=0.25, estsize_kb=123456, sampling="bilinear",
               overlay="mean", hierarchy="mean")
    assert p["hips_pixel_cut"] == "0.5 120"
    assert p["hips_data_range"] == "-3 4000.25"
    assert p["hips_initial_ra"] == "83.5"
    assert p["hips_initial_dec"] == "-5.25"
    assert p["hips_initial_fov"] == "30"
    assert float(p["hips_pixel_scale"]) == pytest.approx(0.000214576721191, rel=1e-9)
    assert p["moc_sky_fraction"] == "0.25"
    assert p["hips_estsize"] == "123456"
    assert (p["hips_sampling"], p["hips_overlay"], p["hips_hierarchy"]) == ("bilinear", "mean",
                                                                          "mean")
    bare = _props()
    for key in ("hips_pixel_cut", "hips_data_range", "hips_initial_ra", "hips_initial_dec",
                "hips_initial_fov", "hips_pixel_scale", "moc_sky_fraction", "hips_estsize",
                "hips_sampling", "hips_overlay", "hips_hierarchy", "obs_regime", "t_min"):
        assert key not in bare


def test_provenance_keys_are_written_checked_and_formatted():
    p = _props(provenance={"obs_description": "AllWISE W1", "prov_progenitor": "Atlas",
                           "obs_regime": "Infrared", "em_min": 3.0213e-6, "em_max": 3.6839e-6,
                           "t_min": 55203, "t_max": 55593.0, "s_pixel_scale": 1.375 / 3600,
                           "data_pixel_bitpix": -32})
    assert (p["obs_regime"], p["em_min"], p["em_max"]) == ("Infrared", "3.0213e-06",
                                                         "3.6839e-06")
    assert (p["t_min"], p["t_max"], p["data_pixel_bitpix"]) == ("55203", "55593", "-32")
    assert float(p["s_pixel_scale"]) == pytest.approx(1.375 / 3600)
    for bad, match in (({"obs_regime": "infrared"}, "obs_regime"),
                       ({"em_min": 2e-6, "em_max": 1e-6}, "em_min"),
                       ({"em_min": -1.0}, "em_min"), ({"data_pixel_bitpix": 12}, "BITPIX"),
                       ({"hips_stretch": "x"}, "unknown provenance")):
        with pytest.raises(ValueError, match=match):
            _props(provenance=bad)


def test_extra_keys_are_added():
    p = _props(extra={"hips_creator": "Someone", "obs_regime": "Optical"})
    assert p["hips_creator"] == "Someone"
    assert p["obs_regime"] == "Optical"


@pytest.mark.parametrize("key", ["dataproduct_type", "hips_version", "hips_tile_format",
                                 "hips_tile_width", "hips_order", "hips_frame"])
def test_extra_may_not_override_format_keys(key):
    with pytest.raises(ValueError, match=key):
        _props(extra={key: "x"})


@pytest.mark.parametrize("did", ["CDS/P/2MASS/J", "ivo://", "http://x/y", "ivo://a b"])
def test_creator_did_must_be_an_ivoid(did):
    with pytest.raises(ValueError, match="IVOID"):
        _props(creator_did=did)


@pytest.mark.parametrize("kw", [{"frame": "ecliptic"}, {"tile_formats": ("png", "gif")},
                                {"tile_formats": ()}, {"order_min": 6},
                                {"tile_width": 500}])
def test_invalid_arguments_raise(kw):
    with pytest.raises(ValueError):
        _props(**kw)


def test_format_properties_aligns_keys_like_hipsgen():
    text = format_properties({"creator_did": "ivo://a/b", "hips_order": "3"})
    # Hipsgen pads keys to 20 columns (HiPS standard example: "creator_did          = ...")
    assert text == "creator_did          = ivo://a/b\nhips_order           = 3\n"


def test_parse_ignores_comments_and_blank_lines_and_strips():
    text = (
        "# a comment\n"
        "\n"
        "creator_did          = ivo://SSC/P/XMM/EPIC\r\n"
        "   \n"
        "obs_title=XMM-Newton stacked EPIC images  \n"
        "  hips_pixel_cut   =   0 50.95\n"
        "#hips_order = 9\n"
    )
    assert parse_properties(text) == {
        "creator_did": "ivo://SSC/P/XMM/EPIC",
        "obs_title": "XMM-Newton stacked EPIC images",
        "hips_pixel_cut": "0 50.95",
    }


def test_parse_rejects_line_without_equals():
    with pytest.raises(ValueError, match="line 2"):
        parse_properties("a = 1\nnot a property\n")


def test_format_then_parse_round_trips_in_order():
    p = _props(pixel_cut=(1, 2), extra={"obs_description": "a = b, with an equals sign"})
    back = parse_properties(format_properties(p))
    assert back == p
    assert list(back) == list(p)


def test_write_properties_writes_utf8_file(tmp_path):
    p = _props(obs_title="Carte du ciel \u00e9toil\u00e9")
    path = tmp_path / "properties"
    write_properties(path, p)
    raw = path.read_bytes()
    assert "Carte du ciel \u00e9toil\u00e9".encode() in raw
    assert parse_properties(raw.decode("utf-8")) == p
    assert raw.endswith(b"\n")


def test_pixel_unit_is_hips_bunit_and_absent_without_one():
    """``hips_bunit`` is the HiPS 2.0 draft's "pixel physical unit" key."""
    p = _props(bunit="DN")
    assert p["hips_bunit"] == "DN"
    assert parse_properties(format_properties(p))["hips_bunit"] == "DN"
    assert "hips_bunit" not in _props() and "hips_bunit" not in _props(bunit="")
    with pytest.raises(ValueError, match="hips_bunit"):
        _props(bunit="DN\nhips_order = 9")
