"""Synthetic nodules, hard cases, perturbations, the augmenter's ratios and the stress report.

Models here are small FprNets trained for a few seconds on synthetic patches (lung-like background with and
without an inserted nodule), so every claim tested holds for any model that responds to nodules at all.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reviewer.detection.fpr import FprNet, FprSpec, fpr_outputs
from reviewer.errors import InputError
from reviewer.geometry import Volume
from reviewer.synthesis import adversarial as adv
from reviewer.synthesis.augment import FprAugmenter, sampling_ratios
from reviewer.synthesis.generator import (N_PARAMS, NoduleParams, equivalent_diameter_mm, nodule_field,
                                          render_nodule, sample_params)
from reviewer.synthesis.hard import find_missed_nodule, search_hard_nodules
from reviewer.synthesis.insert import blend, insert_into_patch, insert_nodule
from reviewer.synthesis.stress import TESTS, run_stress

SPEC = FprSpec(16, 2.5, (-1000.0, 400.0))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: one intra-op thread is several times faster than two
    yield
    torch.set_num_threads(n)


def _lung_background(rng, n, spec=SPEC):
    hu = -850.0 + 20.0 * rng.standard_normal((n,) + (spec.patch_size,) * 3)
    lo, hi = spec.hu_window
    return np.clip((hu - lo) / (hi - lo), 0, 1).astype(np.float32)


def _train_tiny(head: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    neg = _lung_background(rng, 48)
    pos = np.stack([insert_into_patch(b, sample_params(rng, 6.0, 20.0), SPEC, seed=i)[0]
                    for i, b in enumerate(_lung_background(rng, 48))])
    x = torch.as_tensor(np.concatenate([pos, neg]))[:, None]
    y = torch.cat([torch.ones(48), torch.zeros(48)])
    model = FprNet(head=head, channels=(4, 8))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(25):
        idx = torch.as_tensor(rng.choice(96, 24, replace=False))
        p, _ = fpr_outputs(model, x[idx])
        loss = torch.nn.functional.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    for mod in model.modules():  # exact batch-norm statistics for inference
        if isinstance(mod, torch.nn.BatchNorm3d):
            mod.reset_running_stats()
            mod.momentum = None
    with torch.no_grad():
        model(x)
    return model.eval()


@pytest.fixture(scope="module")
def tiny():
    return _train_tiny("sigmoid", 0)


@pytest.fixture(scope="module")
def tiny_beta():
    return _train_tiny("beta", 1)


@pytest.fixture(scope="module")
def patches():
    rng = np.random.default_rng(5)
    neg = _lung_background(rng, 12)
    pos = np.stack([insert_into_patch(b, sample_params(rng, 8.0, 16.0), SPEC, seed=100 + i)[0]
                    for i, b in enumerate(_lung_background(rng, 12))])
    return pos, neg


# -- generator --------------------------------------------------------------------------------------------------
def test_params_vector_roundtrip_and_kinds():
    p = NoduleParams(12.0, 0.4, 60.0, -550.0, 0.7, 0.3, 0.2)
    v = p.to_vector()
    assert v.shape == (N_PARAMS,) and np.all((v >= 0) & (v <= 1))
    q = NoduleParams.from_vector(v)
    assert q.to_json() == p.to_json()
    assert p.kind == "part-solid"
    assert NoduleParams(solid_fraction=1.0).kind == "solid" and NoduleParams(solid_fraction=0.0).kind == "ground-glass"
    assert NoduleParams.from_vector(np.full(N_PARAMS, 2.0)).diameter_mm == 30.0  # clamped to the range
    with pytest.raises(ValueError):
        NoduleParams(diameter_mm=50.0)


def test_generator_gradients_match_finite_differences():
    offs = torch.as_tensor(np.random.default_rng(0).uniform(-9, 9, (300, 3)), dtype=torch.float64)
    w = torch.as_tensor(np.random.default_rng(1).normal(size=(3, 300)), dtype=torch.float64)

    def f(theta):
        hu, m, _ = nodule_field(theta, offs, seed=3, voxel_mm=1.0)
        return torch.stack([w[0] @ (hu * m) / 1000, w[1] @ m, w[2] @ hu / 1000])

    theta = torch.tensor([0.35, 0.5, 0.4, 0.6, 0.45, 0.5, 0.55], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (theta,), eps=1e-6, atol=1e-5, rtol=1e-3)
    # every parameter moves the rendered patch
    hu, m = render_nodule(theta, 16, 1.0)
    (g,) = torch.autograd.grad((hu * m).sum(), theta)
    assert torch.all(g.abs() > 0)


def test_rendered_size_and_densities_follow_the_parameters():
    vox = 0.8**3
    sizes = []
    for d in (6.0, 10.0, 16.0):
        hu, m = render_nodule(NoduleParams(d, 1.0, 40.0, -600.0, 0.9).to_vector(), 32, 0.8)
        sizes.append(equivalent_diameter_mm(m, vox))
        assert abs(sizes[-1] - d) < 0.1 * d + 0.8
        # the demo phantom's solid density (reviewer.demo.chest_ct.HU_SOLID = 40) at the centre
        assert abs(float(hu[16, 16, 16]) - 40.0) < 15
    hu, m = render_nodule(NoduleParams(12.0, 0.0, 40.0, -600.0, 0.3).to_vector(), 32, 0.8)
    assert abs(float(hu[16, 16, 16]) + 600.0) < 30  # ground glass, chest_ct.HU_GGO
    hu, m = render_nodule(NoduleParams(16.0, 0.4, 40.0, -600.0, 0.8).to_vector(), 40, 0.8)
    core, halo = float(hu[20, 20, 20]), float(hu[20, 20, 20 + 7])  # 5.6 mm out: halo (core radius 3.2 mm)
    assert core > 0 and halo < -450
    # spiculation reaches further out than the plain body
    _, m0 = render_nodule(NoduleParams(12.0, 1.0, spiculation=0.0).to_vector(), 40, 0.8, seed=2)
    _, m1 = render_nodule(NoduleParams(12.0, 1.0, spiculation=1.0).to_vector(), 40, 0.8, seed=2)
    far = torch.as_tensor(np.linalg.norm(np.indices((40,) * 3) - 19.5, axis=0) * 0.8 > 9.0)
    assert float(m1[far].max()) > 0.5 > float(m0[far].max())


# -- insertion --------------------------------------------------------------------------------------------------
def test_blend_is_the_papers_fusion():
    rng = np.random.default_rng(0)
    x, s, m = rng.random((3, 5, 5, 5))
    np.testing.assert_allclose(blend(x, s, m), s * m + x * (1 - m))
    np.testing.assert_array_equal(blend(x, s, np.zeros_like(m)), x)


def _phantom(direction, spacing):
    """A lung-like block (-850 HU with noise) with a soft-tissue wall slab at world x > 20 mm and a vessel (40 HU)
    along world z through (x, y) = (5, -3); the same world content whatever the grid's direction."""
    D = np.asarray(direction, float)
    shape = (40, 44, 48)  # k, j, i
    g_center = np.zeros(3)
    size = np.array([shape[2], shape[1], shape[0]])
    origin = g_center - D @ (np.asarray(spacing) * (size - 1) / 2)
    vol = Volume.from_array(np.zeros(shape, np.int16), spacing=spacing, origin=origin, direction=D,
                            modality="CT", unit="HU", name="phantom", source="test")
    kk, jj, ii = np.indices(shape)
    w = vol.voxel_to_world(np.stack([ii, jj, kk], -1).reshape(-1, 3)).reshape(shape + (3,))
    rng = np.random.default_rng(0)
    hu = -850 + 15 * rng.standard_normal(shape)
    hu[w[..., 0] > 20] = 30.0
    hu[np.hypot(w[..., 0] - 5, w[..., 1] + 3) < 1.5] = 40.0
    vol.array[...] = np.rint(hu).astype(np.int16)
    return vol, w


