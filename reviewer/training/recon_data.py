"""Slices of fastMRI single-coil files for training, with fastMRI's random masks."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from reviewer.errors import InputError
from reviewer.mri.masks import MaskFunc
from reviewer.mri.transforms import CROP, center_crop, unet_sample


def find_h5(data: str | Path) -> list[Path]:
    """fastMRI files under a folder (or one file); ``demo:train|val|test`` names a split of the demo dataset."""
    if isinstance(data, str) and data.startswith("demo:"):
        from reviewer.demo.mri_dataset import demo_mri_split

        data = demo_mri_split(data.split(":", 1)[1])
    p = Path(data)
    files = sorted(p.rglob("*.h5")) if p.is_dir() else [p]
    if not files:
        raise InputError(p, "no fastMRI .h5 files found")
    return files


class SliceDataset(Dataset):
    """(zero-filled input, target, clean target image, mean, std) per slice; the clean image is unnormalised."""

    def __init__(self, files: list[Path], mask_func: MaskFunc, fixed_seed: bool = False):
        self.mask_func = mask_func
        self.fixed_seed = fixed_seed
        self.index: list[tuple[Path, int]] = []
        for f in files:
            with h5py.File(f, "r") as h:
                if "kspace" not in h or h["kspace"].ndim != 3:
                    raise InputError(f, "not a single-coil fastMRI file (need kspace (slices, rows, cols))")
                if "reconstruction_esc" not in h:
                    raise InputError(f, "training needs the reference 'reconstruction_esc'")
                self.index += [(f, i) for i in range(h["kspace"].shape[0])]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, idx: int):
        path, i = self.index[idx]
        with h5py.File(path, "r") as h:
            kspace = h["kspace"][i]
            target = h["reconstruction_esc"][i].astype(np.float32)
        seed = tuple(map(ord, path.name)) if self.fixed_seed else None
        mask = self.mask_func(kspace.shape[-1], seed=seed)
        s = unet_sample(kspace, mask, target)
        clean = center_crop(target, CROP)
        return (torch.from_numpy(s.image), torch.from_numpy(s.target), torch.from_numpy(clean.copy()),
                torch.from_numpy(mask.columns), torch.tensor(s.mean), torch.tensor(s.std))
