"""A map's settings: [hips] overlaid by [hips.NAME], then the command line; one schema."""

import configparser
import os
from pathlib import Path

import luigi
import pytest
from luigi.cmdline_parser import CmdlineParser

import hipsluigi  # noqa: F401  (registers the tasks and their flags)
from hipsluigi.pipeline.settings import map_spec
from hipsluigi.spec import MapSpec, SyntheticSpec, schema_fields, spec_sections

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
