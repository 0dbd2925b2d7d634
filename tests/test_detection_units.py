"""Detection building blocks against independent computations: patch extraction, Beta head, losses, censoring."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from reviewer.detection import fpr, losses
from reviewer.geometry import Volume


def _linear_volume(direction, spacing=(0.9, 1.1, 1.7), shape=(40, 48, 44), origin=(30.0, -20.0, -100.0)):
    """A volume whose HU is an affine function of world LPS position (trilinear interpolation is exact on it)."""
    vol = Volume.from_array(np.zeros(shape, np.float32), spacing=spacing, origin=origin, direction=direction)
    k, j, i = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    w = vol.voxel_to_world(np.stack([i, j, k], -1).reshape(-1, 3)).reshape(shape + (3,))
    vol.array[...] = _f(w)
    return vol


def _f(w):
    return -500.0 + 6.0 * w[..., 0] - 4.0 * w[..., 1] + 3.0 * w[..., 2]


@pytest.mark.parametrize("direction", [
    np.eye(3),
    np.diag([-1.0, -1.0, 1.0]),  # flipped in-plane axes
    np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),  # permuted + flipped (sagittal-like)
    np.array([[math.cos(0.3), -math.sin(0.3), 0.0], [math.sin(0.3), math.cos(0.3), 0.0], [0.0, 0.0, -1.0]]),
])
def test_extract_patches_matches_world_function(direction):
    vol = _linear_volume(direction)
    spec = fpr.FprSpec(patch_size=8, spacing_mm=1.5, hu_window=(-1000.0, 400.0))
    centre = vol.geometry.center_world() + np.array([1.3, -2.1, 0.7])
    patch = fpr.extract_patches(vol, [centre], spec)[0]
    # independent: patch[c, b, a] lies at centre + ((a, b, c) - 3.5) * 1.5 mm along L, P, S
    ax = (np.arange(8) - 3.5) * 1.5
    cz, by, axx = np.meshgrid(ax, ax, ax, indexing="ij")
    world = np.stack([centre[0] + axx, centre[1] + by, centre[2] + cz], -1)
    expected = np.clip((_f(world) + 1000.0) / 1400.0, 0, 1)
    np.testing.assert_allclose(patch, expected, atol=2e-4)


def test_extract_patches_same_anatomy_under_flipped_grid():
    from reviewer.demo.chest_ct import make_chest_ct

    a, nods = make_chest_ct(seed=3, shape=(40, 64, 64), spacing=(4.0, 4.0, 6.0))
    b, _ = make_chest_ct(seed=3, shape=(40, 64, 64), spacing=(4.0, 4.0, 6.0), direction=np.diag([-1.0, 1.0, -1.0]))
    spec = fpr.FprSpec(16, 2.5)
    c = [n.center for n in nods[:3]]
    pa, pb = fpr.extract_patches(a, c, spec), fpr.extract_patches(b, c, spec)
    assert np.abs(pa - pb).mean() < 0.02  # same world anatomy (noise differs per voxel order only)
    assert pa.std() > 0.05


def test_patch_outside_scan_is_air():
    vol = _linear_volume(np.eye(3))
    p = fpr.extract_patches(vol, [[1e4, 0, 0]], fpr.FprSpec(8, 1.0))
    assert np.all(p == 0.0)


def test_beta_head_formulas():
    model = fpr.FprNet(head="beta")
    raw = torch.tensor([[0.3, -1.2], [4.0, 2.0]])
    p, u = fpr.head_outputs(raw, "beta")
    sp = np.log1p(np.exp(raw.numpy()))
    alpha, beta = sp[:, 0] + 1, sp[:, 1] + 1
    np.testing.assert_allclose(p.numpy(), alpha / (alpha + beta), rtol=1e-6)
    np.testing.assert_allclose(u.numpy(), 2 / (alpha + beta), rtol=1e-6)
    x = torch.rand(2, 1, 32, 32, 32, requires_grad=True)
    model.eval()
    prob, unc = fpr.fpr_outputs(model, x)
    assert prob.shape == (2,) and unc.shape == (2,)
    prob.sum().backward()  # differentiable w.r.t. the input (PGD needs this)
    assert x.grad is not None and x.grad.abs().sum() > 0
    prob_s, unc_s = fpr.fpr_outputs(fpr.FprNet(head="sigmoid").eval(), x)
    assert unc_s is None and prob_s.shape == (2,)


def test_lopsided_gradient_on_negatives_hand_computed():
    z = torch.tensor([1.5, -0.7, 0.4], requires_grad=True)
    t = torch.tensor([0.0, 0.0, 1.0])
    losses.lopsided_bootstrap_loss(z, t, beta=0.3).sum().backward()
    p1 = 1 / (1 + math.exp(-1.5))  # 0.8175745
    # d/dz [-0.3 log(1-p) + 0.7 H(p)] = 0.3 p - 0.7 z p (1 - p)
    assert z.grad[0].item() == pytest.approx(0.3 * p1 - 0.7 * 1.5 * p1 * (1 - p1), abs=1e-6)
    assert z.grad[0].item() == pytest.approx(0.0886686, abs=1e-6)
    p2 = 1 / (1 + math.exp(0.7))
    assert z.grad[1].item() == pytest.approx(0.3 * p2 + 0.7 * 0.7 * p2 * (1 - p2), abs=1e-6)
    p3 = 1 / (1 + math.exp(-0.4))
    assert z.grad[2].item() == pytest.approx(p3 - 1, abs=1e-6)  # plain CE on positives
    # a confident negative-labelled voxel is pulled *up* when beta is small (what keeps unlabelled nodules)
    z2 = torch.tensor([2.0], requires_grad=True)
    losses.lopsided_bootstrap_loss(z2, torch.zeros(1), beta=0.1).sum().backward()
    assert z2.grad[0] < 0
    # beta = 1 is plain cross-entropy
    z3 = torch.tensor([0.8], requires_grad=True)
    losses.lopsided_bootstrap_loss(z3, torch.zeros(1), beta=1.0).sum().backward()
    assert z3.grad[0].item() == pytest.approx(1 / (1 + math.exp(-0.8)), abs=1e-6)


def test_kl_beta_uniform_is_minus_entropy():
    for a, b in [(1.0, 1.0), (2.5, 1.3), (7.0, 0.6)]:
        kl = losses.kl_beta_uniform(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
        assert kl.item() == pytest.approx(-stats.beta(a, b).entropy(), abs=1e-9)


def test_evidential_loss_value():
    raw = torch.tensor([[1.0, 0.2]])
    e = np.log1p(np.exp([1.0, 0.2]))
    a, b = e + 1
    s = a + b
    p = a / s
    y = 1.0
    mse = (y - p) ** 2 + p * (1 - p) / (s + 1)
    kl = -stats.beta(1.0, b).entropy()  # a~ = 1 for y = 1, b~ = beta
    got = losses.fpr_loss(raw, torch.tensor([1.0]), "beta", kl_weight=0.5)
    assert got.item() == pytest.approx(mse + 0.5 * kl, rel=1e-5)


def test_fpr_loss_kinds():
    logits = torch.tensor([[2.0], [-1.0]])
    y = torch.tensor([1.0, 0.0])
    ce = losses.fpr_loss(logits, y, "ce").item()
    expected = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))) / 2
    assert ce == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError):
        losses.fpr_loss(logits, y, "beta")
    with pytest.raises(ValueError):
        losses.fpr_loss(logits, y, "focal")


def test_censoring():
    ann = {"a": [{"diameter_mm": d} for d in (3, 10, 20)], "b": [{"diameter_mm": d} for d in (5, 30)], "c": []}
    out = losses.censor_annotations(ann, "size:0.4")
    assert sorted(d["diameter_mm"] for v in out.values() for d in v) == [10, 20, 30]
    r1 = losses.censor_annotations(ann, "random:0.6", seed=1)
    assert losses.count(r1) == 2 and r1 == losses.censor_annotations(ann, "random:0.6", seed=1)
    assert losses.count(losses.censor_annotations(ann, None)) == 5
    for bad in ("random", "size:2", "top:0.5"):
        with pytest.raises(ValueError):
            losses.parse_censor(bad)


@pytest.mark.parametrize("head", ["sigmoid", "beta"])
def test_log_probabilities_keep_gradients_where_the_probability_saturates(head):
    torch.manual_seed(0)
    model = fpr.FprNet(head=head, channels=(4, 8), stem=4).eval()
    with torch.no_grad():  # a very confident "nodule": p rounds to exactly 1 in float32
        model.fc[-1].bias[0] = 60.0
        if head == "beta":
            model.fc[-1].bias[1] = -60.0
    x = torch.rand(2, 1, 16, 16, 16, requires_grad=True)
    prob, _ = fpr.fpr_outputs(model, x)
    logp, log1mp = fpr.fpr_log_probabilities(model, x)
    assert torch.allclose(logp.exp(), prob, atol=1e-6) and torch.allclose(log1mp.exp(), 1 - prob, atol=1e-6)
    (g_naive,) = torch.autograd.grad(torch.log(prob).sum(), x, retain_graph=True)
    (g_stable,) = torch.autograd.grad(log1mp.sum(), x)
    if head == "sigmoid":
        assert float(prob.detach().min()) == 1.0 and float(g_naive.abs().max()) == 0.0  # the naive objective is flat
    assert torch.isfinite(g_stable).all() and float(g_stable.abs().max()) > 0  # the attack can still move
