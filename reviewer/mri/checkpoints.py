"""Load model weights safely: safetensors, or ``torch.load(weights_only=True)``; nothing else.

Accepts fastMRI's plain state dicts, Lightning checkpoints (``state_dict`` with a ``unet.`` prefix), the FNAF
authors' layout (``{'model': state_dict, ...}`` with ``module.`` prefixes from DataParallel).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from reviewer.errors import InputError

PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_state_dict(path: str | Path) -> dict:
    """Read a checkpoint into a flat ``{name: tensor}`` dict, refusing anything that needs unsafe unpickling."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "weights file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as exc:  # noqa: BLE001 - the library raises several types for corrupt files
            raise InputError(path, f"not a readable safetensors file ({exc})") from exc
    if path.suffix not in PICKLE_SUFFIXES:
        raise InputError(path, f"unsupported weights format {path.suffix!r}: use .safetensors or a PyTorch "
                               "checkpoint loadable with weights_only=True (.pt, .pth, .ckpt)")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise InputError(path, "refused: the checkpoint cannot be loaded with torch.load(weights_only=True) "
                               f"(it contains arbitrary Python objects or is corrupt): {exc}") from exc
    return unwrap_state_dict(obj, path)


def unwrap_state_dict(obj, path: str | Path | None = None) -> dict:
    """Find the tensor dict inside common checkpoint wrappers and strip ``module.``/``unet.`` prefixes."""
    import torch

    if isinstance(obj, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(path, "no state dict of tensors found in the checkpoint")
    out = {}
    for k, v in obj.items():
        for prefix in ("module.", "unet.", "model."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out
