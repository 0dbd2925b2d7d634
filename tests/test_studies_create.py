"""Studies built from `reviewer fnaf eval` output (tiny models) and from the demo CT: truth written automatically."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reviewer.studies.create import StudySettings, create_demo_ct, create_from_fnaf_eval
from reviewer.studies.definition import load_study_definition
from reviewer.studies.images import load_study_image


@pytest.mark.slow
def test_study_from_fnaf_eval_output(tmp_path):
    """The eval's writer output (features found per slice, here official random walks as its search draws them,
    without the search itself to keep the test fast) -> a study whose truth sits on the features' pixels."""
    from reviewer.fnaf.evaluate import FnafReport, SliceAttack, write_outputs
    from reviewer.fnaf.features import random_walk
    from reviewer.mri.unet import Unet
    from tests.test_recon_training import _dataset

    data = _dataset(tmp_path / "data", n_files=1, slices=2)
    f = sorted(data.glob("*.h5"))[0]
    torch.manual_seed(0)
    models = {"tiny-a": Unet(1, 1, chans=4, num_pool_layers=2).eval(), "tiny-b": Unet(1, 1, chans=4, num_pool_layers=2).eval()}
    rng = np.random.default_rng(0)
    summary = dict.fromkeys(["attack_rate", "mean_loss", "median_loss", "ip_acceptance", "mean_lost_fraction",
                             "ssim", "nmse", "psnr", "slices"], 0.0)
    report = FnafReport(models={"tiny-a": dict(summary), "tiny-b": dict(summary)},
                        settings={"acceleration": 4, "center_fraction": 0.08, "mask": "random", "attack": "rs",
                                  "files": [str(f.resolve())]})
    for k in range(2):
        for name in models:
            feat = random_walk((320, 320), (150 + 5 * k, 160), 10, 0.2, 0.4, rng)
            report.attacks.append(SliceAttack(f.name, k, name, 0.01 * k, k % 2 == 0, 1e-4, 150 + 5 * k, 160,
                                              feat.values, 0.5))
    write_outputs(report, tmp_path / "eval")
    z = np.load(tmp_path / "eval" / "fnaf_features.npz")
    assert int(z["offsets"][-1]) == len(z["rows"]) > 0  # the features are saved, sparse
    d = create_from_fnaf_eval(tmp_path / "eval", tmp_path / "study", StudySettings(name="fnaf", readers=["R1"]),
                              source_model="tiny-a", n_abnormal=1, models=models)
    assert d.conditions == ["tiny-a 4x", "tiny-b 4x"] and d.compared_conditions() == ("tiny-a 4x", "tiny-b 4x")
    assert sorted(c.truth.normal for c in d.cases) == [False, True]
    d2 = load_study_definition(tmp_path / "study")
    for case in d2.cases:
        imgs = {cond: load_study_image(tmp_path / "study" / ref.path) for cond, ref in case.images.items()}
        assert all(v.shape == (1, 320, 320) for v in imgs.values())
        assert not np.allclose(imgs["tiny-a 4x"].array, imgs["tiny-b 4x"].array)  # each model's reconstruction
        for les in case.truth.lesions:
            # the truth's world centre lands on the feature's pixels in the written image
            att = [a for a in report.attacks if a.model == "tiny-a" and a.slice == les.extra["slice"]][0]
            i, j, k = imgs["tiny-a 4x"].geometry.world_to_voxel(les.center_lps)
            rows, cols = np.nonzero(att.values)
            assert (j, i) == pytest.approx((rows.mean(), cols.mean()), abs=1e-6) and k == pytest.approx(0)


def test_demo_ct_study(tmp_path):
    d = create_demo_ct(tmp_path, StudySettings(name="ct", readers=["R1"]), n_abnormal=1, n_normal=1, seed=1)
    abnormal = [c for c in d.cases if not c.truth.normal]
    assert len(abnormal) == 1 and 1 <= len(abnormal[0].truth.lesions) <= 2
    vol = load_study_image(tmp_path / abnormal[0].images["demo CT"].path)
    les = abnormal[0].truth.lesions[0]
    # a nodule is denser than the surrounding lung at its world centre (the truth matches the pixels)
    assert vol.value_at_world(les.center_lps) > -500
    assert d.display.window == (1500.0, -600.0)
