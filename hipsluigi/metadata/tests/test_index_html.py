import re

import pytest

from hipsluigi.metadata.index_html import index_html, write_index_html

CDS_SCRIPT = "https://aladin.cds.unistra.fr/AladinLite/api/v3/latest/aladin.js"


def _page(**kw):
    args = dict(title="DSS red", frame="equatorial", initial_ra=83.82, initial_dec=-5.39,
                initial_fov=2.5)
    args.update(kw)
    return index_html(**args)


def test_page_loads_aladin_lite_v3_from_cds():
    page = _page()
    assert f'<script type="text/javascript" src="{CDS_SCRIPT}"' in page
    assert "A.init.then(" in page
    assert 'A.aladin("#aladin-lite-div"' in page
    assert '<div id="aladin-lite-div">' in page


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
    assert "python -m http.server" in _page()


@pytest.mark.parametrize("kw", [{"frame": "ecliptic"}, {"initial_dec": 91.0},
                                {"initial_fov": 0.0}])
def test_rejects_bad_arguments(kw):
    with pytest.raises(ValueError):
        _page(**kw)
