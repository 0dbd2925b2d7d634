"""`reviewer study analyze`: per condition and reader FROC/AFROC/wAFROC/ROC statistics, bootstrap CIs, agreement,
the paired comparison of two conditions, and PNG plots.

Bootstrap: each replicate draws readers with replacement and, independently, normal and abnormal cases with
replacement (stratified), the same draw for every condition (so the comparison is paired); a condition's FOM is
the mean over the drawn readers. CIs are percentile intervals; the comparison's p-value is the two-sided bootstrap
p = 2 min(P*(diff <= 0), P*(diff >= 0)) (floored at 1/B). Inter-reader agreement is Kendall's W (tie-corrected)
on the case ratings (the ROC ratings: case rating, or highest mark rating for FROC) of the cases every reader read.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reviewer.jobs import JobToken
from reviewer.studies import scoring as SC
from reviewer.studies.definition import StudyDefinition

FOMS = ("wafroc", "afroc", "roc_auc")


@dataclass
class _Cell:
    """One reader x condition: scored cases (by case id) and ROC ratings."""

    scored: dict[str, SC.ScoredCase]
    roc: dict[str, float]
    active_s: list[float]


def _collect(definition: StudyDefinition, results) -> dict[tuple[str, str], _Cell]:
    cells: dict[tuple[str, str], _Cell] = {}
    radius = definition.acceptance_radius_mm
    for r in results:
        case = definition.case(r.case_id)
        lesions = [les.center_lps for les in case.truth.lesions]
        marks = [(tuple(m["world_lps"]), float(m["rating"])) for m in r.marks if m.get("rating") is not None]
        sc = SC.score_case(marks, lesions, radius)
        if definition.uses_case_rating:
            roc = SC.NEG_INF if r.case_rating is None else float(r.case_rating)
        else:
            roc = sc.highest
        cell = cells.setdefault((r.reader_id, r.condition), _Cell({}, {}, []))
        cell.scored[r.case_id] = sc
        cell.roc[r.case_id] = roc
        cell.active_s.append(r.active_s)
    return cells


def _kernels(definition: StudyDefinition, cell: _Cell, normals: list[str], abnormals: list[str]):
    """Kernels over ALL design cases (rows normal, columns abnormal) plus masks of the cases this cell read."""
    m0 = np.array([c in cell.scored for c in normals], float)
    m1 = np.array([c in cell.scored for c in abnormals], float)
    empty = SC.ScoredCase([], [])
    fp = [cell.scored.get(c, empty).highest_nl for c in normals]
    ll, w = [], []
    for c in abnormals:
        truth = definition.case(c).truth
        sc = cell.scored.get(c)
        ll.append(sc.ll if sc is not None else [SC.NEG_INF] * len(truth.lesions))
        w.append(truth.weights())
    k_w = SC.lesion_kernel(fp, ll, w)
    k_a = SC.lesion_kernel(fp, ll)
    k_r = SC.roc_kernel([cell.roc.get(c, SC.NEG_INF) for c in normals], [cell.roc.get(c, SC.NEG_INF) for c in abnormals])
    n_les = np.array([len(x) for x in ll], float)
    return {"wafroc": (k_w, None), "afroc": (k_a, n_les), "roc_auc": (k_r, None)}, m0, m1


def analyze_study(definition: StudyDefinition, results, n_bootstrap: int = 2000, seed: int = 0,
                  include_simulated: bool = True, token: JobToken | None = None) -> dict[str, Any]:
    """All statistics of a study as a JSON-ready dict (see the README section "Reader studies")."""
    results = [r for r in results if include_simulated or not r.simulated]
    cells = _collect(definition, results)
    readers = sorted({r for r, _ in cells}, key=lambda x: [r.reader_id for r in results].index(x))
    conditions = [c for c in definition.conditions if any(k[1] == c for k in cells)]
    normals = [c.id for c in definition.cases if c.truth.normal]
    abnormals = [c.id for c in definition.cases if not c.truth.normal]
    froc = definition.uses_marks
    out: dict[str, Any] = {"study": definition.name, "paradigm": definition.paradigm,
                           "acceptance_radius_mm": definition.acceptance_radius_mm,
                           "n_normal_cases": len(normals), "n_abnormal_cases": len(abnormals),
                           "n_lesions": sum(len(definition.case(c).truth.lesions) for c in abnormals),
                           "readers": readers, "conditions": conditions, "n_bootstrap": n_bootstrap, "seed": seed,
                           "roc_rating": "case rating" if definition.uses_case_rating else "highest mark rating",
                           "agreement_statistic": "Kendall's W (tie-corrected) on case ratings",
                           "per_reader": {}, "per_condition": {}, "agreement": {}, "comparison": None, "notes": []}
    if not normals:
        out["notes"].append("no normal cases: AFROC/wAFROC and ROC AUC are undefined (NaN)")
    if not abnormals:
        out["notes"].append("no abnormal cases: lesion-based statistics and ROC AUC are undefined (NaN)")
    kern: dict[tuple[str, str], tuple] = {}
    for (rd, cond), cell in cells.items():
        ks, m0, m1 = _kernels(definition, cell, normals, abnormals)
        kern[(rd, cond)] = (ks, m0, m1)
        n_read = len(cell.scored)
        n_les = sum(len(sc.ll) for sc in cell.scored.values())
        n_ll = sum(r != SC.NEG_INF for sc in cell.scored.values() for r in sc.ll)
        n_nl = sum(len(sc.nl) for sc in cell.scored.values())
        row = {"cases_read": n_read, "lesions": n_les, "lesion_localisations": n_ll, "non_lesion_marks": n_nl,
               "llf": n_ll / n_les if n_les else float("nan"), "nl_per_case": n_nl / n_read if n_read else float("nan"),
               "mean_active_s": float(np.mean(cell.active_s)) if cell.active_s else float("nan")}
        for f in FOMS:
            k, cn = ks[f]
            row[f] = SC.kernel_fom(k, m0, m1, cn)
        if not froc:
            for key in ("wafroc", "afroc", "llf", "nl_per_case", "lesion_localisations", "non_lesion_marks"):
                row[key] = None
        out["per_reader"].setdefault(cond, {})[rd] = row
    foms = [f for f in FOMS if froc or f == "roc_auc"]
    # -- bootstrap over readers and cases (paired across conditions), vectorised over replicates -----------------
    rng = np.random.default_rng(seed)
    n0, n1, nr = len(normals), len(abnormals), len(readers)
    if token is not None:
        token.progress(0, 1, "bootstrap")
    c0 = rng.multinomial(n0, np.full(n0, 1 / n0), size=n_bootstrap).astype(float) if n0 else np.zeros((n_bootstrap, 0))
    c1 = rng.multinomial(n1, np.full(n1, 1 / n1), size=n_bootstrap).astype(float) if n1 else np.zeros((n_bootstrap, 0))
    rc = rng.multinomial(nr, np.full(nr, 1 / nr), size=n_bootstrap).astype(float) if nr else np.zeros((n_bootstrap, 0))
    boot: dict[tuple[str, str], np.ndarray] = {}
    boot_reader: dict[tuple[str, str, str], np.ndarray] = {}
    for cond in conditions:
        for f in foms:
            vals = np.full((nr, n_bootstrap), np.nan)
            for ri, rd in enumerate(readers):
                if (rd, cond) not in kern:
                    continue
                ks, m0, m1 = kern[(rd, cond)]
                vals[ri] = _boot_fom(ks[f][0], c0 * m0, c1 * m1, ks[f][1])
                boot_reader[(cond, rd, f)] = vals[ri]
            w = rc * np.isfinite(vals.T)  # drawn readers with a defined FOM
            tot = w.sum(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                boot[(cond, f)] = np.where(tot > 0, (w * np.nan_to_num(vals.T)).sum(1) / tot, np.nan)
    for cond in conditions:
        row: dict[str, Any] = {"readers": [rd for rd in readers if (rd, cond) in cells]}
        for f in foms:
            vals = [out["per_reader"][cond][rd][f] for rd in row["readers"]]
            row[f] = float(np.nanmean(vals)) if vals and not all(math.isnan(v) for v in vals) else float("nan")
            row[f + "_ci95"] = _ci(boot[(cond, f)])
            for rd in row["readers"]:
                out["per_reader"][cond][rd][f + "_ci95"] = _ci(boot_reader.get((cond, rd, f), np.array([])))
        if froc:
            pr = out["per_reader"][cond]
            row["llf"] = float(np.nanmean([pr[rd]["llf"] for rd in row["readers"]]))
            row["nl_per_case"] = float(np.nanmean([pr[rd]["nl_per_case"] for rd in row["readers"]]))
        out["per_condition"][cond] = row
    # -- agreement --------------------------------------------------------------------------------------------------
    for cond in conditions:
        rds = [rd for rd in readers if (rd, cond) in cells]
        common = [c.id for c in definition.cases if all(c.id in cells[(rd, cond)].roc for rd in rds)]
        if len(rds) >= 2 and len(common) >= 2:
            mat = np.array([[cells[(rd, cond)].roc[c] for c in common] for rd in rds])
            out["agreement"][cond] = {"kendalls_w": SC.kendalls_w(mat), "readers": len(rds), "cases": len(common)}
        else:
            out["agreement"][cond] = {"kendalls_w": float("nan"), "readers": len(rds), "cases": len(common)}
    # -- paired comparison -------------------------------------------------------------------------------------------
    pair = definition.compared_conditions()
    if pair and pair[0] in conditions and pair[1] in conditions:
        a, b_ = pair
        comp: dict[str, Any] = {"a": a, "b": b_, "difference": "b - a"}
        for f in foms:
            d = boot[(b_, f)] - boot[(a, f)]
            d = d[np.isfinite(d)]
            est = out["per_condition"][b_][f] - out["per_condition"][a][f]
            if d.size:
                p = 2 * min(float((d <= 0).mean()), float((d >= 0).mean()))
                p = min(1.0, max(p, 1.0 / d.size))
            else:
                p = float("nan")
            comp[f] = {"a": out["per_condition"][a][f], "b": out["per_condition"][b_][f], "difference": est,
                       "ci95": _ci(d), "p_value": p}
        out["comparison"] = comp
    if token is not None:
        token.progress(n_bootstrap, n_bootstrap, "bootstrap")
    out["_cells"] = cells  # for plotting; removed by to_json
    return out


def _boot_fom(kernel: np.ndarray, c0: np.ndarray, c1: np.ndarray, col_norm: np.ndarray | None) -> np.ndarray:
    """:func:`scoring.kernel_fom` for a batch of case weights (B, n0) and (B, n1)."""
    if kernel.size == 0:
        return np.full(len(c0), np.nan)
    num = np.einsum("bi,ij,bj->b", c0, kernel, c1)
    cn = np.ones(kernel.shape[1]) if col_norm is None else col_norm
    den = c0.sum(1) * (c1 * cn).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _curve(kind, all_cases, normal, abnormal, weights, roc_n, roc_a):
    if kind == "froc":
        return SC.froc_curve(all_cases)
    if kind == "wafroc":
        return SC.afroc_curve(normal, abnormal, weighted=True, weights=weights)
    return SC.roc_curve(roc_n, roc_a)


def _ci(values: np.ndarray) -> list[float]:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return [float("nan"), float("nan")]
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]


def to_json(analysis: dict[str, Any]) -> dict[str, Any]:
    """The analysis without internal objects, NaN written as null."""
    def clean(x):
        if isinstance(x, float):
            return None if not math.isfinite(x) else x
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if not str(k).startswith("_")}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x
    return clean(analysis)


def write_json(analysis: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(to_json(analysis), indent=2) + "\n")
    return p


def _fmt(v, ci=None) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "   n/a"
    s = f"{v:6.3f}"
    if ci and all(c is not None and math.isfinite(c) for c in ci):
        s += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return s


def format_analysis(a: dict[str, Any]) -> str:
    froc = a["paradigm"] in ("froc", "both")
    lines = [f"Study {a['study']!r}: {a['n_normal_cases']} normal + {a['n_abnormal_cases']} abnormal cases, "
             f"{a['n_lesions']} lesions, {len(a['readers'])} readers, paradigm {a['paradigm']}, "
             f"acceptance radius {a['acceptance_radius_mm']:g} mm, bootstrap {a['n_bootstrap']}"]
    foms = ["wafroc", "afroc", "roc_auc"] if froc else ["roc_auc"]
    names = {"wafroc": "wAFROC", "afroc": "AFROC", "roc_auc": f"ROC AUC ({a['roc_rating']})"}
    short = {"wafroc": "wAFROC", "afroc": "AFROC", "roc_auc": "ROC AUC"}
    for cond, row in a["per_condition"].items():
        lines.append("")
        lines.append(f"Condition {cond!r} (reader average, 95% CI over readers and cases)")
        if froc:
            lines.append(f"  LLF {_fmt(row['llf'])}   NL marks per case {_fmt(row['nl_per_case'])}")
        for f in foms:
            lines.append(f"  {names[f]:<34}{_fmt(row[f], row.get(f + '_ci95'))}")
        hdr = f"  {'reader':<12}" + ("  LLF    NL/case" if froc else "") + "".join(f"{short[f]:>10}" for f in foms) \
            + "  active s"
        lines.append(hdr)
        for rd, r in a["per_reader"][cond].items():
            s = f"  {rd:<12}"
            if froc:
                s += f"{_fmt(r['llf'])}{_fmt(r['nl_per_case'])}"
            s += "".join(f"{_fmt(r[f]):>10}" for f in foms) + f"{r['mean_active_s']:9.1f}"
            lines.append(s)
    if a["agreement"]:
        lines.append("")
        lines.append(f"Inter-reader agreement ({a['agreement_statistic']})")
        for cond, g in a["agreement"].items():
            lines.append(f"  {cond:<30} W = {_fmt(g['kendalls_w'])} ({g['readers']} readers, {g['cases']} cases)")
    c = a.get("comparison")
    if c:
        lines.append("")
        lines.append(f"Paired comparison: {c['b']!r} minus {c['a']!r}")
        for f in foms:
            r = c[f]
            p = r["p_value"]
            lines.append(f"  {names[f]:<34}{_fmt(r['a'])} -> {_fmt(r['b'])}   difference {_fmt(r['difference'], r['ci95'])}"
                         f"   p = {p:.4f}" if p is not None and math.isfinite(p) else f"  {names[f]:<34} n/a")
    for n in a["notes"]:
        lines.append(f"note: {n}")
    return "\n".join(lines)


# -- plots -----------------------------------------------------------------------------------------------------------
def write_plots(definition: StudyDefinition, analysis: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """froc.png, wafroc.png, roc.png and fom.png: per condition the pooled curve (thick) and each reader (thin)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cells: dict[tuple[str, str], _Cell] = analysis["_cells"]
    normals = [c.id for c in definition.cases if c.truth.normal]
    abnormals = [c.id for c in definition.cases if not c.truth.normal]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    written = []
    froc = definition.uses_marks

    def per_cond(cond):
        return [(rd, cells[(rd, cond)]) for rd in analysis["readers"] if (rd, cond) in cells]

    kinds = (["froc", "wafroc"] if froc else []) + ["roc"]
    fig_note = "thin: readers; thick: threshold-averaged over readers"
    for kind in kinds:
        fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=110)
        for ci, cond in enumerate(analysis["conditions"]):
            col = colours[ci % len(colours)]
            pooled: dict[str, list] = {"all": [], "n": [], "a": [], "w": [], "rn": [], "ra": []}
            for rd, cell in per_cond(cond):
                nrm = [cell.scored[c] for c in normals if c in cell.scored]
                abn = [cell.scored[c] for c in abnormals if c in cell.scored]
                wts = [definition.case(c).truth.weights() for c in abnormals if c in cell.scored]
                rn = [cell.roc[c] for c in normals if c in cell.roc]
                ra = [cell.roc[c] for c in abnormals if c in cell.roc]
                for key, v in (("all", list(cell.scored.values())), ("n", nrm), ("a", abn), ("w", wts), ("rn", rn),
                               ("ra", ra)):
                    pooled[key].extend(v)
                x, y = _curve(kind, list(cell.scored.values()), nrm, abn, wts, rn, ra)
                ax.plot(x, y, "-", color=col, lw=0.8, alpha=0.4, drawstyle="default")
            if pooled["all"]:
                # threshold-averaged over readers: at each rating threshold, the mean of the readers' fractions
                x, y = _curve(kind, pooled["all"], pooled["n"], pooled["a"], pooled["w"], pooled["rn"], pooled["ra"])
                fom = {"froc": "llf", "wafroc": "wafroc", "roc": "roc_auc"}[kind]
                v = analysis["per_condition"][cond].get(fom)
                label = cond if v is None or not math.isfinite(v) else f"{cond} ({fom} {v:.3f})"
                ax.plot(x, y, "-", color=col, lw=2.2, label=label)
        ax.set_xlabel({"froc": "non-lesion marks per case (NLF)", "wafroc": "FPF (normal cases)",
                       "roc": "false positive fraction"}[kind])
        ax.set_ylabel({"froc": "lesion localisation fraction (LLF)", "wafroc": "weighted LLF",
                       "roc": "true positive fraction"}[kind])
        ax.set_title({"froc": "FROC", "wafroc": "wAFROC", "roc": f"ROC ({analysis['roc_rating']})"}[kind]
                     + f"\n{fig_note}", fontsize=10)
        ax.set_ylim(0, 1.02)
        if kind != "froc":
            ax.set_xlim(0, 1)
            ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        p = out / f"{kind}.png"
        fig.savefig(p)
        plt.close(fig)
        written.append(p)
    # FOMs with CIs and readers
    foms = ["wafroc", "roc_auc"] if froc else ["roc_auc"]
    fig, axes = plt.subplots(1, len(foms), figsize=(4.5 * len(foms), 4), dpi=110, squeeze=False)
    for ax, f in zip(axes[0], foms):
        for ci, cond in enumerate(analysis["conditions"]):
            row = analysis["per_condition"][cond]
            v, (lo, hi) = row[f], row[f + "_ci95"]
            if v is not None and math.isfinite(v):
                ax.errorbar([ci], [v], yerr=[[v - lo], [hi - v]] if math.isfinite(lo) else None, fmt="o",
                            color=colours[ci % len(colours)], capsize=5, ms=8)
            rv = [analysis["per_reader"][cond][rd][f] for rd in row["readers"]]
            ax.plot(np.full(len(rv), ci) + np.linspace(-0.15, 0.15, len(rv)), rv, ".", color="grey")
        ax.set_xticks(range(len(analysis["conditions"])))
        ax.set_xticklabels(analysis["conditions"], rotation=15, fontsize=7)
        ax.set_ylim(0, 1.02)
        ax.set_title({"wafroc": "wAFROC FOM", "roc_auc": "ROC AUC"}[f] + " (95% CI; dots: readers)", fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    p = out / "fom.png"
    fig.savefig(p)
    plt.close(fig)
    written.append(p)
    return written
