"""`reviewer train recon`: fastMRI U-Net training, optionally FNAF-robust (min-max, REFERENCES section 2).

The robust procedure: after the normal step on the clean batch, a *second, separately zeroed* step on the same
images with random-walk features (n in [10, 100], intensities U(min, max) of the image) pushed through the
forward model; its loss is the masked L1 (sum over the loss region / region size) plus the L1 over the whole
image. (The authors' code forgot ``zero_grad()`` before this second backward; not copied.)

Checkpoints are safetensors (model) + a weights-only-loadable torch file (optimizer, epoch, RNG-free counters),
written every epoch so training resumes; the final model gets a model card with the exact command.
Runs on one process by default; under ``torchrun`` it uses DistributedDataParallel (NCCL on CUDA, else gloo).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from reviewer.fnaf.features import loss_region, random_walk
from reviewer.fnaf.forward import forward
from reviewer.jobs import JobToken
from reviewer.mri.masks import create_mask_func
from reviewer.mri.unet import Unet
from reviewer.training.recon_data import SliceDataset, find_h5


@dataclass
class ReconTrainConfig:
    data: str
    out: str
    name: str = "unet"
    fnaf_robust: bool = False
    epochs: int = 10
    batch_size: int = 4
    lr: float = 1e-3
    chans: int = 32
    num_pool_layers: int = 4
    mask: str = "random"
    accelerations: list = field(default_factory=lambda: [4])
    center_fractions: list = field(default_factory=lambda: [0.08])
    fnaf_steps: tuple = (10, 100)
    seed: int = 0
    amp: bool = True  # used on CUDA only
    max_steps: int | None = None  # stop early (tests, quick demos)
    init_from: str | None = None  # start from these weights (e.g. fine-tune a standard model to be robust)
    workers: int = 0
    command: str = ""


def _dist_info() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def fnaf_batch(clean: torch.Tensor, rng: np.random.Generator, steps: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Random-walk features for a batch of clean images (B, H, W): (features, loss regions)."""
    feats, regions = [], []
    for img in clean.cpu().numpy():
        lo, hi = float(img.min()), float(img.max())
        h, w = img.shape
        start = (int(rng.integers(round(50 * h / 320), round(270 * h / 320) + 1)),
                 int(rng.integers(round(50 * w / 320), round(270 * w / 320) + 1)))
        f = random_walk(img.shape, start, int(rng.integers(steps[0], steps[1] + 1)), lo, hi, rng)
        feats.append(f.values)
        regions.append(loss_region(f.support))
    return torch.from_numpy(np.stack(feats)), torch.from_numpy(np.stack(regions))


def robust_loss(model, clean, feats, regions, cols) -> torch.Tensor:
    """Masked L1 (region mean) + global L1 on the feature-augmented batch."""
    res = forward(model, clean + feats, cols)
    r = regions.to(res.output.dtype)
    diff = (res.output - res.target).abs()
    masked = (diff * r).flatten(1).sum(1) / r.flatten(1).sum(1).clamp_min(1)
    return masked.mean() + diff.mean()


def _save(model, opt, epoch: int, step: int, out: Path, cfg: ReconTrainConfig) -> None:
    from safetensors.torch import save_file

    core = model.module if hasattr(model, "module") else model
    save_file({k: v.detach().cpu().contiguous() for k, v in core.state_dict().items()}, out / "last.safetensors")
    torch.save({"optimizer": opt.state_dict(), "epoch": epoch, "step": step}, out / "last_state.pt")
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))


