"""The demo chest CT phantoms written as a LUNA16-format dataset.

Layout (the same as the challenge's download, so training and evaluation read it exactly like the real data)::

    OUT/subset0/<seriesuid>.mhd + .raw   int16 HU, Offset / ElementSpacing / TransformMatrix = the phantom geometry
    OUT/annotations.csv                  nodules >= 3 mm (LUNA16 keeps nodules >= 3 mm accepted by readers)
    OUT/annotations_excluded.csv         "irrelevant findings": nodules < 3 mm (scored neither TP nor FP)
    OUT/seriesuids.csv                   the scans of the split, one UID per line
    OUT/nodules.json                     per scan: seed, direction, every nodule with kind/lobulation/spiculation
    OUT/manifest.json, OUT/README.txt    generator and export versions, seeds, shape

Every phantom also gets one or two small solid nodules (1.5-2.9 mm) inserted into the lungs after generation so
that the excluded list is not empty (in LUNA16, nodules < 3 mm are such irrelevant findings). Some test phantoms
have flipped direction matrices (as some LUNA16 scans do), so code reading the data cannot assume identity.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from reviewer.jobs import JobToken

DEMO_CT_SPLITS: dict[str, range] = {"train": range(100, 140), "val": range(200, 210), "test": range(300, 320)}
EXPORT_VERSION = "1"
LUNA16_MIN_DIAMETER_MM = 3.0
SUBSET = "subset0"


def generator_version() -> str:
    from reviewer.demo import chest_ct

    return f"chest_ct-v{chest_ct.GENERATOR_VERSION}+luna16-export-v{EXPORT_VERSION}"


def split_seeds(split: str, n: int | None = None) -> list[int]:
    if split == "all":
        seeds = [s for r in DEMO_CT_SPLITS.values() for s in r]
    elif split in DEMO_CT_SPLITS:
        seeds = list(DEMO_CT_SPLITS[split])
    else:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(list(DEMO_CT_SPLITS) + ['all'])}")
    if n is not None:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        seeds = seeds[:n]
    return seeds


def demo_direction(seed: int) -> np.ndarray:
    """Direction matrix of the phantom of ``seed``: test seeds 1 mod 4 flip x and y (LUNA16's flipped scans have
    ``TransformMatrix = -1 0 0 0 -1 0 0 0 1``), test seeds 3 mod 4 flip z; all others are identity."""
    if seed in DEMO_CT_SPLITS["test"]:
        if seed % 4 == 1:
            return np.diag([-1.0, -1.0, 1.0])
        if seed % 4 == 3:
            return np.diag([1.0, 1.0, -1.0])
    return np.eye(3)


def _grid(shape: tuple[int, int, int] | None) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Array shape and spacing; a smaller ``shape`` keeps the default field of view (coarser voxels)."""
    from reviewer.demo import chest_ct

    if shape is None:
        return tuple(chest_ct.DEFAULT_SHAPE), tuple(chest_ct.DEFAULT_SPACING)  # type: ignore[return-value]
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 16:
        raise ValueError(f"shape must be three sizes >= 16 (k, j, i), got {shape}")
    d = chest_ct.DEFAULT_SHAPE
    sp = chest_ct.DEFAULT_SPACING
    spacing = (sp[0] * d[2] / shape[2], sp[1] * d[1] / shape[1], sp[2] * d[0] / shape[0])
    return shape, tuple(round(s, 6) for s in spacing)  # type: ignore[return-value]


