"""Each shipped model still scores what its card and the published results say, on the real test sets.

A worse model (say the seed baseline copied over the default, card and all) or
a runtime that moves the points turns these red. The protocol is
benchmarks/shipped.py, the same code that wrote the figures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from facepoints.card import ModelCard
from facepoints.inference import available_models, model_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import detector_candidates  # noqa: E402
import shipped  # noqa: E402

SHIPPED = available_models()
CASES = [(m, ds) for m in SHIPPED for ds in shipped.TEST_SETS]


def published(name: str, dataset: str) -> dict | None:
    """The row of the published accuracy table (benchmarks/results/accuracy.json) for a shipped model."""
    rows = json.loads((ROOT / "benchmarks" / "results" / "accuracy.json").read_text(encoding="utf-8"))["results"]
    found = [r for r in rows if r["name"] == name and r["dataset"] == dataset]
    return found[0] if found else None


def test_every_shipped_model_has_recorded_figures() -> None:
    assert {"default", "seed_baseline"} <= set(SHIPPED)
    for name in SHIPPED:
        card = ModelCard.for_model(model_dir() / f"{name}.onnx")
        assert set(card.metrics) == set(shipped.TEST_SETS), f"{name}: card lacks test figures"
        assert card.measured_with.get("onnxruntime"), f"{name}: card does not say which runtime measured it"


@pytest.mark.parametrize(("name", "dataset"), CASES)
def test_shipped_model_reproduces_its_figures(real_data: Path, name: str, dataset: str) -> None:
    card = ModelCard.for_model(model_dir() / f"{name}.onnx")
    want = card.metrics[dataset]
    got = shipped.measure(name, dataset)
    assert got["faces"] == want["faces"]
    for key, tol in shipped.TOLERANCE.items():
        assert abs(got[key] - want[key]) <= tol, f"{name} on {dataset}: {key} {got[key]} vs recorded {want[key]}"


@pytest.mark.parametrize(("name", "dataset"), CASES)
def test_card_matches_the_published_table(name: str, dataset: str) -> None:
    """The card's figures are the published ones: swapping in another model with its own card fails here."""
    card = ModelCard.for_model(model_dir() / f"{name}.onnx")
    row = published(card.name, dataset)
    assert row is not None, f"{card.name} on {dataset} is not in the published results"
    want = card.metrics[dataset]
    assert card.name == name, f"{name}.onnx carries the card of {card.name!r}"
    assert abs(row["nme_mean"] - want["nme"]) <= shipped.TOLERANCE["nme"]
    assert abs(row["failure_rate"] - want["fr10"]) <= shipped.TOLERANCE["fr10"]
    assert abs(row["auc"] - want["auc10"]) <= shipped.TOLERANCE["auc10"]


def test_default_beats_the_seed_baseline_on_every_test_set(real_data: Path) -> None:
    for dataset in shipped.TEST_SETS:
        default = shipped.measure("default", dataset)
        baseline = published("seed_baseline", dataset)
        assert baseline is not None
        assert default["nme"] < baseline["nme_mean"] - 1.0, f"default is no better than the seed baseline on {dataset}"


def test_the_detector_candidates_rule_compares_like_with_like() -> None:
    """The shipped detector (docs/detection.md: lean56_last, configs/detector_lean.yaml) is the rule's pick among
    candidates measured on the same held-out scenes, with the same second looks, whose weights exist; a high AP
    on other scenes, with other second looks or from lost weights, cannot win."""
    import copy

    cands = detector_candidates.load_candidates(detector_candidates.FOLDER)
    left_out = detector_candidates.comparable(cands)
    assert detector_candidates.pick(cands, left_out) == "lean56_last"
    assert "points56_last_s36" not in left_out  # the detector it replaces, re-measured the same way
    assert left_out["points56_last"].startswith("measured with other second looks")  # the older verifier setting
    assert left_out["cl56b_last"] == "not measured on every set"  # before the `rotated large` set existed
    assert "cl56_last" in left_out  # the best AP on older scenes, and its weights are gone
    elsewhere = copy.deepcopy(cands["lean56_last"])
    elsewhere["chosen"]["mean_ap"], elsewhere["chosen"]["composed"]["faces"] = 0.999, 1
    more = {**cands, "elsewhere": elsewhere}
    assert detector_candidates.pick(more, detector_candidates.comparable(more)) == "lean56_last"
    other_looks = copy.deepcopy(cands["points56_last_s36"])
    other_looks["chosen"]["mean_ap"], other_looks["provenance"]["verifier"] = 0.999, "verifier.onnx (weight 0.5)"
    more = {**cands, "other_looks": other_looks}
    assert detector_candidates.pick(more, detector_candidates.comparable(more)) == "lean56_last"


def test_the_detector_card_holds_what_the_held_out_rules_chose() -> None:
    """The pyramid, the mirrored look and the verifier's weight and threshold in the shipped card are the choices
    written by benchmarks/detector_pyramid.py and benchmarks/verifier.py on held-out photos: a hand-edited card, or
    a card left behind when the rules chose again, turns this red."""
    results = ROOT / "benchmarks" / "results"
    card = json.loads((model_dir() / "detector.json").read_text(encoding="utf-8"))
    pyramid = json.loads((results / "detector_pyramid.json").read_text(encoding="utf-8"))["chosen"]
    verifier = json.loads((results / "verifier.json").read_text(encoding="utf-8"))["chosen"]
    for key in ("band_px", "pyramid_step", "band_overlap"):
        assert card[key] == pyramid[key], key
    assert card["verifier"]["weight"] == verifier["weight"]
    assert card["verifier"]["threshold"] == verifier["threshold"]
    assert card.get("flip", False) == verifier["flip"]  # whether the detector also looks at the mirrored photo
    assert "rotated large" in pyramid and "rotated large" in verifier["sets"]  # chosen with the large turned faces
