"""Building study folders: ``study.json`` + ``images/`` with opaque file names, truth written automatically.

Sources: explicit inputs (a CSV manifest), the demo data (MRI slices with/without FNAFs reconstructed by the demo
standard and robust U-Nets; demo chest CTs with known nodules), the output folder of ``reviewer fnaf eval`` and
synthetic nodule insertions (a JSON list of ``{"volume": PATH, "findings": [Finding JSON, ...]}``).

Every volume is re-written as NIfTI (``images/<random hex>.nii.gz``, no sidecar, no description) so neither file
names nor headers reveal the condition; 2D images (PNG/TIFF) are copied under an opaque name.
"""

from __future__ import annotations

import csv
import json
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reviewer.errors import InputError
from reviewer.geometry import Geometry, Volume
from reviewer.jobs import JobToken
from reviewer.studies.definition import (IMAGE_SUFFIXES_2D, CaseDef, ImageRef, Lesion, ReaderDef, StudyDefinition,
                                         Truth)

STANDARD = "standard U-Net 4x"
ROBUST = "robust U-Net 4x"


@dataclass
class StudySettings:
    """Everything of a definition except cases and conditions (CLI flags map onto these)."""

    name: str = "reader study"
    readers: list[str] = field(default_factory=list)
    paradigm: str = "froc"
    rating_scale: str = "1-5"
    acceptance_radius_mm: float = 5.0
    seed: int = 0
    allow_back: bool = False
    time_limit_s: float | None = None
    instructions: str = ""
    description: str = ""
    window: tuple[float, float] | None = None


class StudyBuilder:
    """Collects cases, writes their images under opaque names and finally ``study.json``."""

    def __init__(self, out_dir: str | Path, conditions: list[str], force: bool = False):
        self.out = Path(out_dir)
        if (self.out / "study.json").exists() and not force:
            raise InputError(self.out, "already holds a study (study.json); choose another folder or --force")
        if force and (self.out / "images").exists():
            shutil.rmtree(self.out / "images")
        for stale in ("study.db", "study.db-wal", "study.db-shm"):
            if force and (self.out / stale).exists():
                (self.out / stale).unlink()
        (self.out / "images").mkdir(parents=True, exist_ok=True)
        self.conditions = list(conditions)
        self.cases: list[CaseDef] = []
        self.extra: dict[str, Any] = {}

    def _name(self, suffix: str) -> Path:
        while True:
            p = self.out / "images" / (secrets.token_hex(6) + suffix)
            if not p.exists():
                return p

    def add_image(self, image: Volume | str | Path, spacing_mm: tuple[float, float] | None = None) -> ImageRef:
        """Store one image (a Volume, or a file/folder to load and re-write) under an opaque name."""
        if isinstance(image, Volume):
            from reviewer.io.writer import write_volume

            vol = Volume(image.array, image.geometry, modality=image.modality, unit=image.unit)
            p = write_volume(vol, self._name(".nii.gz"), sidecar=False)
            return ImageRef(str(p.relative_to(self.out)))
        src = Path(image)
        if src.suffix.lower() in IMAGE_SUFFIXES_2D:
            if not src.is_file():
                raise InputError(src, "no such image file")
            dst = self._name(src.suffix.lower())
            shutil.copyfile(src, dst)
            return ImageRef(str(dst.relative_to(self.out)), spacing_mm)
        from reviewer.io.loader import load_volume

        return self.add_image(load_volume(src))

    def add_case(self, case_id: str, lesions: list[Lesion], images: dict[str, Volume | str | Path | ImageRef]) -> CaseDef:
        if any(c.id == case_id for c in self.cases):
            raise InputError(None, f"duplicate case id {case_id!r}")
        refs = {}
        for cond, img in images.items():
            if cond not in self.conditions:
                raise InputError(None, f"case {case_id!r}: unknown condition {cond!r}")
            refs[cond] = img if isinstance(img, ImageRef) else self.add_image(img)
        case = CaseDef(case_id, Truth(list(lesions)), refs)
        self.cases.append(case)
        return case

    def write(self, settings: StudySettings, comparison: tuple[str, str] | None = None) -> StudyDefinition:
        readers = [ReaderDef(r) for r in settings.readers]
        d = StudyDefinition(name=settings.name, conditions=self.conditions, cases=self.cases, readers=readers,
                            paradigm=settings.paradigm, rating_scale=settings.rating_scale,
                            acceptance_radius_mm=settings.acceptance_radius_mm, time_limit_s=settings.time_limit_s,
                            instructions=settings.instructions or default_instructions(settings),
                            description=settings.description, comparison=comparison, extra=self.extra)
        d.randomisation.seed = settings.seed
        d.navigation.allow_back = settings.allow_back
        d.display.window = settings.window
        d.write(self.out / "study.json")
        return d


