"""PNG key images: the slice through a finding, in radiological orientation, with the overlay where it belongs."""

from __future__ import annotations

import numpy as np
from PIL import Image

from reviewer.export.key_images import render_slice, write_key_images
from reviewer.findings import Finding
from reviewer.geometry import Volume
from reviewer.view.overlays import LabelMapOverlay


def test_key_image_orientation_scale_and_overlays(tmp_path):
    arr = np.full((5, 40, 50), -1000, np.int16)
    vol = Volume.from_array(arr, spacing=(1.0, 1.0, 2.0), modality="CT", unit="HU")
    # a bright block on the patient's left (+x in LPS): radiological display puts it on the image's right
    arr[2, 18:22, 40:44] = 300
    mask = np.zeros(vol.shape, np.uint8)
    mask[2, 18:22, 40:44] = 1
    f = Finding(tuple(vol.geometry.voxel_to_world((10.0, 20.0, 2.0))), diameter_mm=8.0, observer="m")
    (path,) = write_key_images(vol, [f], [LabelMapOverlay(Volume(mask, vol.geometry), name="mask")], tmp_path,
                               label=lambda x: "")
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    h, w, _ = img.shape
    assert w == 512 and h == round(512 * 40 / 50)  # square pixels in mm, at least 512 px wide
    scale = w / 50
    # the mask (red, label 1) over the bright block, on the right half
    cx, cy = int((42 + 0.5) * scale), int((20 + 0.5) * scale)
    r, g, b = img[cy, cx]
    assert r > g + 40 and r > b + 40
    # the finding's circle (8 mm diameter -> radius 4 mm) around voxel (10, 20): ring pixels at 4 mm, none inside
    ring = img[int((20 + 0.5) * scale), int((10 + 0.5 + 4) * scale) - 2:int((10 + 0.5 + 4) * scale) + 3]
    assert (ring[:, 2] > 150).any() and (ring[:, 0] < 100).any()  # device colour: cyan
    centre = img[int((20 + 0.5) * scale), int((10 + 0.5) * scale)]
    assert tuple(centre) == (60, 60, 60)  # air inside the circle: lung window (1500, -600) gives grey 60


def test_render_without_overlays_is_the_windowed_slice():
    from reviewer.view.windowing import WindowLUT

    arr = np.linspace(-1000, 400, 3 * 8 * 8).reshape(3, 8, 8).astype(np.float32)
    vol = Volume.from_array(arr, modality="CT", unit="HU")
    img = np.asarray(render_slice(vol, "axial", 1, [], window=(1400.0, -300.0)).convert("L")).astype(int)
    expected = WindowLUT().apply(arr[1], (1400.0, -300.0))
    centres = (np.arange(8) + 0.5) * 64  # 8 pixels of 1 mm drawn 64 px each; bilinear is exact at their centres
    np.testing.assert_allclose(img[np.ix_(centres.astype(int), centres.astype(int))], expected, atol=2)
