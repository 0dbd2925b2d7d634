"""The demo MRI dataset: deterministic train / val / test splits of synthetic knees in fastMRI format.

Different seeds give different anatomy, so the test split is held out from training. Files go to the user cache
(``demo/mri-dataset-v1/<split>``) and are generated once.
"""

from __future__ import annotations

import json
from pathlib import Path

from reviewer.jobs import JobToken

SPLITS = {"train": (1000, 24), "val": (2000, 4), "test": (3000, 6)}  # first seed, number of files
SLICES_PER_FILE = 8
VERSION = 1


def demo_mri_split(split: str, root: Path | None = None, token: JobToken | None = None) -> Path:
    """Folder holding the ``split`` files, generated on first use."""
    from reviewer.demo import mri
    from reviewer.resources import cache_dir

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    first, n = SPLITS[split]
    folder = (Path(root) if root else cache_dir("demo", f"mri-dataset-v{VERSION}")) / split
    manifest = folder / "manifest.json"
    want = {"version": VERSION, "generator": mri.GENERATOR_VERSION, "first_seed": first, "n_files": n,
            "slices": SLICES_PER_FILE}
    if manifest.exists() and json.loads(manifest.read_text()) == want:
        return folder
    mri.make_fastmri_dataset(folder, n_files=n, first_seed=first, n_slices=SLICES_PER_FILE, token=token)
    manifest.write_text(json.dumps(want))
    return folder
