"""FNAF shapes, loss region, hit and information-preservation logic, batched scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reviewer.fnaf import features as F
from reviewer.fnaf.forward import HIT_THRESHOLD, ip_mse, score_features


class Identity(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x + 0 * self.p


class Blur(Identity):
    """A 'reconstruction' that smooths away anything small: a stand-in for a model that loses features."""

    def forward(self, x):
        return torch.nn.functional.avg_pool2d(x, 9, stride=1, padding=4, count_include_pad=False) + 0 * self.p


def _image(n=64, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    img = ((xx - n / 2) ** 2 + (yy - n / 2) ** 2 < (n / 3) ** 2).astype(np.float32)
    return img * 0.8 + 0.05 * rng.random((n, n)).astype(np.float32)


def test_random_walk_is_connected_bounded_and_in_range():
    rng = np.random.default_rng(3)
    f = F.random_walk((64, 64), (30, 30), 10, 0.5, 1.0, rng)
    pix = np.argwhere(f.support)
    assert 1 <= len(pix) <= 10
    assert f.values[f.support].min() >= 0.5 and f.values.max() <= 1.0
    # 4-connected: one labelled component with the cross structure
    from scipy import ndimage

    _, n = ndimage.label(f.support)
    assert n == 1
    region = f.loss_region()
    assert region.sum() > f.support.sum() and region[f.support].all()


def test_disk_and_gaussian_sizes():
    d = F.disk((64, 64), (20, 40), 3, 0.7)
    assert d.support.sum() == 29  # lattice points with r^2 <= 9
    assert np.allclose(d.values[d.support], 0.7)
    g = F.gaussian_blob((64, 64), (32, 32), 2.0, 1.0)
    assert g.values[32, 32] == pytest.approx(1.0)
    assert g.values[32, 34] == pytest.approx(np.exp(-0.5), rel=1e-5)
    with pytest.raises(ValueError):
        F.make_feature("star", (8, 8), (4, 4), 2, 1.0)


def test_hit_logic_identity_vs_blurring_model():
    img = _image()
    cols = np.ones(64, np.float32)  # fully sampled: the feature reaches the model intact
    feat = F.disk((64, 64), (32, 32), 1.5, 0.8).values[None]
    ident = score_features(Identity(), img, feat, cols)[0]
    blur = score_features(Blur(), img, feat, cols)[0]
    assert ident.loss < 1e-8 and not ident.hit
    assert blur.loss > HIT_THRESHOLD and blur.hit


def test_information_preservation_fails_when_mask_drops_feature():
    img = torch.as_tensor(_image())
    # a feature whose energy lies only in k-space columns the mask drops (a pure horizontal-frequency
    # sinusoid) does not survive under-sampling; a small blob in the centre does
    cols = torch.zeros(64)
    cols[28:36] = 1  # keep only the centre
    x = torch.arange(64, dtype=torch.float32)
    high_freq = 0.3 * torch.cos(2 * np.pi * 20 * x / 64)[None, :].expand(64, 64)[None]
    low = torch.zeros(1, 64, 64)
    low[0, 30:34, 30:34] = 0.8
    assert float(ip_mse(img[None], high_freq, cols)[0]) < 1e-8
    assert float(ip_mse(img[None], low, cols)[0]) > 1e-4


def test_batched_scoring_equals_one_at_a_time():
    img = _image(seed=1)
    rng = np.random.default_rng(0)
    feats = np.stack([F.random_walk((64, 64), tuple(rng.integers(10, 54, 2)), 10, 0.3, 0.9, rng).values
                      for _ in range(7)])
    cols = np.zeros(64, np.float32)
    cols[::2] = 1
    cols[28:36] = 1
    model = Blur()
    batched = score_features(model, img, feats, cols, batch_size=7)
    single = [score_features(model, img, f[None], cols, batch_size=1)[0] for f in feats]
    for a, b in zip(batched, single):
        assert a.loss == pytest.approx(b.loss, rel=1e-4)
        assert a.ip == pytest.approx(b.ip, rel=1e-4)


def test_search_attacks_find_ip_valid_features_and_pgd_improves_loss():
    from reviewer.fnaf.search import SearchSettings, finite_difference_search, pgd_attack, random_search, search

    img = _image(seed=2)
    cols = np.zeros(64, np.float32)
    cols[::3] = 1
    cols[28:36] = 1

    class Half(Blur):
        """Loses half of any small detail: output = (input + blur) / 2."""

        def forward(self, x):
            return 0.5 * (x + super().forward(x))

    model = Half()
    s = SearchSettings(tries=24, n_steps=10, pgd_steps=5, fd_iterations=3)
    rs = random_search(model, img, cols, s, np.random.default_rng(0), top=3)
    assert rs and all(c.ip_ok for c in rs)
    assert [c.loss for c in rs] == sorted([c.loss for c in rs], reverse=True)
    r0, r1, c0, c1 = (10, 54, 10, 54)
    assert all(r0 <= c.feature.center[0] <= r1 and c0 <= c.feature.center[1] <= c1 for c in rs)
    pgd = pgd_attack(model, img, cols, rs[-1].feature, s)
    assert pgd.loss >= rs[-1].loss
    assert pgd.values[~rs[-1].feature.support].max() == 0  # stays within the support
    lo, hi = float(img.min()), float(img.max())
    assert pgd.values.max() <= hi + 1e-6 and pgd.values[pgd.feature.support].min() >= lo - 1e-6
    fd = finite_difference_search(model, img, cols, rs[-1].feature, s)
    assert fd.loss >= rs[-1].loss
    best = search(model, img, cols, "pgd", s, np.random.default_rng(0), top=2)
    assert best[0].loss >= rs[0].loss - 1e-9


def test_screening_ranks_like_exact_scoring_and_confirms_exactly():
    from scipy.stats import spearmanr

    from reviewer.fnaf.forward import score_features as exact_scores
    from reviewer.fnaf.screening import screen_losses, screened_search_scores
    from reviewer.mri.unet import Unet

    torch.manual_seed(0)
    model = Unet(1, 1, chans=4, num_pool_layers=4).eval()
    n = 160
    yy, xx = np.mgrid[:n, :n]
    img = (((xx - 80) / 45.0) ** 2 + ((yy - 80) / 60.0) ** 2 < 1).astype(np.float32)
    img += 0.3 * np.sin(xx / 5.0) * img
    rng = np.random.default_rng(0)
    feats = np.stack([F.random_walk((n, n), tuple(rng.integers(40, 120, 2)), 10, 0.0, 1.3, rng).values
                      for _ in range(8)])
    cols = np.zeros(n, np.float32)
    cols[::4] = 1
    cols[72:88] = 1
    exact = np.array([s.loss for s in exact_scores(model, img, feats, cols, batch_size=4)])
    # an untrained U-Net: screened losses within ~10% (a trained one is far closer: see `reviewer bench recon`)
    rel = np.abs(screen_losses(model, img, feats, cols, tile=64) - exact) / exact
    assert np.median(rel) < 0.1 and rel.max() < 0.2
    assert spearmanr(screen_losses(model, img, feats, cols, tile=96), exact)[0] > 0.9
    # the zero-filled inputs are exact: the screened IP equals the FFT-based one
    from reviewer.fnaf.forward import ip_mse

    _, ips = screen_losses(model, img, feats, cols, tile=64, return_ip=True)
    ref = ip_mse(torch.as_tensor(img)[None].expand(len(feats), n, n), torch.as_tensor(feats), torch.as_tensor(cols))
    np.testing.assert_allclose(ips, ref.numpy(), rtol=1e-3)
    scores = screened_search_scores(model, img, feats, cols, confirm=3)
    confirmed = [i for i, s in enumerate(scores) if s.exact]
    assert len(confirmed) == 3
    for i in confirmed:
        assert scores[i].loss == pytest.approx(exact[i], rel=1e-4)
    assert not any(s.hit for s in scores if not s.exact)
