"""Two-stage lung nodule detection: candidate generation (3D residual U-Net heat map) and false-positive
reduction (3D patch classifier with a sigmoid or evidential Beta head). See docs/CONTRACTS.md "Detection"."""
