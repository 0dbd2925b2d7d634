"""`reviewer fnaf eval`: attack each model on every slice of a dataset and report the paper's tables.

Per model: attack rate (share of slices whose worst IP-valid feature is a hit), mean and median attack loss,
IP acceptance (share of drawn candidates that pass information preservation), and clean SSIM/NMSE/PSNR of
the reconstruction from the file's k-space. Transfer: the worst feature found against model A scored on B.
Features live on the 320x320 reference image; the under-sampling mask is fastMRI's with the file's
validation seed (``tuple(map(ord, filename))``), on the image's 320 columns.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reviewer.fnaf.forward import score_features
from reviewer.fnaf.search import SearchSettings, search
from reviewer.jobs import JobToken
from reviewer.mri import metrics
from reviewer.mri.masks import validation_seed
from reviewer.mri.recon import make_mask, read_fastmri_kspace, reconstruct


@dataclass
class SliceAttack:
    file: str
    slice: int
    model: str
    loss: float
    hit: bool
    ip: float
    row: int
    col: int
    values: np.ndarray = field(repr=False, default=None)
    lost_fraction: float = float("nan")


@dataclass
class FnafReport:
    models: dict[str, dict] = field(default_factory=dict)
    transfer: dict[str, dict[str, float]] = field(default_factory=dict)
    attacks: list[SliceAttack] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"models": self.models, "transfer": self.transfer, "settings": self.settings}


def evaluate_fnaf(models: dict, files: list[Path], acceleration: int = 4, center_fraction: float = 0.08,
                  mask_kind: str = "random", attack: str = "rs", tries: int = 11, seed: int = 0,
                  slices: str = "all", settings: SearchSettings | None = None,
                  token: JobToken | None = None) -> FnafReport:
    s = settings or SearchSettings()
    s.tries = tries
    rng = np.random.default_rng(seed)
    report = FnafReport(settings={"acceleration": acceleration, "center_fraction": center_fraction,
                                  "mask": mask_kind, "attack": attack, "tries": tries, "seed": seed,
                                  "hit_threshold": s.hit_threshold, "ip_epsilon": s.ip_epsilon,
                                  "files": [str(Path(f).resolve()) for f in files]})
    per_model = {name: {"losses": [], "lost": [], "hits": 0, "n": 0, "drawn": 0, "ip_ok": 0, "gt": [], "rec": []}
                 for name in models}
    best_features: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    image_masks: dict = {}
    work = []
    for f in files:
        data = read_fastmri_kspace(f)
        if data.reference is None:
            continue
        idx = range(data.reference.shape[0])
        if slices == "middle":
            n = data.reference.shape[0]
            idx = range(n // 4, n - n // 4) if n > 3 else idx
        work.append((f, data, list(idx)))
    total = sum(len(i) for _, _, i in work) * len(models)
    done = 0
    for f, data, idx in work:
        kmask = make_mask(mask_kind, acceleration, center_fraction, data.kspace.shape[-1], seed=validation_seed(f.name))
        imask = make_mask(mask_kind, acceleration, center_fraction, data.reference.shape[-1],
                          seed=validation_seed(f.name))
        image_masks[f.name] = imask  # reused by the transfer table
        for name, model in models.items():
            rec = reconstruct(model, data.kspace, kmask).output
            per_model[name]["gt"].append(data.reference)
            per_model[name]["rec"].append(rec)
            for i in idx:
                if token:
                    token.progress(done, total, f"{f.name} slice {i} {name}")
                done += 1
                image = data.reference[i]
                stats: dict = {}
                found = search(model, image, imask.columns, attack, s, rng, top=1, stats=stats)
                pm = per_model[name]
                pm["drawn"] += stats.get("drawn", 0)
                pm["ip_ok"] += stats.get("ip_ok", 0)
                if not found:
                    continue
                c = found[0]
                pm["n"] += 1
                pm["hits"] += int(c.hit)
                pm["losses"].append(c.loss)
                pm["lost"].append(c.lost_fraction)
                report.attacks.append(SliceAttack(f.name, i, name, c.loss, c.hit, c.ip, c.feature.center[0],
                                                  c.feature.center[1], c.values, c.lost_fraction))
                best_features.setdefault((f.name, i), {})[name] = c.values
    for name, pm in per_model.items():
        vols = list(zip(pm["gt"], pm["rec"]))
        report.models[name] = {
            "attack_rate": pm["hits"] / pm["n"] if pm["n"] else 0.0,
            "mean_loss": float(np.mean(pm["losses"])) if pm["losses"] else 0.0,
            "median_loss": float(np.median(pm["losses"])) if pm["losses"] else 0.0,
            "ip_acceptance": pm["ip_ok"] / pm["drawn"] if pm["drawn"] else 0.0,
            "mean_lost_fraction": float(np.nanmean(pm["lost"])) if pm["lost"] else 0.0,
            # per volume, then averaged (fastMRI's evaluation)
            "ssim": float(np.mean([metrics.ssim(g, r) for g, r in vols])) if vols else 0.0,
            "nmse": float(np.mean([metrics.nmse(g, r) for g, r in vols])) if vols else 0.0,
            "psnr": float(np.mean([metrics.psnr(g, r) for g, r in vols])) if vols else 0.0,
            "slices": pm["n"],
        }
    # transfer: features found against `src` scored on `dst`
    refs = {(f.name, i): data.reference[i] for f, data, idx in work for i in idx}
    for src in models:
        report.transfer[src] = {}
        for dst, model in models.items():
            hits, n = 0, 0
            for (fname, i), feats in best_features.items():
                if src not in feats:
                    continue
                sc = score_features(model, refs[(fname, i)], feats[src][None], image_masks[fname].columns, 1,
                                    s.hit_threshold, s.ip_epsilon)[0]
                hits += int(sc.hit)
                n += 1
            report.transfer[src][dst] = hits / n if n else 0.0
    return report


def format_report(report: FnafReport) -> str:
    """The layout of the paper's tables 1 and 2."""
    st = report.settings
    acc = f"{st.get('acceleration', '?')}x"
    lines = [f"Table 1: clean reconstruction ({acc})", f"{'':<28}{'SSIM':>9}{'NMSE':>10}{'PSNR':>9}"]
    for name, m in report.models.items():
        lines.append(f"{name:<28}{m['ssim']:>9.4f}{m['nmse']:>10.5f}{m['psnr']:>9.2f}")
    atk = st.get("attack", "rs").upper()
    lines += ["", f"Table 2: FNAF attack ({acc}, {atk}, {st.get('tries')} tries per slice)",
              f"{'':<28}{'attack rate %':>14}{'mean loss':>11}{'median loss':>13}{'IP accept %':>13}"
              f"{'lost %':>9}"]
    for name, m in report.models.items():
        lines.append(f"{name:<28}{100 * m['attack_rate']:>14.2f}{m['mean_loss']:>11.6f}{m['median_loss']:>13.6f}"
                     f"{100 * m['ip_acceptance']:>13.2f}{100 * m['mean_lost_fraction']:>9.1f}")
    if len(report.transfer) > 1:
        names = list(report.transfer)
        lines += ["", "Transfer: attack rate % of features found on (row) scored on (column)",
                  f"{'':<28}" + "".join(f"{n[:14]:>16}" for n in names)]
        for src in names:
            lines.append(f"{src:<28}" + "".join(f"{100 * report.transfer[src][d]:>16.2f}" for d in names))
    return "\n".join(lines)


