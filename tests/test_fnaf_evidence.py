"""The paper's claim on our demo models: FNAF-robust training protects small features.

`reviewer fnaf eval --demo` runs once: held-out demo knees (the test split, seeds never seen in training), the
shipped demo standard and robust U-Nets, 4x random masks with fastMRI's validation seeds, random search with 11
tries per slice (the paper's setting), on the middle half of the slices.
"""

from __future__ import annotations

import json

import pytest

from reviewer import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    out = tmp_path_factory.mktemp("fnaf-eval")
    rc = cli.main(["fnaf", "eval", "--demo", "--acceleration", "4", "--attack", "rs", "--tries", "11",
                   "--slices", "middle", "--out", str(out), "--json", str(out / "r.json")])
    assert rc == 0
    models = json.loads((out / "r.json").read_text())["models"]
    return out, models["demo-unet-standard"], models["demo-unet-robust"]


def test_robust_model_loses_far_less_of_the_features(evaluation):
    out, std, rob = evaluation
    assert std["slices"] >= 20 and rob["slices"] >= 20
    assert rob["mean_loss"] <= 0.5 * std["mean_loss"]
    assert rob["mean_lost_fraction"] <= 0.5 * std["mean_lost_fraction"]
    assert rob["ip_acceptance"] > 0.9 and std["ip_acceptance"] > 0.9
    assert (out / "fnaf_heatmap.png").stat().st_size > 0


def test_robust_model_halves_attack_rate_at_equal_ssim(evaluation):
    _, std, rob = evaluation
    assert std["attack_rate"] > 0
    assert rob["attack_rate"] <= 0.5 * std["attack_rate"]
    assert abs(rob["ssim"] - std["ssim"]) <= 0.01
