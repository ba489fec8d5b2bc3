import numpy as np
import pytest

from hipsluigi.stretch.histogram import (
    PixelHistogram,
    histogram_of,
    merge_histograms,
    percentile,
)


def test_counts_match_numpy_histogram_over_data_range():
    values = np.random.default_rng(1).normal(3.0, 2.0, size=(300, 200)).astype(np.float32)
    hist = histogram_of(values, nbins=1000)
    expected, _ = np.histogram(values.astype(np.float64), bins=1000,
                               range=(float(values.min()), float(values.max())))
    assert hist.lo == float(values.min())
    assert hist.hi == float(values.max())
    assert hist.npix == values.size
    np.testing.assert_array_equal(hist.counts, expected)


def test_values_on_and_next_to_bin_edges_fall_in_the_bins_numpy_gives():
    # Scaling by nbins / (hi - lo) rounds some of these across an edge in both directions.
    lo, hi, nbins = -3.7, 2.9, 1000
    edges = np.linspace(lo, hi, nbins + 1)
    values = np.concatenate([edges, np.nextafter(edges, -np.inf)[1:],
                             np.nextafter(edges, np.inf)[:-1]])
    expected, _ = np.histogram(values, bins=nbins, range=(lo, hi))
    hist = histogram_of(values, nbins=nbins)
    assert (hist.lo, hist.hi) == (lo, hi)
    np.testing.assert_array_equal(hist.counts, expected)


def test_minimum_falls_in_first_bin_and_maximum_in_last_bin():
    hist = histogram_of(np.array([0.0, 1.0, 2.0, 10.0]), nbins=5)
    # Bins of width 2: [0,2) [2,4) [4,6) [6,8) [8,10]; 2.0 is a lower edge.
    np.testing.assert_array_equal(hist.counts, [2, 1, 0, 0, 1])


def test_non_finite_values_are_ignored():
    values = np.array([np.nan, 1.0, np.inf, 3.0, -np.inf, 2.0, np.nan])
    hist = histogram_of(values, nbins=2)
    assert hist.npix == 3
    assert (hist.lo, hist.hi) == (1.0, 3.0)
    np.testing.assert_array_equal(hist.counts, [1, 2])


def test_empty_input_gives_zero_pixels_and_nan_range():
    hist = histogram_of(np.full((4, 4), np.nan), nbins=7)
    assert hist.npix == 0
    assert np.isnan(hist.lo) and np.isnan(hist.hi)
    np.testing.assert_array_equal(hist.counts, np.zeros(7))


def test_constant_data_fills_one_bin_and_every_percentile_is_the_value():
    hist = histogram_of(np.full(50, 4.25), nbins=10)
    assert hist.lo == hist.hi == 4.25
    assert hist.counts.sum() == hist.counts.max() == 50
    for q in (0, 1, 50, 99.9, 100):
        assert percentile(hist, q) == 4.25


def test_percentile_is_linear_within_bins():
    # One pixel per bin over [0, 4]: the cumulative distribution is the line q/25.
    flat = PixelHistogram(0.0, 4.0, np.array([1, 1, 1, 1]), 4)
    for q in (10.0, 25.0, 37.5, 80.0):
        assert percentile(flat, q) == pytest.approx(q / 25.0)
    # Two pixels in [1, 2) and two in [3, 4]: the quartiles are the bin middles.
    gappy = PixelHistogram(0.0, 4.0, np.array([0, 2, 0, 2]), 4)
    assert percentile(gappy, 25.0) == pytest.approx(1.5)
    assert percentile(gappy, 50.0) == pytest.approx(2.0)
    assert percentile(gappy, 75.0) == pytest.approx(3.5)


def test_percentile_endpoints_are_lo_and_hi():
    hist = PixelHistogram(-3.0, 7.0, np.array([0, 5, 5, 0]), 10)
    assert percentile(hist, 0) == -3.0
    assert percentile(hist, 100) == 7.0


@pytest.mark.parametrize("q", [-0.1, 100.5, float("nan")])
def test_percentile_outside_0_100_raises(q):
    with pytest.raises(ValueError):
        percentile(PixelHistogram(0.0, 1.0, np.array([1]), 1), q)


def test_percentile_of_empty_histogram_raises():
    with pytest.raises(ValueError):
        percentile(histogram_of(np.array([np.nan])), 50)


