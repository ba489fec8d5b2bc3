import json
import re

import numpy as np
import pytest
from scipy.special import ndtr, ndtri

from hipsluigi.stretch.histogram import PixelHistogram, histogram_of
from hipsluigi.stretch.stretch import (
    DEFAULT_LEVELS,
    MAX_TABLE_STEPS,
    STRETCH_KINDS,
    Level,
    Stretch,
    float32_edges,
    float32_keys,
    gray_table,
    level_texts,
    levels_inverted,
    make_stretch,
    parse_level,
    read_level,
)

# One pixel in each of 100 bins over [0, 100]: the N-th percentile is exactly N, the median
# 50 and sigma = (P84 - P16) / 2 = 34.
UNIFORM = PixelHistogram(0.0, 100.0, np.ones(100, dtype=np.int64), 100)


def normal_histogram(lo: float = -8.0, hi: float = 8.0, nbins: int = 200_000,
                     npix: float = 1e15) -> PixelHistogram:
    """The histogram of a huge N(0, 1) sample, from the normal CDF itself (no sampling)."""
    counts = np.rint(npix * np.diff(ndtr(np.linspace(lo, hi, nbins + 1)))).astype(np.int64)
    return PixelHistogram(lo, hi, counts, int(counts.sum()))


NORMAL = normal_histogram()


def montage_targets(g_min: float, g_max: float, log: bool) -> np.ndarray:
    j = np.arange(256)
    if log:
        return g_max - (g_max - g_min) ** ((256 - j) / 255)
    return g_min + j * (g_max - g_min) / 255


@pytest.mark.parametrize(("text", "expected"), [
    ("3.5", 3.5), (" -1e2 ", -100.0), ("+.25", 0.25), ("7.", 7.0),
    ("25%", 25.0), ("99.5 %", 99.5), ("0%", 0.0), ("100%", 100.0),
    ("min", 0.0), ("MAX", 100.0), (" med ", 50.0),
    ("1s", 84.0), ("-2s", -18.0), ("  2 S ", 118.0), ("0s", 50.0), ("-0.5s", 33.0),
])
def test_parse_level_follows_montage_syntax(text, expected):
    assert parse_level(text, UNIFORM) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "abc", "5%%", "101%", "-1%", "nan", "inf", "1e999",
                                  "1e", "s", "%", "2x", "max2", "1 2"])
def test_parse_level_rejects_anything_else_naming_the_text(text):
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_level(text, UNIFORM)


@pytest.mark.parametrize(("text", "kind", "number"), [
    ("3.5", "value", 3.5), (" -1e2 ", "value", -100.0), ("99.5 %", "percentile", 99.5),
    ("min", "percentile", 0.0), ("MAX", "percentile", 100.0), (" med ", "percentile", 50.0),
    ("-2s", "sigma", -2.0), ("  2 S ", "sigma", 2.0),
])
def test_read_level_parses_without_data(text, kind, number):
    assert read_level(text) == Level(kind, number)


@pytest.mark.parametrize("text", ["", "abc", "5%%", "101%", "-1%", "nan", "1e999", "1 2"])
def test_read_level_rejects_what_parse_level_rejects(text):
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        read_level(text)


@pytest.mark.parametrize(("lo", "hi"), [
    ("99%", "1%"), ("5", "2"), ("3", "3"), ("1s", "-2s"), ("max", "min"), ("max", "99%"),
    ("med", "50%"),
])
def test_levels_of_one_kind_at_or_above_the_white_level_are_inverted_on_any_data(lo, hi):
    assert levels_inverted(read_level(lo), read_level(hi))
    # ... as the data's own levels show, on two quite different histograms
    for hist in (UNIFORM, NORMAL):
        assert parse_level(lo, hist) >= parse_level(hi, hist)