def _add_small_nodules(volume, nodules, rng: np.random.Generator) -> list:
    """Insert 1-2 solid nodules of 1.5-2.9 mm into the lungs, away from the other nodules (in place)."""
    from reviewer.demo.chest_ct import Nodule, insert_nodule, lung_mask

    mask = lung_mask(volume)
    kk, jj, ii = np.nonzero(mask[::2, ::2, ::2])
    if len(kk) == 0:
        return []
    g = volume.geometry
    cand = g.voxel_to_world(np.stack([ii * 2, jj * 2, kk * 2], axis=1).astype(float))
    g_dirs = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) if (a, b, c) != (0, 0, 0)],
                      float)
    g_dirs /= np.linalg.norm(g_dirs, axis=1, keepdims=True)
    placed = [(np.asarray(n.center), n.diameter_mm / 2) for n in nodules]
    added = []
    for i in range(int(rng.integers(1, 3))):
        d = round(float(rng.uniform(1.5, 2.9)), 2)
        for _ in range(300):
            p = cand[rng.integers(len(cand))]
            probe = np.vstack([p, p + g_dirs * (d / 2 + 6.0)])
            idx = [g.world_to_array_index(q) for q in probe]
            if any(ix is None or not mask[ix] for ix in idx):
                continue
            if volume.array[idx[0]] > -700:  # not inside a vessel or airway wall
                continue
            if any(np.linalg.norm(p - q) < d / 2 + rq + 10.0 for q, rq in placed):
                continue
            nod = Nodule(center=tuple(float(v) for v in p), diameter_mm=d, kind="solid", id=f"S{i + 1:02d}")
            insert_nodule(volume.array, g, nod, rng)
            placed.append((np.asarray(nod.center), d / 2))
            added.append(nod)
            break
    return added


def make_demo_case(seed: int, shape: tuple[int, int, int] | None = None, token: JobToken | None = None):
    """(Volume, nodules) of the exported phantom of ``seed`` (the chest CT plus the small irrelevant nodules)."""
    from reviewer.demo import chest_ct

    shape_, spacing = _grid(shape)
    vol, nodules = chest_ct.make_chest_ct(seed, shape=shape_, spacing=spacing, direction=demo_direction(seed),
                                          token=token)
    small = _add_small_nodules(vol, nodules, np.random.default_rng([int(seed), 1616]))
    all_nodules = list(nodules) + small
    uid = chest_ct.series_uid(seed)
    vol.metadata["series_uid"] = uid
    vol.metadata["nodules"] = [n.to_dict() for n in all_nodules]
    vol.metadata["luna16_export_version"] = EXPORT_VERSION
    vol.name = f"Demo chest CT {uid[-8:]} (seed {seed})"
    return vol, all_nodules


def _manifest(split: str, seeds: list[int], shape) -> dict[str, Any]:
    from reviewer.demo import chest_ct

    shape_, spacing = _grid(shape)
    return {"format": "LUNA16", "generator": "reviewer.demo.chest_ct", "generator_version": chest_ct.GENERATOR_VERSION,
            "export_version": EXPORT_VERSION, "version": generator_version(), "split": split, "seeds": seeds,
            "shape_kji": list(shape_), "spacing_ijk_mm": list(spacing),
            "directions": {str(s): demo_direction(s).astype(int).tolist() for s in seeds
                           if not np.array_equal(demo_direction(s), np.eye(3))},
            "min_diameter_mm": LUNA16_MIN_DIAMETER_MM}


def _readme(m: dict[str, Any]) -> str:
    return (
        "Demo chest CT phantoms as a LUNA16-format dataset (synthetic; generated by reviewer).\n\n"
        f"generator: {m['generator']} v{m['generator_version']}, export v{m['export_version']}\n"
        f"split: {m['split']}, seeds: {m['seeds'][0]}..{m['seeds'][-1]} ({len(m['seeds'])} scans)\n"
        f"grid (k, j, i): {m['shape_kji']}, spacing (i, j, k) mm: {m['spacing_ijk_mm']}\n"
        f"flipped direction matrices (seed: matrix): {m['directions'] or 'none'}\n\n"
        "subset0/<seriesuid>.mhd/.raw: int16 HU; world coordinates are LPS mm as SimpleITK reports them.\n"
        "annotations.csv: seriesuid,coordX,coordY,coordZ,diameter_mm for nodules >= 3 mm.\n"
        "annotations_excluded.csv: nodules < 3 mm (irrelevant findings: neither TP nor FP in the FROC).\n"
        "seriesuids.csv: the scans, one per line. nodules.json: every nodule with its kind and the scan's seed.\n"
        "Score a submission: reviewer froc --annotations annotations.csv --excluded annotations_excluded.csv "
        "--seriesuids seriesuids.csv --submission SUBMISSION.csv --out DIR\n"
    )


