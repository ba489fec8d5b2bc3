"""A map's settings: [hips] overlaid by [hips.NAME], then the command line; one schema."""

import configparser
import contextlib
import dataclasses
import math
import os
import re
import shutil
from pathlib import Path

import healpy as hp
import luigi
import pytest
from luigi.cmdline_parser import CmdlineParser

import hipsluigi  # noqa: F401  (registers the tasks and their flags)
from hipsluigi.pipeline.settings import (
    PIXELS_PER_CORE_SECOND,
    check_resources,
    map_names,
    map_spec,
)
from hipsluigi.spec import MapSpec, SettingsError, SyntheticSpec, schema_fields, spec_sections

REPO = Path(__file__).resolve().parents[3]


def test_a_map_section_overlays_hips_and_synthetic_for_that_map_only(luigi_config):
    with luigi_config({"hips": {"order": 2, "tile_width": 64, "frame": "galactic"},
                       "hips.W2": {"order": 1, "frame": "equatorial"},
                       "synthetic": {"seed": 5},
                       "synthetic.W2": {"seed": 9}}):
        w1, w2 = map_spec("W1"), map_spec("W2")
    assert (w1.name, w1.order, w1.frame, w1.synthetic.seed) == ("W1", 2, "galactic", 5)
    assert (w2.name, w2.order, w2.frame, w2.synthetic.seed) == ("W2", 1, "equatorial", 9)
    assert w1.tile_width == w2.tile_width == 64


def test_the_spec_follows_a_changed_configuration(luigi_config):
    with luigi_config({"synthetic": {"seed": 5}}):
        first = map_spec("m")
        with luigi_config({"synthetic": {"seed": 6}}):
            changed = map_spec("m")
    assert (first.synthetic.seed, changed.synthetic.seed) == (5, 6)


def test_command_line_flags_override_the_map_section(luigi_config):
    with luigi_config({"hips.W2": {"order": 1}}), \
            CmdlineParser.global_instance(["AllSkyPNGs", "--map", "W2", "--hips-order", "2",
                                           "--synthetic-noise", "0.5"]):
        spec = map_spec("W2")
    assert (spec.order, spec.synthetic.noise) == (2, 0.5)


def test_relative_storage_resolves_against_the_working_directory(luigi_config):
    with luigi_config({"hips": {"storage": "a/u0, b/u1"}}):
        spec = map_spec("x")
    assert spec.storage == (os.path.join(os.getcwd(), "a/u0"), os.path.join(os.getcwd(), "b/u1"))


def test_bad_values_name_the_section_and_the_key(luigi_config):
    with luigi_config({"hips.bad": {"background": "sometimes"}}), \
            pytest.raises(ValueError, match=r"\[hips.bad\] background = 'sometimes'"):
        map_spec("bad")
    with luigi_config({"hips.bad2": {"order": "three"}}), \
            pytest.raises(ValueError, match=r"\[hips.bad2\] order = 'three'"):
        map_spec("bad2")
    with luigi_config({"hips.bad3": {"ordre": "3"}}), \
            pytest.raises(ValueError, match=r"\[hips.bad3\]: unknown keys ordre"):
        map_spec("bad3")


def test_keep_intermediate_reads_true_and_false_from_file_and_flag_and_refuses_others(
        luigi_config):
    with luigi_config({"hips.k": {"keep_intermediate": "False"}}):
        assert map_spec("k").keep_intermediate is False
        assert "keep_intermediate" not in map_spec("k").fingerprint()  # pixels unchanged
    with luigi_config({"hips.k2": {"keep_intermediate": "false"}}), \
            CmdlineParser.global_instance(["AllSkyPNGs", "--map", "k2",
                                           "--hips-keep-intermediate", "true"]):
        assert map_spec("k2").keep_intermediate is True
    with luigi_config({"hips.k3": {"keep_intermediate": "sometimes"}}), \
            pytest.raises(ValueError, match=r"\[hips.k3\] keep_intermediate = 'sometimes'"):
        map_spec("k3")


def test_spec_sections_read_back_as_the_same_spec(luigi_config):
    with luigi_config({"hips": {"order": 2, "tile_width": 64, "title": "50%% of W1",
                                "storage": "/tmp/u0,/tmp/u1"},
                       "synthetic": {"noise": 0.25}}):
        spec = map_spec("rt")
    assert spec.title == "50% of W1"
    options = {k: {key: v.replace("%", "%%") for key, v in values.items()}
               for k, values in spec_sections(spec).items()}
    with luigi_config(options):
        assert map_spec("rt") == spec


