"""Evidence for the shipped detectors on held-out demo phantoms, scored by the LUNA16 FROC protocol.

One candidate generator (demo-cg) feeds both FPR models, as in the README's table, so the CPMs compare like with
like: the standard model's CPM has a floor, and the augmented (robust) model's CPM must be at least the standard's
minus 0.02 (issue 4).
"""

import pytest

from reviewer.models.cards import find_card

# CPM of demo-cg + demo-fpr-standard on the first 2 held-out test phantoms (seeds 300-301; 301 has flipped x/y),
# measured once in this tree; README reports all 20 test phantoms. The floor leaves a margin for BLAS/thread
# nondeterminism and is well above what a detector that does not find nodules scores (0).
MEASURED_CPM_2 = 0.653  # 10 of 14 nodules found, sensitivity 0.64 from 1/8 to 4 FPs per scan
FLOOR_CPM_2 = 0.52  # two missed nodules more


@pytest.fixture(scope="module")
def froc_two_phantoms(tmp_path_factory):
    import torch

    from reviewer.detection.fpr import FprSpec
    from reviewer.detection.pipeline import CG_CANDIDATES, CandidateSource
    from reviewer.luna16.demo_export import export_demo_luna16
    from reviewer.models.cards import build_model
    from reviewer.synthesis.compare import compare_cpm

    try:
        cards = {n: find_card(n) for n in ("demo-fpr-standard", "demo-fpr-robust")}
        find_card("demo-cg")
    except Exception:  # noqa: BLE001
        pytest.skip("demo detection models not shipped")
    dev = torch.device("cpu")
    data = export_demo_luna16(tmp_path_factory.mktemp("luna") / "test2", "test", n=2)
    cg = CandidateSource.from_card("demo-cg", dev, max_candidates=CG_CANDIDATES)
    models = {n: build_model(c, dev) for n, c in cards.items()}
    spec = FprSpec.from_card(cards["demo-fpr-standard"])
    assert FprSpec.from_card(cards["demo-fpr-robust"]) == spec
    return compare_cpm(cg, models, spec, str(data), n_bootstrap=0)


@pytest.mark.slow
def test_standard_detector_cpm_on_held_out_phantoms(froc_two_phantoms):
    std = froc_two_phantoms["demo-fpr-standard"]
    assert std.cpm >= FLOOR_CPM_2, (std.cpm, std.sensitivities, MEASURED_CPM_2)


@pytest.mark.slow
def test_augmented_detector_keeps_clean_cpm(froc_two_phantoms):
    std, rob = froc_two_phantoms["demo-fpr-standard"], froc_two_phantoms["demo-fpr-robust"]
    assert rob.cpm >= std.cpm - 0.02, (rob.cpm, std.cpm)
