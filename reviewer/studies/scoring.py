"""FROC scoring and figures of merit (Chakraborty's definitions), as plain functions on numbers.

Scoring a case's marks against its lesions: marks are taken in decreasing rating; each claims the nearest
unclaimed lesion whose centre lies within the acceptance radius (a lesion localisation, LL); a mark that claims
none is a non-lesion localisation (NL), including a second mark on an already-claimed lesion. Unmarked lesions
and normal cases without marks are rated -inf.

Figures of merit (psi(x, y) = 1 if y > x, 0.5 if y == x, 0 else; -inf == -inf is a tie):

* AFROC FOM = mean over (normal case i, lesion l) of psi(FP_i, LL_l), FP_i = highest NL rating on normal case i;
* wAFROC FOM = (1/K1)(1/K2) sum_i sum_j sum_l W_jl psi(FP_i, LL_jl), weights summing to 1 per abnormal case j
  (equal by default): the weighted trapezoidal area under the empirical wAFROC curve;
* ROC AUC = Wilcoxon/Mann-Whitney of the case ratings of abnormal vs normal cases (ties 0.5); for FROC data the
  case rating is the highest rating of any mark on the case (-inf without marks, RJafroc's inferred ROC).

Each FOM is computed as ``c0^T Psi c1 / norm`` from a kernel matrix Psi (normal x abnormal cases), so bootstrap
resamples only reweight rows and columns (``c0``, ``c1`` = how often each case was drawn).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NEG_INF = float("-inf")


@dataclass
class ScoredCase:
    """The scored marks of one reader on one case under one condition."""

    ll: list[float]  # per true lesion (truth order): rating of its LL, -inf when unmarked
    nl: list[float]  # ratings of the non-lesion localisations
    mark_lesion: list[int | None] = field(default_factory=list)  # per mark (input order): lesion index or None

    @property
    def highest(self) -> float:
        """Inferred ROC rating: the highest rating of any mark (-inf without marks)."""
        return max([r for r in self.ll if r != NEG_INF] + self.nl, default=NEG_INF)

    @property
    def highest_nl(self) -> float:
        return max(self.nl, default=NEG_INF)


def score_case(marks: list[tuple[tuple[float, float, float], float]], lesions: list[tuple[float, float, float]],
               radius_mm: float) -> ScoredCase:
    """Score marks ``[(world_lps, rating), ...]`` against lesion centres (LPS mm) with an acceptance radius."""
    n_les = len(lesions)
    ll = [NEG_INF] * n_les
    nl: list[float] = []
    which: list[int | None] = [None] * len(marks)
    centres = np.asarray(lesions, float).reshape(-1, 3)
    order = sorted(range(len(marks)), key=lambda m: -marks[m][1])  # stable: ties keep input order
    for m in order:
        pos, rating = marks[m]
        best, best_d = None, np.inf
        if n_les:
            d = np.linalg.norm(centres - np.asarray(pos, float)[None], axis=1)
            for li in np.argsort(d, kind="stable"):
                if d[li] > radius_mm:
                    break
                if ll[li] == NEG_INF:
                    best, best_d = int(li), d[li]
                    break
        if best is None:
            nl.append(float(rating))
        else:
            ll[best] = float(rating)
            which[m] = best
    return ScoredCase(ll, nl, which)


def psi(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The Wilcoxon kernel psi(x, y): 1 if y > x, 0.5 if equal (also -inf vs -inf), 0 otherwise."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    return (y > x).astype(float) + 0.5 * (y == x)


def roc_kernel(normal_ratings, abnormal_ratings) -> np.ndarray:
    """Psi[i, j] = psi(normal_i, abnormal_j)."""
    return psi(np.asarray(normal_ratings, float)[:, None], np.asarray(abnormal_ratings, float)[None, :])


def lesion_kernel(fp_normal, ll: list[list[float]], weights: list[list[float]] | None = None) -> np.ndarray:
    """Psi[i, j] = sum_l W_jl psi(FP_i, LL_jl) (W = 1 per lesion when ``weights`` is None: the AFROC numerator)."""
    fp = np.asarray(fp_normal, float)
    out = np.zeros((len(fp), len(ll)))
    for j, lls in enumerate(ll):
        w = np.ones(len(lls)) if weights is None else np.asarray(weights[j], float)
        out[:, j] = (psi(fp[:, None], np.asarray(lls, float)[None, :]) * w[None, :]).sum(1)
    return out


def kernel_fom(kernel: np.ndarray, c0: np.ndarray | None = None, c1: np.ndarray | None = None,
               col_norm: np.ndarray | None = None) -> float:
    """``c0^T K c1 / (sum c0 * sum(c1 * col_norm))``: a FOM from its kernel, with case weights (bootstrap counts)."""
    n0, n1 = kernel.shape
    if n0 == 0 or n1 == 0:
        return float("nan")
    c0 = np.ones(n0) if c0 is None else np.asarray(c0, float)
    c1 = np.ones(n1) if c1 is None else np.asarray(c1, float)
    cn = np.ones(n1) if col_norm is None else np.asarray(col_norm, float)
    den = c0.sum() * (c1 * cn).sum()
    return float(c0 @ kernel @ c1 / den) if den > 0 else float("nan")


def wilcoxon_auc(normal_ratings, abnormal_ratings) -> float:
    return kernel_fom(roc_kernel(normal_ratings, abnormal_ratings))


def afroc_fom(fp_normal, ll: list[list[float]]) -> float:
    return kernel_fom(lesion_kernel(fp_normal, ll), col_norm=np.array([len(x) for x in ll], float))


def wafroc_fom(fp_normal, ll: list[list[float]], weights: list[list[float]] | None = None) -> float:
    if weights is None:
        weights = [[1.0 / len(x)] * len(x) for x in ll]
    return kernel_fom(lesion_kernel(fp_normal, ll, weights))


# -- curves ----------------------------------------------------------------------------------------------------------
def froc_curve(cases: list[ScoredCase]) -> tuple[np.ndarray, np.ndarray]:
    """Empirical FROC operating points (NLF, LLF), starting at (0, 0), one per distinct rating threshold."""
    n_cases = len(cases)
    n_les = sum(len(c.ll) for c in cases)
    ll = np.array([r for c in cases for r in c.ll if r != NEG_INF])
    nl = np.array([r for c in cases for r in c.nl])
    th = np.unique(np.concatenate([ll, nl]))[::-1]
    nlf = [0.0] + [float((nl >= t).sum()) / max(n_cases, 1) for t in th]
    llf = [0.0] + [float((ll >= t).sum()) / max(n_les, 1) for t in th]
    return np.array(nlf), np.array(llf)


def afroc_curve(normal: list[ScoredCase], abnormal: list[ScoredCase], weighted: bool = False,
                weights: list[list[float]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Empirical (w)AFROC points (FPF, (w)LLF) from (0, 0) to (1, 1) (the straight-line extension included).

    Its trapezoidal area equals :func:`afroc_fom` / :func:`wafroc_fom` on the same data.
    """
    fp = np.array([c.highest_nl for c in normal])
    if weighted:
        w = weights or [[1.0 / len(c.ll)] * len(c.ll) for c in abnormal]
        lls = [(r, wt / max(len(abnormal), 1)) for c, ws in zip(abnormal, w) for r, wt in zip(c.ll, ws)]
    else:
        n = sum(len(c.ll) for c in abnormal)
        lls = [(r, 1.0 / max(n, 1)) for c in abnormal for r in c.ll]
    llr = np.array([r for r, _ in lls])
    llw = np.array([w for _, w in lls])
    finite = np.concatenate([fp[np.isfinite(fp)], llr[np.isfinite(llr)]])
    th = np.unique(finite)[::-1]
    fpf = [0.0] + [float((fp >= t).mean()) if len(fp) else 0.0 for t in th] + [1.0]
    tpf = [0.0] + [float(llw[llr >= t].sum()) for t in th] + [1.0]
    return np.array(fpf), np.array(tpf)