def test_the_schema_checks_types_and_choices_without_luigi():
    with pytest.raises(ValueError, match=r"\[hips\] reproject = 'nearest': must be one of"):
        MapSpec(reproject="nearest")
    with pytest.raises(ValueError, match=r"\[synthetic\] seed = 1.5: expected int"):
        SyntheticSpec(seed=1.5)
    with pytest.raises(ValueError, match=r"\[hips\] survey = healpix needs survey_path"):
        MapSpec(survey="healpix")
    with pytest.raises(ValueError, match=r"\[hips\] band = 5: must be 1..4"):
        MapSpec(band=5)


def test_luigi_cfg_documents_every_schema_key_and_no_other():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "luigi.cfg")
    for section, cls in (("hips", MapSpec), ("synthetic", SyntheticSpec)):
        keys = {f.name for f, _ in schema_fields(cls)}
        assert set(parser[section]) == keys, section


def test_the_map_parameter_defaults_to_hips_name(luigi_config):
    with luigi_config({"hips": {"name": "W3"}}):
        assert hipsluigi.AllSkyPNGs().map == "W3"
        assert hipsluigi.PlateTiles(order=0, i=0, j=0).map == "W3"
    assert luigi.task_register.Register.get_task_cls("AllMaps")(maps="a,b").names == ["a", "b"]


# -- names and settings are checked when the spec is built ------------------------------------

@pytest.mark.parametrize("name", ["W1", "demo", "a.b_c-d", "9", "x" * 64])
def test_a_map_name_of_safe_characters_is_accepted(name):
    assert MapSpec(name=name).name == name


@pytest.mark.parametrize("name", ["../../escape", "/abs/path", "a b;x", "", "a\nb", "kärta",
                                  "a/b", "..", ".hidden", "-x", "x" * 65, "W1\n"])
def test_a_map_name_that_is_not_one_safe_path_component_is_refused(name):
    with pytest.raises(SettingsError, match=r"^\[hips\] name = " + re.escape(repr(name))):
        MapSpec(name=name)


@pytest.mark.parametrize("width", [64, 128, 256, 512, 1024, 2048, 4096])
def test_orders_stop_where_healpix_pixels_do(width):
    # healpy's own limit on nside: a map's pixels are at nside = width * 2**order
    deepest = max(k for k in range(40) if hp.isnsideok(width * 2**k, nest=True))
    assert MapSpec(order=deepest, tile_width=width).order == deepest
    for order in (deepest + 1, -1):
        with pytest.raises(SettingsError, match=rf"^\[hips\] order = {order}: must be "
                                                rf"0\.\.{deepest} with tile_width = {width}"):
            MapSpec(order=order, tile_width=width)


@pytest.mark.parametrize(("settings", "message"), [
    ({"tile_width": 100}, r"\[hips\] tile_width = 100: must be a power of 2 from 64 to 4096"),
    ({"tile_width": 131072}, r"\[hips\] tile_width = 131072: must be a power of 2"),
    ({"tile_width": 32}, r"\[hips\] tile_width = 32: must be a power of 2"),
    ({"order": 3, "nplate": 7}, r"\[hips\] nplate = 7: must be 5 \* 2\*\*m from 5 to 40"),
    ({"order": 3, "nplate": 80}, r"\[hips\] nplate = 80: must be 5 \* 2\*\*m from 5 to 40"),
    ({"order": 1, "nplate": 15}, r"\[hips\] nplate = 15: must be 5 \* 2\*\*m from 5 to 10"),
    ({"order": 1, "tile_width": 64, "pad": -1}, r"\[hips\] pad = -1: must be 0\.\.128"),
    ({"order": 1, "tile_width": 64, "pad": 129}, r"\[hips\] pad = 129: must be 0\.\.128"),
    ({"order": 1, "histogram_order": 2}, r"\[hips\] histogram_order = 2: must be 0\.\.1"),
    ({"region": "plates 99 99 120 120"}, r"\[hips\] region = 'plates 99 99 120 120': the "
                                         r"region holds no on-sky plate"),
    ({"region": "cone 0 100 1"}, r"\[hips\] region 'cone 0 100 1': latitude outside"),
    ({"region": "square 1 2"}, r"\[hips\] region 'square 1 2': expected"),
    ({"storage": ()}, r"\[hips\] storage = '': needs one or more"),
    ({"storage": ("/a", "/b", "/a/")}, r"\[hips\] storage lists '/a/' twice"),
    ({"title": "two\nlines"}, r"\[hips\] title = 'two\\nlines': must be one line"),
    ({"creator_did": "CDS/P/x"}, r"\[hips\] creator_did = 'CDS/P/x': must be an IVOID"),
])
def test_each_bad_setting_is_refused_in_one_line_naming_the_key_and_value(settings, message):
    with pytest.raises(SettingsError, match="^" + message) as err:
        MapSpec(**settings)
    assert "\n" not in str(err.value)