def write_outputs(report: FnafReport, out: Path, image_shape: tuple[int, int] = (320, 320)) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    p = out / "fnaf_attacks.csv"
    with p.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "slice", "model", "attack_loss", "hit", "ip_mse", "row", "col", "lost_fraction"])
        for a in report.attacks:
            w.writerow([a.file, a.slice, a.model, f"{a.loss:.6g}", int(a.hit), f"{a.ip:.6g}", a.row, a.col,
                        f"{a.lost_fraction:.4g}"])
    written.append(p)
    p = out / "fnaf_summary.csv"
    with p.open("w", newline="") as fh:
        w = csv.writer(fh)
        keys = ["attack_rate", "mean_loss", "median_loss", "ip_acceptance", "mean_lost_fraction", "ssim", "nmse",
                "psnr", "slices"]
        w.writerow(["model"] + keys)
        for name, m in report.models.items():
            w.writerow([name] + [m[k] for k in keys])
    written.append(p)
    (out / "fnaf_report.json").write_text(json.dumps(report.to_json(), indent=2))
    written.append(out / "fnaf_report.json")
    written.append(write_heatmap(report, out / "fnaf_heatmap.png", image_shape))
    written.append(write_features(report, out / "fnaf_features.npz", image_shape))
    return written


def write_features(report: FnafReport, path: Path, shape: tuple[int, int]) -> Path:
    """The worst feature of every attacked slice, sparse (rows, cols, values per attack), so a reader study can be
    built from them (``reviewer study create --from-fnaf-eval``)."""
    meta, offsets, rows, cols, values = [], [0], [], [], []
    for a in report.attacks:
        if a.values is None:
            continue
        r, c = np.nonzero(a.values)
        meta.append({"index": len(meta), "file": a.file, "slice": int(a.slice), "model": a.model,
                     "loss": float(a.loss), "hit": bool(a.hit)})
        rows.append(r.astype(np.int16))
        cols.append(c.astype(np.int16))
        values.append(a.values[r, c].astype(np.float32))
        offsets.append(offsets[-1] + len(r))
    cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt))
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), offsets=np.array(offsets, np.int64),
                        rows=cat(rows, np.int16), cols=cat(cols, np.int16), values=cat(values, np.float32),
                        shape=np.array(shape, np.int64))
    return path


def write_heatmap(report: FnafReport, path: Path, shape: tuple[int, int]) -> Path:
    """Where successful features lie: one panel per model, smoothed hit density in a hot colour map."""
    from PIL import Image, ImageDraw
    from scipy import ndimage

    names = list(report.models)
    panels = []
    for name in names:
        dens = np.zeros(shape, np.float32)
        for a in report.attacks:
            if a.model == name and a.hit and 0 <= a.row < shape[0] and 0 <= a.col < shape[1]:
                dens[a.row, a.col] += 1
        dens = ndimage.gaussian_filter(dens, 6)
        dens = dens / dens.max() if dens.max() > 0 else dens
        r = np.clip(3 * dens, 0, 1)
        g = np.clip(3 * dens - 1, 0, 1)
        b = np.clip(3 * dens - 2, 0, 1)
        rgb = (np.stack([r, g, b], -1) * 255).astype(np.uint8)
        img = Image.fromarray(rgb).convert("RGB")
        canvas = Image.new("RGB", (shape[1], shape[0] + 20), "black")
        canvas.paste(img, (0, 20))
        d = ImageDraw.Draw(canvas)
        hits = sum(a.hit for a in report.attacks if a.model == name)
        d.text((4, 4), f"{name}: {hits} hits", fill="white")
        panels.append(canvas)
    w = sum(p.width for p in panels) + 4 * (len(panels) - 1)
    out = Image.new("RGB", (max(w, 1), shape[0] + 20), "black")
    x = 0
    for p in panels:
        out.paste(p, (x, 0))
        x += p.width + 4
    out.save(path)
    return path
