"""Window (width / level) presets: CT in HU from ``resources/presets/windows.json``, percentile windows otherwise.

A window is ``(width, level)``: grey values ``level - width/2`` .. ``level + width/2`` map black .. white.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from reviewer.geometry import Volume
from reviewer.resources import load_json_resource


@dataclass(frozen=True)
class WindowPreset:
    key: str  # keyboard shortcut "1".."5", or "" for menu-only presets
    name: str
    width: float | None = None  # CT presets: fixed width / level
    level: float | None = None
    low_percentile: float | None = None  # percentile presets (MR and other non-CT images)
    high_percentile: float | None = None

    @property
    def is_percentile(self) -> bool:
        return self.width is None

    def window_for(self, volume: Volume) -> tuple[float, float]:
        if not self.is_percentile:
            return (float(self.width), float(self.level))
        return window_from_range(volume.robust_range(self.low_percentile, self.high_percentile))

    def label(self) -> str:
        k = f"{self.key}: " if self.key else ""
        if self.is_percentile:
            return f"{k}{self.name}"
        return f"{k}{self.name} (W {self.width:g} / L {self.level:g})"


@lru_cache(maxsize=1)
def load_presets() -> dict[str, tuple[WindowPreset, ...]]:
    """``{"ct": (...), "mr": (...)}`` as shipped in resources/presets/windows.json."""
    data = load_json_resource("presets", "windows.json")
    out = {}
    for group in ("ct", "mr"):
        out[group] = tuple(WindowPreset(**{k: v for k, v in p.items()}) for p in data[group])
    return out


def is_ct(volume: Volume) -> bool:
    return volume.modality.upper() == "CT" or volume.unit.upper() == "HU"


def presets_for(volume: Volume) -> tuple[WindowPreset, ...]:
    """The presets that make sense for this volume (CT: HU presets; anything else: percentile windows)."""
    return load_presets()["ct" if is_ct(volume) else "mr"]


def find_preset(volume: Volume, key: int | str) -> WindowPreset:
    """Preset by shortcut (1-5, int or str) or name (case-insensitive).

    Non-CT volumes get the percentile ("auto") windows: shortcut 2 is the 0.1-99.9% range, every other shortcut
    the 1-99.5% auto window, so the CT keys never produce a useless window on an MR image.
    """
    k = str(key).strip().lower()
    presets = presets_for(volume)
    for p in presets:
        if k == p.key or k == p.name.lower():
            return p
    if not is_ct(volume) and (k.isdigit() or k in {p.name for p in load_presets()["ct"]} or k == "auto"):
        return presets[0]
    names = ", ".join(p.name for p in presets)
    raise KeyError(f"unknown window preset {key!r}; known: {names}")


def window_from_range(lo_hi: tuple[float, float]) -> tuple[float, float]:
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    if hi <= lo:
        hi = lo + 1.0
    return (hi - lo, (hi + lo) / 2.0)


def default_window(volume: Volume) -> tuple[float, float]:
    """The file's window when it has one, else the 0.1-99.9% intensity range."""
    if volume.default_window is not None:
        w, l = volume.default_window
        if w and w > 0:
            return (float(w), float(l))
    return window_from_range(volume.robust_range(0.1, 99.9))
