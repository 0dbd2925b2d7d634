"""Shared test set-up: offscreen Qt, the shared real data folder, and a temporary cache for demo data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Demo data and other cache writes go to a temporary folder, never the user's cache."""
    os.environ["REVIEWER_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["REVIEWER_CONFIG"] = str(tmp_path_factory.mktemp("config"))
    yield
