"""MRI core against fastMRI's documented conventions and independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reviewer.errors import InputError
from reviewer.mri import masks, metrics
from reviewer.mri.checkpoints import load_state_dict
from reviewer.mri.fft import fft2c, fft2c_torch, ifft2c, ifft2c_torch
from reviewer.mri.transforms import center_crop, normalize_instance, unet_sample, zero_filled
from reviewer.mri.unet import Unet


def _reference_random_mask(num_cols, cf, acc, seed):
    """fastMRI RandomMaskFunc written out step by step from its documented semantics."""
    rng = np.random.RandomState()
    rng.seed(seed)
    choice = rng.randint(1)  # one (cf, acc) pair: still consumes one draw, as fastMRI does
    assert choice == 0
    num_low = round(num_cols * cf)
    prob = (num_cols / acc - num_low) / (num_cols - num_low)
    accel = rng.uniform(size=num_cols) < prob
    center = np.zeros(num_cols, bool)
    pad = (num_cols - num_low + 1) // 2
    center[pad:pad + num_low] = True
    return (accel | center).astype(np.float32)


@pytest.mark.parametrize("num_cols,acc,cf", [(368, 4, 0.08), (368, 8, 0.04), (372, 4, 0.08), (321, 8, 0.04)])
def test_random_mask_matches_reference(num_cols, acc, cf):
    seed = masks.validation_seed("file1000001.h5")
    mf = masks.RandomMaskFunc([cf], [acc])
    m = mf(num_cols, seed=seed)
    np.testing.assert_array_equal(m.columns, _reference_random_mask(num_cols, cf, acc, seed))
    assert m.num_low_frequencies == round(num_cols * cf)
    # same seed, same mask; the generator state is restored afterwards
    np.testing.assert_array_equal(mf(num_cols, seed=seed).columns, m.columns)


def test_equispaced_mask_offset_and_centre():
    mf = masks.EquiSpacedMaskFunc([0.08], [4])
    m = mf(368, offset=1)
    num_low = round(368 * 0.08)
    pad = (368 - num_low + 1) // 2
    expected = np.zeros(368, np.float32)
    expected[1::4] = 1
    expected[pad:pad + num_low] = 1
    np.testing.assert_array_equal(m.columns, expected)
    assert 3.0 < m.effective_acceleration < 4.0  # true acceleration slightly below nominal


def test_mask_pairs_and_bad_type():
    mf = masks.RandomMaskFunc([0.08, 0.04], [4, 8], seed=0)
    drawn = {mf(368).acceleration for _ in range(20)}
    assert drawn == {4, 8}
    with pytest.raises(ValueError, match="unknown mask type"):
        masks.create_mask_func("radial", [0.08], [4])


def test_centered_fft_is_orthonormal_and_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 16, 12)) + 1j * rng.normal(size=(3, 16, 12))
    k = fft2c(x)
    expected = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1))), axes=(-2, -1)) / np.sqrt(16 * 12)
    np.testing.assert_allclose(k, expected, atol=1e-12)
    np.testing.assert_allclose(ifft2c(k), x, atol=1e-12)
    assert np.isclose(np.linalg.norm(k), np.linalg.norm(x))  # Parseval
    kt = fft2c_torch(torch.from_numpy(x))
    np.testing.assert_allclose(kt.numpy(), k, atol=1e-10)
    np.testing.assert_allclose(ifft2c_torch(kt).numpy(), x, atol=1e-10)


def test_zero_filled_and_unet_sample():
    rng = np.random.default_rng(1)
    img = rng.random((400, 360)) * np.exp(1j * rng.random((400, 360)))
    k = fft2c(img)
    full = zero_filled(k)
    np.testing.assert_allclose(full, np.abs(img[40:360, 20:340]), atol=1e-6)
    mask = masks.RandomMaskFunc([0.08], [4])(360, seed=3)
    s = unet_sample(k, mask, target=np.abs(img))
    zf = np.abs(ifft2c(k * mask.columns))[40:360, 20:340]
    mean, std = zf.mean(), zf.std(ddof=1)
    np.testing.assert_allclose(s.image, np.clip((zf - mean) / (std + 1e-11), -6, 6), atol=1e-5)
    assert s.mean == pytest.approx(mean) and s.std == pytest.approx(std)
    assert s.target.shape == (320, 320)
    with pytest.raises(ValueError):
        center_crop(np.zeros((100, 100)))


def test_normalize_instance_uses_unbiased_std_like_torch():
    x = np.arange(10, dtype=np.float32)
    y, mean, std = normalize_instance(x)
    assert std == pytest.approx(float(torch.from_numpy(x).std()))


def test_metrics_match_definitions_and_skimage():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(2)
    gt = rng.random((3, 32, 32)).astype(np.float32)
    pred = gt + 0.05 * rng.normal(size=gt.shape).astype(np.float32)
    assert metrics.nmse(gt, pred) == pytest.approx(np.sum((gt - pred) ** 2) / np.sum(gt ** 2), rel=1e-6)
    mse = np.mean((gt.astype(np.float64) - pred) ** 2)
    assert metrics.psnr(gt, pred) == pytest.approx(10 * np.log10(gt.max() ** 2 / mse), rel=1e-6)
    expected = np.mean([structural_similarity(g, p, data_range=gt.max()) for g, p in zip(gt, pred)])
    assert metrics.ssim(gt, pred) == pytest.approx(expected)


def test_unet_state_dict_matches_fastmri_layout():
    m = Unet(1, 1, chans=32, num_pool_layers=4)
    sd = m.state_dict()
    expected = set()
    for i in range(4):
        expected |= {f"down_sample_layers.{i}.layers.0.weight", f"down_sample_layers.{i}.layers.4.weight",
                     f"up_transpose_conv.{i}.layers.0.weight"}
    for i in range(3):
        expected |= {f"up_conv.{i}.layers.0.weight", f"up_conv.{i}.layers.4.weight"}
    expected |= {"conv.layers.0.weight", "conv.layers.4.weight", "up_conv.3.0.layers.0.weight",
                 "up_conv.3.0.layers.4.weight", "up_conv.3.1.weight", "up_conv.3.1.bias"}
    assert set(sd) == expected and len(sd) == 24
    assert sum(p.numel() for p in m.parameters()) == 7_756_097
    assert tuple(sd["conv.layers.0.weight"].shape) == (512, 256, 3, 3)
    assert tuple(sd["up_conv.3.1.weight"].shape) == (1, 32, 1, 1)
    out = m(torch.zeros(1, 1, 35, 41))  # odd sizes are reflect-padded back
    assert out.shape == (1, 1, 35, 41)


class _Args:
    """Stands for the argparse namespace many research checkpoints pickle along with the weights."""


def test_checkpoints_safe_loading(tmp_path):
    from safetensors.torch import save_file

    m = Unet(1, 1, chans=4, num_pool_layers=2)
    sd = m.state_dict()
    save_file(sd, tmp_path / "w.safetensors")
    loaded = load_state_dict(tmp_path / "w.safetensors")
    Unet(1, 1, chans=4, num_pool_layers=2).load_state_dict(loaded)
    # the FNAF authors' layout: {'model': state_dict with module. prefixes, 'epoch': ...}
    torch.save({"model": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}, tmp_path / "fnaf.pt")
    Unet(1, 1, chans=4, num_pool_layers=2).load_state_dict(load_state_dict(tmp_path / "fnaf.pt"))
    # a pickle with arbitrary objects is refused with a clear message naming the file
    torch.save({"model": sd, "args": _Args()}, tmp_path / "unsafe.pt")
    with pytest.raises(InputError, match="unsafe.pt.*weights_only=True"):
        load_state_dict(tmp_path / "unsafe.pt")
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(InputError, match="unsupported weights format"):
        load_state_dict(tmp_path / "w.npz")