@pytest.mark.parametrize("direction", [np.eye(3), [[-1, 0, 0], [0, 0, 1], [0, -1, 0]]])
def test_insert_nodule_new_volume_at_the_world_point(direction):
    vol, w = _phantom(direction, (1.0, 0.9, 1.3))
    before = vol.array.copy()
    center = np.array([8.0, -3.0, 2.0])
    params = NoduleParams(14.0, 0.0, 40.0, -600.0, 0.5)  # ground glass: the vessel inside must stay
    new, finding = insert_nodule(vol, center, params, seed=1)
    np.testing.assert_array_equal(vol.array, before)  # the source is untouched
    assert new is not vol and new.array is not vol.array
    assert new.metadata["description"] == "synthetic nodule inserted" and "synthetic nodule" in new.name
    assert any("synthetic nodule inserted" in x for x in new.warnings)
    assert finding.kind == "synthetic-nodule" and finding.diameter_mm == pytest.approx(14.0)
    np.testing.assert_allclose(finding.center_lps, center)
    assert finding.source == new.metadata["series_uid"] != vol.metadata.get("series_uid")
    diff = new.array.astype(float) - before
    dist = np.linalg.norm(w - center, axis=-1)
    assert np.all(diff[dist > 14.0] == 0)  # nothing changes away from the nodule
    wts = np.clip(diff, 0, None)
    centroid = (w * wts[..., None]).reshape(-1, 3).sum(0) / wts.sum()
    np.testing.assert_allclose(centroid, center, atol=1.0)
    assert np.all(diff[w[..., 0] > 20.5] == 0)  # soft-tissue wall: not parenchyma, untouched
    vessel = (np.hypot(w[..., 0] - 5, w[..., 1] + 3) < 1.0) & (dist < 5)
    assert vessel.any() and np.all(new.array[vessel] >= 38)  # denser structures stay visible
    core = dist < 3.0
    assert abs(float(np.median(new.array[core & ~vessel])) + 600) < 60