def default_instructions(s: StudySettings) -> str:
    lo, hi = {"1-5": (1, 5), "0-100": (0, 100)}[s.rating_scale]
    parts = []
    if s.paradigm in ("froc", "both"):
        parts.append(f"Click each suspicious finding to mark it and rate your confidence that it is real "
                     f"({lo} = low, {hi} = high). Marks can be moved and deleted. Submit with no marks when you see "
                     "no lesion.")
    if s.paradigm in ("roc", "both"):
        parts.append(f"Rate each case from {lo} (definitely normal) to {hi} (definitely abnormal).")
    if s.time_limit_s:
        parts.append(f"Each case has a limit of {s.time_limit_s:g} s of reading time.")
    return " ".join(parts)


# -- explicit inputs: a CSV manifest -----------------------------------------------------------------------------------
MANIFEST_COLUMNS = ("case_id", "condition", "image", "x", "y", "z", "diameter_mm")


def create_from_manifest(manifest: str | Path, out_dir: str | Path, settings: StudySettings,
                         force: bool = False, token: JobToken | None = None) -> StudyDefinition:
    """A CSV with columns case_id, condition, image[, x, y, z, diameter_mm]: one row per (case, condition) image;
    lesion columns (world LPS mm) on any row of a case add a lesion to it (repeat rows for several lesions; a case
    without lesion rows is normal). Image paths are relative to the CSV file."""
    mp = Path(manifest)
    try:
        with mp.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise InputError(mp, f"cannot read ({exc})") from None
    if not rows:
        raise InputError(mp, "the manifest has no rows")
    missing = [c for c in ("case_id", "condition", "image") if c not in rows[0]]
    if missing:
        raise InputError(mp, f"missing column(s) {', '.join(missing)} (columns: {', '.join(MANIFEST_COLUMNS)})")
    conditions: list[str] = []
    cases: dict[str, dict] = {}
    for n, r in enumerate(rows, start=2):
        cid, cond, img = (r.get("case_id") or "").strip(), (r.get("condition") or "").strip(), (r.get("image") or "").strip()
        if not cid or not cond:
            raise InputError(mp, f"line {n}: case_id and condition are required")
        if cond not in conditions:
            conditions.append(cond)
        c = cases.setdefault(cid, {"images": {}, "lesions": []})
        if img:
            if cond in c["images"] and c["images"][cond] != img:
                raise InputError(mp, f"line {n}: case {cid!r} already has an image for condition {cond!r}")
            c["images"][cond] = img
        if any((r.get(k) or "").strip() for k in ("x", "y", "z", "diameter_mm")):
            try:
                les = (float(r["x"]), float(r["y"]), float(r["z"]), float(r["diameter_mm"]))
            except (KeyError, TypeError, ValueError):
                raise InputError(mp, f"line {n}: a lesion needs numbers in x, y, z (LPS mm) and diameter_mm") from None
            if les not in c["lesions"]:
                c["lesions"].append(les)
    b = StudyBuilder(out_dir, conditions, force=force)
    for i, (cid, c) in enumerate(cases.items()):
        if token:
            token.progress(i, len(cases), f"case {cid}")
        if not c["images"]:
            raise InputError(mp, f"case {cid!r} has no image")
        images = {cond: (mp.parent / p if not Path(p).is_absolute() else Path(p)) for cond, p in c["images"].items()}
        for p in images.values():
            if not p.exists():
                raise InputError(mp, f"case {cid!r}: image {p} not found")
        lesions = [Lesion(j + 1, les[:3], les[3]) for j, les in enumerate(c["lesions"])]
        b.add_case(cid, lesions, images)
    b.extra = {"created_from": {"manifest": str(mp.resolve())}}
    return b.write(settings, comparison=(conditions[0], conditions[1]) if len(conditions) >= 2 else None)