def test_percentile_matches_numpy_within_a_bin_width():
    values = np.random.default_rng(2).normal(size=1_000_000)
    hist = histogram_of(values, nbins=2000)
    delta = (hist.hi - hist.lo) / hist.nbins
    for q in (0.5, 2.3, 16, 50, 84, 99.5, 99.9):
        assert percentile(hist, q) == pytest.approx(np.percentile(values, q), abs=delta)


def test_merging_one_histogram_with_the_same_bins_changes_nothing():
    hist = histogram_of(np.random.default_rng(3).exponential(size=10_000), nbins=500)
    merged = merge_histograms([hist], nbins=500)
    assert (merged.lo, merged.hi, merged.npix) == (hist.lo, hist.hi, hist.npix)
    np.testing.assert_array_equal(merged.counts, hist.counts)


def test_merge_puts_each_count_in_the_bin_of_its_input_bin_centre():
    a = PixelHistogram(0.0, 10.0, np.eye(10, dtype=np.int64)[3] * 5, 5)  # 5 pixels in [3, 4)
    b = PixelHistogram(10.0, 20.0, np.eye(10, dtype=np.int64)[9] * 2, 2)  # 2 pixels in [19, 20]
    merged = merge_histograms([a, b], nbins=40)
    # Output bins are 0.5 wide over [0, 20]: centre 3.5 is in bin 7, centre 19.5 in bin 39.
    expected = np.zeros(40, dtype=np.int64)
    expected[7], expected[39] = 5, 2
    assert (merged.lo, merged.hi, merged.npix) == (0.0, 20.0, 7)
    np.testing.assert_array_equal(merged.counts, expected)


def test_merge_of_plates_matches_the_whole_within_the_documented_error():
    rng = np.random.default_rng(4)
    parts = [rng.normal(0, 1, 40_000), rng.normal(3, 0.5, 30_000), rng.uniform(-6, 9, 5_000)]
    hists = [histogram_of(p, nbins=300) for p in parts]
    merged = merge_histograms(hists, nbins=400)
    whole = np.concatenate(parts)
    assert (merged.lo, merged.hi) == (whole.min(), whole.max())
    assert merged.npix == merged.counts.sum() == whole.size
    max_in = max((h.hi - h.lo) / h.nbins for h in hists)
    out = (merged.hi - merged.lo) / merged.nbins
    for q in (1, 10, 25, 50, 75, 90, 99):
        assert percentile(merged, q) == pytest.approx(np.percentile(whole, q),
                                                      abs=max_in + 2 * out)


def test_merge_skips_empty_histograms():
    full = histogram_of(np.arange(10.0), nbins=10)
    empty = histogram_of(np.array([np.nan]), nbins=10)
    merged = merge_histograms([empty, full, empty], nbins=10)
    assert (merged.lo, merged.hi, merged.npix) == (0.0, 9.0, 10)
    np.testing.assert_array_equal(merged.counts, full.counts)


def test_merge_of_only_empty_histograms_raises():
    empty = histogram_of(np.array([np.nan]))
    with pytest.raises(ValueError):
        merge_histograms([empty, empty])
    with pytest.raises(ValueError):
        merge_histograms([])


def test_merge_of_constant_histograms_keeps_both_values():
    merged = merge_histograms([histogram_of(np.full(3, 1.0)), histogram_of(np.full(2, 3.0))],
                              nbins=4)
    assert (merged.lo, merged.hi) == (1.0, 3.0)
    np.testing.assert_array_equal(merged.counts, [3, 0, 0, 2])


@pytest.mark.parametrize("dtype", [">f4", "<f4", ">f8", "<i2"])
def test_counts_of_any_dtype_and_byte_order_match_numpy_histogram(dtype):
    rng = np.random.default_rng(5)
    values = (rng.normal(0.0, 30.0, 100_000)).astype(dtype)
    if values.dtype.kind == "f":
        values[::97] = np.nan
        values[1::89] = np.inf
    finite = values[np.isfinite(values)].astype(np.float64)
    hist = histogram_of(values, nbins=1000)
    expected, _ = np.histogram(finite, bins=1000, range=(finite.min(), finite.max()))
    np.testing.assert_array_equal(hist.counts, expected)
    assert hist.npix == finite.size
