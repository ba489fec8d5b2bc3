"""The report page escapes every text; the overlap residuals before and after correction."""

import html
from html.parser import HTMLParser
from types import SimpleNamespace

import numpy as np

from hipsluigi.report.page import Section, render_page
from hipsluigi.report.residuals import overlap_residuals

EVIL = '<script>alert("x")</script> & \'quoted\''


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.img = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.img.append(dict(attrs))


def test_page_escapes_every_text_it_is_given():
    text = render_page(EVIL, {EVIL: EVIL}, [
        Section(EVIL, 'a"b<c>.png', [EVIL], (("col", EVIL), [(EVIL, 3), ("x", 2.5)]))])
    assert "<script>" not in text and "alert(\"x\")" not in text
    assert text.count(html.escape(EVIL)) >= 6  # title, h1, fact key and value, h2, note...
    tags = _Tags()
    tags.feed(text)
    assert "script" not in tags.tags
    assert tags.img == [{"src": 'a"b<c>.png', "alt": EVIL}]  # parsed back as given
    assert '<td class="num">3</td>' in text and '<td class="num">2.5</td>' in text


def test_page_without_image_or_table_has_neither():
    text = render_page("t", {}, [Section("s", None, ["n"])])
    assert "<img" not in text and "<table" not in text and "<p>n</p>" in text


def _fit(plus, minus, a, b, c, xc, yc, lin=((1, 0), (0, 1)), t=(0, 0), crpix=(10.5, 10.5)):
    return SimpleNamespace(plus=plus, minus=minus, a=a, b=b, c=c, xcenter=xc, ycenter=yc,
                           crpix1=crpix[0], crpix2=crpix[1], l11=lin[0][0], l12=lin[0][1],
                           l21=lin[1][0], l22=lin[1][1], t1=t[0], t2=t[1])


def test_residuals_are_the_fitted_difference_less_the_two_corrections():
    planes = {1: (0.0, 0.0, 2.0), 2: (0.0, 0.0, -1.0), 3: (0.01, -0.02, 0.5)}
    fits = [
        # levels only: 3.2 fitted, 2 - (-1) = 3 corrected away
        _fit(1, 2, 0.0, 0.0, 3.2, 5.0, 7.0),
        # slopes, identity map: D(4, -6) = 0.1*4 + 0.2*-6 + 1 = 0.2;
        # Q3(4, -6) - Q2 = 0.04 + 0.12 + 0.5 + 1 = 1.66
        _fit(3, 2, 0.1, 0.2, 1.0, 4.0, -6.0),
        # a quarter turn: p = x + crpix = (14.5, 6.5); L p + t = (-6.5 + 30, 14.5) = (23.5,
        # 14.5); x_minus = (13, 4); D = 0.5; Q1 - Q3(13, 4) = 2 - (0.13 - 0.08 + 0.5) = 1.45
        _fit(1, 3, 0.0, 0.0, 0.5, 4.0, -4.0, lin=((0, -1), (1, 0)), t=(30, 0)),
        # a plate without a correction counts as uncorrected
        _fit(1, 9, 0.0, 0.0, 2.5, 0.0, 0.0),
    ]
    before, after = overlap_residuals(fits, planes)
    assert np.allclose(before, [3.2, 0.2, 0.5, 2.5])
    assert np.allclose(after, [0.2, 0.2 - 1.66, 0.5 - 1.45, 0.5])
