import json
import re

import pytest

from hipsluigi.metadata.index_html import index_html, write_index_html

CDS_SCRIPT = "https://aladin.cds.unistra.fr/AladinLite/api/v3/latest/aladin.js"


def _page(**kw):
    args = dict(title="DSS red", frame="equatorial", initial_ra=83.82, initial_dec=-5.39,
                initial_fov=2.5)
    args.update(kw)
    return index_html(**args)


def _script_const(page, name):
    return json.loads(re.search(rf"const {name} = (.*);", page).group(1))


def test_page_without_local_copy_loads_aladin_lite_v3_from_cds_only():
    page = _page()
    assert _script_const(page, "LOCAL_SCRIPT") is None
    assert _script_const(page, "CDS_SCRIPT") == CDS_SCRIPT
    assert '<script type="module">' in page
    assert "await A.init;" in page
    assert 'A.aladin("#aladin-lite-div"' in page
    assert '<div id="aladin-lite-div">' in page


def test_page_with_local_copy_imports_it_relative_to_itself_and_keeps_the_cds_fallback():
    page = _page(local_aladin_lite=True)
    assert _script_const(page, "LOCAL_SCRIPT") == "aladin-lite/aladin.js"
    assert _script_const(page, "CDS_SCRIPT") == CDS_SCRIPT
    assert "await import(new URL(LOCAL_SCRIPT, window.location.href).href)" in page
    # the fallback is in the catch of that import
    catch = page[page.index("} catch (err) {"):page.index("return loadClassicScript(CDS_SCRIPT)")]
    assert "console.warn" in catch


def test_write_index_html_uses_the_local_copy_only_when_it_is_there(tmp_path):
    path = tmp_path / "HiPS" / "index.html"
    write_index_html(path, "t", "equatorial", 10.0, 20.0, 30.0)
    assert _script_const(path.read_text(encoding="utf-8"), "LOCAL_SCRIPT") is None
    (tmp_path / "HiPS" / "aladin-lite").mkdir()
    (tmp_path / "HiPS" / "aladin-lite" / "aladin.js").write_text("export default {};")
    write_index_html(path, "t", "equatorial", 10.0, 20.0, 30.0)
    assert _script_const(path.read_text(encoding="utf-8"), "LOCAL_SCRIPT") == (
        "aladin-lite/aladin.js")


def test_png_first_and_a_fits_choice_with_the_pixel_cut():
    page = _page(pixel_cut=(-3.5, 278.25), fits_stretch="sqrt")
    assert re.search(r'<option value="png" selected>PNG</option>\s*'
                     r'<option value="fits">FITS</option>', page)
    assert _script_const(page, "FITS_OPTIONS") == {
        "imgFormat": "fits", "stretch": "sqrt", "minCut": -3.5, "maxCut": 278.25}
    assert "survey: hipsUrl" in page  # the base layer starts as the HiPS default (PNG first)
    # without a cut, Aladin Lite takes hips_pixel_cut from properties
    assert _script_const(_page(), "FITS_OPTIONS") == {"imgFormat": "fits", "stretch": "asinh"}


def test_report_link_only_when_given():
    assert "QA report" not in _page()
    page = _page(report="qa/report.html")
    assert '<a href="qa/report.html">QA report</a>' in page
    assert '<a href="a&quot;b.html">' in _page(report='a"b.html')


def test_title_is_html_escaped():
    page = _page(title='<M31 & "friends">')
    assert "&lt;M31 &amp; &quot;friends&quot;&gt;" in page
    assert "<M31" not in page


def test_survey_url_is_relative_to_the_page(tmp_path):
    path = tmp_path / "HiPS" / "index.html"
    write_index_html(path, "t", "galactic", 10.0, 20.0, 30.0)
    page = path.read_text(encoding="utf-8")
    assert 'new URL(".", window.location.href)' in page
    assert re.search(r"survey:\s*hipsUrl", page)
    assert str(tmp_path) not in page
    assert "file:///" not in page


def test_view_options_fov_target_and_frame():
    page = _page()
    assert re.search(r"fov:\s*2\.5,", page)
    assert 'target: "83.820000 -5.390000"' in page
    assert 'cooFrame: "ICRS"' in page
    assert "aladin.gotoRaDec(83.82, -5.39)" in page


def test_galactic_view_target_is_in_galactic_coordinates():
    # the north galactic pole is at ICRS (192.85948, +27.12825) (Hipparcos definition)
    page = _page(frame="galactic", initial_ra=192.85948, initial_dec=27.12825)
    assert 'cooFrame: "galactic"' in page
    lat = float(re.search(r'target: "[-\d.]+ ([-+\d.]+)"', page).group(1))
    assert lat == pytest.approx(90.0, abs=1e-3)
    assert "aladin.gotoRaDec(192.85948, 27.12825)" in page


def test_page_says_how_to_serve_it():
    page = _page()
    assert "hipsluigi serve" in page and "python -m http.server" in page


@pytest.mark.parametrize("kw", [{"frame": "ecliptic"}, {"initial_dec": 91.0},
                                {"initial_fov": 0.0}, {"pixel_cut": (5.0, 5.0)},
                                {"pixel_cut": (0.0, float("nan"))}, {"fits_stretch": "gaussian"}])
def test_rejects_bad_arguments(kw):
    with pytest.raises(ValueError):
        _page(**kw)


def test_a_png_only_hips_offers_no_fits_view():
    page = index_html("Colour", "galactic", 10.0, 20.0, 60.0, fits_tiles=False)
    assert 'id="hips-format"' not in page and '"imgFormat": "fits"' not in page
    assert "const FITS_OPTIONS = null;" in page
    assert 'id="hips-format"' in index_html("Grey", "galactic", 10.0, 20.0, 60.0)
