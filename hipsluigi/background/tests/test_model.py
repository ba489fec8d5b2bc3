"""The global background model: known planes come back, through wrap and cut maps too."""

from types import SimpleNamespace

import numpy as np

from hipsluigi.background.model import solve_background

N = 1000.0
CRPIX = (5 * N + 1) / 2


def _diff(truth, plus, minus, lin, t, centre, noise=0.0, npixel=5000):
    def diff(x, y):
        m = lin @ np.array([x + CRPIX, y + CRPIX]) + t - CRPIX
        qp, qm = truth[plus], truth[minus]
        return (qp[0] * x + qp[1] * y + qp[2]) - (qm[0] * m[0] + qm[1] * m[1] + qm[2])

    c0 = diff(0.0, 0.0)
    return SimpleNamespace(
        plus=plus, minus=minus, a=diff(1.0, 0.0) - c0, b=diff(0.0, 1.0) - c0, c=c0 + noise,
        npixel=npixel, xcenter=centre[0], ycenter=centre[1], sxx=200.0**2, sxy=30.0,
        syy=100.0**2, l11=lin[0, 0], l12=lin[0, 1], l21=lin[1, 0], l22=lin[1, 1], t1=t[0],
        t2=t[1], crpix1=CRPIX, crpix2=CRPIX)


def _network(truth, rng):
    turn = np.array([[0.0, -1.0], [1.0, 0.0]])
    pairs = [(0, 1, np.eye(2), np.zeros(2)), (1, 2, np.eye(2), np.zeros(2)),
             (2, 3, np.eye(2), np.full(2, 4 * N)), (3, 0, turn, np.array([3000.0, 500.0])),
             (0, 2, np.eye(2), np.zeros(2)), (1, 3, turn, np.array([2500.0, -100.0])),
             (3, 4, np.eye(2), np.zeros(2)), (4, 0, np.eye(2), np.zeros(2))]
    return [_diff(truth, p, m, lin, t, rng.uniform(-2000, 2000, 2)) for p, m, lin, t in pairs]


def test_planes_come_back_through_plane_wrap_and_cut_pairs():
    rng = np.random.default_rng(0)
    truth = {k: (rng.normal(0, 1e-4), rng.normal(0, 1e-4), rng.normal()) for k in range(5)}
    sol = solve_background(_network(truth, rng), list(range(5)), N, slopes=True,
                           reject=np.inf, ridge=1e-9)
    for k in range(5):
        assert np.allclose(sol.planes[k][:2], truth[k][:2], atol=1e-9)
    offsets = np.array([sol.planes[k][2] - truth[k][2] for k in range(5)])
    assert np.ptp(offsets) < 1e-6  # one free constant


def test_levels_only_recovers_offsets():
    rng = np.random.default_rng(3)
    truth = {k: (0.0, 0.0, rng.normal()) for k in range(5)}
    sol = solve_background(_network(truth, rng), list(range(5)), N, slopes=False)
    got = np.array([sol.planes[k][2] for k in range(5)])
    want = np.array([truth[k][2] for k in range(5)])
    assert np.allclose(got - got.mean(), want - want.mean(), atol=1e-9)
    assert all(sol.planes[k][:2] == (0.0, 0.0) for k in range(5))


def test_a_bad_difference_is_rejected_and_does_not_pull_the_solution():
    rng = np.random.default_rng(4)
    n = 30  # a ring of plates, each tied to the next two
    truth = {k: (0.0, 0.0, rng.normal()) for k in range(n)}
    diffs = [_diff(truth, k, (k + d) % n, np.eye(2), np.zeros(2), rng.uniform(-9, 9, 2),
                   noise=rng.normal(0, 0.01)) for k in range(n) for d in (1, 2)]
    diffs[7].c += 5.0  # a corrupted difference
    sol = solve_background(diffs, list(range(n)), N, slopes=False)
    assert sol.rejected == [7]
    got = np.array([sol.planes[k][2] for k in range(n)])
    want = np.array([truth[k][2] for k in range(n)])
    assert np.std((got - got.mean()) - (want - want.mean())) < 0.02
