"""Each artifact's write/read pair round-trips, atomically, at exactly the path given."""

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from hipsluigi.geometry.platelist import plate_list
from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.storage import artifacts
from hipsluigi.stretch.histogram import histogram_of


def _no_temporaries(folder):
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_plate_and_its_image_planes_round_trip(tmp_path):
    path = tmp_path / "plate.fits"
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    header = fits.Header([("CTYPE1", "GLON-HPX"), ("CTYPE2", "GLAT-HPX")])
    planes = {"a/b.fits[1]": (1.0, 2.0, 3.0), "synthetic:7": (-1.5, 0.0, 0.25)}
    artifacts.write_plate(path, image, header, planes)
    np.testing.assert_array_equal(artifacts.read_plate(path), image)
    assert artifacts.read_plate_header(path)["CTYPE1"] == "GLON-HPX"
    assert artifacts.read_image_planes(path) == planes
    artifacts.write_plate(path, image, header)
    assert artifacts.read_image_planes(path) == {}
    assert _no_temporaries(tmp_path)


def test_plate_mosaic_records_its_images_and_why_others_were_skipped(tmp_path):
    path = tmp_path / "mosaic.fits"
    header = fits.Header([("CTYPE1", "GLON-HPX"), ("CTYPE2", "GLAT-HPX")])
    artifacts.write_plate_mosaic(path, np.zeros((2, 2), np.float32), header, ["a", "b"],
                                 {"c.fits": "c.fits: every pixel is blank"},
                                 {"a": (1.0, 0.0, 0.0), "b": (2.0, 0.0, 0.0)})
    written = artifacts.read_plate_header(path)
    assert (written["NIMAGES"], written["NSKIPPED"], written["CTYPE2"]) == (2, 1, "GLAT-HPX")
    assert "skipped c.fits: every pixel is blank" in str(written["HISTORY"])
    assert artifacts.read_image_planes(path) == {"a": (1.0, 0.0, 0.0), "b": (2.0, 0.0, 0.0)}


def test_difference_fit_round_trips_and_none_means_no_overlap(tmp_path):
    from hipsluigi.background.overlap import DifferenceFit

    names = DifferenceFit.__dataclass_fields__
    values = {k: (k in ("plus", "minus", "xmin", "xmax", "ymin", "ymax", "npixel")
                  and 3 or 0.5) for k in names if not k.endswith("_profile")}
    fit = DifferenceFit(**values)
    path = tmp_path / "fit.json"
    artifacts.write_difference_fit(path, fit)
    assert artifacts.read_difference_fit(path) == fit
    artifacts.write_difference_fit(path, None)
    assert json.loads(path.read_text()) is None
    assert artifacts.read_difference_fit(path) is None


def test_manifest_round_trips_with_and_without_stretch(tmp_path):
    path = tmp_path / "m.json"
    artifacts.write_manifest(path, 3, "plate_01_02", np.array([5, 7]))
    assert artifacts.read_manifest(path) == {"order": 3, "plate": "plate_01_02", "tiles": [5, 7]}
    artifacts.write_manifest(path, 2, "plate_00_00", [], stretch="abc")
    assert artifacts.read_manifest(path)["stretch"] == "abc"


@pytest.mark.parametrize("name", ["plate.npz", ".plate.npz.1234-abcd.tmp"])
def test_histogram_round_trips_at_exactly_the_given_path(tmp_path, name):
    hist = histogram_of(np.random.default_rng(5).normal(size=1000), nbins=64)
    path = tmp_path / name
    artifacts.write_histogram(path, hist)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    loaded = artifacts.read_histogram(path)
    assert (loaded.lo, loaded.hi, loaded.npix) == (hist.lo, hist.hi, hist.npix)
    assert loaded.counts.dtype == np.int64
    np.testing.assert_array_equal(loaded.counts, hist.counts)


def test_empty_histogram_round_trips(tmp_path):
    path = tmp_path / "empty.npz"
    artifacts.write_histogram(path, histogram_of(np.array([np.nan]), nbins=5))
    loaded = artifacts.read_histogram(path)
    assert loaded.npix == 0 and np.isnan(loaded.lo) and np.isnan(loaded.hi)
    np.testing.assert_array_equal(loaded.counts, np.zeros(5))


