"""Model cards: a JSON file in ``resources/models/`` (or anywhere) that describes one model.

A card names the architecture and its arguments, the weights file and its SHA-256, the modality and task, the
training data and command, the preprocessing, and the intended acceleration or spacing. A user adds a model by
writing a card that points at their own checkpoint, e.g. the public fastMRI knee single-coil U-Net:

    {"name": "fastmri-knee-sc-unet", "task": "mri-reconstruction", "modality": "MR",
     "architecture": {"class": "fastmri.Unet", "args": {"in_chans": 1, "out_chans": 1, "chans": 256,
                                                        "num_pool_layers": 4, "drop_prob": 0.0}},
     "weights": {"file": "/data/knee_sc_leaderboard_state_dict.pt", "sha256": "<sha256sum of the file>"},
     "training": {"data": "fastMRI knee single-coil train"},
     "preprocessing": {"normalization": "instance", "crop": [320, 320], "clamp": 6.0},
     "intended": {"acceleration": [4, 8], "center_fraction": [0.08, 0.04], "mask": "random"}}

Weights load only as safetensors or with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from reviewer.errors import InputError, read_json_file
from reviewer.resources import RESOURCES

MODELS_DIR = RESOURCES / "models"
REQUIRED = ("name", "task", "modality", "architecture", "weights")


def _unet(**args):
    from reviewer.mri.unet import Unet

    return Unet(**args)


def _lazy(module: str, name: str) -> Callable[..., Any]:
    """A factory importing its module on first use (so a card builds without importing the lab first)."""

    def factory(**args):
        import importlib

        return getattr(importlib.import_module(module), name)(**args)

    return factory


ARCHITECTURES: dict[str, Callable[..., Any]] = {
    "fastmri.Unet": _unet,
    "detection.FprNet": _lazy("reviewer.detection.fpr", "FprNet"),
    "detection.ResUNet3d": _lazy("reviewer.detection.cg", "ResUNet3d"),
}


def register_architecture(name: str, factory: Callable[..., Any]) -> None:
    ARCHITECTURES[name] = factory


@dataclass
class ModelCard:
    name: str
    task: str
    modality: str
    architecture: dict
    weights: dict
    path: Path | None = None
    training: dict = field(default_factory=dict)
    preprocessing: dict = field(default_factory=dict)
    intended: dict = field(default_factory=dict)
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def weights_path(self) -> Path:
        p = Path(self.weights["file"]).expanduser()
        if not p.is_absolute() and self.path is not None:
            p = self.path.parent / p
        return p

    def to_json(self) -> dict:
        d = {k: getattr(self, k) for k in ("name", "task", "modality", "description", "architecture", "weights",
                                           "training", "preprocessing", "intended")}
        d.update(self.extra)
        return d

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        self.path = path
        return path


def read_card(path: str | Path) -> ModelCard:
    path = Path(path)
    data = read_json_file(path, "model card")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise InputError(path, f"model card lacks {', '.join(missing)}")
    if "class" not in data["architecture"]:
        raise InputError(path, "model card's architecture lacks 'class'")
    if "file" not in data["weights"]:
        raise InputError(path, "model card's weights lack 'file'")
    known = {"name", "task", "modality", "description", "architecture", "weights", "training", "preprocessing",
             "intended"}
    return ModelCard(
        name=data["name"], task=data["task"], modality=data["modality"], architecture=data["architecture"],
        weights=data["weights"], path=path, training=data.get("training", {}),
        preprocessing=data.get("preprocessing", {}), intended=data.get("intended", {}),
        description=data.get("description", ""), extra={k: v for k, v in data.items() if k not in known},
    )


def list_cards(task: str | None = None) -> list[ModelCard]:
    paths = sorted(MODELS_DIR.glob("*.json")) + sorted(MODELS_DIR.glob("*/*.json")) if MODELS_DIR.is_dir() else []
    cards = [read_card(p) for p in paths if p.name != "config.json"]  # config.json: a training run's settings
    return [c for c in cards if task is None or c.task == task]


def find_card(name_or_path: str, task: str | None = None) -> ModelCard:
    """A card by file path, or by name among the shipped cards."""
    p = Path(name_or_path)
    if p.suffix == ".json" or p.exists():
        return read_card(p)
    cards = list_cards(task)
    for c in cards:
        if c.name == name_or_path:
            return c
    names = ", ".join(c.name for c in cards) or "none shipped"
    raise InputError(None, f"no model named {name_or_path!r} (available: {names}); pass a card file to use your own")


def build_model(card: ModelCard, device=None, verify: bool = True):
    """Instantiate the card's architecture, check the weights' SHA-256, load them, move to ``device``, eval()."""
    from reviewer.mri.checkpoints import load_state_dict, sha256_file

    cls = card.architecture["class"]
    if cls not in ARCHITECTURES:
        raise InputError(card.path, f"unknown architecture {cls!r} (known: {', '.join(ARCHITECTURES)})")
    model = ARCHITECTURES[cls](**card.architecture.get("args", {}))
    wpath = card.weights_path
    expected = card.weights.get("sha256")
    if verify and expected:
        actual = sha256_file(wpath) if wpath.is_file() else None
        if actual is None:
            raise InputError(wpath, f"weights file of model {card.name!r} not found")
        if actual != expected:
            raise InputError(wpath, f"SHA-256 mismatch for model {card.name!r}: card says {expected[:12]}..., "
                                    f"file is {actual[:12]}...")
    state = load_state_dict(wpath)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(wpath, f"weights do not fit the architecture of model {card.name!r}: "
                                f"{str(exc).splitlines()[0]}") from None
    if device is not None:
        model = model.to(device)
    return model.eval()
