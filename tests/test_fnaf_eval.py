"""`reviewer fnaf eval` end to end on small files with tiny models (numbers checked for consistency)."""

from __future__ import annotations

import csv
import json

import numpy as np
import torch

from reviewer import cli
from tests.test_mri_recon_cli import _write_card
from tests.test_recon_training import _dataset


def test_fnaf_eval_cli_outputs(tmp_path, capsys):
    from reviewer.mri.unet import Unet

    data = _dataset(tmp_path / "data", n_files=1, slices=2)
    torch.manual_seed(0)
    a = _write_card(tmp_path, Unet(1, 1, chans=4, num_pool_layers=2), "model-a")
    b = _write_card(tmp_path, Unet(1, 1, chans=4, num_pool_layers=2), "model-b")
    out = tmp_path / "eval"
    rc = cli.main(["--device", "cpu", "fnaf", "eval", "--data", str(data), "--model", str(a), "--model", str(b),
                   "--tries", "4", "--out", str(out), "--json", str(tmp_path / "r.json")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Table 2: FNAF attack" in text and "Transfer" in text
    rep = json.loads((tmp_path / "r.json").read_text())
    assert set(rep["models"]) == {"model-a", "model-b"}
    for m in rep["models"].values():
        assert set(m) >= {"attack_rate", "mean_loss", "ip_acceptance", "ssim", "nmse", "psnr"}
        assert 0 <= m["attack_rate"] <= 1 and 0 < m["ip_acceptance"] <= 1
    rows = list(csv.DictReader((out / "fnaf_attacks.csv").open()))
    assert len(rows) == 4  # 2 slices x 2 models
    # attack rate in the JSON equals the share of hits in the CSV
    for name, m in rep["models"].items():
        hits = [int(r["hit"]) for r in rows if r["model"] == name]
        assert m["attack_rate"] == np.mean(hits)
    # a model scored on its own features reproduces its attack rate
    assert rep["transfer"]["model-a"]["model-a"] == rep["models"]["model-a"]["attack_rate"]
    assert (out / "fnaf_heatmap.png").stat().st_size > 0
    # the features themselves and what made them are saved (reader studies are built from them)
    z = np.load(out / "fnaf_features.npz")
    meta = json.loads(str(z["meta"]))
    assert len(meta) == len(rows) and int(z["offsets"][-1]) == len(z["values"]) > 0
    settings = json.loads((out / "fnaf_report.json").read_text())["settings"]
    assert set(settings["model_cards"]) == {"model-a", "model-b"} and len(settings["files"]) == 1
