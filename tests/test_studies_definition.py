"""Study definition files: validation errors name the file and the field; TOML and JSON; round trip."""

from __future__ import annotations

import json

import pytest

from reviewer.errors import InputError
from reviewer.studies.definition import load_study_definition, parse_definition
from tests.studies_helpers import tiny_study


def _base() -> dict:
    return {"format": "reviewer-study", "version": 1, "name": "t", "conditions": ["Alpha", "Beta"],
            "cases": [{"id": "c1", "truth": {"lesions": [{"id": 1, "center_lps": [1, 2, 3], "diameter_mm": 4}]},
                       "images": {"Alpha": "images/p.nii.gz", "Beta": "images/q.nii.gz"}},
                      {"id": "c2", "truth": {"normal": True}, "images": {"Alpha": "images/r.nii.gz"}}]}


def _err(raw, tmp_path) -> str:
    p = tmp_path / "study.json"
    p.write_text(json.dumps(raw))
    with pytest.raises(InputError) as exc:
        load_study_definition(p, check_images=False)
    assert str(p) in str(exc.value)
    return str(exc.value)


@pytest.mark.parametrize("mutate, field, words", [
    (lambda d: d.pop("name"), "name", "missing"),
    (lambda d: d.update(paradigm="lroc"), "paradigm", "froc, roc, both"),
    (lambda d: d.update(rating_scale="1-10"), "rating_scale", "1-5, 0-100"),
    (lambda d: d.update(acceptance_radius_mm=0), "acceptance_radius_mm", "> 0"),
    (lambda d: d.update(version=9), "version", "1..1"),
    (lambda d: d["cases"][0]["truth"]["lesions"][0].update(center_lps=[1, 2]), "cases[0].truth.lesions[0].center_lps",
     "3 numbers"),
    (lambda d: d["cases"][0]["truth"]["lesions"][0].pop("diameter_mm"), "cases[0].truth.lesions[0].diameter_mm",
     "missing"),
    (lambda d: d["cases"][0]["truth"]["lesions"][0].update(id=0), "cases[0].truth.lesions[0].id", "positive"),
    (lambda d: d["cases"][1]["truth"].update(lesions=[{"center_lps": [0, 0, 0], "diameter_mm": 1}]),
     "cases[1].truth", "normal case cannot list lesions"),
    (lambda d: d["cases"][1].update(truth={}), "cases[1].truth", "either"),
    (lambda d: d["cases"][1]["images"].update(C="x.png"), "cases[1].images['C']", "unknown condition"),
    (lambda d: d["cases"][1].update(id="c1"), "cases[1].id", "duplicate"),
    (lambda d: d["cases"][0]["images"].update(Alpha="images/case_alpha_model.nii.gz"), "cases[0].images['Alpha'].path",
     "reveals condition"),
    (lambda d: d["cases"][0]["truth"]["lesions"][0].update(weight=0.5), "cases[0].truth.lesions", "sum to 1"),
    (lambda d: d.update(readers=[{"id": "R1"}, {"id": "R1"}]), "readers", "unique"),
    (lambda d: d.update(navigation={"allow_back": "yes"}), "navigation.allow_back", "true or false"),
    (lambda d: d.update(time_limit_s=-1), "time_limit_s", "> 0"),
    (lambda d: d.update(colour="red"), "colour", "unknown field"),
    (lambda d: d.update(comparison=["Alpha", "Z"]), "comparison", "two different labels"),
    (lambda d: d["cases"].pop(1) and d["cases"][0]["images"].pop("Beta"), "conditions", "no case has an image"),
])
def test_validation_errors_name_file_and_field(tmp_path, mutate, field, words):
    raw = _base()
    mutate(raw)
    msg = _err(raw, tmp_path)
    assert f": {field}: " in msg, msg
    assert words in msg, msg


def test_invalid_json_and_missing_images(tmp_path):
    p = tmp_path / "study.json"
    p.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_study_definition(p)
    p.write_text(json.dumps(_base()))
    with pytest.raises(InputError, match=r"cases\[0\].images\['Alpha'\]: image 'images/p.nii.gz' not found"):
        load_study_definition(tmp_path)


def test_toml_definition_reads_like_json(tmp_path):
    toml = """
format = "reviewer-study"
version = 1
name = "toml study"
paradigm = "both"
rating_scale = "0-100"
conditions = ["A"]
[navigation]
allow_back = true
[[readers]]
id = "R1"
[[cases]]
id = "c1"
images = { A = "a.png" }
[[cases.truth.lesions]]
center_lps = [1.5, 2.0, -3.0]
diameter_mm = 6
[[cases]]
id = "c2"
truth = { normal = true }
images = { A = { path = "b.png", spacing_mm = [0.5, 0.7] } }
"""
    (tmp_path / "study.toml").write_text(toml)
    d = load_study_definition(tmp_path, check_images=False)
    assert d.name == "toml study" and d.paradigm == "both" and d.rating_range == (0, 100)
    assert d.navigation.allow_back and [r.id for r in d.readers] == ["R1"]
    assert d.cases[0].truth.lesions[0].center_lps == (1.5, 2.0, -3.0) and d.cases[0].truth.lesions[0].id == 1
    assert d.cases[1].truth.normal and d.cases[1].images["A"].spacing_mm == (0.5, 0.7)
    (tmp_path / "study.toml").write_text(toml.replace('diameter_mm = 6', 'diameter_mm = "big"'))
    with pytest.raises(InputError, match=r"study.toml: cases\[0\].truth.lesions\[0\].diameter_mm: expected a number"):
        load_study_definition(tmp_path, check_images=False)


def test_written_definition_round_trips(tmp_path):
    d = tiny_study(tmp_path, n_cases=3)
    d2 = load_study_definition(tmp_path)
    assert d2.to_json() == d.to_json()
    assert d2.items() == [(c, cond) for c in ("case00", "case01", "case02") for cond in d.conditions]
    assert d2.cases[0].truth.weights() == [1.0] and d2.cases[1].truth.normal
    assert parse_definition(d.to_json()).compared_conditions() == tuple(d.conditions)
