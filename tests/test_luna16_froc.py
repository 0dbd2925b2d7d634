"""The LUNA16 FROC evaluator: hand-worked cases, sklearn's roc_curve semantics, and an independent, deliberately
naive re-computation of the protocol (curve and bootstrap) on random data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reviewer.errors import InputError
from reviewer.luna16.froc import FP_RATES, evaluate_froc, froc_curve, match_marks, roc_curve
from reviewer.luna16.io import Annotation, SubmissionRow

A = Annotation
R = SubmissionRow


def sens_list(res):
    return [res.sensitivities[r] for r in FP_RATES]


# ---------------------------------------------------------------------------------------------------------------
# sklearn.metrics.roc_curve semantics
def test_roc_curve_matches_sklearn_documentation_example():
    # the example of sklearn's roc_curve docstring
    fpr, tpr, thr = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    np.testing.assert_allclose(fpr, [0.0, 0.0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(tpr, [0.0, 0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(thr, [np.inf, 0.8, 0.4, 0.35, 0.1])


def test_roc_curve_ties_and_drop_intermediate():
    y = [1, 0, 1, 0, 0, 0, 1, 0]
    s = [0.9, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    # one point per distinct score; the tie at 0.9 is one diagonal step
    np.testing.assert_allclose(fpr * 5, [0, 1, 1, 2, 3, 4, 4, 5])
    np.testing.assert_allclose(tpr * 3, [0, 1, 2, 2, 2, 2, 3, 3])
    fpr_d, tpr_d, thr_d = roc_curve(y, s)  # sklearn default: drop the inner points of the run 0.8 .. 0.5
    assert thr_d.tolist() == [np.inf, 0.9, 0.8, 0.5, 0.4, 0.3]
    x = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(np.interp(x, fpr_d, tpr_d), np.interp(x, fpr, tpr))
    # no negatives: sklearn returns NaN false positive rates
    assert np.all(np.isnan(roc_curve([1, 1], [0.2, 0.3])[0]))


def test_drop_intermediate_never_changes_interpolated_values():
    rng = np.random.default_rng(3)
    x = np.linspace(0, 1, 2001)
    for _ in range(20):
        n = int(rng.integers(5, 300))
        y = rng.random(n) < 0.3
        y[0], y[1] = True, False
        s = np.round(rng.random(n), 1)  # many ties
        a = roc_curve(y, s, drop_intermediate=True)
        b = roc_curve(y, s, drop_intermediate=False)
        np.testing.assert_allclose(np.interp(x, a[0], a[1]), np.interp(x, b[0], b[1]))


# ---------------------------------------------------------------------------------------------------------------
# hand-worked cases
def _case_double_excluded_negative():
    annotations = {"s1": [A(0, 0, 0, 10.0), A(50, 0, 0, -1.0)], "s2": [A(0, 0, 0, 6.0)]}
    excluded = {"s1": [A(100, 0, 0, 4.0)]}
    submission = [
        R("s1", 1, 0, 0, 0.9),    # hits N1
        R("s1", 0, 2, 0, 0.6),    # hits N1 again: double hit, ignored
        R("s1", 54, 0, 0, 0.5),   # 4 mm from N2 whose diameter -1 means 10 mm: a hit
        R("s1", 101, 0, 0, 0.95),  # on the excluded finding: neither TP nor FP
        R("s1", 200, 0, 0, 0.7),  # FP
        R("s2", 3, 0, 0, 0.8),    # exactly at the radius of N3 (3 mm): not < r, so an FP
        R("s2", 300, 0, 0, 0.4),  # FP
    ]
    return annotations, excluded, submission, ["s1", "s2", "s3"]  # s3: no nodules, no marks


def test_double_hits_excluded_findings_negative_diameters_and_empty_scans():
    ann, exc, sub, uids = _case_double_excluded_negative()
    res = evaluate_froc(ann, exc, sub, uids, n_bootstrap=0)
    c = res.counts
    assert (c["n_scans"], c["n_nodules"], c["n_detected"]) == (3, 3, 2)
    assert (c["n_false_positives"], c["n_irrelevant_marks"], c["n_double_hits_ignored"]) == (3, 1, 1)
    # entries: nodules 0.9, 0.5 (N3 missed: -1e9, flagged); FPs 0.7, 0.8, 0.4. Curve (fp/3 scans, tp/3 nodules):
    # (0,0) (0,1/3) (1/3,1/3) (2/3,1/3) (2/3,2/3) (1,2/3)
    third = 1 / 3
    np.testing.assert_allclose(sens_list(res), [third] * 3 + [2 * third] * 4)
    assert res.cpm == pytest.approx(11 / 21)
    status = res.mark_statuses
    assert status == ["TP", "TP-duplicate", "TP", "irrelevant", "FP", "FP", "FP"]
    assert [n["detected"] for n in res.nodules] == [True, True, False]

    # without the excluded list the mark at 0.95 becomes the highest-scoring false positive
    res2 = evaluate_froc(ann, {}, sub, uids, n_bootstrap=0)
    assert res2.counts["n_false_positives"] == 4
    # curve: (0,0) (1/3,0) (1/3,1/3) (2/3,1/3) (1,1/3) (1,2/3) (4/3,2/3)
    assert [res2.sensitivities[r] for r in (0.125, 0.25, 0.5)] == pytest.approx([0, 0, third])
    assert [res2.sensitivities[r] for r in (1, 2, 4, 8)] == pytest.approx([2 * third] * 4)

    # the hit on N2 (4 mm away) comes from the 10 mm rule: with a real diameter the radius must exceed 4 mm
    for diameter, hits in ((7.0, 1), (8.0, 1), (8.01, 2)):  # 8.0: distance == radius is no hit (strict <)
        ann_d = {"s1": [A(0, 0, 0, 10.0), A(50, 0, 0, diameter)], "s2": ann["s2"]}
        assert evaluate_froc(ann_d, exc, sub, uids, n_bootstrap=0).counts["n_detected"] == hits, diameter


def test_known_false_positive_counts():
    """5 scans (two without nodules), 5 nodules (one missed), 30 false positives; hand-worked sensitivities."""
    ann = {"A": [A(0, 0, 0, 10), A(40, 0, 0, 10)], "B": [A(0, 0, 0, 10), A(40, 0, 0, 10)], "C": [A(0, 0, 0, 10)]}
    sub = []
    fp_scans = ["A", "B", "C", "D", "E"]
    fp_count = [0]

    def fp(p):
        u = fp_scans[fp_count[0] % 5]
        sub.append(R(u, 500 + fp_count[0], 0, 0, p))
        fp_count[0] += 1

    sub.append(R("A", 0, 0, 0, 0.99))  # T1
    fp(0.98), fp(0.97)  # F1 F2
    sub.append(R("A", 41, 0, 0, 0.96))  # T2
    for p in (0.95, 0.94, 0.93, 0.92):  # F3..F6
        fp(p)
    sub.append(R("B", 1, 1, 0, 0.91))  # T3
    for p in (0.90, 0.89, 0.88):  # F7..F9
        fp(p)
    fp(0.87), fp(0.87)  # F10 F11 tied with T4: one diagonal step from (9 FP, 3 TP) to (11 FP, 4 TP)
    sub.append(R("B", 40, 0, 2, 0.87))  # T4
    for i in range(19):  # F12..F30
        fp(0.5 - i * 0.01)
    assert fp_count[0] == 30
    res = evaluate_froc(ann, {}, sub, ["A", "B", "C", "D", "E"], n_bootstrap=0)
    assert res.counts["n_false_positives"] == 30 and res.counts["n_detected"] == 4
    # points (FP/5, TP/5): (0,.2) (.2,.2) (.4,.2) (.4,.4) ... (1.2,.4) (1.2,.6) ... (1.8,.6) (2.2,.8) ... (6,.8)
    np.testing.assert_allclose(sens_list(res), [0.2, 0.2, 0.4, 0.4, 0.7, 0.8, 0.8])
    assert res.cpm == pytest.approx(0.5)
    # an extra listed scan without nodules or marks lowers the FP rate of every point (6 scans instead of 5)
    res6 = evaluate_froc(ann, {}, sub, ["A", "B", "C", "D", "E", "F"], n_bootstrap=0)
    np.testing.assert_allclose(res6.sensitivities[2.0], 0.8)  # 12 FPs / 6 scans: after T4
    np.testing.assert_allclose(res6.sensitivities[0.5], 0.4)  # 3 FPs / 6 scans: after T2
    # marks on scans outside the list are ignored (with a warning), not counted as false positives
    res4 = evaluate_froc(ann, {}, sub, ["A", "B", "C", "D"], n_bootstrap=0)
    assert res4.counts["n_marks_unlisted_scan"] == 6 and any("not in the series list" in w for w in res4.warnings)


def test_hundred_mark_cap_keeps_marks_above_the_101st_probability():
    ann = {"s": [A(0, 0, 0, 10)]}
    fps = [R("s", 100 + i, 0, 0, 0.5 + i * 0.001) for i in range(101)]
    tp = R("s", 0, 0, 0, 0.1)  # the 102nd mark: beyond the cap
    res = evaluate_froc(ann, {}, fps + [tp], ["s"], n_bootstrap=0)
    assert res.counts["n_marks_scored"] == 100 and res.counts["n_marks_capped"] == 2
    assert res.counts["n_detected"] == 0 and res.cpm == 0.0
    assert res.mark_statuses[-1] == "capped" and res.mark_statuses[0] == "capped"  # 0.5 is the 101st
    uncapped = evaluate_froc(ann, {}, fps + [tp], ["s"], n_bootstrap=0, max_marks=0)
    assert uncapped.counts["n_detected"] == 1 and uncapped.counts["n_marks_capped"] == 0
    # ties at the cut are all dropped, as in the official script: 99 distinct, then two at 0.3 (100th and 101st)
    tied = [R("s", 100 + i, 0, 0, 0.9 - i * 0.001) for i in range(99)] + [R("s", 0, 0, 0, 0.3), R("s", 300, 0, 0, 0.3)]
    res_t = evaluate_froc(ann, {}, tied, ["s"], n_bootstrap=0)
    assert res_t.counts["n_marks_scored"] == 99 and res_t.counts["n_detected"] == 0


def test_perfect_detector_has_cpm_one():
    ann = {f"s{i}": [A(10 * i, 0, 0, 8), A(10 * i, 50, 0, 5)] for i in range(4)}
    sub = [R(u, a.x + 1, a.y, a.z, 0.99) for u, items in ann.items() for a in items]
    res = evaluate_froc(ann, {}, sub, sorted(ann) + ["empty"], n_bootstrap=50)
    assert res.cpm == 1.0 and sens_list(res) == [1.0] * 7
    assert res.cpm_ci == (1.0, 1.0)
    # false positives scored below every nodule do not change that
    sub2 = sub + [R("empty", 0, 0, 0, 0.2), R("s0", 500, 0, 0, 0.3)]
    assert evaluate_froc(ann, {}, sub2, sorted(ann) + ["empty"], n_bootstrap=0).cpm == 1.0
    # ... but one above them does: sensitivity 0 until 1 FP in 5 scans (0.2 FPs/scan), then 1
    sub3 = sub + [R("empty", 0, 0, 0, 0.999)]
    res3 = evaluate_froc(ann, {}, sub3, sorted(ann) + ["empty"], n_bootstrap=0)
    assert res3.sensitivities[0.125] == pytest.approx(0.0) and res3.sensitivities[0.25] == 1.0


def test_mark_hitting_two_overlapping_nodules_counts_for_both():
    ann = {"s": [A(0, 0, 0, 10), A(4, 0, 0, 10)]}
    res = evaluate_froc(ann, {}, [R("s", 2, 0, 0, 0.7)], ["s"], n_bootstrap=0)
    assert res.counts["n_detected"] == 2 and res.counts["n_marks_hitting_two_nodules"] == 1
    assert any("two nodules" in w for w in res.warnings)


def test_degenerate_inputs():
    ann = {"s": [A(0, 0, 0, 10)]}
    res = evaluate_froc(ann, {}, [], ["s", "t"], n_bootstrap=20)  # no marks at all
    assert res.cpm == 0.0 and res.counts["n_detected"] == 0
    res = evaluate_froc(ann, {}, [R("s", 90, 0, 0, 0.4)], ["s"], n_bootstrap=0)  # only false positives
    assert res.cpm == 0.0 and not math.isnan(res.cpm)
    with pytest.raises(InputError, match="no annotated nodules"):
        evaluate_froc({}, {}, [R("s", 0, 0, 0, 0.4)], ["s"], n_bootstrap=0)
    with pytest.raises(InputError, match="duplicates"):
        evaluate_froc(ann, {}, [], ["s", "s"], n_bootstrap=0)


# ---------------------------------------------------------------------------------------------------------------
# independent naive re-computation on random data
def _random_case(seed, n_scans=12):
    rng = np.random.default_rng(seed)
    uids = [f"1.2.3.{seed}.{i}" for i in range(n_scans)]
    ann, exc, sub = {}, {}, []
    for u in uids:
        items = [A(*rng.uniform(-80, 80, 3), float(rng.choice([-1.0, rng.uniform(3, 25)], p=[0.1, 0.9])))
                 for _ in range(int(rng.integers(0, 4)))]
        if items:
            ann[u] = items
        ex = [A(*rng.uniform(-80, 80, 3), float(rng.uniform(1, 3))) for _ in range(int(rng.integers(0, 2)))]
        if ex:
            exc[u] = ex
        for a in items + ex:
            for _ in range(int(rng.integers(0, 3))):  # 0-2 marks near each finding (double hits)
                sub.append(R(u, *(np.array(a.center) + rng.normal(0, 2, 3)), float(np.round(rng.random(), 2))))
        for _ in range(int(rng.integers(0, 40))):
            sub.append(R(u, *rng.uniform(-80, 80, 3), float(np.round(rng.random() * 0.8, 2))))
    sub.append(R("not-listed", 0, 0, 0, 0.5))
    return ann, exc, sub, uids


def _naive_entries(ann, exc, sub, uids, max_marks=100):
    """Per scan: list of (label, prob, counted) following the protocol text, written with plain loops."""
    per_scan = {}
    for u in uids:
        marks = [r for r in sub if r.seriesuid == u]
        if len(marks) > max_marks:
            cut = sorted((r.probability for r in marks), reverse=True)[max_marks]
            marks = [r for r in marks if r.probability > cut]
        is_fp = [True] * len(marks)
        entries = []
        for a in ann.get(u, []):
            d = a.diameter_mm if a.diameter_mm >= 0 else 10.0
            hit = [i for i, r in enumerate(marks) if sum((p - q) ** 2 for p, q in zip(r.center, a.center)) < (d / 2) ** 2]
            for i in hit:
                is_fp[i] = False
            entries.append((1, max(marks[i].probability for i in hit), True) if hit else (1, -1e9, False))
        for a in exc.get(u, []):
            d = a.diameter_mm if a.diameter_mm >= 0 else 10.0
            for i, r in enumerate(marks):
                if sum((p - q) ** 2 for p, q in zip(r.center, a.center)) < (d / 2) ** 2:
                    is_fp[i] = False
        entries += [(0, r.probability, True) for i, r in enumerate(marks) if is_fp[i]]
        per_scan[u] = entries
    return per_scan


def _naive_curve(entries, n_scans):
    n_nodules = sum(1 for e in entries if e[0] == 1)
    counted = [e for e in entries if e[2]]
    xs, ys = [0.0], [0.0]
    for t in sorted({e[1] for e in counted}, reverse=True):
        tp = sum(1 for e in counted if e[0] == 1 and e[1] >= t)
        fp = sum(1 for e in counted if e[0] == 0 and e[1] >= t)
        xs.append(fp / n_scans)
        ys.append(tp / n_nodules)
    return np.array(xs), np.array(ys)


@pytest.mark.parametrize("seed, max_marks", [(0, 100), (1, 100), (2, 100), (3, 100), (4, 7), (5, 3)])
def test_matches_naive_recomputation(seed, max_marks):
    ann, exc, sub, uids = _random_case(seed)
    per_scan = _naive_entries(ann, exc, sub, uids, max_marks=max_marks)
    xs, ys = _naive_curve([e for u in uids for e in per_scan[u]], len(uids))
    res = evaluate_froc(ann, exc, sub, uids, n_bootstrap=0, max_marks=max_marks)
    if max_marks < 100:
        assert res.counts["n_marks_capped"] > 0
    np.testing.assert_allclose(sens_list(res), np.interp(FP_RATES, xs, ys), atol=1e-12)
    np.testing.assert_allclose(res.curve_sens, np.interp(res.curve_fps, xs, ys), atol=1e-12)
    assert res.cpm == pytest.approx(float(np.mean(np.interp(FP_RATES, xs, ys))), abs=1e-12)


def test_bootstrap_matches_naive_resampling():
    ann, exc, sub, uids = _random_case(7, n_scans=15)
    n_boot, seed = 40, 11
    res = evaluate_froc(ann, exc, sub, uids, n_bootstrap=n_boot, seed=seed)
    per_scan = _naive_entries(ann, exc, sub, uids)
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.125, 8, 10000)
    curves, cpms = [], []
    for _ in range(n_boot):
        pick = rng.integers(len(uids), size=len(uids))  # scans drawn with replacement
        entries = [e for i in pick for e in per_scan[uids[i]]]
        if not any(e[0] == 1 for e in entries):
            continue
        xs, ys = _naive_curve(entries, len(uids))
        curves.append(np.interp(grid, xs, ys))
        cpms.append(np.mean(np.interp(FP_RATES, xs, ys)))
    curves = np.sort(np.array(curves, dtype=np.float32), axis=0)
    n = len(curves)
    assert res.bootstrap_valid == n
    np.testing.assert_allclose(res.curve_lower, curves[int(math.floor(0.025 * n))], atol=1e-6)
    np.testing.assert_allclose(res.curve_upper, curves[int(math.floor(0.975 * n))], atol=1e-6)
    np.testing.assert_allclose(res.curve_mean, curves.mean(axis=0), atol=1e-6)
    cpms = np.sort(cpms)
    assert res.cpm_ci == pytest.approx((cpms[int(math.floor(0.025 * n))], cpms[int(math.floor(0.975 * n))]), abs=1e-9)


def test_bootstrap_curves_do_not_depend_on_the_summing_chunk(monkeypatch):
    from reviewer.luna16 import froc

    ann, exc, sub, uids = _random_case(9, n_scans=20)
    a = evaluate_froc(ann, exc, sub, uids, n_bootstrap=60, seed=2)
    monkeypatch.setattr(froc._WeightedCurves, "MIN_CHUNK", 4)  # curves built by repeated doubling from 4 entries
    monkeypatch.setattr(froc._WeightedCurves, "CHUNK_FACTOR", 0.0)
    b = evaluate_froc(ann, exc, sub, uids, n_bootstrap=60, seed=2)
    np.testing.assert_array_equal(a.curve_lower, b.curve_lower)
    np.testing.assert_array_equal(a.curve_mean, b.curve_mean)
    assert a.cpm_ci == b.cpm_ci


def test_bootstrap_ci_contains_estimate_and_is_deterministic():
    ann, exc, sub, uids = _random_case(5, n_scans=30)
    a = evaluate_froc(ann, exc, sub, uids, n_bootstrap=1000, seed=3)
    b = evaluate_froc(ann, exc, sub, uids, n_bootstrap=1000, seed=3)
    c = evaluate_froc(ann, exc, sub, uids, n_bootstrap=1000, seed=4)
    assert a.cpm_ci[0] <= a.cpm <= a.cpm_ci[1] and a.cpm_ci[0] < a.cpm_ci[1]
    for r in FP_RATES:
        lo, hi = a.sensitivities_ci[r]
        assert lo <= a.sensitivities[r] <= hi
    assert a.cpm_ci == b.cpm_ci and np.array_equal(a.curve_lower, b.curve_lower)
    assert a.cpm_ci != c.cpm_ci
    assert a.curve_fps.size == 10000 and a.curve_fps[0] == 0.125 and a.curve_fps[-1] == 8.0
    assert a.bootstrap_valid == 1000


def test_froc_curve_border_case_without_false_positives():
    # two detected nodules, one missed, no false positive: fps are all zero as in the official script
    fps, sens, _ = froc_curve([1, 1, 1], [0.9, 0.8, -1e9], [False, False, True], n_scans=2)
    assert np.all(fps == 0) and sens[-1] == pytest.approx(2 / 3)


def test_match_marks_lists_shape():
    ann, exc, sub, uids = _case_double_excluded_negative()
    m = match_marks(ann, exc, sub, uids)
    assert m.lists.labels.tolist() == [1, 1, 0, 1, 0, 0]
    assert m.lists.probs.tolist() == [0.9, 0.5, 0.7, -1e9, 0.8, 0.4]
    assert m.lists.excluded.tolist() == [False, False, False, True, False, False]
    assert m.lists.n_scans == 3


def test_plot_uses_agg_without_qt(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from reviewer.luna16.froc import evaluate_froc, plot_froc\n"
        "from reviewer.luna16.io import Annotation as A, SubmissionRow as R\n"
        "res = evaluate_froc({'s': [A(0, 0, 0, 10)]}, {}, [R('s', 0, 0, 0, .9), R('s', 50, 0, 0, .5)], ['s', 't'],"
        " n_bootstrap=20)\n"
        f"plot_froc(res, {str(tmp_path / 'f.png')!r})\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'pyqtgraph')]\n"
        "assert not bad, bad\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    env_path = str(__import__("pathlib").Path(__file__).resolve().parent.parent)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=env_path,
                       env={**__import__("os").environ, "PYTHONPATH": env_path})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