def train_recon(cfg: ReconTrainConfig, token: JobToken | None = None, resume: bool = True) -> dict:
    """Train; returns a summary with losses per epoch and the paths written."""
    from reviewer.device import get_device
    from reviewer.mri.checkpoints import load_state_dict

    rank, world, local_rank = _dist_info()
    distributed = world > 1
    if distributed:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
        device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    else:
        device = get_device()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed + 1000 * rank)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)

    files = find_h5(cfg.data)
    mask_func = create_mask_func(cfg.mask, cfg.center_fractions, cfg.accelerations, seed=cfg.seed + rank)
    ds = SliceDataset(files, mask_func)
    fnaf_masks = create_mask_func(cfg.mask, cfg.center_fractions, cfg.accelerations, seed=cfg.seed + 7919 + rank)
    sampler = torch.utils.data.distributed.DistributedSampler(ds, seed=cfg.seed) if distributed else None
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                                         num_workers=cfg.workers, generator=gen, drop_last=False)

    model = Unet(1, 1, cfg.chans, cfg.num_pool_layers).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start_epoch, step = 0, 0
    if cfg.init_from:
        model.load_state_dict(load_state_dict(cfg.init_from))
    if resume and (out / "last.safetensors").exists() and (out / "last_state.pt").exists():
        model.load_state_dict(load_state_dict(out / "last.safetensors"))
        st = torch.load(out / "last_state.pt", map_location="cpu", weights_only=True)
        opt.load_state_dict(st["optimizer"])
        start_epoch, step = int(st["epoch"]) + 1, int(st["step"])
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    history = []
    total = cfg.epochs * len(loader)
    t0 = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        sums = {"clean": 0.0, "robust": 0.0, "n": 0}
        for image, target, clean, cols, _mean, _std in loader:
            if token:
                token.progress(epoch * len(loader) + sums["n"], total, f"epoch {epoch + 1}/{cfg.epochs}")
            image, target, clean = image.to(device), target.to(device), clean.to(device)
            # 1) the normal step on the clean batch
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, enabled=use_amp):
                loss = F.l1_loss(model(image[:, None])[:, 0], target)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sums["clean"] += float(loss.detach())
            # 2) the FNAF-robust step on feature-augmented images, gradients zeroed separately
            if cfg.fnaf_robust:
                feats, regions = fnaf_batch(clean, rng, cfg.fnaf_steps)
                # the feature forward model works on the 320x320 image, so its masks have the image's columns
                img_cols = torch.stack([torch.from_numpy(fnaf_masks(clean.shape[-1]).columns)
                                        for _ in range(clean.shape[0])])
                opt.zero_grad(set_to_none=True)
                with torch.autocast(device.type, enabled=use_amp):
                    rloss = robust_loss(model, clean, feats.to(device), regions.to(device), img_cols.to(device))
                scaler.scale(rloss).backward()
                scaler.step(opt)
                scaler.update()
                sums["robust"] += float(rloss.detach())
            sums["n"] += 1
            step += 1
            if cfg.max_steps and step >= cfg.max_steps:
                break
        n = max(1, sums["n"])
        history.append({"epoch": epoch, "clean_l1": sums["clean"] / n, "robust_loss": sums["robust"] / n,
                        "elapsed_s": time.perf_counter() - t0})
        if rank == 0:
            _save(model, opt, epoch, step, out, cfg)
            print(f"epoch {epoch + 1}/{cfg.epochs}: clean L1 {history[-1]['clean_l1']:.4f}"
                  + (f", robust loss {history[-1]['robust_loss']:.4f}" if cfg.fnaf_robust else ""), file=sys.stderr)
        if cfg.max_steps and step >= cfg.max_steps:
            break
    if distributed:
        torch.distributed.destroy_process_group()
    return {"history": history, "weights": str(out / "last.safetensors"), "steps": step}


def write_card(cfg: ReconTrainConfig, weights: Path, card_path: Path, data_desc: str, metrics: dict | None = None) -> Path:
    """Copy-free: the card points at ``weights`` by a path relative to the card."""
    from reviewer.models.cards import ModelCard
    from reviewer.mri.checkpoints import sha256_file

    rel = os.path.relpath(weights, card_path.parent)
    card = ModelCard(
        name=cfg.name, task="mri-reconstruction", modality="MR",
        description=("FNAF-robust " if cfg.fnaf_robust else "standard ") + f"U-Net (chans={cfg.chans}, "
                    f"pools={cfg.num_pool_layers}) for single-coil MRI",
        architecture={"class": "fastmri.Unet", "args": {"in_chans": 1, "out_chans": 1, "chans": cfg.chans,
                                                        "num_pool_layers": cfg.num_pool_layers, "drop_prob": 0.0}},
        weights={"file": rel, "sha256": sha256_file(weights), "format": "safetensors"},
        training={"data": data_desc, "command": cfg.command or "", "fnaf_robust": cfg.fnaf_robust,
                  "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr, "optimizer": "Adam",
                  "loss": "L1" + (" + FNAF masked L1 + L1 (second step)" if cfg.fnaf_robust else ""),
                  "fnaf_steps": list(cfg.fnaf_steps), "seed": cfg.seed,
                  **({"initialised_from": cfg.init_from} if cfg.init_from else {}),
                  **({"metrics": metrics} if metrics else {})},
        preprocessing={"normalization": "instance (mean/std of the zero-filled input)", "crop": [320, 320],
                       "clamp": 6.0, "output": "de-normalised out * std + mean"},
        intended={"acceleration": cfg.accelerations, "center_fraction": cfg.center_fractions, "mask": cfg.mask},
    )
    return card.save(card_path)


def command_line(argv: list[str]) -> str:
    return "reviewer " + " ".join(shlex.quote(a) for a in argv)