def test_seam_fields_round_trip_and_a_plate_without_one_reads_none(tmp_path):
    path = tmp_path / "seams.npz"
    fields = {0: np.ones((4, 8)), 12: np.arange(6.0).reshape(2, 3)}
    artifacts.write_seam_fields(path, fields)
    np.testing.assert_array_equal(artifacts.read_seam_field(path, 12), fields[12])
    assert artifacts.read_seam_field(path, 5) is None


def test_plate_list_round_trips_through_ipac_with_montage_columns(tmp_path):
    table = plate_list(PlateGrid(3, 64, 5, 4), 2)
    path = tmp_path / "platelist.tbl"
    artifacts.write_plate_list(path, table)
    lines = path.read_text().splitlines()
    header = next(line for line in lines if line.startswith("|"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["id", "plate", "i", "j",
                                                                  "unit"]
    assert any(line.replace(" ", "") == "\\order=3" for line in lines)
    back = artifacts.read_plate_list(path)
    assert list(back["plate"]) == list(table["plate"])
    assert list(back["unit"]) == list(table["unit"])


def test_a_table_without_the_columns_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "platelist.tbl"
    artifacts.write_ipac_table(path, Table({"id": [1], "plate": ["p"]}))
    with pytest.raises(ValueError, match=r"platelist\.tbl: missing columns \['i', 'j', 'unit'\]"):
        artifacts.read_plate_list(path)


def test_corrections_keep_double_precision(tmp_path):
    path = tmp_path / "corrections.tbl"
    a = 0.123456789012
    artifacts.write_ipac_table(path, Table({"id": [4], "a": [a], "b": [0.0], "c": [-1.0]}))
    assert artifacts.read_corrections(path) == {4: (pytest.approx(a, rel=1e-9), 0.0, -1.0)}


def test_check_plate_names_the_file_and_the_reason(tmp_path):
    import numpy as np
    import pytest
    from astropy.io import fits

    from hipsluigi.storage.artifacts import check_plate

    good = tmp_path / "plate.fits"
    fits.PrimaryHDU(np.zeros((8, 16), np.float32)).writeto(good)
    check_plate(good, (8, 16))
    with pytest.raises(OSError, match=r"plate\.fits: image shape \(8, 16\), expected"):
        check_plate(good, (16, 16))
    cut = tmp_path / "cut.fits"
    cut.write_bytes(good.read_bytes()[:2880 + 100])
    with pytest.raises(OSError, match=r"cut\.fits: truncated"):
        check_plate(cut, (8, 16))
    text = tmp_path / "text.fits"
    text.write_text("this is not a FITS file\n")
    with pytest.raises(OSError, match=r"text\.fits: not a readable FITS image"):
        check_plate(text, (8, 16))


#: Text no IPAC table, FITS header or FITS string column takes as it is.
HOSTILE_TEXT = ["plain/ascii.fits", "", "null", " lead and trail ", "a|b", "back\\slash \\n",
                "new\nline\r\t", "caf\u00e9 \u96ea \U0001f600", "\udcff\udcfe not utf-8",
                "\x00\x7f\x1b"]


def test_any_text_round_trips_through_escaping_as_one_printable_ascii_line():
    for text in HOSTILE_TEXT:
        escaped = artifacts.escape_text(text)
        assert escaped.isascii() and escaped.isprintable() and "|" not in escaped, text
        assert escaped == escaped.strip(" "), text
        assert artifacts.unescape_text(escaped) == text
    assert artifacts.escape_text("plain/ascii.fits") == "plain/ascii.fits"


def test_survey_index_and_rejects_keep_any_name_and_reason(tmp_path):
    paths = [f"/in/{t}.fits" for t in HOSTILE_TEXT]
    index = Table({"path": paths, "hdu": np.arange(len(paths)),
                   "status": ["ok", "skipped"] * (len(paths) // 2),
                   "reason": HOSTILE_TEXT, "lon": np.linspace(0, 1, len(paths))})
    artifacts.write_survey_index(tmp_path / "index.tbl", index, listing="abc123")
    artifacts.write_rejects(tmp_path / "rejects.tbl", index)
    for name in ("index.tbl", "rejects.tbl"):
        raw = (tmp_path / name).read_bytes()
        assert raw.isascii() and raw.count(b"\n") == 4 + (name == "index.tbl") + (
            len(paths) if name == "index.tbl" else len(paths) // 2)

    back = artifacts.read_survey_index(tmp_path / "index.tbl")
    rejects = artifacts.read_rejects(tmp_path / "rejects.tbl")

    assert list(back["path"]) == paths and list(back["reason"]) == HOSTILE_TEXT
    assert artifacts.read_survey_listing(tmp_path / "index.tbl") == "abc123"
    assert list(rejects["path"]) == paths[1::2]
    assert list(rejects["reason"]) == HOSTILE_TEXT[1::2]
    assert list(rejects["hdu"]) == list(range(1, len(paths), 2))


def test_plate_mosaic_keeps_any_image_name_and_skip_reason(tmp_path):
    path = tmp_path / "mosaic.fits"
    header = fits.Header([("CTYPE1", "GLON-HPX"), ("CTYPE2", "GLAT-HPX")])
    names = [f"/in/{t}.fits[0]" for t in HOSTILE_TEXT]
    planes = {name: (float(k), 0.5, -0.5) for k, name in enumerate(names)}
    skipped = {name + "x": f"{name}: {text}" for name, text in zip(names, HOSTILE_TEXT,
                                                                      strict=True)}
    artifacts.write_plate_mosaic(path, np.zeros((2, 2), np.float32), header, names, skipped,
                                 planes, inputs="f" * 40)

    assert artifacts.read_image_planes(path) == planes
    assert artifacts.read_skipped_images(path) == skipped
    assert artifacts.read_mosaic_inputs(path) == "f" * 40
    written = artifacts.read_plate_header(path)
    assert written["NSKIPPED"] == len(skipped)
    history = "".join(str(written["HISTORY"]).split())
    for reason in skipped.values():
        assert "".join(f"skipped {artifacts.escape_text(reason)}".split()) in history
    artifacts.write_plate_mosaic(path, np.zeros((2, 2), np.float32), header, [], {}, {})
    assert artifacts.read_skipped_images(path) == {} and artifacts.read_mosaic_inputs(path) is None


def test_plate_correction_round_trips_bit_for_bit_and_absent_parts_stay_absent(tmp_path):
    from hipsluigi.storage.artifacts import read_plate_correction, write_plate_correction

    plane = (0.1 + 0.2, -1e-300, 2.0 / 3.0)  # floats a text format would round
    edges = np.random.default_rng(0).normal(size=(4, 64))
    edges[2] = np.nan
    write_plate_correction(tmp_path / "c.npz", plane, edges)
    got_plane, got_edges = read_plate_correction(tmp_path / "c.npz")
    assert got_plane == plane and all(type(v) is float for v in got_plane)
    assert got_edges.tobytes() == edges.tobytes()
    write_plate_correction(tmp_path / "none.npz", None, None)
    assert read_plate_correction(tmp_path / "none.npz") == (None, None)
    write_plate_correction(tmp_path / "plane.npz", plane, None)
    assert read_plate_correction(tmp_path / "plane.npz") == (plane, None)


def test_allsky_part_round_trips_bit_for_bit_and_a_broken_one_is_named(tmp_path):
    from hipsluigi.metadata.allsky import AllskyPart

    rng = np.random.default_rng(4)
    part = AllskyPart(np.array([3, 9], dtype=np.int64),
                      rng.normal(size=(2, 8, 8)).astype(np.float32),
                      rng.integers(0, 256, (2, 8, 8, 2), dtype=np.uint8),
                      rng.integers(0, 99, (2, 4, 4), dtype=np.uint32),
                      rng.integers(0, 9999, (2, 4, 4), dtype=np.uint32))
    part.fits[0, 0, 0] = np.nan
    path = tmp_path / "plate_00_00.allsky-x.npz"
    artifacts.write_allsky_part(path, part)
    back = artifacts.read_allsky_part(path)
    for name, value in vars(part).items():
        stored = getattr(back, name)
        assert stored.dtype == value.dtype and stored.tobytes() == value.tobytes(), name
    without = AllskyPart(part.npix, part.fits, part.png)  # not the preview's order
    artifacts.write_allsky_part(path, without)
    assert artifacts.read_allsky_part(path).preview_count is None
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=f"{path}: not an Allsky part"):
        artifacts.read_allsky_part(path)
    np.savez(path, npix=part.npix, fits=part.fits, png=part.png[:1])
    with pytest.raises(ValueError, match=r"not an Allsky part \(arrays of \[1, 2\] tiles\)"):
        artifacts.read_allsky_part(path)
