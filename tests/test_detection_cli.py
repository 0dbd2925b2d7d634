"""`reviewer detect`, `reviewer train cg|fpr` and `reviewer bench detect` through the real CLI entry point."""

import json

import pytest

from reviewer.cli import main


def _shipped():
    from reviewer.models.cards import find_card

    try:
        find_card("demo-cg"), find_card("demo-fpr-standard")
    except Exception:  # noqa: BLE001
        pytest.skip("demo detection models not shipped in this tree")


@pytest.fixture(scope="module")
def small_luna(tmp_path_factory):
    from reviewer.luna16.demo_export import export_demo_luna16

    # two test phantoms on a coarse grid (2.24 mm pixels, 4.44 mm slices: outside the models' domain), one flipped
    return export_demo_luna16(tmp_path_factory.mktemp("luna") / "set", "test", n=2, shape=(72, 160, 160))


@pytest.mark.slow
def test_detect_writes_luna16_submission_and_domain_warnings(small_luna, tmp_path, capsys):
    from reviewer.luna16.io import read_submission

    _shipped()
    mhds = sorted(str(p) for p in small_luna.rglob("*.mhd"))
    out = tmp_path / "sub.csv"
    js = tmp_path / "det.json"
    assert main(["--device", "cpu", "detect", *mhds, "--output", str(out), "--max-candidates", "20", "--cg-candidates", "60",
                 "--json", str(js)]) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and "slice thickness 4.44 mm" in err
    rows = read_submission(out)
    uids = {p.split("/")[-1][:-4] for p in mhds}
    assert {r.seriesuid for r in rows} <= uids and 0 < len(rows) <= 40
    assert all(0.0 <= r.probability <= 1.0 for r in rows)
    rep = json.loads(js.read_text())
    f0 = rep["cases"][0]["findings"][0]
    assert f0["score_kind"] == "probability" and f0["diameter_mm"] > 0 and f0["observer"] == "demo-fpr-standard"
    assert set(rep["cases"][0]["timings"]) >= {"preprocess", "candidates", "fpr", "total"}


@pytest.mark.slow
def test_train_fpr_and_cg_cli_write_cards_and_resume(small_luna, tmp_path, capsys):
    from reviewer.models.cards import build_model, read_card

    out = tmp_path / "fpr"
    args = ["--device", "cpu", "train", "fpr", "--data", str(small_luna), "--out", str(out), "--epochs", "1",
            "--steps-per-epoch", "2", "--batch-size", "4", "--channels", "4", "8", "--threads", "1",
            "--censor", "size:0.5", "--loss", "beta"]
    assert main(args) == 0
    card = read_card(out / "fpr.json")
    assert card.architecture["args"]["head"] == "beta"
    assert "--censor size:0.5" in card.training["command"] and card.training["censor"] == "size:0.5"
    build_model(card)
    # a second run with more epochs resumes from the checkpoint
    assert main(args[:9] + ["2"] + args[10:]) == 0
    hist = json.loads((out / "history.jsonl").read_text())
    assert [h["epoch"] for h in hist] == [0, 1]
    out_cg = tmp_path / "cg"
    assert main(["--device", "cpu", "train", "cg", "--data", str(small_luna), "--out", str(out_cg), "--epochs", "1",
                 "--steps-per-epoch", "1", "--channels", "2", "4", "--threads", "1", "--loss", "lopsided"]) == 0
    assert read_card(out_cg / "cg.json").task == "nodule-candidate-generation"


def test_train_cli_rejects_bad_options(tmp_path, capsys):
    assert main(["train", "cg", "--data", "x", "--out", str(tmp_path), "--censor", "half"]) == 2
    assert "random:F or size:F" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "cg", "--data", "x", "--out", str(tmp_path), "--loss", "beta"])


def test_augment_without_synthesis_is_a_clear_error(monkeypatch, tmp_path):
    import builtins

    from reviewer.detection.fpr import FprSpec
    from reviewer.training import detect_train

    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("reviewer.synthesis"):
            raise ImportError("no module named reviewer.synthesis")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    cfg = detect_train.DetectTrainConfig("fpr", "x", str(tmp_path), augment=["syn"])
    with pytest.raises(RuntimeError, match="FprAugmenter"):
        detect_train._augmenter(cfg, FprSpec(), 0)
    with pytest.raises(ValueError, match="unknown --augment"):
        detect_train.DetectTrainConfig("fpr", "x", str(tmp_path), augment=["mixup"])
