"""Synthetic nodules, hard cases and stress tests for lung-nodule FPR models (paper 004, "No Surprises").

Qt-free: :mod:`generator` (a differentiable nodule with interpretable parameters), :mod:`insert` (blending into a
patch or a :class:`~reviewer.geometry.Volume` with ground truth), :mod:`hard` (PGD over the generator's
parameters for nodules a detector misses), :mod:`adversarial` (PGD on patches, uniform and Poisson noise),
:mod:`augment` (the paper's sampling ratios for ``train fpr --augment``) and :mod:`stress` (tables 4-6).
"""