def export_demo_luna16(out_dir: str | os.PathLike, split: str = "train", n: int | None = None,
                       token: JobToken | None = None, shape: tuple[int, int, int] | None = None) -> Path:
    """Write the demo phantoms of ``split`` ('train' | 'val' | 'test' | 'all'; the first ``n`` seeds when given)
    as a LUNA16 dataset in ``out_dir``. ``shape`` (k, j, i) makes smaller scans of the same field of view.
    Returns ``out_dir``. The manifest is written last, so an interrupted export is never mistaken for current."""
    from reviewer.io.writer import write_volume
    from reviewer.luna16.io import Annotation, write_annotations, write_seriesuids

    seeds = split_seeds(split, n)
    out = Path(out_dir)
    sub = out / SUBSET
    sub.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        manifest_path.unlink()
    annotations: dict[str, list[Annotation]] = {}
    excluded: dict[str, list[Annotation]] = {}
    cases: dict[str, Any] = {}
    uids: list[str] = []
    for idx, seed in enumerate(seeds):
        if token is not None:
            token.progress(idx, len(seeds), f"demo CT seed {seed}")
        vol, nodules = make_demo_case(seed, shape=shape,
                                      token=token.sub(idx, idx + 0.9, len(seeds)) if token is not None else None)
        uid = vol.metadata["series_uid"]
        uids.append(uid)
        write_volume(vol, sub / f"{uid}.mhd", sidecar=True)
        big = [n for n in nodules if n.diameter_mm >= LUNA16_MIN_DIAMETER_MM]
        small = [n for n in nodules if n.diameter_mm < LUNA16_MIN_DIAMETER_MM]
        if big:
            annotations[uid] = [Annotation(*n.center, n.diameter_mm) for n in big]
        if small:
            excluded[uid] = [Annotation(*n.center, n.diameter_mm) for n in small]
        cases[uid] = {"seed": int(seed), "direction": vol.geometry.direction_matrix.astype(int).tolist(),
                      "nodules": [n.to_dict() for n in nodules]}
    keep = {f"{u}{ext}" for u in uids for ext in (".mhd", ".raw", ".json")}
    for p in sub.iterdir():  # files of an older export in the same folder
        if p.name not in keep and p.suffix in (".mhd", ".raw", ".json"):
            p.unlink()
    write_annotations(out / "annotations.csv", annotations)
    write_annotations(out / "annotations_excluded.csv", excluded)
    write_seriesuids(out / "seriesuids.csv", uids)
    (out / "nodules.json").write_text(json.dumps({"coordinate_system": "LPS mm (world, as SimpleITK reports it)",
                                                  "scans": cases}, indent=2) + "\n")
    manifest = _manifest(split, seeds, shape)
    (out / "README.txt").write_text(_readme(manifest))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    if token is not None:
        token.progress(len(seeds), len(seeds), "LUNA16 export done")
    return out


def is_current(folder: str | os.PathLike, split: str, n: int | None = None,
               shape: tuple[int, int, int] | None = None) -> bool:
    """True when ``folder`` holds a complete export of exactly this split with the current generator."""
    folder = Path(folder)
    try:
        old = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    want = json.loads(json.dumps(_manifest(split, split_seeds(split, n), shape)))
    if old != want:
        return False
    from reviewer.luna16.io import read_seriesuids

    try:
        uids = read_seriesuids(folder / "seriesuids.csv")
    except Exception:
        return False
    return all((folder / SUBSET / f"{u}.mhd").is_file() and (folder / SUBSET / f"{u}.raw").is_file() for u in uids)


def demo_luna16(split: str, token: JobToken | None = None) -> Path:
    """The cached LUNA16 export of a demo split (generated on first use, regenerated when the generator changes)."""
    from reviewer.resources import cache_dir

    folder = cache_dir("demo", f"luna16-{generator_version()}", split)
    if not is_current(folder, split):
        tmp = folder.with_name(folder.name + ".partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        export_demo_luna16(tmp, split, token=token)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    return folder


# the readers live in dataset.py; importable from here too
from reviewer.luna16.dataset import iter_luna16, open_luna16, resolve_luna16  # noqa: E402

__all__ = ["iter_luna16", "open_luna16", "resolve_luna16", "DEMO_CT_SPLITS", "EXPORT_VERSION", "export_demo_luna16", "demo_luna16", "demo_direction",
           "make_demo_case", "split_seeds", "generator_version", "is_current"]
