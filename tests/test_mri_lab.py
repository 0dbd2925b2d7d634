"""The MRI lab's headless logic: reconstruction + metrics, FNAF placement and search, simulated k-space input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reviewer.fnaf.forward import score_features
from reviewer.geometry import Volume
from reviewer.models.cards import build_model, read_card
from reviewer.mri import metrics
from reviewer.mri.lab import ZERO_FILLED, MriLab, per_slice_metrics
from reviewer.mri.masks import validation_seed
from reviewer.mri.recon import SIMULATED_LABEL, make_mask, reconstruct
from reviewer.mri.unet import Unet
from tests.test_mri_recon_cli import _write_card


@pytest.fixture(scope="module")
def lab_setup(tmp_path_factory):
    from reviewer.demo.mri import make_fastmri_file

    tmp = tmp_path_factory.mktemp("lab")
    path = make_fastmri_file(tmp / "file_lab.h5", seed=3, n_slices=2)
    models = {}
    for i, name in enumerate(("tiny-a", "tiny-b")):
        torch.manual_seed(i)
        card = read_card(_write_card(tmp, Unet(1, 1, chans=4, num_pool_layers=2), name=name))
        models[name] = build_model(card)
    lab = MriLab.from_file(path)
    lab.set_models(models)
    return lab, path, models


def test_reconstruct_all_shapes_and_metrics(lab_setup):
    lab, path, models = lab_setup
    assert not lab.simulated and lab.input_label == "acquired k-space"
    assert lab.seed() == validation_seed(path.name)
    res = lab.reconstruct_all()
    n = lab.n_slices
    assert res.ground_truth.shape == (n, 320, 320) and res.ground_truth.dtype == np.float32
    assert res.zero_filled.shape == (n, 320, 320) and res.zero_filled.dtype == np.float32
    assert set(res.outputs) == set(models) and res.names == [ZERO_FILLED, "tiny-a", "tiny-b"]
    kmask = make_mask("random", 4, 0.08, lab.data.kspace.shape[-1], seed=validation_seed(path.name))
    ref = reconstruct(models["tiny-a"], lab.data.kspace, kmask)
    np.testing.assert_allclose(res.outputs["tiny-a"], ref.output, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.zero_filled, ref.zero_filled, rtol=1e-5, atol=1e-6)
    gt = lab.data.reference
    for name in res.names:
        rec = res.reconstruction(name)
        m = res.metrics[name]
        assert m["ssim"] == pytest.approx(metrics.ssim(gt, rec))
        assert m["nmse"] == pytest.approx(metrics.nmse(gt, rec))
        assert m["psnr"] == pytest.approx(metrics.psnr(gt, rec))
        ps = res.slice_metrics[name]
        assert ps["ssim"].shape == (n,)
        assert ps["nmse"][1] == pytest.approx(metrics.nmse(gt[1], rec[1]))
        assert ps["ssim"][0] == pytest.approx(metrics.ssim(gt[0], rec[0], maxval=float(gt.max())))
    np.testing.assert_allclose(res.difference("tiny-b"), np.abs(res.outputs["tiny-b"] - gt))
    vol = res.volume("tiny-a")
    assert vol.geometry == res.geometry and vol.shape == (n, 320, 320)
    # changing the mask changes the result; an explicit seed replaces the validation seed
    lab.mask.seed = 5
    assert lab.seed() == 5
    lab.mask.seed = None


def test_place_feature_matches_score_features(lab_setup):
    lab, path, models = lab_setup
    fr = lab.place_feature(1, 150, 160, shape="disk", size=3, size_unit="px", intensity=0.6,
                           intensity_mode="relative")
    image = lab.data.reference[1]
    cols = make_mask("random", 4, 0.08, 320, seed=validation_seed(path.name)).columns
    assert fr.feature.values[150, 160] == pytest.approx(0.6 * (image.max() - image.min()), rel=1e-5)
    np.testing.assert_allclose(fr.image, image + fr.feature.values)
    for name, model in models.items():
        ref = score_features(model, image, fr.feature.values[None], cols)[0]
        s = fr.scores[name]
        assert s.loss == pytest.approx(ref.loss, rel=1e-5)
        assert s.hit == ref.hit and s.ip_ok == ref.ip_ok
        assert s.ip == pytest.approx(ref.ip, rel=1e-5)
        assert s.output.shape == (320, 320)
        assert s.hit == (s.loss >= 1e-3)
    assert fr.ip_ok == (fr.ip >= 1e-4)
    assert fr.region[150, 160] and fr.region[150, 164] and not fr.region[150, 165]
    r0, r1, c0, c1 = fr.region_bounds()
    assert (r0, r1, c0, c1) == (146, 154, 156, 164)
    assert fr.zero_filled.shape == (320, 320)
    # size in mm through the pixel spacing; absolute intensity; the official random walk
    sp = float(np.mean(lab.pixel_spacing_mm))
    f2 = lab.make_feature(0, 100, 100, "gaussian", size=2 * sp, size_unit="mm", intensity=1e-4,
                          intensity_mode="absolute")
    assert f2.params["sigma_px"] == pytest.approx(2.0)
    assert f2.values.max() == pytest.approx(1e-4)
    rw = lab.make_feature(0, 100, 100, "random-walk", size=10, intensity=0.5)
    assert 1 <= np.count_nonzero(rw.values) <= 10
    with pytest.raises(ValueError):
        lab.place_feature(0, 400, 10)


def test_search_sorted_ip_valid_in_region(lab_setup):
    lab, _, _ = lab_setup
    res = lab.search_features(0, attack="rs", tries=12, model="tiny-b", top=4)
    assert 1 <= len(res) <= 4
    losses = [r.loss for r in res]
    assert losses == sorted(losses, reverse=True)
    r0, r1, c0, c1 = lab.search_region()
    assert (r0, r1, c0, c1) == (50, 270, 50, 270)
    for r in res:
        assert r.ip_ok and r.scores["tiny-b"].ip_ok
        assert r.searched_model == "tiny-b" and r.loss == r.scores["tiny-b"].loss
        assert r0 <= r.center[0] <= r1 and c0 <= r.center[1] <= c1
        assert set(r.scores) == {"tiny-a", "tiny-b"}
    with pytest.raises(ValueError):
        lab.search_features(0, attack="nope")


@pytest.mark.slow
def test_search_here_with_finite_differences(lab_setup):
    lab, _, _ = lab_setup
    here = lab.search_features(1, attack="fd", tries=6, around=(120, 200, 8), top=3)
    assert here
    for r in here:
        assert 112 <= r.center[0] <= 128 and 192 <= r.center[1] <= 208
        assert r.ip_ok


def test_simulated_kspace_labelled(tmp_path):
    yy, xx = np.mgrid[:300, :280]
    img = ((xx - 140) ** 2 + (yy - 150) ** 2 < 100 ** 2).astype(np.float32)
    vol = Volume.from_array(np.stack([img, 0.5 * img]), spacing=(0.5, 0.5, 3.0), modality="MR", name="img")
    lab = MriLab.from_volume(vol)
    assert lab.simulated and lab.input_label == SIMULATED_LABEL
    assert "simulated k-space" in lab.ground_truth_source()
    res = lab.reconstruct_all()  # no models: zero-filled only
    assert res.simulated and res.names == [ZERO_FILLED]
    assert res.ground_truth.shape == (2, 320, 320)
    # the padded image sits in the middle of the 320 grid, at the same world position as in the original
    world = vol.voxel_to_world((140, 150, 0))
    i, j, k = np.rint(res.geometry.world_to_voxel(world)).astype(int)
    assert res.ground_truth[k, j, i] == pytest.approx(1.0)
    assert per_slice_metrics(res.ground_truth, res.zero_filled)["nmse"].shape == (2,)
    fr = lab.place_feature(0, 160, 160, "disk", 2, "px", 0.5, "absolute")
    assert fr.scores == {} and fr.ip > 0
