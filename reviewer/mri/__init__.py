"""MRI reconstruction core with fastMRI's conventions (masks, centred FFTs, transforms, U-Net, metrics)."""