@pytest.mark.parametrize(("lo", "hi"), [
    ("1%", "99%"), ("2", "5"), ("-2s", "max"), ("5", "1%"), ("-2s", "3"), ("min", "1s"),
])
def test_ordered_levels_or_levels_whose_order_depends_on_the_data_are_not_inverted(lo, hi):
    assert not levels_inverted(read_level(lo), read_level(hi))


def test_level_texts_fill_empty_levels_with_the_kind_defaults():
    assert level_texts("linear", "", " 90 ") == (DEFAULT_LEVELS["linear"][0], "90")
    assert level_texts(" Gaussian-Log ", "-1s") == ("-1s", DEFAULT_LEVELS["gaussian-log"][1])


def test_default_levels_are_montage_minus_2_sigma_to_max_for_gaussian_kinds():
    for kind in ("gaussian", "gaussian-log"):
        s = make_stretch(UNIFORM, kind)
        assert (s.lo, s.hi) == (pytest.approx(-18.0), 100.0)


def test_default_levels_are_half_percent_clips_for_transfer_kinds():
    for kind in ("linear", "log", "sqrt", "asinh"):
        s = make_stretch(UNIFORM, kind)
        assert (s.lo, s.hi) == (pytest.approx(0.5), pytest.approx(99.5))


def test_explicit_levels_override_the_defaults():
    s = make_stretch(UNIFORM, "linear", "10%", " 90 ")
    assert (s.lo, s.hi) == (pytest.approx(10.0), 90.0)


TRANSFERS = {
    "linear": lambda x: x,
    "sqrt": np.sqrt,
    "log": lambda x: np.log10(1 + 1000 * x) / np.log10(1001),
    "asinh": lambda x: np.arcsinh(10 * x) / np.arcsinh(10),
}


@pytest.mark.parametrize("kind", sorted(TRANSFERS))
def test_transfer_kinds_give_round_255_f_of_clipped_x(kind):
    lo, hi = -3.0, 12.0
    s = make_stretch(UNIFORM, kind, str(lo), str(hi))
    v = np.random.default_rng(6).uniform(-10, 20, size=200_000)
    scaled = 255 * TRANSFERS[kind](np.clip((v - lo) / (hi - lo), 0, 1))
    clear = np.abs(scaled - np.floor(scaled) - 0.5) > 1e-6  # ties may round either way
    np.testing.assert_array_equal(s.gray(v)[clear], np.round(scaled[clear]))
    assert s.gray(np.array([lo - 1, hi + 1])).tolist() == [0, 255]


def test_gaussian_log_reproduces_montage_documented_gray_percentiles():
    # For normal data with g_min = -2 and g_max = 5.6 (mHistogram -2s max on a deep map).
    s = make_stretch(NORMAL, "gaussian-log", "-2", "5.6")
    pct = {j: 100 * ndtr(s.edges[j]) for j in (1, 64, 128, 192)}
    assert pct[1] == pytest.approx(2.3, abs=0.05)
    assert pct[64] == pytest.approx(84, abs=0.5)
    assert pct[128] == pytest.approx(99.77, abs=0.01)
    assert pct[192] == pytest.approx(99.996, abs=0.001)


@pytest.mark.parametrize(("kind", "lo", "hi"), [
    ("gaussian-log", -2.0, 5.6), ("gaussian", -2.0, 5.6), ("gaussian", -1.0, 2.5),
    ("gaussian-log", -3.0, 1.0),
])
def test_gaussian_thresholds_on_normal_data_are_montage_levels_in_sigma(kind, lo, hi):
    # For N(0, 1) data the Gaussianised level of a value is the value itself.
    s = make_stretch(NORMAL, kind, str(lo), str(hi))
    expected = montage_targets(lo, hi, kind == "gaussian-log")[:255]
    np.testing.assert_allclose(s.edges, expected, atol=2e-3)