def test_insert_nodule_rejects_points_outside_the_scan():
    vol, _ = _phantom(np.eye(3), (1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="outside the scan"):
        insert_nodule(vol, (500.0, 0.0, 0.0), NoduleParams())


# -- PGD --------------------------------------------------------------------------------------------------------
def _prob(model, x):
    with torch.no_grad():
        return fpr_outputs(model, torch.as_tensor(np.asarray(x, np.float32)).reshape(-1, 1, *x.shape[-3:]))[0].numpy()


def test_pgd_patch_moves_the_response_within_the_ball(tiny, patches):
    pos, neg = patches
    p0, n0 = _prob(tiny, pos), _prob(tiny, neg)
    assert p0.mean() > n0.mean() + 0.3  # the tiny model has learned something
    ap = adv.pgd_patch(tiny, pos, 0.0, eps=0.03, step=0.01, iters=8).numpy()
    an = adv.pgd_patch(tiny, neg, 1.0, eps=0.03, step=0.01, iters=8).numpy()
    assert ap.shape == pos.shape
    assert np.abs(ap - pos).max() <= 0.03 + 1e-6 and ap.min() >= 0 and ap.max() <= 1
    assert _prob(tiny, ap).mean() < p0.mean() - 0.1
    assert _prob(tiny, an).mean() > n0.mean() + 0.1
    assert tiny.training is False


def test_find_missed_nodule_lowers_the_response(tiny_beta):
    bg = _lung_background(np.random.default_rng(9), 1)[0]
    start = NoduleParams(9.0, 0.5, 40.0, -600.0, 0.6, 0.3, 0.3)
    r = find_missed_nodule(tiny_beta, SPEC, bg, eps=0.15, step=0.05, iters=10, seed=0, start=start)
    assert r.discarded_reason is None
    assert r.after < r.before - 0.02
    assert r.uncertainty_before is not None and len(r.history) == 11
    d = np.abs(r.params.to_vector() - start.to_vector())
    assert d.max() <= 0.15 + 1e-5  # stays in the eps-ball of the starting nodule
    assert r.params.diameter_mm >= 6.0 - 1e-6
    assert _prob(tiny_beta, r.patch)[0] == pytest.approx(r.after, abs=1e-4)


def test_hard_nodules_under_the_size_floor_are_discarded(tiny):
    lo, hi = SPEC.hu_window
    wall = np.full((1,) + (SPEC.patch_size,) * 3, (30.0 - lo) / (hi - lo), np.float32)  # soft tissue, no lung
    res = search_hard_nodules(tiny, SPEC, wall, iters=2, seed=1)
    assert res[0].discarded and "floor" in res[0].discarded_reason
    assert res[0].measured_diameter_mm < 6.0


# -- augmentation -----------------------------------------------------------------------------------------------
def test_sampling_ratios_follow_the_paper():
    pos, neg = sampling_ratios({"syn", "perturb"})
    assert pos == {"real": 0.5, "synthetic": 0.25, "adversarial": 0.25} and neg == {"real": 0.5, "adversarial": 0.5}
    pos, neg = sampling_ratios("syn,perturb,poisson")
    assert pos == pytest.approx({"real": 0.5, "synthetic": 0.25, "adversarial": 0.125, "poisson": 0.125})
    assert neg == pytest.approx({"real": 0.5, "adversarial": 0.25, "poisson": 0.25})
    assert sampling_ratios({"syn"}) == ({"real": 0.75, "synthetic": 0.25}, {"real": 1.0})
    with pytest.raises(ValueError):
        sampling_ratios({"mixup"})


@pytest.mark.parametrize("kinds", ["syn,perturb,poisson", "syn,perturb", "poisson"])
def test_augmenter_draws_slots_with_the_stated_shares(kinds):
    from scipy.stats import chisquare

    aug = FprAugmenter(kinds, SPEC, seed=3)
    for ratios, side in zip(sampling_ratios(kinds), (0, 1)):
        names = list(ratios)
        counts = dict.fromkeys(names, 0)
        for _ in range(400):
            plan = aug.plan(16, 16)[side]
            for s in plan:
                counts[s] += 1
        n = sum(counts.values())
        obs = [counts[k] for k in names]
        if len(names) > 1:
            assert chisquare(obs, [ratios[k] * n for k in names]).pvalue > 1e-3
        for k in names:  # 6400 draws: each share within 2.5 percentage points
            assert abs(counts[k] / n - ratios[k]) < 0.025


def test_augmenter_batch_builds_the_sampled_patches(tiny, patches):
    pos, neg = patches
    aug = FprAugmenter({"syn", "perturb", "poisson"}, SPEC, seed=0, patch_iters=3, nodule_iters=2)
    x, y = aug.batch(tiny, torch.as_tensor(pos[:8])[:, None], torch.as_tensor(neg[:8])[:, None])
    assert x.shape == (16, 1, 16, 16, 16) and y.tolist() == [1.0] * 8 + [0.0] * 8
    assert x.min() >= 0 and x.max() <= 1
    src = aug.last_sources
    assert len(src) == 16 and sum(aug.counts.values()) == 16
    xs = x[:, 0].numpy()
    ref = np.concatenate([pos[:8], neg[:8]])
    for i, (side, s) in enumerate(src):
        d = np.abs(xs[i] - ref[i]).max()
        if s == "real":
            assert d == 0
        elif s == "adversarial":
            assert 0 < d <= 0.03 + 1e-6
        elif s in ("poisson", "synthetic", "adversarial-noise"):
            assert d > 0
    kinds_seen = {s for _, s in aug.counts}
    for _ in range(3):
        aug.batch(tiny, pos[:8], neg[:8])
        kinds_seen |= {s for _, s in aug.last_sources}
    assert {"real", "synthetic", "adversarial", "poisson"} <= kinds_seen


def test_noise_functions():
    rng = np.random.default_rng(0)
    x = np.full((4, 8, 8, 8), 0.5, np.float32)
    u = adv.uniform_noise(x, 0.6, rng)
    assert abs(u.min() - 0.2) < 0.02 and abs(u.max() - 0.8) < 0.02 and abs(u.mean() - 0.5) < 0.01
    p5, p50 = adv.poisson_noise(x, 5, rng), adv.poisson_noise(x, 50, rng)
    assert abs(p50.mean() - 0.5) < 0.02 and p5.std() > 2 * p50.std()  # x5 is the stronger noise
    assert set(np.unique(p5 * 5).round(6)) <= set(np.arange(0, 6.0))  # counts / 5


# -- stress tests -----------------------------------------------------------------------------------------------
def test_stress_report_tables_and_files(tiny, tiny_beta, patches, tmp_path):
    pos, neg = patches
    rep = run_stress({"std": tiny, "beta": tiny_beta}, SPEC, pos[:8], neg[:8], seed=0, n_synthetic=4, n_noise=4,
                     pgd=adv.PgdSettings(0.03, 0.01, 5), nodule_iters=4)
    assert set(rep.tables) == set(TESTS)
    for t, per in rep.tables.items():
        assert set(per) == {"std", "beta"}
        for s in per.values():
            assert 0 <= s["mean"] <= 1 and s["std"] >= 0 and s["n"] > 0
    for m in ("std", "beta"):
        assert rep.tables["pgd_positive"][m]["mean"] < rep.tables["clean"][m]["mean"]
        assert rep.tables["pgd_negative"][m]["mean"] > rep.tables["negative"][m]["mean"]
        assert rep.tables["syn_pgd"][m]["mean"] <= rep.tables["syn_random"][m]["mean"] + 1e-6
        np.testing.assert_allclose(rep.tables["clean"][m]["mean"], _prob(tiny if m == "std" else tiny_beta, pos[:8]).mean(),
                                   rtol=1e-5)
    d = json.loads(rep.write_json(tmp_path / "s.json").read_text())
    assert d["tables"]["uniform_0.6"]["std"].keys() >= {"mean", "std"}
    rows = (tmp_path / "s.csv")
    rep.write_csv(rows)
    assert len(rows.read_text().strip().splitlines()) == 1 + 2 * len(TESTS)
    text = rep.format()
    assert "PGD-perturbed positives" in text and "table6" in text


# -- CLI --------------------------------------------------------------------------------------------------------
def _write_card(tmp_path, name, model):
    from safetensors.torch import save_file

    from reviewer.mri.checkpoints import sha256_file

    w = tmp_path / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, w)
    card = {"name": name, "task": "nodule-false-positive-reduction", "modality": "CT",
            "architecture": {"class": "detection.FprNet", "args": {"head": model.head, "channels": [4, 8]}},
            "weights": {"file": w.name, "sha256": sha256_file(w)},
            "preprocessing": {"patch_size": SPEC.patch_size, "spacing_mm": SPEC.spacing_mm,
                              "hu_window": list(SPEC.hu_window)}}
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(card))
    return p


