"""Deterministic demo data: a synthetic chest CT with nodules (.mhd + LUNA16-style CSV + JSON) and a synthetic
knee MRI in fastMRI single-coil HDF5 format. Written to the user cache, never the repository."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reviewer.demo import chest_ct, mri

DEMO_VERSION = f"ct{chest_ct.GENERATOR_VERSION}-mri{mri.GENERATOR_VERSION}-sidecar1"
MANIFEST = "manifest.json"


@dataclass
class DemoData:
    ct_path: Path
    ct_nodules_csv: Path
    ct_nodules_json: Path
    mri_path: Path
    series_uid: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "ct_path": str(self.ct_path),
            "ct_nodules_csv": str(self.ct_nodules_csv),
            "ct_nodules_json": str(self.ct_nodules_json),
            "mri_path": str(self.mri_path),
        }


def _paths(out: Path, uid: str) -> DemoData:
    return DemoData(out / f"{uid}.mhd", out / "annotations.csv", out / "nodules.json", out / "knee_demo.h5", uid)


def write_ct(volume, path: Path) -> Path:
    """Write a Volume as .mhd/.raw (geometry preserved) plus a dcm2niix-style JSON sidecar naming it."""
    import json

    from reviewer.io.writer import write_volume

    path = Path(write_volume(volume, path, sidecar=False))
    sidecar = {"Modality": "CT", "SeriesDescription": "Demo chest CT (synthetic)", "PatientName": "Demo^Chest",
               "PatientID": "DEMO-CT", "StudyDescription": "Synthetic chest CT with nodules",
               "ImageType": ["DERIVED", "SYNTHETIC"]}
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return path


def write_nodules(nodules, uid: str, csv_path: Path, json_path: Path) -> None:
    with open(csv_path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"])
        for n in nodules:
            wr.writerow([uid, f"{n.center[0]:.3f}", f"{n.center[1]:.3f}", f"{n.center[2]:.3f}", f"{n.diameter_mm:.2f}"])
    payload = {
        "seriesuid": uid,
        "coordinate_system": "LPS mm (world, as SimpleITK reports it)",
        "nodules": [
            {"id": n.id, "center_lps_mm": [round(c, 3) for c in n.center], "diameter_mm": n.diameter_mm, "kind": n.kind,
             "lobulated": n.lobulated, "spiculated": n.spiculated}
            for n in nodules
        ],
    }
    json_path.write_text(json.dumps(payload, indent=2) + "\n")


def generate_demo(out_dir: str | Path | None = None, force: bool = False, token=None, seed: int = 0) -> DemoData:
    """Create (or reuse) the demo data set. Regenerates only when files are missing or the stored generator
    version/seed differ, so a second call returns at once."""
    from reviewer.resources import cache_dir

    out = Path(out_dir) if out_dir is not None else cache_dir("demo", "v1")
    out.mkdir(parents=True, exist_ok=True)
    uid = chest_ct.series_uid(seed)
    data = _paths(out, uid)
    manifest = {"version": DEMO_VERSION, "seed": int(seed), "series_uid": uid, "files": data.as_dict()}
    mpath = out / MANIFEST
    if not force and mpath.exists():
        try:
            old = json.loads(mpath.read_text())
        except (OSError, ValueError):
            old = None
        files_ok = all(Path(p).exists() for p in data.as_dict().values()) and data.ct_path.with_suffix(".raw").exists()
        if old == manifest and files_ok:
            if token is not None:
                token.progress(1, 1, "demo data up to date")
            return data
    if mpath.exists():
        mpath.unlink()
    if token is not None:
        token.progress(0, 100, "chest CT")
    vol, nodules = chest_ct.make_chest_ct(seed, token=token.sub(0, 60, 100) if token is not None else None)
    if token is not None:
        token.progress(60, 100, "writing CT")
    write_ct(vol, data.ct_path)
    write_nodules(nodules, uid, data.ct_nodules_csv, data.ct_nodules_json)
    if token is not None:
        token.progress(70, 100, "knee MRI")
    tmp = data.mri_path.with_suffix(".h5.tmp")
    mri.make_fastmri_file(tmp, seed=seed, token=token.sub(70, 99, 100) if token is not None else None)
    os.replace(tmp, data.mri_path)
    mpath.write_text(json.dumps(manifest, indent=2) + "\n")
    if token is not None:
        token.progress(100, 100, "demo data ready")
    return data


__all__ = ["DemoData", "generate_demo", "chest_ct", "mri"]