def test_gaussian_log_with_a_level_range_below_one_uses_the_gaussian_form():
    # g_max - g_min = 0.5 would invert the power law; the levels step evenly instead.
    s = make_stretch(NORMAL, "gaussian-log", "0", "0.5")
    np.testing.assert_allclose(s.edges, montage_targets(0.0, 0.5, log=False)[:255], atol=1e-3)
    assert (np.diff(s.edges) > 0).all()


def test_gaussian_default_lower_level_is_median_minus_two_sigma():
    s = make_stretch(NORMAL, "gaussian")
    sigma = (ndtri(0.84) - ndtri(0.16)) / 2
    assert s.lo == pytest.approx(-2 * sigma, abs=1e-3)
    assert s.hi == NORMAL.hi


def test_gaussian_thresholds_are_sample_quantiles_of_the_gaussian_levels():
    sample = np.random.default_rng(7).normal(10.0, 3.0, size=1_000_000)
    hist = histogram_of(sample)
    lo, hi = np.percentile(sample, ndtr(-2.0) * 100), np.percentile(sample, ndtr(2.0) * 100)
    s = make_stretch(hist, "gaussian", repr(float(lo)), repr(float(hi)))
    expected = np.quantile(sample, ndtr(np.linspace(-2.0, 2.0, 256)[:255]))
    np.testing.assert_allclose(s.edges, expected, atol=1e-2)


def test_gaussian_stretch_equalises_normal_data_between_the_levels():
    # Between g = -2 and 2 each gray level holds the normal probability of its 4/255 slice.
    sample = np.random.default_rng(8).normal(size=2_000_000)
    s = make_stretch(histogram_of(sample), "gaussian", "-2", "2")
    counts = np.bincount(s.gray(sample), minlength=256)
    edges = np.linspace(-2.0, 2.0, 256)
    expected = sample.size * np.diff(ndtr(edges))
    np.testing.assert_allclose(counts[1:255], expected[:254], rtol=0.05)


@pytest.mark.parametrize("kind", STRETCH_KINDS)
def test_edges_are_255_non_decreasing_values(kind):
    s = make_stretch(histogram_of(np.random.default_rng(9).lognormal(size=50_000)), kind)
    assert s.edges.shape == (255,)
    assert (np.diff(s.edges) >= 0).all()
    assert np.isfinite(s.edges).all()


@pytest.mark.parametrize("kind", STRETCH_KINDS)
def test_empty_or_inverted_range_is_widened_to_a_tiny_positive_interval(kind):
    for lo_text, hi_text in (("5", "5"), ("7", "3")):
        s = make_stretch(UNIFORM, kind, lo_text, hi_text)
        lo = float(lo_text)
        assert s.lo == lo
        assert lo < s.hi < lo + 1e-6
        assert (np.diff(s.edges) >= 0).all() and np.isfinite(s.edges).all()
        assert s.gray(np.array([lo - 1, lo + 1])).tolist() == [0, 255]


@pytest.mark.parametrize("kind", STRETCH_KINDS)
def test_constant_data_gives_a_valid_stretch(kind):
    s = make_stretch(histogram_of(np.full(100, 2.5)), kind)
    assert (s.data_min, s.data_max) == (2.5, 2.5)
    assert (np.diff(s.edges) >= 0).all() and np.isfinite(s.edges).all()
    assert s.gray(np.array([2.0, 3.0])).tolist() == [0, 255]


def test_unknown_kind_and_empty_histogram_raise():
    with pytest.raises(ValueError, match="cubic"):
        make_stretch(UNIFORM, "cubic")
    with pytest.raises(ValueError):
        make_stretch(histogram_of(np.array([np.nan])), "linear")


def test_gray_counts_edges_strictly_below_and_maps_nan_to_zero():
    s = Stretch("linear", 0.0, 255.0, np.arange(255) + 0.5, 0.0, 255.0)
    values = np.array([[np.nan, -np.inf, 0.0, 0.5, 0.6], [3.5, 3.51, 254.5, 254.6, np.inf]])
    gray = s.gray(values)
    assert gray.dtype == np.uint8
    assert gray.shape == values.shape
    assert gray.tolist() == [[0, 0, 0, 0, 1], [3, 4, 254, 255, 255]]