# -- synthetic insertions -------------------------------------------------------------------------------------------------
def write_insertions(items, out_dir: str | Path, name: str = "insertions.json") -> Path:
    """Write insertion outputs in the form ``--from-insertions`` reads: each volume as NIfTI beside a JSON list of
    ``{"volume", "findings", "case_id"?, "condition"?}``. ``items``: ``(Volume, [Finding, ...])`` pairs, e.g. what
    ``reviewer.synthesis.insert.insert_nodule`` returns (one finding each; ``[]`` for a nodule-free volume), or
    ``(Volume, findings, case_id, condition)`` tuples for one case under several conditions."""
    from reviewer.findings import findings_to_json
    from reviewer.io.writer import write_volume

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for n, it in enumerate(items):
        vol, findings = it[0], it[1]
        findings = [findings] if not isinstance(findings, (list, tuple)) else list(findings)
        p = write_volume(vol, out / f"volume-{n + 1:03d}.nii.gz", sidecar=False)
        e: dict[str, Any] = {"volume": p.name, "findings": findings_to_json(findings)}
        if len(it) > 2 and it[2]:
            e["case_id"] = str(it[2])
        if len(it) > 3 and it[3]:
            e["condition"] = str(it[3])
        entries.append(e)
    path = out / name
    path.write_text(json.dumps(entries, indent=2) + "\n")
    return path


