"""Reader-study definition: a versioned, human-readable file (``study.json``; TOML ``study.toml`` also read).

The canonical file is JSON (written by ``reviewer study create`` and the GUI builder: the standard library writes
it faithfully); a hand-written TOML file with the same keys is read too (``tomllib``). Every validation error is an
:class:`reviewer.errors.InputError` naming the file and the field, e.g. ``study.json: cases[3].truth.lesions[0]
.center_lps: expected 3 numbers (LPS mm)``.

A *case* is one underlying image (a patient, a knee slice) with its truth; it is shown under one or more
*conditions* (e.g. "standard U-Net 4x", "robust U-Net 4x"), one image file per condition. A reading *item* is a
(case, condition) pair. Truth belongs to the case, so the MRMC design is fully crossed (JAFROC/iMRMC "modalities"
are our conditions). Example (format version 1)::

    {
      "format": "reviewer-study", "version": 1,
      "name": "FNAF pilot", "instructions": "Mark every small bright feature...",
      "paradigm": "froc",                      # froc | roc | both
      "rating_scale": "1-5",                   # 1-5 | 0-100
      "acceptance_radius_mm": 5.0,             # FROC: a mark within this distance of a lesion centre is a hit
      "conditions": ["standard U-Net 4x", "robust U-Net 4x"],
      "comparison": ["standard U-Net 4x", "robust U-Net 4x"],   # optional: the paired comparison (A, B)
      "readers": [{"id": "R1", "name": "Dr A"}, {"id": "R2", "seed": 7}],
      "randomisation": {"seed": 0, "shuffle": true, "separate_conditions": true, "counterbalance": true},
      "blinding": {"hide_condition": true, "hide_file_names": true},
      "navigation": {"allow_back": false},
      "time_limit_s": null,
      "display": {"layout": "single", "window": [400, 40], "invert": false},
      "cases": [
        {"id": "knee-001",
         "truth": {"lesions": [{"id": 1, "center_lps": [10.5, -3.2, 0.0], "diameter_mm": 3.0, "kind": "fnaf"}]},
         "images": {"standard U-Net 4x": "images/3f9a0c.nii.gz", "robust U-Net 4x": "images/77b1e2.nii.gz"}},
        {"id": "knee-002", "truth": {"normal": true},
         "images": {"standard U-Net 4x": "images/c01d5e.nii.gz", "robust U-Net 4x": "images/0a8f31.nii.gz"}}
      ]
    }

Image paths are relative to the study folder (absolute paths are accepted): a volume (.nii/.nii.gz/.mhd/.nrrd/a
DICOM folder) or a 2D image (.png/.tif, optionally ``{"path": ..., "spacing_mm": [0.5, 0.5]}``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reviewer.errors import InputError

FORMAT = "reviewer-study"
FORMAT_VERSION = 1
PARADIGMS = ("froc", "roc", "both")
RATING_SCALES = {"1-5": (1, 5), "0-100": (0, 100)}
IMAGE_SUFFIXES_2D = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


@dataclass
class Lesion:
    """A true lesion: world centre (patient LPS mm), diameter (mm) and wAFROC weight (default 1/n per case)."""

    id: int
    center_lps: tuple[float, float, float]
    diameter_mm: float
    kind: str = "lesion"
    weight: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Truth:
    lesions: list[Lesion] = field(default_factory=list)

    @property
    def normal(self) -> bool:
        return not self.lesions

    def weights(self) -> list[float]:
        """wAFROC lesion weights summing to 1 on an abnormal case (equal when not given)."""
        if not self.lesions:
            return []
        given = [les.weight for les in self.lesions]
        if all(w is None for w in given):
            return [1.0 / len(self.lesions)] * len(self.lesions)
        return [float(w) for w in given]  # validated to sum to 1


@dataclass
class ImageRef:
    path: str  # relative to the study folder, or absolute
    spacing_mm: tuple[float, float] | None = None  # 2D images only (row, column spacing); default 1 mm
    window: tuple[float, float] | None = None  # (width, level) overriding the study's display window


@dataclass
class CaseDef:
    id: str
    truth: Truth
    images: dict[str, ImageRef]  # condition label -> image


@dataclass
class ReaderDef:
    id: str
    name: str = ""
    seed: int | None = None  # per-reader order seed; default derived from the study seed and the reader id


@dataclass
class Randomisation:
    seed: int = 0
    shuffle: bool = True  # shuffle the cases inside each reading block (else definition order)
    separate_conditions: bool = True  # one case's conditions go to different blocks, never adjacent
    counterbalance: bool = True  # rotate which condition of a case each reader meets first (Latin square)


@dataclass
class Blinding:
    hide_condition: bool = True
    hide_file_names: bool = True  # image file names must not contain a condition label


@dataclass
class Navigation:
    allow_back: bool = False


@dataclass
class Display:
    """The hanging protocol: one pane, an optional window (width, level) in image units, grey-scale inversion."""

    layout: str = "single"
    window: tuple[float, float] | None = None
    invert: bool = False


@dataclass
class StudyDefinition:
    name: str
    conditions: list[str]
    cases: list[CaseDef]
    readers: list[ReaderDef] = field(default_factory=list)
    paradigm: str = "froc"
    rating_scale: str = "1-5"
    acceptance_radius_mm: float = 5.0
    randomisation: Randomisation = field(default_factory=Randomisation)
    blinding: Blinding = field(default_factory=Blinding)
    navigation: Navigation = field(default_factory=Navigation)
    display: Display = field(default_factory=Display)
    time_limit_s: float | None = None
    instructions: str = ""
    description: str = ""
    comparison: tuple[str, str] | None = None
    version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # provenance (which models, data, seeds made the cases)

    # -- derived -------------------------------------------------------------------------------------------------
    @property
    def rating_range(self) -> tuple[int, int]:
        return RATING_SCALES[self.rating_scale]

    @property
    def uses_marks(self) -> bool:
        return self.paradigm in ("froc", "both")

    @property
    def uses_case_rating(self) -> bool:
        return self.paradigm in ("roc", "both")

    def items(self) -> list[tuple[str, str]]:
        """All (case id, condition) reading items in definition order."""
        return [(c.id, cond) for c in self.cases for cond in self.conditions if cond in c.images]

    def case(self, case_id: str) -> CaseDef:
        for c in self.cases:
            if c.id == case_id:
                return c
        raise KeyError(case_id)

    def compared_conditions(self) -> tuple[str, str] | None:
        if self.comparison:
            return tuple(self.comparison)  # type: ignore[return-value]
        return (self.conditions[0], self.conditions[1]) if len(self.conditions) >= 2 else None

    # -- (de)serialisation -----------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"format": FORMAT, "version": self.version, "name": self.name,
                             "description": self.description, "instructions": self.instructions,
                             "paradigm": self.paradigm, "rating_scale": self.rating_scale,
                             "acceptance_radius_mm": self.acceptance_radius_mm,
                             "conditions": list(self.conditions),
                             "comparison": list(self.comparison) if self.comparison else None,
                             "readers": [_drop_none(asdict(r)) for r in self.readers],
                             "randomisation": asdict(self.randomisation), "blinding": asdict(self.blinding),
                             "navigation": asdict(self.navigation),
                             "display": {"layout": self.display.layout,
                                         "window": list(self.display.window) if self.display.window else None,
                                         "invert": self.display.invert},
                             "time_limit_s": self.time_limit_s, "cases": []}
        for c in self.cases:
            lesions = []
            for les in c.truth.lesions:
                ld = {"id": les.id, "center_lps": list(les.center_lps), "diameter_mm": les.diameter_mm,
                      "kind": les.kind}
                if les.weight is not None:
                    ld["weight"] = les.weight
                if les.extra:
                    ld["extra"] = les.extra
                lesions.append(ld)
            images = {}
            for cond, ref in c.images.items():
                if ref.spacing_mm is None and ref.window is None:
                    images[cond] = ref.path
                else:
                    images[cond] = _drop_none({"path": ref.path,
                                               "spacing_mm": list(ref.spacing_mm) if ref.spacing_mm else None,
                                               "window": list(ref.window) if ref.window else None})
            d["cases"].append({"id": c.id, "truth": {"lesions": lesions} if lesions else {"normal": True},
                               "images": images})
        if self.extra:
            d["extra"] = self.extra
        return d

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    def write(self, path: str | os.PathLike) -> Path:
        """Write ``study.json`` (validated first, so a written definition always loads back)."""
        p = Path(path)
        parse_definition(self.to_json(), p)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(self.dumps() + "\n", encoding="utf-8")
        os.replace(tmp, p)
        return p


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


# -- loading and validation ------------------------------------------------------------------------------------------
def definition_path(path: str | os.PathLike) -> Path:
    """The definition file of a study given as a folder (``study.json`` or ``study.toml``) or a file."""
    p = Path(path)
    if p.is_dir():
        for name in ("study.json", "study.toml"):
            if (p / name).is_file():
                return p / name
        raise InputError(p, "no study.json or study.toml in this folder")
    if not p.is_file():
        raise InputError(p, "no such study definition file")
    return p


def load_study_definition(path: str | os.PathLike, check_images: bool = True) -> StudyDefinition:
    """Read and validate a study definition (a file or a study folder); errors name the file and the field.

    ``check_images``: also check that every image exists relative to the definition's folder.
    """
    p = definition_path(path)
    text = p.read_bytes()
    try:
        if p.suffix.lower() == ".toml":
            import tomllib

            raw = tomllib.loads(text.decode("utf-8"))
        else:
            raw = json.loads(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(p, f"not valid {'TOML' if p.suffix.lower() == '.toml' else 'JSON'}: {exc}") from None
    d = parse_definition(raw, p)
    if check_images:
        for i, c in enumerate(d.cases):
            for cond, ref in c.images.items():
                img = resolve_image(p.parent, ref.path)
                if not img.exists():
                    raise InputError(p, f"cases[{i}].images[{cond!r}]: image {ref.path!r} not found "
                                        f"(relative to {p.parent})")
    return d


def resolve_image(study_dir: str | os.PathLike, path: str) -> Path:
    q = Path(path)
    return q if q.is_absolute() else Path(study_dir) / q


class _V:
    """Validation helpers that name the file and the field in every error."""

    def __init__(self, path: Path | None):
        self.path = path

    def fail(self, where: str, problem: str):
        raise InputError(self.path, f"{where}: {problem}" if where else problem)

    def get(self, d: dict, key: str, where: str, kind, default: Any = ..., allow_none: bool = False):
        if key not in d or (d[key] is None and not allow_none and default is not ...):
            if default is ...:
                self.fail(_join(where, key), "missing")
            return default
        v = d[key]
        if v is None and allow_none:
            return None
        if kind is float:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                self.fail(_join(where, key), f"expected a number, got {v!r}")
            return float(v)
        if kind is int:
            if isinstance(v, bool) or not isinstance(v, int):
                self.fail(_join(where, key), f"expected an integer, got {v!r}")
            return v
        if kind is bool:
            if not isinstance(v, bool):
                self.fail(_join(where, key), f"expected true or false, got {v!r}")
            return v
        if not isinstance(v, kind):
            names = {str: "a string", dict: "a table/object", list: "a list"}
            self.fail(_join(where, key), f"expected {names.get(kind, kind.__name__)}, got {v!r}")
        return v

    def numbers(self, v: Any, n: int, where: str, what: str) -> tuple[float, ...]:
        if (not isinstance(v, (list, tuple)) or len(v) != n
                or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in v)):
            self.fail(where, f"expected {n} numbers ({what}), got {v!r}")
        return tuple(float(x) for x in v)

    def known_keys(self, d: dict, allowed: set[str], where: str) -> None:
        unknown = sorted(set(d) - allowed)
        if unknown:
            self.fail(_join(where, unknown[0]), f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


_TOP_KEYS = {"format", "version", "name", "description", "instructions", "paradigm", "rating_scale",
             "acceptance_radius_mm", "conditions", "comparison", "readers", "randomisation", "blinding",
             "navigation", "display", "time_limit_s", "cases", "extra"}


def parse_definition(raw: Any, path: str | os.PathLike | None = None) -> StudyDefinition:
    """Validate a decoded definition (dict) into a :class:`StudyDefinition`; ``path`` only names errors."""
    v = _V(None if path is None else Path(path))
    if not isinstance(raw, dict):
        v.fail("", "a study definition must be a JSON object / TOML table at the top level")
    v.known_keys(raw, _TOP_KEYS, "")
    fmt = raw.get("format", FORMAT)
    if fmt != FORMAT:
        v.fail("format", f"expected {FORMAT!r}, got {fmt!r}")
    version = v.get(raw, "version", "", int)
    if version < 1 or version > FORMAT_VERSION:
        v.fail("version", f"this reviewer reads study definition versions 1..{FORMAT_VERSION}, got {version}")
    name = v.get(raw, "name", "", str).strip()
    if not name:
        v.fail("name", "must not be empty")
    paradigm = v.get(raw, "paradigm", "", str, "froc")
    if paradigm not in PARADIGMS:
        v.fail("paradigm", f"expected one of {', '.join(PARADIGMS)}, got {paradigm!r}")
    scale = v.get(raw, "rating_scale", "", str, "1-5")
    if scale not in RATING_SCALES:
        v.fail("rating_scale", f"expected one of {', '.join(RATING_SCALES)}, got {scale!r}")
    radius = v.get(raw, "acceptance_radius_mm", "", float, 5.0)
    if radius <= 0:
        v.fail("acceptance_radius_mm", f"must be > 0 mm, got {radius}")
    conditions = v.get(raw, "conditions", "", list)
    if not conditions:
        v.fail("conditions", "list at least one condition label")
    for i, c in enumerate(conditions):
        if not isinstance(c, str) or not c.strip():
            v.fail(f"conditions[{i}]", f"expected a non-empty label, got {c!r}")
    if len(set(conditions)) != len(conditions):
        v.fail("conditions", "labels must be unique")
    comparison = v.get(raw, "comparison", "", list, None, allow_none=True)
    if comparison is not None:
        if len(comparison) != 2 or any(c not in conditions for c in comparison) or comparison[0] == comparison[1]:
            v.fail("comparison", f"expected two different labels from conditions, got {comparison!r}")
        comparison = (comparison[0], comparison[1])

    readers = []
    for i, r in enumerate(v.get(raw, "readers", "", list, [])):
        w = f"readers[{i}]"
        if isinstance(r, str):
            r = {"id": r}
        if not isinstance(r, dict):
            v.fail(w, f"expected a reader table/object or an id string, got {r!r}")
        v.known_keys(r, {"id", "name", "seed"}, w)
        rid = v.get(r, "id", w, str).strip()
        if not rid:
            v.fail(f"{w}.id", "must not be empty")
        readers.append(ReaderDef(rid, v.get(r, "name", w, str, ""), v.get(r, "seed", w, int, None, allow_none=True)))
    if len({r.id for r in readers}) != len(readers):
        v.fail("readers", "reader ids must be unique")

    rd = v.get(raw, "randomisation", "", dict, {})
    v.known_keys(rd, {"seed", "shuffle", "separate_conditions", "counterbalance"}, "randomisation")
    rand = Randomisation(v.get(rd, "seed", "randomisation", int, 0), v.get(rd, "shuffle", "randomisation", bool, True),
                         v.get(rd, "separate_conditions", "randomisation", bool, True),
                         v.get(rd, "counterbalance", "randomisation", bool, True))
    bd = v.get(raw, "blinding", "", dict, {})
    v.known_keys(bd, {"hide_condition", "hide_file_names"}, "blinding")
    blinding = Blinding(v.get(bd, "hide_condition", "blinding", bool, True),
                        v.get(bd, "hide_file_names", "blinding", bool, True))
    nd = v.get(raw, "navigation", "", dict, {})
    v.known_keys(nd, {"allow_back"}, "navigation")
    navigation = Navigation(v.get(nd, "allow_back", "navigation", bool, False))
    dd = v.get(raw, "display", "", dict, {})
    v.known_keys(dd, {"layout", "window", "invert"}, "display")
    layout = v.get(dd, "layout", "display", str, "single")
    if layout != "single":
        v.fail("display.layout", f"only 'single' is supported, got {layout!r}")
    window = dd.get("window")
    if window is not None:
        window = v.numbers(window, 2, "display.window", "width, level")
        if window[0] <= 0:
            v.fail("display.window", "the window width must be > 0")
    display = Display(layout, window, v.get(dd, "invert", "display", bool, False))
    time_limit = v.get(raw, "time_limit_s", "", float, None, allow_none=True)
    if time_limit is not None and time_limit <= 0:
        v.fail("time_limit_s", f"must be > 0 seconds (or null for no limit), got {time_limit}")

    cases = []
    seen: set[str] = set()
    for i, c in enumerate(v.get(raw, "cases", "", list)):
        cases.append(_parse_case(v, c, f"cases[{i}]", conditions, blinding))
        if cases[-1].id in seen:
            v.fail(f"cases[{i}].id", f"duplicate case id {cases[-1].id!r}")
        seen.add(cases[-1].id)
    if not cases:
        v.fail("cases", "a study needs at least one case")
    for cond in conditions:
        if not any(cond in c.images for c in cases):
            v.fail("conditions", f"no case has an image for condition {cond!r}")
    extra = v.get(raw, "extra", "", dict, {})
    return StudyDefinition(name=name, conditions=list(conditions), cases=cases, readers=readers, paradigm=paradigm,
                           rating_scale=scale, acceptance_radius_mm=radius, randomisation=rand, blinding=blinding,
                           navigation=navigation, display=display, time_limit_s=time_limit,
                           instructions=v.get(raw, "instructions", "", str, ""),
                           description=v.get(raw, "description", "", str, ""), comparison=comparison,
                           version=version, extra=extra)


def _parse_case(v: _V, c: Any, w: str, conditions: list[str], blinding: Blinding) -> CaseDef:
    if not isinstance(c, dict):
        v.fail(w, f"expected a case table/object, got {c!r}")
    v.known_keys(c, {"id", "truth", "images"}, w)
    cid = v.get(c, "id", w, str).strip()
    if not cid:
        v.fail(f"{w}.id", "must not be empty")
    td = v.get(c, "truth", w, dict)
    v.known_keys(td, {"normal", "lesions"}, f"{w}.truth")
    normal = v.get(td, "normal", f"{w}.truth", bool, None, allow_none=True)
    raw_lesions = v.get(td, "lesions", f"{w}.truth", list, [])
    if normal is None and "lesions" not in td:
        v.fail(f"{w}.truth", "give either \"normal\": true or a list of \"lesions\"")
    if normal and raw_lesions:
        v.fail(f"{w}.truth", "a normal case cannot list lesions")
    if normal is False and not raw_lesions:
        v.fail(f"{w}.truth.lesions", "an abnormal case (normal = false) needs at least one lesion")
    lesions = []
    for j, ld in enumerate(raw_lesions):
        lw = f"{w}.truth.lesions[{j}]"
        if not isinstance(ld, dict):
            v.fail(lw, f"expected a lesion table/object, got {ld!r}")
        v.known_keys(ld, {"id", "center_lps", "diameter_mm", "kind", "weight", "extra"}, lw)
        lid = v.get(ld, "id", lw, int, j + 1)
        if lid < 1:
            v.fail(f"{lw}.id", f"lesion ids are positive integers (0 means 'no lesion' in JAFROC), got {lid}")
        if "center_lps" not in ld:
            v.fail(f"{lw}.center_lps", "missing")
        center = v.numbers(ld["center_lps"], 3, f"{lw}.center_lps", "LPS mm")
        diameter = v.get(ld, "diameter_mm", lw, float)
        if diameter <= 0:
            v.fail(f"{lw}.diameter_mm", f"must be > 0, got {diameter}")
        weight = v.get(ld, "weight", lw, float, None, allow_none=True)
        if weight is not None and not 0 < weight <= 1:
            v.fail(f"{lw}.weight", f"must be in (0, 1], got {weight}")
        lesions.append(Lesion(lid, center, diameter, v.get(ld, "kind", lw, str, "lesion"), weight,
                              v.get(ld, "extra", lw, dict, {})))
    if len({les.id for les in lesions}) != len(lesions):
        v.fail(f"{w}.truth.lesions", "lesion ids must be unique within a case")
    ws = [les.weight for les in lesions]
    if any(x is not None for x in ws):
        if any(x is None for x in ws):
            v.fail(f"{w}.truth.lesions", "give a weight for every lesion of the case or for none")
        if abs(sum(ws) - 1.0) > 1e-6:
            v.fail(f"{w}.truth.lesions", f"lesion weights must sum to 1, got {sum(ws):.6g}")
    images_raw = v.get(c, "images", w, dict)
    if not images_raw:
        v.fail(f"{w}.images", "give at least one image (condition label -> path)")
    images = {}
    for cond, ref in images_raw.items():
        iw = f"{w}.images[{cond!r}]"
        if cond not in conditions:
            v.fail(iw, f"unknown condition (conditions: {', '.join(map(repr, conditions))})")
        if isinstance(ref, str):
            ref = {"path": ref}
        if not isinstance(ref, dict):
            v.fail(iw, f"expected a path or {{path, spacing_mm, window}}, got {ref!r}")
        v.known_keys(ref, {"path", "spacing_mm", "window"}, iw)
        p = v.get(ref, "path", iw, str).strip()
        if not p:
            v.fail(f"{iw}.path", "must not be empty")
        spacing = ref.get("spacing_mm")
        if spacing is not None:
            spacing = v.numbers(spacing, 2, f"{iw}.spacing_mm", "row, column mm")
            if min(spacing) <= 0:
                v.fail(f"{iw}.spacing_mm", "spacings must be > 0")
        win = ref.get("window")
        if win is not None:
            win = v.numbers(win, 2, f"{iw}.window", "width, level")
        if blinding.hide_file_names:
            low = p.lower()
            for label in conditions:
                if _leaks(label, low):
                    v.fail(f"{iw}.path", f"the file name reveals condition {label!r} while blinding.hide_file_names "
                                         "is on: use opaque names (reviewer study create does)")
        images[cond] = ImageRef(p, spacing, win)
    return CaseDef(cid, Truth(lesions), images)


def _leaks(label: str, path_lower: str) -> bool:
    """Whether a path contains a condition label (as typed, or with spaces as _ or -)."""
    lab = label.lower().strip()
    if len(lab) < 3:
        return False
    forms = {lab, lab.replace(" ", "_"), lab.replace(" ", "-"), lab.replace(" ", "")}
    return any(f in path_lower for f in forms)
