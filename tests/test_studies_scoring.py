"""FROC scoring and figures of merit against hand-worked examples and independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from reviewer.studies import scoring as SC

NEG = float("-inf")


def test_score_case_by_hand():
    # lesions at x=0 and x=10 (radius 5). By decreasing rating: (2,0,0) r5 claims lesion 0; (1,0,0) r3 finds
    # lesion 0 taken and lesion 1 at 9 mm > 5 -> NL; (30,0,0) r2 -> NL; (9,0,0) r1 -> lesion 1.
    marks = [((1, 0, 0), 3.0), ((2, 0, 0), 5.0), ((30, 0, 0), 2.0), ((9, 0, 0), 1.0)]
    sc = SC.score_case(marks, [(0, 0, 0), (10, 0, 0)], 5.0)
    assert sc.ll == [5.0, 1.0]
    assert sorted(sc.nl) == [2.0, 3.0]
    assert sc.mark_lesion == [None, 0, None, 1]
    assert sc.highest == 5.0 and sc.highest_nl == 3.0
    # exactly on the radius counts; just beyond does not; no marks: lesions at -inf
    assert SC.score_case([((5, 0, 0), 2.0)], [(0, 0, 0)], 5.0).ll == [2.0]
    assert SC.score_case([((5.01, 0, 0), 2.0)], [(0, 0, 0)], 5.0).nl == [2.0]
    empty = SC.score_case([], [(0, 0, 0)], 5.0)
    assert empty.ll == [NEG] and empty.highest == NEG


def _example():
    # normal N1: highest NL 2; normal N2: no marks. Abnormal A1: lesions rated 4 and unmarked (weights .5/.5),
    # plus an NL rated 3 (counts for ROC, not for wAFROC); abnormal A2: one lesion rated 2.
    fp = [2.0, NEG]
    ll = [[4.0, NEG], [2.0]]
    return fp, ll


def test_wafroc_afroc_roc_by_hand():
    fp, ll = _example()
    # wAFROC: N1 vs A1 = .5*1 + .5*0 = .5, N1 vs A2 = .5 (tie); N2 vs A1 = .5*1 + .5*.5 (tie -inf) = .75,
    # N2 vs A2 = 1 -> (0.5 + 0.5 + 0.75 + 1) / 4 = 0.6875
    assert SC.wafroc_fom(fp, ll) == pytest.approx(0.6875)
    # AFROC (each lesion weight 1): N1: 1 + 0 + .5; N2: 1 + .5 + 1 -> 4 / (2 * 3)
    assert SC.afroc_fom(fp, ll) == pytest.approx(4 / 6)
    # ROC on highest rating per case: normals (2, -inf), abnormals (4, 2): 1 + .5 + 1 + 1 = 3.5 / 4
    assert SC.wilcoxon_auc([2.0, NEG], [4.0, 2.0]) == pytest.approx(0.875)
    # explicit weights: the unmarked lesion weighs .9 -> N1: .1; N2: .1 + .45; A2 as before
    assert SC.wafroc_fom(fp, ll, [[0.1, 0.9], [1.0]]) == pytest.approx((0.1 + 0.5 + 0.55 + 1) / 4)


def test_fom_equals_trapezoidal_area_of_the_empirical_curve():
    rng = np.random.default_rng(3)
    for _ in range(20):
        normal = [SC.ScoredCase([], list(rng.integers(1, 6, rng.integers(0, 3)).astype(float))) for _ in range(7)]
        abnormal = []
        for _ in range(6):
            n = int(rng.integers(1, 4))
            lls = [float(rng.integers(1, 6)) if rng.random() < 0.7 else NEG for _ in range(n)]
            abnormal.append(SC.ScoredCase(lls, []))
        fp = [c.highest_nl for c in normal]
        ll = [c.ll for c in abnormal]
        x, y = SC.afroc_curve(normal, abnormal, weighted=True)
        assert SC.trapezoid(x, y) == pytest.approx(SC.wafroc_fom(fp, ll))
        x, y = SC.afroc_curve(normal, abnormal, weighted=False)
        assert SC.trapezoid(x, y) == pytest.approx(SC.afroc_fom(fp, ll))
        rn = [c.highest for c in normal]
        ra = [max(c.ll) for c in abnormal]
        x, y = SC.roc_curve(rn, ra)
        assert SC.trapezoid(x, y) == pytest.approx(SC.wilcoxon_auc(rn, ra))


def test_wilcoxon_matches_mann_whitney_with_ties():
    rng = np.random.default_rng(0)
    n = rng.integers(1, 6, 30).astype(float)
    a = rng.integers(2, 7, 25).astype(float)
    u = mannwhitneyu(a, n, alternative="two-sided").statistic
    assert SC.wilcoxon_auc(n, a) == pytest.approx(u / (len(a) * len(n)))


def test_bootstrap_weights_reweight_cases():
    fp, ll = _example()
    k = SC.lesion_kernel(fp, ll, [[0.5, 0.5], [1.0]])
    # drawing N2 twice and A1 twice == the FOM on the data set {N2, N2} x {A1, A1}
    assert SC.kernel_fom(k, np.array([0, 2.0]), np.array([2.0, 0])) == pytest.approx(0.75)
    assert math.isnan(SC.kernel_fom(np.zeros((0, 2))))


def test_froc_curve_by_hand():
    cases = [SC.ScoredCase([4.0, NEG], [3.0]), SC.ScoredCase([2.0], []), SC.ScoredCase([], [2.0, 1.0])]
    nlf, llf = SC.froc_curve(cases)
    # thresholds 4, 3, 2, 1: NL counts 0,1,2,3 over 3 cases; LL counts 1,1,2,2 over 3 lesions
    assert np.allclose(nlf, [0, 0, 1 / 3, 2 / 3, 1])
    assert np.allclose(llf, [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3])


def test_average_ranks_match_scipy():
    from scipy.stats import rankdata

    x = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, -np.inf], float)
    assert np.allclose(SC.average_ranks(x), rankdata(x))


def test_kendalls_w_by_hand():
    # ranks R1 (1,2,3), R2 (1,3,2), R3 (2,1,3): sums 4, 6, 8; S = 8; W = 12 S / (m^2 (n^3 - n)) = 96 / 216
    r = np.array([[1, 2, 3], [1, 3, 2], [2, 1, 3]], float)
    assert SC.kendalls_w(r) == pytest.approx(96 / 216)
    assert SC.kendalls_w(np.array([[1, 2, 3, 4]] * 3, float)) == pytest.approx(1.0)
    assert SC.kendalls_w(np.array([[1, 2, 3, 4], [4, 3, 2, 1]], float)) == pytest.approx(0.0)
    # ties: rows (1,1,2), (1,2,3); ranks (1.5,1.5,3), (1,2,3); sums (2.5,3.5,6), S = 6.5;
    # T = (2^3 - 2) = 6; W = 12*6.5 / (4*24 - 2*6) = 78/84
    assert SC.kendalls_w(np.array([[1, 1, 2], [1, 2, 3]], float)) == pytest.approx(78 / 84)
