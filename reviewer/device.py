"""Compute device: chosen once (CUDA, else MPS, else CPU), overridable, and described for the user."""

from __future__ import annotations

import functools
import os

_override: str | None = None


def set_device_override(name: str | None) -> None:
    """Force a device ("cpu", "cuda", "cuda:1", "mps"); None returns to automatic choice."""
    global _override
    _override = name
    get_device.cache_clear()


@functools.lru_cache(maxsize=1)
def get_device():
    """The torch device used for every model in this process."""
    import torch

    name = _override or os.environ.get("REVIEWER_DEVICE") or None
    if name:
        dev = torch.device(name)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"--device {name}: CUDA is not available on this machine")
        if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise RuntimeError(f"--device {name}: MPS is not available on this machine")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device() -> str:
    """One line for the status bar, e.g. 'CUDA: NVIDIA H100 (80 GB)' or 'CPU (2 threads)'."""
    import torch

    dev = get_device()
    if dev.type == "cuda":
        idx = dev.index or 0
        props = torch.cuda.get_device_properties(idx)
        return f"CUDA: {props.name} ({props.total_memory / 2**30:.0f} GB)"
    if dev.type == "mps":
        return "MPS (Apple GPU)"
    return f"CPU ({torch.get_num_threads()} threads)"