def test_stress_cli_on_a_held_out_demo_phantom(tiny, tiny_beta, tmp_path, capsys):
    from reviewer import cli

    a, b = _write_card(tmp_path, "tiny-a", tiny), _write_card(tmp_path, "tiny-b", tiny_beta)
    rc = cli.main(["stress", "--model", str(a), "--model", str(b), "--demo", "--scans", "1", "--max-positives", "4",
                   "--max-negatives", "6", "--synthetic", "2", "--noise", "2", "--iters", "2",
                   "--json", str(tmp_path / "s.json"), "--csv", str(tmp_path / "s.csv")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "PGD-perturbed positives" in out and "tiny-a" in out and "held out" in out
    d = json.loads((tmp_path / "s.json").read_text())
    assert set(d["tables"]) == set(TESTS)
    assert set(d["tables"]["pgd_positive"]) == {"tiny-a", "tiny-b"}
    assert d["tables"]["clean"]["tiny-a"]["n"] == 4 and d["tables"]["negative"]["tiny-b"]["n"] == 6
    assert d["settings"]["patch_pgd"] == {"eps": 0.03, "step": 0.01, "iters": 2}
    assert (tmp_path / "s.csv").read_text().startswith("table,test,description,model,mean,std,n")
    with pytest.raises(SystemExit):
        cli.main(["stress", "--iters", "x"])


# -- perturbing a scan (the GUI's current view) -----------------------------------------------------------------
def test_noise_and_pgd_on_a_scan_return_new_volumes(tiny):
    from reviewer.synthesis.perturb import noise_volume, pgd_volume

    vol, w = _phantom([[0, 1, 0], [-1, 0, 0], [0, 0, -1]], (1.2, 1.2, 1.5))
    src = vol.array.copy()
    nv = noise_volume(vol, "uniform", 0.3, seed=1, center_lps=(0, 0, 0), radius_mm=10)
    np.testing.assert_array_equal(vol.array, src)
    dist = np.linalg.norm(w, axis=-1)
    changed = nv.array != src
    assert changed[dist < 9].mean() > 0.9 and not changed[dist > 10.5].any()
    assert np.abs(nv.array.astype(float) - src)[dist < 9].max() <= 0.15 * 1400 + 1
    center = np.array([-6.0, 2.0, 1.0])
    grown, _ = insert_nodule(vol, center, NoduleParams(10.0, 1.0), seed=0)
    r = pgd_volume(tiny, SPEC, grown, center, target=0.0, eps=0.03, step=0.01, iters=6)
    assert r.after < r.before
    d = r.volume.array.astype(float) - grown.array
    assert np.abs(d).max() <= 0.03 * 1400 + 1 and np.abs(d).max() > 5
    assert not d[np.abs(w - center).max(axis=-1) > SPEC.patch_size * SPEC.spacing_mm / 2 + 2].any()
    # the model sees (up to resampling) the perturbation it was given
    from reviewer.detection.fpr import extract_patches

    p = _prob(tiny, extract_patches(r.volume, center[None], SPEC))[0]
    assert p < r.before - 0.5 * (r.before - r.after)


def test_find_missed_nodule_at_a_clicked_point_inserts_it(tiny):
    from reviewer.synthesis.hard import find_missed_nodule_in_volume

    vol, w = _phantom([[-1, 0, 0], [0, -1, 0], [0, 0, 1]], (1.0, 1.0, 1.2))
    src = vol.array.copy()
    center = (-5.0, 4.0, -2.0)
    res, new, finding = find_missed_nodule_in_volume(tiny, SPEC, vol, center, seed=2, iters=4)
    assert res.after <= res.before and not res.discarded
    np.testing.assert_array_equal(vol.array, src)
    assert finding.kind == "synthetic-nodule" and finding.score == pytest.approx(res.after)
    assert finding.extra["fpr_response_before"] == pytest.approx(res.before)
    assert finding.diameter_mm == pytest.approx(res.params.diameter_mm, abs=0.01)
    diff = np.abs(new.array.astype(float) - src)
    dist = np.linalg.norm(w - np.asarray(center), axis=-1)
    assert diff[dist < 2].mean() > 50 and not diff[dist > 35].any()
