"""What the GUI study builder collects (:class:`BuilderSpec`), its validation, and the build job. Qt-free.

The build goes through the same create functions as ``reviewer study create`` (reviewer.studies.create):
image files become a CSV manifest for ``create_from_manifest``; an FNAF evaluation folder, a synthetic-insertion
JSON and the demo data have their own functions. Settings the create functions do not take (randomisation
flags, blinding) are applied to the written definition, which is validated again when written.
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reviewer.errors import InputError
from reviewer.jobs import JobToken

SOURCES = ("files", "fnaf_eval", "insertions", "demo_mri", "demo_ct")
SOURCE_LABELS = {
    "files": "Image files (one row per case and condition)",
    "fnaf_eval": "From an FNAF evaluation folder (reviewer fnaf eval --out)",
    "insertions": "From synthetic nodule insertions (JSON)",
    "demo_mri": "Demo: knee MRI slices with / without FNAFs (standard vs robust U-Net)",
    "demo_ct": "Demo: chest CTs with known nodules",
}


@dataclass
class FileRow:
    """One image of the 'files' source: a case, its condition and the file; an optional lesion (LPS mm)."""

    case_id: str
    condition: str
    image: str
    lesion: tuple[float, float, float, float] | None = None  # x, y, z, diameter_mm


@dataclass
class BuilderSpec:
    out_dir: str = ""
    name: str = ""
    source: str = "files"
    files: list[FileRow] = field(default_factory=list)
    source_path: str = ""  # FNAF eval folder or insertions JSON
    insertion_condition: str = "CT"
    readers: list[str] = field(default_factory=list)
    paradigm: str = "froc"
    rating_scale: str = "1-5"
    acceptance_radius_mm: float = 5.0
    seed: int = 0
    shuffle: bool = True
    separate_conditions: bool = True
    counterbalance: bool = True
    hide_condition: bool = True
    hide_file_names: bool = True
    allow_back: bool = False
    time_limit_s: float | None = None
    instructions: str = ""
    force: bool = False

    def problems(self) -> list[str]:
        """Everything wrong with the form, in words for the dialog (empty when it can be built)."""
        out = []
        if not self.out_dir.strip():
            out.append("Choose the folder the study is written to.")
        elif (Path(self.out_dir) / "study.json").exists() and not self.force:
            out.append(f"{self.out_dir} already holds a study: choose another folder or tick 'overwrite'.")
        if not self.name.strip():
            out.append("Give the study a name.")
        if self.source not in SOURCES:
            out.append(f"Unknown case source {self.source!r}.")
        if self.source == "files":
            if not self.files:
                out.append("Add image files (one row per case and condition).")
            for n, r in enumerate(self.files, start=1):
                if not r.case_id.strip() or not r.condition.strip():
                    out.append(f"Row {n}: give a case id and a condition.")
                if not Path(r.image).exists():
                    out.append(f"Row {n}: image {r.image!r} not found.")
        elif self.source in ("fnaf_eval", "insertions"):
            p = Path(self.source_path) if self.source_path.strip() else None
            if p is None:
                out.append("Choose the FNAF evaluation folder." if self.source == "fnaf_eval"
                           else "Choose the insertions JSON file.")
            elif self.source == "fnaf_eval" and not (p / "fnaf_report.json").is_file():
                out.append(f"{p} is not a `reviewer fnaf eval` output folder (no fnaf_report.json).")
            elif self.source == "insertions" and not p.is_file():
                out.append(f"{p}: no such file.")
        if len(set(self.readers)) != len(self.readers):
            out.append("Reader ids must be unique.")
        if self.acceptance_radius_mm <= 0:
            out.append("The acceptance radius must be > 0 mm.")
        if self.time_limit_s is not None and self.time_limit_s <= 0:
            out.append("The time limit must be > 0 s (or none).")
        return out

    def settings(self):
        from reviewer.studies.create import StudySettings

        return StudySettings(name=self.name.strip(), readers=list(self.readers), paradigm=self.paradigm,
                             rating_scale=self.rating_scale, acceptance_radius_mm=self.acceptance_radius_mm,
                             seed=self.seed, allow_back=self.allow_back, time_limit_s=self.time_limit_s,
                             instructions=self.instructions.strip())


def write_manifest(rows: list[FileRow], path: Path) -> Path:
    """The 'files' rows as the CSV manifest ``reviewer study create --cases`` reads."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "condition", "image", "x", "y", "z", "diameter_mm"])
        for r in rows:
            les = [f"{v:g}" for v in r.lesion] if r.lesion else ["", "", "", ""]
            w.writerow([r.case_id.strip(), r.condition.strip(), str(Path(r.image).resolve()), *les])
    return path


def build_study(spec: BuilderSpec, token: JobToken | None = None):
    """Write the study described by ``spec``; returns its StudyDefinition. Raises InputError on bad input."""
    from reviewer.studies import create as C

    problems = spec.problems()
    if problems:
        raise InputError(spec.out_dir or None, " ".join(problems))
    out = Path(spec.out_dir)
    settings = spec.settings()
    if spec.source == "files":
        with tempfile.TemporaryDirectory() as tmp:
            manifest = write_manifest(spec.files, Path(tmp) / "manifest.csv")
            d = C.create_from_manifest(manifest, out, settings, force=spec.force, token=token)
    elif spec.source == "fnaf_eval":
        d = C.create_from_fnaf_eval(spec.source_path, out, settings, seed=spec.seed, force=spec.force, token=token)
    elif spec.source == "insertions":
        d = C.create_from_insertions(spec.source_path, out, settings, condition=spec.insertion_condition or "CT",
                                     force=spec.force, token=token)
    elif spec.source == "demo_mri":
        d = C.create_demo_mri(out, settings, seed=spec.seed, force=spec.force, token=token)
    else:
        d = C.create_demo_ct(out, settings, seed=spec.seed, force=spec.force, token=token)
    r = d.randomisation
    r.shuffle, r.separate_conditions, r.counterbalance = spec.shuffle, spec.separate_conditions, spec.counterbalance
    d.blinding.hide_condition, d.blinding.hide_file_names = spec.hide_condition, spec.hide_file_names
    d.write(out / "study.json")
    from reviewer.studies.definition import load_study_definition

    return load_study_definition(out / "study.json")
