"""Opening a study picks the acquisition plane; thin 2D stacks open in the single layout."""

from __future__ import annotations

import numpy as np

from reviewer.geometry import Volume
from reviewer.view.state import ViewerState, acquisition_plane, is_thin_stack

CORONAL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
SAGITTAL = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def test_acquisition_plane_and_thin_stack():
    ct = Volume.from_array(np.zeros((100, 64, 64), np.int16), spacing=(0.7, 0.7, 1.0))
    knee = Volume.from_array(np.zeros((14, 64, 64), np.float32), spacing=(0.44, 0.44, 3.0), direction=CORONAL)
    sag = Volume.from_array(np.zeros((30, 64, 64), np.float32), spacing=(1, 1, 1), direction=SAGITTAL)
    assert acquisition_plane(ct) == "axial" and not is_thin_stack(ct)
    assert acquisition_plane(knee) == "coronal" and is_thin_stack(knee)
    assert acquisition_plane(sag) == "sagittal"


def test_set_primary_switches_layout_and_orientation():
    state = ViewerState()
    state.set_layout("mpr")
    seen = []
    state.events.layout.connect(seen.append)
    ct = Volume.from_array(np.zeros((100, 64, 64), np.int16), spacing=(0.7, 0.7, 1.0), modality="CT")
    state.set_primary(ct)
    assert state.layout == "mpr" and state.orientation == "axial"
    knee = Volume.from_array(np.zeros((14, 64, 64), np.float32), spacing=(0.44, 0.44, 3.0), direction=CORONAL)
    state.set_primary(knee)
    assert state.layout == "single" and state.orientation == "coronal" and seen[-1] == "single"


def test_demo_fastmri_opens_coronal(tmp_path):
    from reviewer.demo.mri import make_fastmri_file
    from reviewer.io.loader import load_volume

    path = make_fastmri_file(tmp_path / "knee.h5", seed=1, n_slices=3)
    vol = load_volume(path)
    assert acquisition_plane(vol) == "coronal"
    assert any("no patient orientation" in w for w in vol.warnings)