def test_settings_at_their_limits_are_accepted():
    spec = MapSpec(order=1, tile_width=64, nplate=10, pad=64, histogram_order=1,
                   region="plates 0 0 0 0")
    assert (spec.nplate, spec.pad, spec.histogram_order) == (10, 64, 1)
    assert MapSpec(order=1, tile_width=64, pad=0).pad == 0


@pytest.mark.parametrize(("settings", "message"), [
    ({"stretch_min": "abc"}, r"\[hips\] stretch_min = 'abc': invalid stretch level"),
    ({"stretch_max": "99%%"}, r"\[hips\] stretch_max = '99%%': invalid stretch level"),
    ({"stretch_max": "101%"}, r"\[hips\] stretch_max = '101%': .*percentile outside 0..100"),
    ({"stretch_min": "99%", "stretch_max": "1%"},
     r"\[hips\] stretch_min = '99%' is not below stretch_max = '1%'"),
    ({"stretch_min": "5", "stretch_max": "2"},
     r"\[hips\] stretch_min = '5' is not below stretch_max = '2'"),
    ({"stretch_min": "max"}, r"\[hips\] stretch_min = 'max' is not below stretch_max "
                             r"\(default 'max'\)"),
    ({"stretch": "linear", "stretch_max": "0.1%"},
     r"\[hips\] stretch_min \(default '0.5%'\) is not below stretch_max = '0.1%'"),
])
def test_stretch_levels_are_parsed_and_ordered_when_the_spec_is_built(settings, message):
    with pytest.raises(SettingsError, match="^" + message):
        MapSpec(**settings)


def test_stretch_levels_whose_order_depends_on_the_data_are_left_to_the_data():
    spec = MapSpec(stretch_min="5", stretch_max="99%")
    assert (spec.stretch_min, spec.stretch_max) == ("5", "99%")


@pytest.mark.parametrize(("settings", "message"), [
    ({"frame_size": 4}, r"\[synthetic\] frame_size = 4: must be 8..16384"),
    ({"overlap": 0.5}, r"\[synthetic\] overlap = 0.5: must be in \[0, 0.5\)"),
    ({"noise": float("nan")}, r"\[synthetic\] noise = nan: must be a finite number"),
    ({"sources": -1}, r"\[synthetic\] sources = -1: must be >= 0"),
])
def test_synthetic_settings_are_checked_with_their_ranges(settings, message):
    with pytest.raises(SettingsError, match="^" + message):
        SyntheticSpec(**settings)


@contextlib.contextmanager
def _raw_section(section: str, values: dict[str, str]):
    """Options read from file text, '%' and all (Luigi's set() refuses a lone '%')."""
    cfg = luigi.configuration.get_config()
    cfg.read_string("\n".join([f"[{section}]", *(f"{k} = {v}" for k, v in values.items())]))
    try:
        yield
    finally:
        cfg.remove_section(section)


def test_a_lone_percent_is_read_as_written_and_a_doubled_one_as_one():
    with _raw_section("hips.pct", {"stretch": "linear", "stretch_min": "1%",
                                   "stretch_max": "99.5%", "title": "50%% of W1"}):
        spec = map_spec("pct")
    assert (spec.stretch_min, spec.stretch_max, spec.title) == ("1%", "99.5%", "50% of W1")


def test_a_bad_value_from_the_file_names_its_section_key_and_value():
    with _raw_section("hips.pct2", {"order": "3%"}), \
            pytest.raises(SettingsError, match=r"^\[hips.pct2\] order = '3%': "):
        map_spec("pct2")