def create_from_insertions(insertions: str | Path, out_dir: str | Path, settings: StudySettings,
                           condition: str = "CT", force: bool = False, token: JobToken | None = None) -> StudyDefinition:
    """A JSON list of ``{"volume": PATH, "findings": [Finding JSON], "case_id"?: ID, "condition"?: LABEL}``, as
    written for volumes from ``reviewer.synthesis.insert.insert_nodule`` (findings = its ground-truth Findings,
    world LPS mm). An empty findings list is a normal case. Entries sharing a ``case_id`` are one case under
    several conditions and must share their findings."""
    from reviewer.findings import Finding

    jp = Path(insertions)
    try:
        items = json.loads(jp.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(jp, f"cannot read the insertions JSON ({exc})") from None
    if isinstance(items, dict) and "insertions" in items:
        items = items["insertions"]
    if not isinstance(items, list) or not items:
        raise InputError(jp, "expected a non-empty JSON list of {volume, findings}")
    conditions: list[str] = []
    cases: dict[str, dict] = {}
    for n, it in enumerate(items):
        w = f"[{n}]"
        if not isinstance(it, dict) or "volume" not in it:
            raise InputError(jp, f"{w}: expected {{\"volume\": PATH, \"findings\": [...]}}")
        fl = it.get("findings", [])
        if not isinstance(fl, list):
            raise InputError(jp, f"{w}.findings: expected a list of findings")
        try:
            findings = [Finding.from_json(f) for f in fl]
        except (TypeError, ValueError) as exc:
            raise InputError(jp, f"{w}.findings: {exc}") from None
        for k, f in enumerate(findings):
            if f.diameter_mm is None or not f.diameter_mm > 0:
                raise InputError(jp, f"{w}.findings[{k}].diameter_mm: a positive size (mm) is needed for the truth")
        cond = str(it.get("condition") or condition)
        if cond not in conditions:
            conditions.append(cond)
        vol = Path(it["volume"])
        vol = vol if vol.is_absolute() else jp.parent / vol
        if not vol.exists():
            raise InputError(jp, f"{w}.volume: {vol} not found")
        cid = str(it.get("case_id") or f"case-{n + 1:03d}")
        c = cases.setdefault(cid, {"images": {}, "findings": findings})
        key = sorted((tuple(round(v, 3) for v in f.center_lps), round(float(f.diameter_mm), 3)) for f in findings)
        have = sorted((tuple(round(v, 3) for v in f.center_lps), round(float(f.diameter_mm), 3)) for f in c["findings"])
        if key != have:
            raise InputError(jp, f"{w}: case {cid!r} appears with different findings under another condition")
        if cond in c["images"]:
            raise InputError(jp, f"{w}: case {cid!r} already has a volume for condition {cond!r}")
        c["images"][cond] = vol
    b = StudyBuilder(out_dir, conditions, force=force)
    for i, (cid, c) in enumerate(cases.items()):
        if token:
            token.progress(i, len(cases), f"case {cid}")
        lesions = [Lesion(j + 1, f.center_lps, float(f.diameter_mm), f.kind or "lesion",
                          extra={k: v for k, v in {"tracking_uid": f.tracking_uid, "label": f.label}.items() if v})
                   for j, f in enumerate(c["findings"])]
        b.add_case(cid, lesions, c["images"])
    b.extra = {"created_from": {"insertions": str(jp.resolve())}}
    return b.write(settings, comparison=(conditions[0], conditions[1]) if len(conditions) >= 2 else None)


# -- MRI slices with and without FNAFs ---------------------------------------------------------------------------------
def slice_volume(lab_geometry: Geometry, k: int, image: np.ndarray) -> Volume:
    """One reconstructed slice as a (1, H, W) volume placed where slice k of the lab's grid lies (LPS mm)."""
    g = lab_geometry
    origin = g.voxel_to_world((0.0, 0.0, float(k)))
    geom = Geometry((1, *image.shape), g.spacing, tuple(float(v) for v in np.ravel(origin)), g.direction)
    return Volume(np.ascontiguousarray(image, dtype=np.float32)[None], geom, modality="MR", unit="a.u.")


def recon_slice(model, image: np.ndarray, mask_cols: np.ndarray) -> np.ndarray:
    """The model's reconstruction of an image under the lab's simulated under-sampling (the FNAF forward model)."""
    import torch

    from reviewer.fnaf.forward import forward

    device = next(model.parameters()).device
    with torch.no_grad():
        res = forward(model, torch.as_tensor(np.asarray(image, np.float32), device=device)[None],
                      torch.as_tensor(mask_cols, dtype=torch.float32, device=device))
        return (res.output * res.std + res.mean)[0].float().cpu().numpy().astype(np.float32)


def feature_lesion(lab_geometry: Geometry, k: int, values: np.ndarray, lesion_id: int = 1) -> Lesion:
    """Truth for an additive feature on slice k: its support's centroid (LPS mm) and extent (mm)."""
    rows, cols = np.nonzero(values)
    if rows.size == 0:
        raise ValueError("empty feature")
    r, c = float(rows.mean()), float(cols.mean())
    centre = lab_geometry.voxel_to_world((c, r, float(k)))
    si, sj, _ = lab_geometry.spacing
    pts = np.stack([(rows - r) * sj, (cols - c) * si], 1)
    diameter = max(2 * float(np.sqrt((pts ** 2).sum(1)).max()) + max(si, sj), max(si, sj))
    return Lesion(lesion_id, tuple(float(v) for v in np.ravel(centre)), round(diameter, 3), "fnaf",
                  extra={"slice": int(k), "row": r, "col": c, "pixels": int(rows.size)})


@dataclass
class MriCase:
    file: Path
    slice: int
    feature: np.ndarray | None  # (H, W) additive feature, or None for a normal case
    info: dict[str, Any] = field(default_factory=dict)


def add_mri_cases(builder: StudyBuilder, cases: list[MriCase], models: dict[str, Any], acceleration: int = 4,
                  center_fraction: float = 0.08, mask_kind: str = "random", id_prefix: str = "mri",
                  token: JobToken | None = None) -> None:
    """Reconstruct each slice (+ its feature) with every model (condition label -> model) and add the cases."""
    from reviewer.mri.lab import MriLab

    labs: dict[Path, MriLab] = {}
    for n, mc in enumerate(cases):
        if token:
            token.progress(n, len(cases), f"reconstructing {mc.file.name} slice {mc.slice}")
        lab = labs.get(mc.file)
        if lab is None:
            lab = labs[mc.file] = MriLab.from_file(mc.file)
            lab.mask.kind, lab.mask.acceleration, lab.mask.center_fraction = mask_kind, acceleration, center_fraction
        cols = lab.image_mask_columns()
        image = lab.reference()[mc.slice]
        shown = image if mc.feature is None else image + mc.feature.astype(np.float32)
        images = {cond: slice_volume(lab.geometry, mc.slice, recon_slice(model, shown, cols))
                  for cond, model in models.items()}
        lesions = [] if mc.feature is None else [feature_lesion(lab.geometry, mc.slice, mc.feature)]
        if lesions:
            lesions[0].extra.update(mc.info)
        builder.add_case(f"{id_prefix}-{n + 1:03d}", lesions, images)


def create_demo_mri(out_dir: str | Path, settings: StudySettings, n_abnormal: int = 4, n_normal: int = 4,
                    seed: int = 0, tries: int = 11, force: bool = False, token: JobToken | None = None) -> StudyDefinition:
    """Held-out demo knees: FNAF cases (the worst random-walk feature found against the demo standard U-Net by
    random search, as in ``reviewer fnaf eval``) and normal slices, each reconstructed at 4x by the demo standard
    and robust U-Nets."""
    from reviewer.demo.mri_dataset import demo_mri_split
    from reviewer.models.cards import build_model, find_card
    from reviewer.mri.lab import MriLab

    std_card, rob_card = find_card("demo-unet-standard"), find_card("demo-unet-robust")
    models = {STANDARD: build_model(std_card, device="cpu"), ROBUST: build_model(rob_card, device="cpu")}
    files = sorted(demo_mri_split("test").glob("*.h5"))
    if not files:
        raise InputError(None, "the demo MRI test split is empty")
    rng = np.random.default_rng(seed)
    picks: list[tuple[Path, int]] = []
    slots = [(f, k) for f in files for k in range(2, 6)]  # middle slices of the 8-slice demo files
    for i in rng.permutation(len(slots))[: n_abnormal + n_normal]:
        picks.append(slots[i])
    cases: list[MriCase] = []
    for n, (f, k) in enumerate(picks[:n_abnormal]):
        if token:
            token.progress(n, n_abnormal + n_normal, f"FNAF search on {f.name} slice {k}")
        lab = MriLab.from_file(f)
        lab.set_models({"standard": models[STANDARD]})
        found = lab.search_features(k, attack="rs", tries=tries, model="standard", top=1, seed=seed + n)
        feat = found[0].feature
        cases.append(MriCase(f, k, np.asarray(feat.values, np.float32),
                             {"attack": "rs", "searched_model": std_card.name, "attack_loss": float(found[0].loss),
                              "hit": bool(found[0].scores["standard"].hit)}))
    cases += [MriCase(f, k, None) for f, k in picks[n_abnormal:]]
    order = rng.permutation(len(cases))  # case ids do not reveal normal/abnormal
    b = StudyBuilder(out_dir, [STANDARD, ROBUST], force=force)
    add_mri_cases(b, [cases[i] for i in order], models, token=token.sub(0.5, 1.0, 1.0) if token else None,
                  id_prefix="knee")
    b.extra = {"created_from": {"demo": "mri", "data": "demo:test", "seed": seed, "acceleration": 4,
                                "center_fraction": 0.08, "mask": "random",
                                "models": {STANDARD: std_card.name, ROBUST: rob_card.name}}}
    return b.write(settings, comparison=(STANDARD, ROBUST))


def create_demo_ct(out_dir: str | Path, settings: StudySettings, n_abnormal: int = 3, n_normal: int = 3,
                   seed: int = 0, force: bool = False, token: JobToken | None = None) -> StudyDefinition:
    """Demo chest CTs (reduced grid) with 1-2 known nodules each, and nodule-free phantoms as normal cases."""
    from reviewer.demo.chest_ct import make_chest_ct

    b = StudyBuilder(out_dir, ["demo CT"], force=force)
    rng = np.random.default_rng(seed)
    kinds = [True] * n_abnormal + [False] * n_normal
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    for n, abnormal in enumerate(kinds):
        if token:
            token.progress(n, len(kinds), f"phantom {n + 1}/{len(kinds)}")
        vol, nods = make_chest_ct(seed=5000 + seed * 100 + n, shape=(64, 160, 160), spacing=(2.2, 2.2, 5.0),
                                  nodules=int(rng.integers(1, 3)) if abnormal else 0)
        lesions = [Lesion(j + 1, tuple(nd.center), nd.diameter_mm, f"{nd.kind} nodule") for j, nd in enumerate(nods)]
        b.add_case(f"ct-{n + 1:03d}", lesions, {"demo CT": vol})
    b.extra = {"created_from": {"demo": "ct", "seed": seed, "generator": "reviewer.demo.chest_ct"}}
    if settings.window is None:
        settings.window = (1500.0, -600.0)  # lung window
    return b.write(settings)


# -- from `reviewer fnaf eval` output -------------------------------------------------------------------------------------
def create_from_fnaf_eval(eval_dir: str | Path, out_dir: str | Path, settings: StudySettings,
                          source_model: str | None = None, n_abnormal: int | None = None, seed: int = 0,
                          force: bool = False, models: dict[str, Any] | None = None,
                          token: JobToken | None = None) -> StudyDefinition:
    """FNAF cases from the features ``reviewer fnaf eval`` found (fnaf_features.npz) against ``source_model``
    (default: the first model evaluated), hits first; as many normal cases from slices whose feature is not used;
    each reconstructed by every evaluated model (the conditions are the model names + acceleration). The models
    are rebuilt from the cards the evaluation recorded (``settings.model_cards``), else found by name; ``models``
    (name -> torch module) overrides both."""
    from reviewer.models.cards import build_model, find_card

    ed = Path(eval_dir)
    rep_path, feat_path = ed / "fnaf_report.json", ed / "fnaf_features.npz"
    for p in (rep_path, feat_path):
        if not p.is_file():
            raise InputError(p, "missing: run `reviewer fnaf eval --out DIR` (this version writes the features)")
    report = json.loads(rep_path.read_text())
    st = report.get("settings", {})
    files = {Path(f).name: Path(f) for f in st.get("files", [])}
    names = list(report.get("models", {}))
    if not names:
        raise InputError(rep_path, "no models in the report")
    src = source_model or names[0]
    if src not in names:
        raise InputError(rep_path, f"no model {src!r} in the report (models: {', '.join(names)})")
    z = np.load(feat_path, allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    attacks = [m for m in meta if m["model"] == src]
    if not attacks:
        raise InputError(feat_path, f"no features found against {src!r}")
    attacks.sort(key=lambda m: (not m["hit"], -m["loss"]))
    n_ab = min(n_abnormal or max(1, len(attacks) // 2), len(attacks) - 1 if len(attacks) > 1 else 1)
    acc = int(st.get("acceleration", 4))
    label = {n: f"{n} {acc}x" for n in names}
    given, models = models or {}, {}
    cards = st.get("model_cards", {})
    for n in names:
        models[label[n]] = given[n] if n in given else build_model(find_card(cards.get(n, n)), device="cpu")
    chosen = attacks[:n_ab]
    used = {(m["file"], m["slice"]) for m in chosen}
    rest = [m for m in attacks[n_ab:] if (m["file"], m["slice"]) not in used]
    rng = np.random.default_rng(seed)
    normals = [rest[i] for i in rng.permutation(len(rest))[: len(chosen)]]
    cases = []
    for m in chosen + normals:
        f = files.get(m["file"])
        if f is None or not f.exists():
            raise InputError(rep_path, f"the evaluated file {m['file']} is not found (settings.files)")
        feat = None
        if m in chosen:
            feat = np.zeros(tuple(meta_shape(z)), np.float32)
            i = m["index"]
            sl = slice(int(z["offsets"][i]), int(z["offsets"][i + 1]))
            feat[z["rows"][sl], z["cols"][sl]] = z["values"][sl]
        cases.append(MriCase(f, int(m["slice"]), feat, {"attack": st.get("attack"), "searched_model": src,
                                                         "attack_loss": m["loss"], "hit": m["hit"]}))
    order = rng.permutation(len(cases))
    b = StudyBuilder(out_dir, [label[n] for n in names], force=force)
    add_mri_cases(b, [cases[i] for i in order], models, acceleration=acc,
                  center_fraction=float(st.get("center_fraction", 0.08)), mask_kind=st.get("mask", "random"),
                  id_prefix="slice", token=token)
    b.extra = {"created_from": {"fnaf_eval": str(ed.resolve()), "source_model": src, "settings": st}}
    conds = [label[n] for n in names]
    return b.write(settings, comparison=(conds[0], conds[1]) if len(conds) >= 2 else None)


def meta_shape(z) -> tuple[int, int]:
    return tuple(int(v) for v in z["shape"])
