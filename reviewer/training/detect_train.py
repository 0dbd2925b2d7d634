"""`reviewer train cg|fpr`: the nodule detector's candidate generator and false-positive reduction network.

Data: a LUNA16-format folder or ``demo:ct-train`` (see :mod:`reviewer.training.detect_data`); Adam, lr 1e-3;
AMP on CUDA; DistributedDataParallel under ``torchrun`` (helpers shared with ``train recon``); safetensors
checkpoints every epoch (resumed automatically); a model card with the exact command at the end.

* CG: random 48^3 crops at 2 mm (60% centred near a kept nodule), random flips; class-balanced heat-map loss
  (``ce`` or ``lopsided``) + L1 on log-diameter near centres.
* FPR: batches half positives, half negatives (the paper's baseline sampling), random flips and axis
  permutations; loss ``ce`` | ``beta`` | ``lopsided``; ``--augment syn,perturb,poisson`` hands each batch to
  ``reviewer.synthesis.augment.FprAugmenter`` for the paper's fine-tuning ratios.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from reviewer.detection import cg as cg_mod
from reviewer.detection import fpr as fpr_mod
from reviewer.detection.losses import fpr_loss, heatmap_loss, parse_censor
from reviewer.jobs import JobToken
from reviewer.training.recon_train import _dist_info, command_line  # noqa: F401  (shared helpers)

AUGMENT_KINDS = ("syn", "perturb", "poisson")


@dataclass
class DetectTrainConfig:
    stage: str  # 'cg' | 'fpr'
    data: str
    out: str
    name: str = ""
    loss: str = "ce"
    head: str = ""  # FPR: 'sigmoid' | 'beta' (default: beta for the beta loss, else sigmoid)
    censor: str | None = None
    augment: list = field(default_factory=list)
    init_from: str | None = None
    cg: str | None = None  # FPR: a CG card whose false candidates become extra negatives
    epochs: int = 10
    steps_per_epoch: int = 100
    batch_size: int = 0  # 0: 2 crops (CG) / 32 patches (FPR)
    lr: float = 1e-3
    seed: int = 0
    amp: bool = True
    max_steps: int | None = None
    channels: list = field(default_factory=list)  # 0-length: the default of the architecture
    spacing_mm: float = 0.0  # 0: 2.0 (CG) / 1.25 (FPR)
    patch_size: int = 0  # 0: 64 crops (CG) / 32 patches (FPR)
    hu_window: list = field(default_factory=lambda: [-1000.0, 400.0])
    threads: int = 0  # torch CPU threads (0: torch's default); 1 is much faster on a CPU shared with others
    kl_anneal_epochs: int = 10
    command: str = ""

    def __post_init__(self) -> None:
        if self.stage not in ("cg", "fpr"):
            raise ValueError(f"stage must be cg or fpr, got {self.stage!r}")
        if self.stage == "cg" and self.loss not in ("ce", "lopsided"):
            raise ValueError("the candidate generator's heat map is trained with --loss ce or lopsided")
        if self.loss not in ("ce", "beta", "lopsided"):
            raise ValueError(f"unknown loss {self.loss!r}")
        parse_censor(self.censor)
        bad = [a for a in self.augment if a not in AUGMENT_KINDS]
        if bad:
            raise ValueError(f"unknown --augment kind(s) {bad}; choose from {', '.join(AUGMENT_KINDS)}")
        if self.augment and self.stage != "fpr":
            raise ValueError("--augment applies to the FPR network only")
        if not self.head:
            self.head = "beta" if self.loss == "beta" else "sigmoid"
        if self.loss == "beta" and self.head != "beta":
            raise ValueError("the beta loss needs --head beta")
        self.batch_size = self.batch_size or (2 if self.stage == "cg" else 32)
        self.spacing_mm = self.spacing_mm or (2.0 if self.stage == "cg" else 1.25)
        self.patch_size = self.patch_size or (48 if self.stage == "cg" else 32)
        self.channels = list(self.channels or ((4, 8, 16, 32) if self.stage == "cg" else (16, 32, 64)))
        self.name = self.name or Path(self.out).name


def _architecture(cfg: DetectTrainConfig) -> dict:
    if cfg.stage == "cg":
        return {"class": "detection.ResUNet3d", "args": {"channels": list(cfg.channels), "out_channels": 2}}
    return {"class": "detection.FprNet", "args": {"head": cfg.head, "channels": list(cfg.channels),
                                           "stem": max(4, cfg.channels[0] // 2)}}


def _build(cfg: DetectTrainConfig) -> torch.nn.Module:
    arch = _architecture(cfg)
    from reviewer.models.cards import ARCHITECTURES

    return ARCHITECTURES[arch["class"]](**arch["args"])


def load_init(model: torch.nn.Module, path: str) -> list[str]:
    """Load weights for fine-tuning; tensors whose shape differs (e.g. a sigmoid head -> a Beta head) are left
    at their fresh initialisation. Returns the names skipped."""
    from reviewer.mri.checkpoints import load_state_dict

    p = Path(path)
    if p.suffix == ".json" or not p.exists():
        from reviewer.models.cards import find_card

        p = find_card(path).weights_path
    state = load_state_dict(p)
    own = model.state_dict()
    use = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(own) - set(use))
    model.load_state_dict(use, strict=False)
    return skipped


def _augmenter(cfg: DetectTrainConfig, spec: fpr_mod.FprSpec, rank: int):
    if not cfg.augment:
        return None
    try:
        from reviewer.synthesis.augment import FprAugmenter
    except ImportError as exc:
        raise RuntimeError("--augment needs reviewer.synthesis.augment.FprAugmenter (the synthesis lab), which "
                           f"is not available in this installation ({exc})") from None
    return FprAugmenter(set(cfg.augment), spec, cfg.seed + 1000 * rank)


# -- batches ----------------------------------------------------------------------------------------------------
def _flip_permute(x: np.ndarray, rng: np.random.Generator, permute: bool) -> np.ndarray:
    """Random flips of the three spatial axes (last three) and, optionally, a random axis permutation."""
    for ax in (-3, -2, -1):
        if rng.random() < 0.5:
            x = np.flip(x, ax)
    if permute:
        x = np.transpose(x, (*range(x.ndim - 3), *(x.ndim - 3 + rng.permutation(3))))
    return np.ascontiguousarray(x)


def cg_batch(prep: dict, cfg: DetectTrainConfig, rng: np.random.Generator):
    P = cfg.patch_size
    xs, hs, ds = [], [], []
    for _ in range(cfg.batch_size):
        n = int(rng.integers(len(prep["images"])))
        img, nod = prep["images"][n], prep["nodules"][n]
        shape = np.array(img.shape)  # (k, j, i)
        if len(nod) and rng.random() < 0.6:
            c = nod[int(rng.integers(len(nod)))][:3][::-1] + rng.uniform(-P / 3, P / 3, 3)  # (k, j, i)
            lo = np.rint(c - P / 2).astype(int)
        else:
            lo = np.array([int(rng.integers(0, max(1, s - P + 1))) for s in shape])
        lo = np.clip(lo, 0, np.maximum(shape - P, 0))
        crop = np.zeros((P, P, P), np.float32)
        src = img[lo[0]:lo[0] + P, lo[1]:lo[1] + P, lo[2]:lo[2] + P]
        crop[: src.shape[0], : src.shape[1], : src.shape[2]] = src
        if len(nod):
            heat, logd = cg_mod.heatmap_target((P, P, P), nod[:, :3] - lo[::-1], nod[:, 3], cfg.spacing_mm)
        else:
            heat = np.zeros((P, P, P), np.float32)
            logd = np.zeros((P, P, P), np.float32)
        stack = _flip_permute(np.stack([crop, heat, logd]), rng, permute=False)
        xs.append(stack[0])
        hs.append(stack[1])
        ds.append(stack[2])
    return (torch.from_numpy(np.stack(xs))[:, None], torch.from_numpy(np.stack(hs)), torch.from_numpy(np.stack(ds)))


def fpr_batch(prep: dict, cfg: DetectTrainConfig, rng: np.random.Generator):
    half = cfg.batch_size // 2
    pi = rng.integers(0, len(prep["pos"]), half)
    ni = rng.integers(0, len(prep["neg"]), cfg.batch_size - half)
    pos = np.stack([_flip_permute(prep["pos"][i], rng, True) for i in pi]).astype(np.float32) / 255.0
    neg = np.stack([_flip_permute(prep["neg"][i], rng, True) for i in ni]).astype(np.float32) / 255.0
    return torch.from_numpy(pos)[:, None], torch.from_numpy(neg)[:, None]


# -- training ---------------------------------------------------------------------------------------------------
def train_detector(cfg: DetectTrainConfig, token: JobToken | None = None, resume: bool = True) -> dict:
    from reviewer.device import get_device
    from reviewer.mri.checkpoints import load_state_dict

    rank, world, local_rank = _dist_info()
    distributed = world > 1
    if distributed:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    else:
        device = get_device()
    if cfg.threads and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed + 1000 * rank)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t_prep = time.perf_counter()
    spec = fpr_mod.FprSpec(cfg.patch_size, cfg.spacing_mm, tuple(cfg.hu_window))
    if cfg.stage == "cg":
        prep = _prepare_cg(cfg, out, token)
        n_train = sum(len(n) for n in prep["nodules"])
        data_info = {"scans": len(prep["images"]), "nodules_kept": n_train, "nodules_total": prep["n_annotations"]}
    else:
        detector = None
        if cfg.cg:
            from reviewer.detection.pipeline import CandidateSource

            detector = CandidateSource.from_card(cfg.cg, device)
        from reviewer.training.detect_data import prepare_fpr

        prep = prepare_fpr(cfg.data, None, spec, cfg.censor, cfg.seed, cg_detector=detector, token=token)
        kinds, counts = np.unique(prep["neg_kind"], return_counts=True)
        data_info = {"scans": int(prep["n"]), "positive_patches": int(len(prep["pos"])),
                     "negative_patches": {str(k): int(c) for k, c in zip(kinds, counts)}}
        if len(prep["pos"]) == 0 or len(prep["neg"]) == 0:
            raise RuntimeError(f"{cfg.data}: no positive or no negative patches to train on")
    prep_s = time.perf_counter() - t_prep
    if rank == 0:
        print(f"data ready in {prep_s:.0f} s: {data_info}", file=sys.stderr, flush=True)

    model = _build(cfg).to(device)
    skipped: list[str] = []
    if cfg.init_from:
        skipped = load_init(model, cfg.init_from)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start_epoch, step = 0, 0
    if resume and (out / "last.safetensors").exists() and (out / "last_state.pt").exists():
        model.load_state_dict(load_state_dict(out / "last.safetensors"))
        st = torch.load(out / "last_state.pt", map_location="cpu", weights_only=True)
        opt.load_state_dict(st["optimizer"])
        start_epoch, step = int(st["epoch"]) + 1, int(st["step"])
        rng = np.random.default_rng([cfg.seed + 1000 * rank, step])
    core = model
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)
    augmenter = _augmenter(cfg, spec, rank) if cfg.stage == "fpr" else None
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history = json.loads((out / "history.jsonl").read_text()) if start_epoch and (out / "history.jsonl").exists() else []
    total = cfg.epochs * cfg.steps_per_epoch
    t0 = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        kl_w = min(1.0, epoch / max(1, cfg.kl_anneal_epochs))
        sums, n = 0.0, 0
        for it in range(cfg.steps_per_epoch):
            if token is not None:
                token.progress(epoch * cfg.steps_per_epoch + it, total, f"epoch {epoch + 1}/{cfg.epochs}")
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, enabled=use_amp):
                if cfg.stage == "cg":
                    x, heat, logd = (t.to(device) for t in cg_batch(prep, cfg, rng))
                    y = model(x).float()
                    near = heat > 0.5
                    size_l1 = ((y[:, 1] - logd).abs() * near).sum() / near.sum().clamp_min(1)
                    loss = heatmap_loss(y[:, 0], heat, cfg.loss) + size_l1
                else:
                    pos, neg = fpr_batch(prep, cfg, rng)
                    if augmenter is not None:
                        core.eval()  # the augmenter attacks the current model; BN in inference mode there
                        x, lab = augmenter.batch(core, pos.to(device), neg.to(device))
                        core.train()
                    else:
                        x = torch.cat([pos, neg])
                        lab = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])
                    x, lab = x.to(device), lab.to(device)
                    loss = fpr_loss(model(x).float(), lab, cfg.loss, kl_weight=kl_w)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sums += float(loss.detach())
            n += 1
            step += 1
            if cfg.max_steps and step >= cfg.max_steps:
                break
        history.append({"epoch": epoch, "loss": sums / max(1, n), "elapsed_s": round(time.perf_counter() - t0, 1)})
        if rank == 0:
            _save(core, opt, epoch, step, out, cfg, history)
            print(f"epoch {epoch + 1}/{cfg.epochs}: loss {history[-1]['loss']:.4f} "
                  f"({history[-1]['elapsed_s']:.0f} s)", file=sys.stderr, flush=True)
        if cfg.max_steps and step >= cfg.max_steps:
            break
    if distributed:
        torch.distributed.destroy_process_group()
    return {"history": history, "weights": str(out / "last.safetensors"), "steps": step, "data": data_info,
            "prep_s": prep_s, "train_s": time.perf_counter() - t0, "init_skipped": skipped}


def _prepare_cg(cfg: DetectTrainConfig, out: Path, token):
    from reviewer.training.detect_data import prepare_cg

    return prepare_cg(cfg.data, None, cfg.spacing_mm, tuple(cfg.hu_window), cfg.censor, cfg.seed, token=token)


def _save(model, opt, epoch: int, step: int, out: Path, cfg: DetectTrainConfig, history: list) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, out / "last.safetensors")
    torch.save({"optimizer": opt.state_dict(), "epoch": epoch, "step": step}, out / "last_state.pt")
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    (out / "history.jsonl").write_text(json.dumps(history, indent=1))


# intended acquisition ranges, checked by reviewer.detection.domain (the demo phantoms are 1.4 x 1.4 x 2.0 mm;
# the networks see resampled data, so moderately different spacings are fine, thick slices are not)
INTENDED = {"modality": ["CT"], "slice_thickness_mm": [0.5, 2.5], "inplane_spacing_mm": [0.4, 1.5],
            "hu_range": [-1100.0, 3100.0]}


def write_card(cfg: DetectTrainConfig, summary: dict, card_path: Path | None = None, data_desc: str = "",
               minutes: float | None = None) -> Path:
    from reviewer.models.cards import ModelCard
    from reviewer.mri.checkpoints import sha256_file

    out = Path(cfg.out)
    card_path = card_path or out / f"{cfg.name}.json"
    weights = out / "last.safetensors"
    rel = os.path.relpath(weights, card_path.parent)
    if cfg.stage == "cg":
        task, desc = "nodule-candidate-generation", ("3D residual U-Net candidate generator (Gaussian heat map at "
                                                     "nodule centres + log-diameter regression)")
        pre = {"spacing_mm": [cfg.spacing_mm] * 3, "hu_window": list(cfg.hu_window), "crop": cfg.patch_size,
               "window_inference": 96, "overlap": 0.25, "peak_threshold": 0.005, "lung_mask": "threshold -400 HU + connected components"}
        loss = f"class-balanced heat-map {cfg.loss} + L1 log-diameter"
    else:
        task, desc = "nodule-false-positive-reduction", f"3D residual patch classifier, {cfg.head} head"
        pre = {"patch_size": cfg.patch_size, "spacing_mm": cfg.spacing_mm, "hu_window": list(cfg.hu_window),
               "field_of_view_mm": cfg.patch_size * cfg.spacing_mm, "axes": "LPS (patch [z, y, x])"}
        loss = cfg.loss + (f" (KL annealed over {cfg.kl_anneal_epochs} epochs)" if cfg.loss == "beta" else "")
    card = ModelCard(
        name=cfg.name, task=task, modality="CT", description=desc, architecture=_architecture(cfg),
        weights={"file": rel, "sha256": sha256_file(weights), "format": "safetensors"},
        training={"data": data_desc or cfg.data, "command": cfg.command, "loss": loss, "optimizer": "Adam",
                  "lr": cfg.lr, "epochs": cfg.epochs, "steps_per_epoch": cfg.steps_per_epoch,
                  "batch_size": cfg.batch_size, "seed": cfg.seed, "censor": cfg.censor or "none",
                  "augment": list(cfg.augment), "data_summary": summary.get("data", {}),
                  "final_loss": summary["history"][-1]["loss"] if summary.get("history") else None,
                  **({"initialised_from": cfg.init_from} if cfg.init_from else {}),
                  **({"cg_negatives_from": cfg.cg} if cfg.cg else {}),
                  **({"wall_minutes": round(minutes, 1)} if minutes is not None else {})},
        preprocessing=pre, intended=dict(INTENDED),
    )
    return card.save(card_path)
