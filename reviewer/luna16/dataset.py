"""Reading a LUNA16-format dataset (the real one or the demo export) for training and evaluation.

A LUNA16 folder holds ``.mhd/.raw`` scans (in ``subset0`` .. ``subset9`` or anywhere below the root) and the CSVs
``annotations.csv``, ``annotations_excluded.csv`` and ``seriesuids.csv``, either at the root, in ``CSVFILES/`` or
in ``evaluationScript/annotations/`` (the challenge's own layout). ``demo:ct-train`` / ``demo:ct-val`` /
``demo:ct-test`` / ``demo:ct-all`` name the demo phantoms, exported to the cache on first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from reviewer.errors import InputError
from reviewer.jobs import JobToken
from reviewer.luna16.io import Annotation, read_annotations, read_seriesuids

CSV_PLACES = ("", "CSVFILES", "evaluationScript/annotations", "annotations")
DEMO_PREFIX = "demo:ct-"


def resolve_luna16(spec: str | os.PathLike, token: JobToken | None = None) -> Path:
    """A LUNA16 folder for ``spec``: an existing folder, or ``demo:ct-train|ct-val|ct-test|ct-all``."""
    s = os.fspath(spec)
    if s.startswith("demo:"):
        split = s[len(DEMO_PREFIX):] if s.startswith(DEMO_PREFIX) else ""
        from reviewer.luna16.demo_export import DEMO_CT_SPLITS, demo_luna16

        if split not in (*DEMO_CT_SPLITS, "all"):
            raise InputError(s, "unknown demo LUNA16 split: use demo:ct-train, demo:ct-val, demo:ct-test or demo:ct-all")
        return demo_luna16(split, token=token)
    p = Path(s)
    if not p.is_dir():
        raise InputError(p, "not a folder (give a LUNA16 folder or demo:ct-train|ct-val|ct-test)")
    if find_csv(p, "annotations.csv") is None and not any(p.rglob("*.mhd")):
        raise InputError(p, "no annotations.csv and no .mhd scans: not a LUNA16 folder")
    return p


def find_csv(root: Path, name: str) -> Path | None:
    for place in CSV_PLACES:
        c = root / place / name
        if c.is_file():
            return c
    return None


@dataclass
class Luna16Dataset:
    root: Path
    scans: dict[str, Path]  # seriesuid -> .mhd
    seriesuids: list[str]  # the evaluated scans, in seriesuids.csv order (or sorted when there is no list)
    annotations: dict[str, list[Annotation]] = field(default_factory=dict)
    excluded: dict[str, list[Annotation]] = field(default_factory=dict)
    annotations_csv: Path | None = None
    excluded_csv: Path | None = None
    seriesuids_csv: Path | None = None

    def load(self, seriesuid: str):
        """The scan as a :class:`reviewer.geometry.Volume` (geometry exactly as in the .mhd)."""
        from reviewer.io.itk_io import read_itk_volume

        if seriesuid not in self.scans:
            raise InputError(self.root, f"no .mhd file for series {seriesuid}")
        vol = read_itk_volume(self.scans[seriesuid], fmt="mhd")
        if not vol.modality:
            vol.modality, vol.unit = "CT", "HU"  # LUNA16 scans are CT in HU
        vol.metadata["series_uid"] = seriesuid
        return vol

    def __len__(self) -> int:
        return len(self.seriesuids)


def open_luna16(spec: str | os.PathLike, token: JobToken | None = None) -> Luna16Dataset:
    root = resolve_luna16(spec, token=token)
    scans: dict[str, Path] = {}
    for mhd in sorted(root.rglob("*.mhd")):
        uid = mhd.name[: -len(".mhd")]
        if uid in scans:
            raise InputError(mhd, f"series {uid} also in {scans[uid]}")
        scans[uid] = mhd
    ann_csv = find_csv(root, "annotations.csv")
    exc_csv = find_csv(root, "annotations_excluded.csv")
    uid_csv = find_csv(root, "seriesuids.csv")
    annotations = read_annotations(ann_csv) if ann_csv else {}
    excluded = read_annotations(exc_csv) if exc_csv else {}
    uids = read_seriesuids(uid_csv) if uid_csv else sorted(scans)
    return Luna16Dataset(root, scans, uids, annotations, excluded, ann_csv, exc_csv, uid_csv)


def iter_luna16(spec: str | os.PathLike, token: JobToken | None = None,
                skip_missing: bool = True) -> Iterator[tuple[str, "object", list[Annotation]]]:
    """Yield ``(seriesuid, Volume, annotations)`` for every listed scan that has a .mhd file.

    ``annotations`` are the included nodules (world LPS mm); the excluded findings are in
    ``open_luna16(spec).excluded``. Listed scans without a file are skipped (LUNA16 is often downloaded one
    subset at a time) unless ``skip_missing`` is False.
    """
    ds = open_luna16(spec, token=token)
    todo = [u for u in ds.seriesuids if u in ds.scans]
    if not skip_missing and len(todo) < len(ds.seriesuids):
        missing = [u for u in ds.seriesuids if u not in ds.scans]
        raise InputError(ds.root, f"{len(missing)} listed scan(s) have no .mhd file, e.g. {missing[0]}")
    for i, uid in enumerate(todo):
        if token is not None:
            token.progress(i, len(todo), f"reading {uid[-12:]}")
        yield uid, ds.load(uid), list(ds.annotations.get(uid, []))


__all__ = ["resolve_luna16", "open_luna16", "iter_luna16", "Luna16Dataset", "find_csv"]