def roc_curve(normal_ratings, abnormal_ratings) -> tuple[np.ndarray, np.ndarray]:
    """Empirical ROC points (FPF, TPF) from (0, 0) to (1, 1); -inf ratings only reach (1, 1)."""
    n = np.asarray(normal_ratings, float)
    a = np.asarray(abnormal_ratings, float)
    th = np.unique(np.concatenate([n[np.isfinite(n)], a[np.isfinite(a)]]))[::-1]
    fpf = [0.0] + [float((n >= t).mean()) if len(n) else 0.0 for t in th] + [1.0]
    tpf = [0.0] + [float((a >= t).mean()) if len(a) else 0.0 for t in th] + [1.0]
    return np.array(fpf), np.array(tpf)


def trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


# -- agreement -------------------------------------------------------------------------------------------------------
def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (scipy's rankdata 'average', without importing scipy)."""
    u, inv, counts = np.unique(np.asarray(x, float), return_inverse=True, return_counts=True)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return (start + (counts + 1) / 2.0)[inv]


def kendalls_w(ratings: np.ndarray) -> float:
    """Kendall's coefficient of concordance W with the tie correction; ``ratings`` is (readers m, cases n).

    -inf ratings (unmarked cases) rank lowest and tie with each other.
    """
    r = np.asarray(ratings, float)
    m, n = r.shape
    if m < 2 or n < 2:
        return float("nan")
    finite_min = np.nanmin(np.where(np.isfinite(r), r, np.inf)) if np.isfinite(r).any() else 0.0
    r = np.where(np.isneginf(r), finite_min - 1.0, r)
    ranks = np.vstack([average_ranks(row) for row in r])
    rs = ranks.sum(0)
    s = float(((rs - rs.mean()) ** 2).sum())
    t = 0.0
    for row in r:
        _, counts = np.unique(row, return_counts=True)
        t += float((counts ** 3 - counts).sum())
    den = m ** 2 * (n ** 3 - n) - m * t
    return float(12 * s / den) if den > 0 else float("nan")
