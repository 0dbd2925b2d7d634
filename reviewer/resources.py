"""Locate files shipped in the repository's ``resources/`` folder (presets, icons, model cards, weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESOURCES = Path(__file__).resolve().parent.parent / "resources"


def resource_path(*parts: str) -> Path:
    p = RESOURCES.joinpath(*parts)
    if not p.exists():
        raise FileNotFoundError(f"{p}: shipped resource missing (is the package installed from a full checkout?)")
    return p


def load_json_resource(*parts: str) -> Any:
    return json.loads(resource_path(*parts).read_text())


def cache_dir(*parts: str) -> Path:
    """The user's cache directory for generated data (demo data never goes in the repository)."""
    import os

    from platformdirs import user_cache_dir

    base = Path(os.environ.get("REVIEWER_CACHE") or user_cache_dir("reviewer"))
    p = base.joinpath(*parts)
    p.mkdir(parents=True, exist_ok=True)
    return p
