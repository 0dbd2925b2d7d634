"""Demo-data generators: determinism, HU realism, nodule placement, file formats, caching."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest

from reviewer.demo import chest_ct, generate_demo, mri
from reviewer.jobs import JobToken

SMALL = dict(shape=(96, 160, 160), spacing=(2.2, 2.2, 3.2))  # the same anatomy on a coarse grid (fast)


@pytest.fixture(scope="module")
def ct():
    return chest_ct.make_chest_ct(0)


@pytest.fixture(scope="module")
def demo():
    seen = []
    t0 = time.perf_counter()
    data = generate_demo(token=JobToken(lambda p: seen.append(p), min_interval_s=0.0))  # default: the cache dir
    dt = time.perf_counter() - t0
    print(f"\ngenerate_demo took {dt:.2f} s")
    return data, dt, seen


def test_ct_deterministic():
    a, na = chest_ct.make_chest_ct(3, **SMALL)
    b, nb = chest_ct.make_chest_ct(3, **SMALL)
    assert a.array.dtype == np.int16
    assert np.array_equal(a.array, b.array)
    assert [n.to_dict() for n in na] == [n.to_dict() for n in nb]
    c, _ = chest_ct.make_chest_ct(4, **SMALL)
    assert not np.array_equal(a.array, c.array)


def test_ct_hu_statistics(ct):
    vol, _ = ct
    a = vol.array
    assert a.min() >= -1024 and a.max() <= 3071
    assert abs(np.median(a[:, :4, :4]) + 1000) < 15  # air in a corner
    lung = chest_ct.lung_mask(vol)
    assert lung.sum() * np.prod(vol.spacing) / 1e6 > 2.0  # litres of lung
    assert -900 < np.median(a[lung]) < -750
    assert (a > 700).sum() > 2000  # cortical bone
    soft = a[(a > -200) & (a < 200)].astype(float)
    hist, edges = np.histogram(soft, bins=80, range=(-200, 200))
    hist = np.convolve(hist, np.ones(5) / 5, mode="same")
    peak_soft = edges[np.argmax(hist * (edges[:-1] > -20))] + 2.5
    peak_fat = edges[np.argmax(hist * (edges[:-1] < -50))] + 2.5
    assert 20 <= peak_soft <= 60, peak_soft
    assert -130 <= peak_fat <= -70, peak_fat


def test_ct_nodules(ct):
    vol, nodules = ct
    assert 6 <= len(nodules) <= 10
    assert {n.kind for n in nodules} == set(chest_ct.KINDS)
    assert len({n.id for n in nodules}) == len(nodules)
    lung = chest_ct.lung_mask(vol)
    for n in nodules:
        assert 3.0 <= n.diameter_mm <= 30.0
        idx = vol.geometry.world_to_array_index(n.center)
        assert idx is not None
        k, j, i = idx
        hu = float(vol.array[k - 0 : k + 1, j - 1 : j + 2, i - 1 : i + 2].mean()) if n.diameter_mm >= 6 and n.kind != "part-solid" else float(vol.array[idx])
        if n.kind == "ground-glass":
            assert -800 < hu < -350, (n, hu)
        else:  # solid, or the solid core of a part-solid nodule
            assert hu > -150, (n, hu)
        assert lung[idx], n


def test_ct_flipped_direction_same_world():
    d = np.diag([-1.0, 1.0, -1.0])
    a, na = chest_ct.make_chest_ct(1, **SMALL)
    b, nb = chest_ct.make_chest_ct(1, direction=d, **SMALL)
    assert b.geometry.nearest_orientation_code() == "RPI"
    assert [n.center for n in na] == [n.center for n in nb]
    assert np.allclose(a.geometry.center_world(), b.geometry.center_world())
    for n in nb:
        assert a.value_at_world(n.center) == b.value_at_world(n.center)
    assert np.array_equal(a.array[::-1, :, ::-1], b.array)
    # a permuted grid (sagittal-like axes) still places everything at the same world positions
    p = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float)
    c, nc = chest_ct.make_chest_ct(1, direction=p, shape=(160, 96, 160), spacing=(2.2, 3.2, 2.2))
    for n in nc:
        assert a.value_at_world(n.center) == c.value_at_world(n.center)


def test_insert_nodule_into_existing_volume():
    vol, _ = chest_ct.make_chest_ct(2, nodules=[], **SMALL)
    arr = vol.array.copy()
    lung = chest_ct.lung_mask(vol)
    k, j, i = np.argwhere(lung)[len(np.argwhere(lung)) // 3]
    c = vol.geometry.voxel_to_world((i, j, k))
    nod = chest_ct.Nodule(tuple(c), 12.0, "solid", id="x")
    sl = chest_ct.insert_nodule(arr, vol.geometry, nod, np.random.default_rng(0))
    assert sl is not None and arr.dtype == np.int16
    assert arr[k, j, i] > -100
    assert np.array_equal(arr[:, :, : max(0, i - 20)], vol.array[:, :, : max(0, i - 20)])


def test_mri_slices_and_kspace():
    imgs = mri.make_mri_slices(seed=1, n_slices=4, shape=(320, 184))
    assert imgs.shape == (4, 320, 184) and imgs.dtype == np.complex64
    assert np.array_equal(imgs, mri.make_mri_slices(seed=1, n_slices=4, shape=(320, 184)))
    assert not np.array_equal(imgs, mri.make_mri_slices(seed=2, n_slices=4, shape=(320, 184)))
    assert np.ptp(np.angle(imgs[0][np.abs(imgs[0]) > 0.3 * np.abs(imgs[0]).max()])) > 0.1  # has phase
    k = mri.simulate_kspace(imgs, 0.0)
    assert np.allclose(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)), imgs, atol=1e-7)


def test_demo_files(demo, ct):
    data, dt, seen = demo
    import SimpleITK as sitk
    import h5py

    assert seen and seen[-1].done == seen[-1].total
    # CT .mhd round trip
    vol, nodules = ct
    img = sitk.ReadImage(str(data.ct_path))
    assert np.allclose(img.GetOrigin(), vol.origin) and np.allclose(img.GetSpacing(), vol.spacing)
    assert np.allclose(np.reshape(img.GetDirection(), (3, 3)), vol.direction)
    assert np.array_equal(sitk.GetArrayFromImage(img), vol.array)
    assert data.ct_path.stem == data.series_uid
    # LUNA16 annotations
    with open(data.ct_nodules_csv) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0].keys()) == ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
    assert len(rows) == len(nodules) and all(r["seriesuid"] == data.series_uid for r in rows)
    for r, n in zip(rows, nodules):
        xyz = (float(r["coordX"]), float(r["coordY"]), float(r["coordZ"]))
        assert np.allclose(xyz, n.center, atol=1e-3)
        # world -> index exactly as a LUNA16 user would with SimpleITK
        idx = img.TransformPhysicalPointToIndex(xyz)
        assert tuple(idx[::-1]) == vol.geometry.world_to_array_index(xyz)
    js = json.loads(data.ct_nodules_json.read_text())
    assert [n["kind"] for n in js["nodules"]] == [n.kind for n in nodules]
    # fastMRI file
    with h5py.File(data.mri_path, "r") as f:
        k = f["kspace"][()]
        esc = f["reconstruction_esc"][()]
        rss = f["reconstruction_rss"][()]
        hdr = f["ismrmrd_header"][()]
        attrs = dict(f.attrs)
    assert k.dtype == np.complex64 and k.ndim == 3 and k.shape[1:] == (640, 368) and 12 <= k.shape[0] <= 16
    assert esc.dtype == np.float32 and esc.shape == (k.shape[0], 320, 320) and rss.shape == esc.shape
    img_ = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(k, axes=(1, 2)), axes=(1, 2), norm="ortho"), axes=(1, 2))
    r0, c0 = (640 - 320) // 2, (368 - 320) // 2
    ref = np.abs(img_[:, r0 : r0 + 320, c0 : c0 + 320])
    assert np.allclose(esc, ref, rtol=1e-4, atol=1e-6 * ref.max())
    assert attrs["acquisition"] == "CORPD_FBK"
    assert np.isclose(attrs["max"], esc.max()) and np.isclose(attrs["norm"], np.linalg.norm(esc), rtol=1e-4)
    assert attrs["patient_id"]
    import xml.etree.ElementTree as ET

    root = ET.fromstring(hdr)
    ns = {"m": "http://www.ismrm.org/ISMRMRD"}
    enc = root.find("m:encoding", ns)
    assert enc.find("m:encodedSpace/m:matrixSize/m:x", ns).text == "640"
    assert enc.find("m:reconSpace/m:matrixSize/m:x", ns).text == "320"
    fov = float(enc.find("m:reconSpace/m:fieldOfView_mm/m:x", ns).text)
    assert 0.4 <= fov / 320 <= 0.6
    # noise floor: background is not exactly zero
    assert np.median(np.abs(img_[:, :20, :20])) > 0


def test_demo_cached_and_deterministic(demo, tmp_path):
    data, dt, _ = demo
    mt = {p: (p.stat().st_mtime_ns) for p in (data.ct_path, data.mri_path, data.ct_nodules_csv)}
    t0 = time.perf_counter()
    again = generate_demo(data.ct_path.parent)
    assert time.perf_counter() - t0 < 0.5
    assert again.as_dict() == data.as_dict()
    assert {p: p.stat().st_mtime_ns for p in mt} == mt
    # a second, independent generation gives byte-identical files
    other = generate_demo(tmp_path / "again")
    for a, b in zip(data.as_dict().values(), other.as_dict().values()):
        assert open(a, "rb").read() == open(b, "rb").read(), (a, b)
    assert open(data.ct_path.with_suffix(".raw"), "rb").read() == open(other.ct_path.with_suffix(".raw"), "rb").read()
    print(f"generate_demo: {dt:.2f} s")


def test_demo_default_dir_is_cache(demo):
    from reviewer.resources import cache_dir

    assert str(demo[0].ct_path).startswith(str(cache_dir()))