def test_stretch_rejects_wrong_edges():
    with pytest.raises(ValueError):
        Stretch("linear", 0.0, 1.0, np.linspace(0, 1, 256), 0.0, 1.0)
    with pytest.raises(ValueError):
        Stretch("linear", 0.0, 1.0, np.linspace(1, 0, 255), 0.0, 1.0)


def test_json_round_trip_keeps_every_field_exactly():
    s = make_stretch(NORMAL, "gaussian-log")
    doc = json.loads(s.to_json())
    assert isinstance(doc["edges"], list) and len(doc["edges"]) == 255
    back = Stretch.from_json(s.to_json())
    assert (back.kind, back.lo, back.hi, back.data_min, back.data_max) == \
        (s.kind, s.lo, s.hi, s.data_min, s.data_max)
    np.testing.assert_array_equal(back.edges, s.edges)


def test_save_and_load_round_trip_through_a_json_file(tmp_path):
    s = make_stretch(UNIFORM, "asinh", "-1s", "97%")
    path = tmp_path / "stretch-abc.json"
    s.save(path)
    assert json.loads(path.read_text())["kind"] == "asinh"
    back = Stretch.load(path)
    assert (back.kind, back.lo, back.hi, back.data_min, back.data_max) == \
        (s.kind, s.lo, s.hi, s.data_min, s.data_max)
    np.testing.assert_array_equal(back.edges, s.edges)


