"""Centred orthonormal 2D FFTs over the last two axes (fastMRI's fft2c / ifft2c), for numpy and torch."""

from __future__ import annotations

import numpy as np


def fft2c(image: np.ndarray) -> np.ndarray:
    """Image -> k-space: ifftshift, orthonormal FFT, fftshift over the last two axes."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(image, axes=axes), axes=axes, norm="ortho"), axes=axes)


def ifft2c(kspace: np.ndarray) -> np.ndarray:
    """K-space -> image: ifftshift, orthonormal inverse FFT, fftshift over the last two axes."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(kspace, axes=axes), axes=axes, norm="ortho"), axes=axes)


def fft2c_torch(image):
    """Torch version of :func:`fft2c` on complex tensors (differentiable)."""
    import torch

    dims = (-2, -1)
    return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(image, dim=dims), dim=dims, norm="ortho"), dim=dims)


def ifft2c_torch(kspace):
    """Torch version of :func:`ifft2c` on complex tensors (differentiable)."""
    import torch

    dims = (-2, -1)
    return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(kspace, dim=dims), dim=dims, norm="ortho"), dim=dims)
