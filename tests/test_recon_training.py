"""A few optimiser steps lower the loss; robust training runs its separate second step; checkpoints resume."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from reviewer import cli
from reviewer.mri.fft import fft2c
from reviewer.training.recon_train import ReconTrainConfig, robust_loss, fnaf_batch, train_recon


def _dataset(folder, n_files=2, slices=2):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:320, :368]  # k-space wider than the 320x320 crop, as in fastMRI
    for f in range(n_files):
        imgs = []
        for s in range(slices):
            cx, cy = rng.uniform(144, 224), rng.uniform(120, 200)
            img = ((xx - cx) ** 2 / 45 ** 2 + (yy - cy) ** 2 / 60 ** 2 < 1) * 1.0  # small object, dark background (knee-like)
            img += ((xx - cx - 10) ** 2 + (yy - cy) ** 2 < 12 ** 2) * 0.5
            imgs.append(img.astype(np.float32))
        imgs = np.stack(imgs)
        with h5py.File(folder / f"train_{f}.h5", "w") as h:
            h["kspace"] = fft2c(imgs.astype(np.complex64)).astype(np.complex64)
            h["reconstruction_esc"] = imgs[:, :, 24:344]
    return folder


def test_training_lowers_loss_and_resumes(tmp_path):
    data = _dataset(tmp_path / "data")
    cfg = ReconTrainConfig(data=str(data), out=str(tmp_path / "run"), epochs=6, batch_size=2, lr=3e-3, chans=4,
                           num_pool_layers=2, seed=0)
    summary = train_recon(cfg)
    losses = [h["clean_l1"] for h in summary["history"]]
    assert losses[-1] < losses[0]
    assert (tmp_path / "run" / "last.safetensors").exists()
    # resuming a finished run does nothing more; a longer run continues from the checkpoint
    cfg.epochs = 7
    again = train_recon(cfg)
    assert [h["epoch"] for h in again["history"]] == [6]


def test_robust_step_gradients_are_separate(tmp_path):
    """The robust loss back-propagates on its own: gradients after zero_grad come only from it."""
    from reviewer.mri.unet import Unet

    torch.manual_seed(0)
    model = Unet(1, 1, 4, 2)
    clean = torch.rand(2, 64, 64)
    feats, regions = fnaf_batch(clean, np.random.default_rng(0), (10, 20))
    assert all(0 < r.sum() for r in regions) and feats.abs().sum() > 0
    cols = torch.ones(64)
    loss = robust_loss(model, clean, feats, regions, cols)
    loss.backward()
    g1 = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    robust_loss(model, clean, feats, regions, cols).backward()
    for a, p in zip(g1, model.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_train_cli_writes_card(tmp_path):
    data = _dataset(tmp_path / "data", n_files=1, slices=2)
    out = tmp_path / "robust"
    rc = cli.main(["--device", "cpu", "train", "recon", "--data", str(data), "--out", str(out), "--name", "tiny-robust",
                   "--fnaf-robust", "--epochs", "1", "--batch-size", "2", "--chans", "4", "--pools", "2"])
    assert rc == 0
    card = json.loads((out / "tiny-robust.json").read_text())
    assert card["training"]["fnaf_robust"] is True and "--fnaf-robust" in card["training"]["command"]
    from reviewer.models.cards import build_model, read_card

    build_model(read_card(out / "tiny-robust.json"))


def test_init_from_starts_at_given_weights(tmp_path):
    from safetensors.torch import save_file

    from reviewer.mri.checkpoints import load_state_dict
    from reviewer.mri.unet import Unet

    data = _dataset(tmp_path / "data", n_files=1, slices=2)
    torch.manual_seed(5)
    start = Unet(1, 1, 4, 2)
    save_file(start.state_dict(), tmp_path / "start.safetensors")
    cfg = ReconTrainConfig(data=str(data), out=str(tmp_path / "ft"), epochs=1, batch_size=2, lr=1e-9, chans=4,
                           num_pool_layers=2, init_from=str(tmp_path / "start.safetensors"))
    train_recon(cfg)
    after = load_state_dict(tmp_path / "ft" / "last.safetensors")
    for k, v in start.state_dict().items():
        torch.testing.assert_close(after[k], v, atol=1e-5, rtol=0)  # a tiny learning rate barely moves it


@pytest.mark.slow
def test_torchrun_two_processes_data_parallel(tmp_path):
    """`torchrun --nproc_per_node 2` trains with DistributedDataParallel (gloo on CPU); rank 0 writes the card."""
    import subprocess
    import sys

    data = _dataset(tmp_path / "data", n_files=2, slices=2)
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
         "-m", "reviewer", "--device", "cpu", "train", "recon", "--data", str(data), "--out", str(out),
         "--name", "ddp", "--epochs", "1", "--batch-size", "1", "--chans", "4", "--pools", "2"],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("trained 2 steps") == 1  # 4 slices split over 2 ranks, batch 1: 2 steps each
    card = json.loads((out / "ddp.json").read_text())
    from reviewer.models.cards import build_model, read_card

    build_model(read_card(out / "ddp.json"))
    assert card["training"]["epochs"] == 1