def _gray_reference(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Gray by definition, in float64: how many edges lie strictly below each value."""
    v = np.asarray(values, dtype=np.float64).ravel()
    gray = (edges[None, :] < v[:, None]).sum(axis=1)
    return np.where(np.isnan(v), 0, gray).reshape(np.shape(values))


def _float32_near_edges(edges: np.ndarray) -> np.ndarray:
    """Every float32 next to each edge: the nearest and its two neighbours either side."""
    e32 = edges.astype(np.float32)
    near = [e32]
    for direction in (np.inf, -np.inf):
        step = e32
        for _ in range(2):
            step = np.nextafter(step, np.float32(direction))
            near.append(step)
    return np.concatenate(near)


@pytest.mark.parametrize("kind", STRETCH_KINDS)
@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_gray_of_float32_values_equals_the_float64_definition(kind, byteorder):
    rng = np.random.default_rng(3)
    hist = histogram_of(rng.lognormal(0.0, 1.0, 50_000) - 0.7)
    s = make_stretch(hist, kind)
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 3e38, -3e38])
    values = np.concatenate([_float32_near_edges(s.edges), rng.lognormal(0.0, 1.0, 5000) - 0.7,
                             special]).astype(np.dtype(np.float32).newbyteorder(byteorder))
    np.testing.assert_array_equal(s.gray(values), _gray_reference(s.edges, values))
    assert s.gray(values).dtype == np.uint8


def test_gray_of_float32_is_exact_for_edges_between_float32_values_and_beyond_their_range():
    # Edges that no float32 holds: a float32 rounding to nearest would move some values.
    base = np.float32(1.0)
    between = float(base) + 0.75 * float(np.spacing(base))  # rounds up to the next float32
    edges = np.sort(np.concatenate([np.linspace(-1e39, -1e30, 50), [-1e-50, 1e-50, between],
                                    np.linspace(2.0, 1e39, 202)]))
    s = Stretch(kind="linear", lo=-1.0, hi=1.0, edges=edges, data_min=-1.0, data_max=1.0)
    values = np.concatenate([_float32_near_edges(edges[np.abs(edges) < 3e38]),
                             np.array([base, np.nextafter(base, np.float32(2)), 0.0, -0.0,
                                       1e-45, -1e-45, 3.4e38, -3.4e38, np.inf, -np.inf],
                                      dtype=np.float32)]).astype(np.float32)
    np.testing.assert_array_equal(s.gray(values), _gray_reference(edges, values))


def test_gray_of_float64_and_integer_values_compares_with_the_float64_edges():
    edges = np.linspace(0.0, 1.0, 255) + 1e-12  # between float32 values near each edge
    s = Stretch(kind="linear", lo=0.0, hi=1.0, edges=edges, data_min=0.0, data_max=1.0)
    values = np.concatenate([edges, edges - 1e-13, [0.0, 1.0, np.nan]])
    np.testing.assert_array_equal(s.gray(values), _gray_reference(edges, values))
    ints = np.array([-1, 0, 1, 2], dtype=np.int64)
    np.testing.assert_array_equal(s.gray(ints), _gray_reference(edges, ints))


def _any_float32(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` float32 of random bit patterns (every sign, exponent, subnormals, infinities
    and NaNs) plus the signed zeros."""
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([bits.view(np.float32), np.float32([0.0, -0.0])])


def test_float32_keys_order_every_float32_as_numbers():
    values = _any_float32(np.random.default_rng(5), 200_000)
    values = values[~np.isnan(values)]
    keys = float32_keys(values)
    order = np.argsort(keys, kind="stable")
    assert (np.diff(values[order].astype(np.float64)) >= 0).all()
    # equal numbers (the two zeros) are the only ties of value with different keys
    assert float32_keys(np.float32([-0.0]))[0] + 1 == float32_keys(np.float32([0.0]))[0]


@pytest.mark.parametrize("case", ["spread", "zeros", "one_bucket", "duplicates", "tiny"])
def test_gray_table_gives_searchsorted_for_every_float32(case):
    rng = np.random.default_rng(11)
    if case == "spread":  # any magnitude, both signs, infinities
        edges = np.sort(_any_float32(rng, 4000))
        edges = edges[~np.isnan(edges)][:: 8][:255]
    elif case == "zeros":  # -0.0 and +0.0 edges among small numbers of both signs
        edges = np.sort(np.concatenate([rng.normal(0, 1e-3, 251), [-0.0, 0.0, -0.0, 0.0]]))
    elif case == "one_bucket":  # MAX_TABLE_STEPS edges one float32 apart: one table entry
        start = np.float32(1.5)
        near = [start]
        for _ in range(MAX_TABLE_STEPS - 1):
            near.append(np.nextafter(near[-1], np.float32(2)))
        edges = np.sort(np.concatenate([np.linspace(-4, 1, 255 - MAX_TABLE_STEPS), near]))
    elif case == "duplicates":  # repeated edges, beyond what one table entry takes
        edges = np.sort(np.concatenate([np.full(40, 2.0), np.linspace(-1, 3, 215)]))
    else:  # subnormal edges
        edges = np.sort(rng.integers(-2_000_000, 2_000_000, 255).astype(np.float64) * 1e-45)
    e32 = float32_edges(np.asarray(edges, dtype=np.float64))
    values = np.concatenate([_any_float32(rng, 100_000), e32, _float32_near_edges(e32),
                             rng.choice(e32, 5000) * np.float32(1.0 + 1e-7)]).astype(np.float32)
    expected = np.searchsorted(e32, values, side="left")
    s = Stretch(kind="linear", lo=0.0, hi=1.0, edges=edges, data_min=0.0, data_max=1.0)
    got = s.gray(values)
    finite = ~np.isnan(values)
    np.testing.assert_array_equal(got[finite], expected[finite])
    assert (got[~finite] == 0).all()
    if case == "duplicates":
        assert gray_table(e32).steps > MAX_TABLE_STEPS  # searchsorted took over
    else:
        assert gray_table(e32).steps <= MAX_TABLE_STEPS
        np.testing.assert_array_equal(gray_table(e32).gray(values)[finite], expected[finite])
    if case == "one_bucket":
        assert gray_table(e32).steps == MAX_TABLE_STEPS