def test_unknown_keys_of_hips_and_synthetic_are_refused(luigi_config):
    with luigi_config({"hips": {"ordre": "3"}}), \
            pytest.raises(SettingsError, match=r"^\[hips\]: unknown keys ordre \(the keys are "):
        map_spec("typo")
    with luigi_config({"synthetic": {"sead": "3"}}), \
            pytest.raises(SettingsError, match=r"^\[synthetic\]: unknown keys sead"):
        map_spec("typo")


def test_map_names_of_all_maps_are_each_checked():
    assert map_names(" W1, W2,W1 ,") == ["W1", "W2"]
    with pytest.raises(SettingsError, match=r"^--maps = '\.\./x': a map name is"):
        map_names("W1,../x")
    with pytest.raises(SettingsError, match=r"^--maps = ' , ': names no map"):
        map_names(" , ")


# -- what cannot fit is refused, what takes days is warned about --------------------------------

def _fits_tile_bytes(width: int) -> int:
    # a FITS file is whole 2880-byte blocks: one header block, then 4-byte floats
    return 2880 + math.ceil(width * width * 4 / 2880) * 2880


def _free(monkeypatch, free: int) -> list[str]:
    asked = []

    def disk_usage(path):
        asked.append(str(path))
        return shutil._ntuple_diskusage(10 * free + 1, 9 * free, free)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    return asked


def test_a_map_whose_tiles_exceed_the_free_space_is_refused_with_the_figures(
        tmp_path, monkeypatch):
    spec = MapSpec(name="big", order=2, tile_width=64,
                   storage=(str(tmp_path / "new" / "u0"), str(tmp_path / "u1")))
    need = 12 * 4**2 * _fits_tile_bytes(64)
    asked = _free(monkeypatch, need - 1)
    with pytest.raises(SettingsError, match=r"^\[hips\] order = 2, tile_width = 64: the "
                                            r"deepest order's 192 FITS tiles alone need "):
        check_resources(spec)
    assert asked == [str(tmp_path)]  # the nearest folder that exists
    _free(monkeypatch, need)
    assert check_resources(spec) == []
    # a dry run writes no pixels; a work tree being resumed already holds part of its output
    _free(monkeypatch, 0)
    assert check_resources(dataclasses.replace(spec, executor="dryrun")) == []
    (tmp_path / "new" / "u0" / "big").mkdir(parents=True)
    (tmp_path / "new" / "u0" / "big" / "hips.json").write_text("{}")
    assert check_resources(spec) == []


def test_a_region_counts_only_its_own_tiles(tmp_path, monkeypatch):
    cone = MapSpec(order=4, tile_width=64, region="cone 10 20 2", storage=(str(tmp_path),))
    # healpy: the cone's share of the sky at order 4, rounded up as the estimate is
    share = (1 - math.cos(math.radians(2))) / 2
    assert cone.deepest_tiles == math.ceil(hp.nside2npix(16) * share)
    plates = MapSpec(order=4, tile_width=64, nplate=10, region="plates 0 0 3 3")
    # cells (0, 0), (0, 1), (1, 0), (1, 1) of 2 x 2 plates each, 8 x 8 tiles a plate
    assert plates.deepest_tiles == 16 * 8 * 8


def test_a_run_beyond_a_day_on_this_machine_is_warned_about(tmp_path, monkeypatch):
    _free(monkeypatch, 2**62)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)

    def days(order):
        return 12 * 4**order * 512**2 / PIXELS_PER_CORE_SECOND / 2 / 86400

    short, long = (MapSpec(order=k, storage=(str(tmp_path),)) for k in (7, 8))
    assert days(7) < 1 < days(8)
    assert check_resources(short) == []
    (warning,) = check_resources(long)
    assert warning.startswith("[hips] order = 8, tile_width = 512: about ")
    assert f"{days(8):,.1f} days on this machine's 2 cores" in warning


def test_the_luigi_command_line_stops_on_a_bad_setting_with_one_line():
    with CmdlineParser.global_instance(["AllSkyPNGs", "--hips-order", "30"]) as parser, \
            pytest.raises(SystemExit) as stop:
        parser.get_task_obj()
    assert stop.value.code == ("hipsluigi: error: [hips] order = 30: must be 0..20 with "
                               "tile_width = 512 (HEALPix pixels stop at order 29 = order + "
                               "log2(tile_width))")
