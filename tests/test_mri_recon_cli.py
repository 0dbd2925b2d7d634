"""Model cards and `reviewer recon` end to end on a small fastMRI-format file."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from reviewer import cli
from reviewer.errors import InputError
from reviewer.models.cards import build_model, find_card, read_card
from reviewer.mri import metrics
from reviewer.mri.fft import fft2c
from reviewer.mri.recon import read_fastmri_kspace, simulate_kspace
from reviewer.mri.unet import Unet


def _write_card(tmp_path, model, name="tiny"):
    from safetensors.torch import save_file

    from reviewer.mri.checkpoints import sha256_file

    w = tmp_path / f"{name}.safetensors"
    save_file(model.state_dict(), w)
    card = {"name": name, "task": "mri-reconstruction", "modality": "MR",
            "architecture": {"class": "fastmri.Unet", "args": {"in_chans": 1, "out_chans": 1, "chans": 4,
                                                               "num_pool_layers": 2}},
            "weights": {"file": w.name, "sha256": sha256_file(w)}}
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(card))
    return p


def _fastmri_file(tmp_path, slices=2):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:360, :340]
    img = ((xx - 170) ** 2 / 120 ** 2 + (yy - 180) ** 2 / 150 ** 2 < 1).astype(np.float32)
    imgs = np.stack([img * (1 + 0.1 * s) + 0.01 * rng.random(img.shape) for s in range(slices)])
    k = fft2c(imgs.astype(np.complex64)).astype(np.complex64)
    ref = np.abs(imgs[:, 20:340, 10:330]).astype(np.float32)
    p = tmp_path / "file_demo.h5"
    with h5py.File(p, "w") as f:
        f["kspace"] = k
        f["reconstruction_esc"] = ref
        f.attrs["max"] = ref.max()
    return p, ref


def test_card_checks_hash_and_fit(tmp_path):
    torch.manual_seed(0)
    card_path = _write_card(tmp_path, Unet(1, 1, chans=4, num_pool_layers=2))
    card = find_card(str(card_path))
    model = build_model(card)
    assert not model.training
    data = json.loads(card_path.read_text())
    data["weights"]["sha256"] = "0" * 64
    card_path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="SHA-256 mismatch"):
        build_model(read_card(card_path))
    data["weights"].pop("sha256")
    data["architecture"]["args"]["chans"] = 8
    card_path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="do not fit"):
        build_model(read_card(card_path))
    with pytest.raises(InputError, match="no model named"):
        find_card("no-such-model")


def test_recon_cli_writes_fastmri_output_and_metrics(tmp_path, capsys):
    torch.manual_seed(0)
    card = _write_card(tmp_path, Unet(1, 1, chans=4, num_pool_layers=2))
    h5, ref = _fastmri_file(tmp_path)
    out = tmp_path / "out" / "recon.h5"
    rc = cli.main(["--device", "cpu", "recon", str(h5), "--model", str(card), "--acceleration", "4",
                   "--output", str(out), "--metrics"])
    assert rc == 0
    with h5py.File(out, "r") as f:
        rec = f["reconstruction"][()]
        assert rec.shape == (2, 320, 320) and rec.dtype == np.float32
        assert f.attrs["acceleration"] == 4
    text = capsys.readouterr().out
    assert "zero-filled" in text and "SSIM" in text
    # the printed zero-filled SSIM equals an independent computation
    data = read_fastmri_kspace(h5)
    from reviewer.mri.recon import make_mask
    from reviewer.mri.masks import validation_seed
    from reviewer.mri.transforms import zero_filled

    mask = make_mask("random", 4, 0.08, 340, seed=validation_seed(h5.name))
    zf = np.stack([zero_filled(k, mask) for k in data.kspace])
    line = next(l for l in text.splitlines() if "zero-filled" in l)
    assert f"{metrics.ssim(ref, zf):.4f}" in line


def test_multicoil_and_simulated_inputs(tmp_path):
    p = tmp_path / "mc.h5"
    with h5py.File(p, "w") as f:
        f["kspace"] = np.zeros((1, 4, 64, 64), np.complex64)
    with pytest.raises(InputError, match="multi-coil"):
        read_fastmri_kspace(p)
    sim = simulate_kspace(np.ones((2, 100, 120), np.float32), "x.nii")
    assert sim.simulated and sim.label == "simulated k-space"
    assert sim.kspace.shape == (2, 320, 320) and sim.reference.shape == (2, 320, 320)
