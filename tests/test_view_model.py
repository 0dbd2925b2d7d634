"""Headless tests of the viewer model: reslice frames, labels, overlays, presets, events, state, read-out."""

from __future__ import annotations

import numpy as np
import pytest

from reviewer.geometry import Volume
from reviewer.view import reslice
from reviewer.view.events import EventGroup
from reviewer.view.overlays import (
    BoxesOverlay,
    Ellipses,
    HeatMapOverlay,
    LabelMapOverlay,
    Markers,
    PointsOverlay,
    Rects,
    RGBAImage,
    SlicePlane,
    SpheresOverlay,
)
from reviewer.view.presets import default_window, find_preset
from reviewer.view.state import ViewerState
from reviewer.view.windowing import WindowLUT

ORIS = reslice.ORIENTATIONS


def _rot(axis: int, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    m = np.eye(3)
    a, b = [x for x in range(3) if x != axis]
    m[a, a], m[a, b], m[b, a], m[b, b] = c, -s, s, c
    return m


DIRECTIONS = {
    "identity": np.eye(3),
    "flipped": np.diag([-1.0, 1.0, -1.0]),
    # sagittal acquisition: i -> P (y), j -> I (-z), k -> L (x)
    "sagittal": np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
    "oblique": _rot(2, 20.0) @ _rot(0, 10.0),
}


def _vol(direction, shape=(12, 16, 20), spacing=(0.7, 0.9, 2.5), dtype=np.int16) -> Volume:
    arr = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    return Volume.from_array(arr, spacing=spacing, origin=(10.0, -20.0, 30.0), direction=direction,
                             modality="CT", unit="HU", name="v")


@pytest.mark.parametrize("dname", list(DIRECTIONS))
@pytest.mark.parametrize("ori", ORIS)
def test_round_trip_and_slice_view(dname, ori):
    vol = _vol(DIRECTIONS[dname])
    fr = reslice.display_frame(vol, ori)
    rng = np.random.default_rng(0)
    for _ in range(10):
        x, y, n = rng.uniform(0, fr.width - 1), rng.uniform(0, fr.height - 1), rng.integers(0, fr.n_slices)
        world = reslice.screen_to_world(vol, ori, x, y, n)
        assert np.allclose(reslice.world_to_screen(vol, ori, world), (x, y, n))
        assert reslice.slice_index_of_world(vol, ori, world) == n
    # the slice image is a view whose pixel (y, x) is the voxel at the mapped index
    n = fr.n_slices // 2
    img = reslice.slice_image(vol, ori, n)
    assert img.shape == (fr.height, fr.width) and np.shares_memory(img, vol.array)
    for x, y in [(0, 0), (fr.width - 1, 0), (3, fr.height - 1)]:
        i, j, k = np.rint(fr.display_to_voxel((x, y, n))).astype(int)
        assert img[y, x] == vol.array[k, j, i]
    # pixel sizes come from the spacing of the displayed axes
    sx, sy = reslice.pixel_size(vol, ori)
    assert sx == vol.spacing[fr.voxel_axes[0]] and sy == vol.spacing[fr.voxel_axes[1]]


EXPECTED = {
    "axial": {"left": "R", "right": "L", "top": "A", "bottom": "P"},
    "coronal": {"left": "R", "right": "L", "top": "S", "bottom": "I"},
    "sagittal": {"left": "A", "right": "P", "top": "S", "bottom": "I"},
}


@pytest.mark.parametrize("dname", ["identity", "flipped", "sagittal"])
@pytest.mark.parametrize("ori", ORIS)
def test_labels_radiological_convention(dname, ori):
    vol = _vol(DIRECTIONS[dname])
    assert reslice.edge_labels(vol, ori) == EXPECTED[ori]
    fr = reslice.display_frame(vol, ori)
    # screen directions really point that way in the world
    d = fr.display_to_world((1, 0, 0)) - fr.display_to_world((0, 0, 0))
    ax = {"axial": 0, "coronal": 0, "sagittal": 1}[ori]
    assert d[ax] > 0  # screen x runs towards L (axial/coronal) or P (sagittal)
    normal = fr.display_to_world((0, 0, 1)) - fr.display_to_world((0, 0, 0))
    expect_normal = {"axial": (2, +1), "coronal": (1, -1), "sagittal": (0, -1)}[ori]
    assert np.sign(normal[expect_normal[0]]) == expect_normal[1]


def test_oblique_labels_combined():
    vol = _vol(DIRECTIONS["oblique"])
    labels = reslice.edge_labels(vol, "axial")
    assert labels["left"].startswith("R") and len(labels["left"]) >= 2
    assert labels["top"].startswith("A") and len(labels["top"]) >= 2


def test_display_array_is_view_no_copy():
    vol = _vol(DIRECTIONS["sagittal"])
    for ori in ORIS:
        assert np.shares_memory(reslice.display_frame(vol, ori).display_array(vol.array), vol.array)


@pytest.mark.parametrize("dname", ["identity", "flipped", "oblique"])
@pytest.mark.parametrize("ori", ORIS)
def test_overlay_cuts(dname, ori):
    vol = _vol(DIRECTIONS[dname], shape=(30, 40, 40), spacing=(1.0, 1.0, 1.0))
    fr = reslice.display_frame(vol, ori)
    c = fr.display_to_world((20, 15, 12))
    plane = SlicePlane(fr, 12)
    (m,) = PointsOverlay([c], labels=["p"]).cut(plane)
    assert isinstance(m, Markers) and np.allclose(m.xy, [[20, 15]]) and m.labels == ["p"]
    assert PointsOverlay([c]).cut(SlicePlane(fr, 14)) == []
    (e,) = SpheresOverlay([c], [5.0]).cut(SlicePlane(fr, 15))
    assert isinstance(e, Ellipses) and np.allclose(e.centers, [[20, 15]]) and np.allclose(e.radii, 4.0)
    assert SpheresOverlay([c], [5.0]).cut(SlicePlane(fr, 18)) == []
    boxes = BoxesOverlay.from_voxel_boxes(vol.geometry, [[5, 6, 7]], [[9, 10, 11]])
    vox = np.array([7, 8, 9.0])  # centre of that box
    dc = fr.voxel_to_display(vox)
    (r,) = boxes.cut(SlicePlane(fr, int(round(dc[2]))))
    assert isinstance(r, Rects)
    assert np.all(r.mins[0] < dc[:2]) and np.all(r.maxs[0] > dc[:2])
    assert boxes.cut(SlicePlane(fr, int(round(dc[2])) + 5)) == []
    # label map on the same grid = direct slice; on another grid = nearest resampling; same answer here
    lab = np.zeros(vol.shape, np.uint8)
    lab[9, 8, 7] = 2  # (k, j, i)
    lm = LabelMapOverlay(Volume(lab, vol.geometry), colors={2: (0, 255, 0)})
    (img,) = lm.cut(SlicePlane(fr, int(round(dc[2]))))
    assert isinstance(img, RGBAImage) and img.rgba.shape == (fr.height, fr.width, 4)
    x, y = np.rint(dc[:2]).astype(int)
    assert tuple(img.rgba[y, x]) == (0, 255, 0, 255) and img.rgba[..., 3].sum() == 255


def test_label_and_heat_map_resampled_on_other_grid():
    vol = _vol(np.eye(3), shape=(20, 20, 20), spacing=(1.0, 1.0, 1.0))
    # overlay grid: flipped, 2 mm, covering the same world box
    flipped = np.diag([-1.0, 1.0, -1.0])
    origin = vol.voxel_to_world((19, 0, 19))
    lab = np.zeros((10, 10, 10), np.uint8)
    lab[2, 3, 4] = 1  # i=4, j=3, k=2 -> world = origin + (-8, 6, -4)
    ov_vol = Volume.from_array(lab, spacing=(2.0, 2.0, 2.0), origin=origin, direction=flipped)
    world = ov_vol.voxel_to_world((4, 3, 2))
    fr = reslice.display_frame(vol, "axial")
    plane = SlicePlane(fr, fr.slice_index_of_world(world))
    (img,) = LabelMapOverlay(ov_vol).cut(plane)
    x, y, _ = np.rint(fr.world_to_display(world)).astype(int)
    assert img.rgba[y, x, 3] == 255
    heat = Volume.from_array(lab.astype(np.float32), spacing=(2.0, 2.0, 2.0), origin=origin, direction=flipped)
    (h,) = HeatMapOverlay(heat, range=(0.0, 1.0)).cut(plane)
    assert h.rgba[y, x, 3] == 255 and h.rgba[0, 0, 3] == 0


def test_presets_ct_and_mr():
    ct = _vol(np.eye(3))
    assert find_preset(ct, 1).window_for(ct) == (1500.0, -600.0)
    assert find_preset(ct, "2").window_for(ct) == (350.0, 50.0)
    assert find_preset(ct, 3).window_for(ct) == (400.0, 40.0)
    assert find_preset(ct, 4).window_for(ct) == (2500.0, 480.0)
    assert find_preset(ct, 5).window_for(ct) == (80.0, 40.0)
    assert find_preset(ct, "liver").window_for(ct) == (150.0, 90.0)
    mr = Volume.from_array(np.linspace(0, 1000, 1000, dtype=np.float32).reshape(10, 10, 10), modality="MR")
    w, l = find_preset(mr, 1).window_for(mr)
    lo, hi = np.percentile(mr.array, [1, 99.5])
    assert np.isclose(w, hi - lo, rtol=1e-3) and np.isclose(l, (hi + lo) / 2, rtol=1e-3)
    with pytest.raises(KeyError):
        find_preset(ct, "nonsense")
    ct.default_window = (123.0, 45.0)
    assert default_window(ct) == (123.0, 45.0)


def test_window_lut_matches_float_path():
    lut = WindowLUT()
    vals = np.array([[-2000, -1350, -600, 0, 150, 3000]], np.int16)
    a = lut.apply(vals, (1500, -600))
    b = lut.apply(vals.astype(np.float32), (1500, -600))
    assert a.dtype == np.uint8 and np.array_equal(a, b)
    assert a[0, 0] == 0 and a[0, -1] == 255 and a[0, 2] == 128
    assert lut.apply(vals, (1500, -600), inverted=True)[0, 0] == 255


def test_events_connect_disconnect_batch():
    ev = EventGroup("a", "b")
    got = []
    cb = got.append
    ev.a.connect(cb)
    ev.a.emit(1)
    with ev.batch():
        ev.a.emit(2)
        ev.a.emit(3)
        assert got == [1]
    assert got == [1, 3]
    ev.a.disconnect(cb)
    ev.a.emit(4)
    assert got == [1, 3]

    class Listener:
        def __init__(self):
            self.n = 0

        def on(self, v):
            self.n += 1

    lis = Listener()
    ev.b.connect(lis.on)
    ev.b.emit(0)
    assert lis.n == 1 and ev.b.n_callbacks == 1
    del lis  # weak reference to bound methods: no leak, no error
    ev.b.emit(0)
    assert ev.b.n_callbacks == 0


def test_state_linking_and_readout():
    vol = _vol(np.diag([-1.0, 1.0, -1.0]), shape=(20, 30, 40))
    st = ViewerState(vol, "ct")
    seen = {n: [] for n in st.events.names}
    for n in st.events.names:
        st.events[n].connect(seen[n].append)
    target = vol.voxel_to_world((5, 7, 11))
    st.set_crosshair(target)
    for o in ORIS:
        assert np.allclose(st.frame(o).display_to_world(st.frame(o).world_to_display(target)), target)
    assert st.slice_index("axial") == reslice.slice_index_of_world(vol, "axial", target)
    idx = st.step_slice("axial", 1)
    assert idx == st.slice_index("axial")
    # moving along the axial normal leaves the in-plane position (and the other views' slices) alone
    assert st.slice_index("coronal") == reslice.slice_index_of_world(vol, "coronal", target)
    assert st.set_slice("axial", 10_000) == st.n_slices("axial") - 1
    st.apply_preset(1)
    assert st.window == (1500.0, -600.0) and seen["window"][-1] == (1500.0, -600.0)
    st.toggle_invert()
    assert st.inverted and seen["inverted"] == [True]
    st.set_view("axial", zoom=2.0, pan=(3.0, 4.0))
    st.reset_view()
    assert st.view("axial").zoom == 1.0 and not st.inverted and st.window == default_window(vol)
    st.add_pane("model B", vol)
    st.set_layout("compare")
    assert [p.name for p, _ in st.visible_panes()] == ["ct", "model B"]
    st.set_layout("mpr")
    assert [o for _, o in st.visible_panes()] == list(ORIS)
    with pytest.raises(ValueError):
        st.set_layout("bogus")
    st.add_overlay(PointsOverlay([target], name="cad"))
    st.set_overlay_visible("cad", False)
    assert not st.overlay("cad").visible
    text = st.readout(target)
    lines = text.splitlines()
    assert len(lines) == 2 and lines[0].startswith("ct: ")
    v = int(vol.array[11, 7, 5])
    assert f"{v} HU" in lines[0] and "voxel (5, 7, 11)" in lines[0]
    assert f"{target[0]:.1f}, {target[1]:.1f}, {target[2]:.1f} mm (LPS)" in lines[0]
    assert "outside" in st.readout(target + 1000)
    st.remove_pane("model B")
    assert st.pane_names == ("ct",)


def test_batch_coalesces_state_events():
    st = ViewerState(_vol(np.eye(3)), "ct")
    got = []
    st.events.crosshair.connect(got.append)
    with st.batch():
        for _ in range(5):
            st.step_slice("axial", 1)
    assert len(got) == 1
