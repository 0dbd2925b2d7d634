"""Domain check: does a study fall inside the acquisition ranges a model card states (``intended``)?

Card keys (all optional): ``modality`` (list), ``slice_thickness_mm`` and ``inplane_spacing_mm`` ([lo, hi]),
``hu_range`` ([lo, hi]: the robust 0.1-99.9 percentile intensity range must lie inside, and a CT must contain
air near -1000 HU, otherwise the values are probably not Hounsfield units). Every problem is one readable line;
the pipeline attaches them to its result so the CLI prints them and the GUI shows them.
"""

from __future__ import annotations

from reviewer.geometry import Volume


def slice_thickness_mm(volume: Volume) -> float:
    """Slice thickness from the header when known, else the spacing between slices."""
    md = volume.metadata or {}
    for key in ("slice_thickness", "SliceThickness", "slice_thickness_mm"):
        v = md.get(key)
        try:
            if v is not None and float(v) > 0:
                return max(float(v), float(volume.spacing[2]))
        except (TypeError, ValueError):
            pass
    return float(volume.spacing[2])


def check_domain(volume: Volume, card) -> list[str]:
    intended = getattr(card, "intended", card) or {}
    name = getattr(card, "name", "the model")
    warnings: list[str] = []
    mods = intended.get("modality") or ([getattr(card, "modality", "")] if getattr(card, "modality", "") else [])
    mod = (volume.modality or "").upper()
    if mods and mod and mod not in [m.upper() for m in mods]:
        warnings.append(f"modality {mod} is outside {name}'s domain ({', '.join(mods)})")
    elif mods and not mod:
        warnings.append(f"modality unknown; {name} was trained on {', '.join(mods)}")
    th = intended.get("slice_thickness_mm")
    if th:
        t = slice_thickness_mm(volume)
        if not th[0] <= t <= th[1]:
            warnings.append(f"slice thickness {t:.2f} mm is outside {name}'s range {th[0]:g}-{th[1]:g} mm: "
                            "small nodules may be missed and scores are unreliable")
    ip = intended.get("inplane_spacing_mm")
    if ip:
        s = volume.spacing[:2]
        if not all(ip[0] <= v <= ip[1] for v in s):
            warnings.append(f"in-plane spacing {s[0]:.3f} x {s[1]:.3f} mm is outside {name}'s range "
                            f"{ip[0]:g}-{ip[1]:g} mm")
    hr = intended.get("hu_range")
    if hr:
        lo, hi = volume.robust_range(0.1, 99.9)
        if lo < hr[0] or hi > hr[1]:
            warnings.append(f"intensity range {lo:.0f}..{hi:.0f} is outside {name}'s range {hr[0]:g}..{hr[1]:g} HU")
        elif (mod in ("", "CT")) and lo > -800:
            warnings.append(f"no air near -1000 HU (lowest {lo:.0f}): the values may not be Hounsfield units")
    return warnings


def merge_warnings(*lists: list[str]) -> list[str]:
    seen: list[str] = []
    for lst in lists:
        for w in lst:
            if w not in seen:
                seen.append(w)
    return seen


__all__ = ["check_domain", "slice_thickness_mm", "merge_warnings"]
