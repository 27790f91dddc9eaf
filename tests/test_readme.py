"""The README's figures are the results files' figures: rendered by a script, checked here."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import readme_results  # noqa: E402


def test_readme_results_block_matches_the_results_files() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_results.START in readme, "the README lost its generated results block"
    assert readme_results.block(readme) == readme_results.render(), (
        "README results differ from benchmarks/results/: run python benchmarks/readme_results.py")


def test_readme_prose_types_no_figures_outside_generated_blocks() -> None:
    """Percentages and milliseconds in the README come only from generated blocks."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    prose = re.sub(r"<!-- results:start.*?<!-- results:end -->", "", readme, flags=re.S)
    prose = re.sub(r"```.*?```", "", prose, flags=re.S)
    typed = re.findall(r"\d+(?:\.\d+)?\s?(?:%|ms\b|x dlib)", prose)
    assert not typed, f"figures typed by hand in the README: {typed}"


def test_every_results_file_says_where_it_came_from() -> None:
    import json

    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        prov = data.get("provenance") if isinstance(data, dict) else None
        assert prov, f"{path.name} records no provenance (command, commit, versions, CPU)"
        assert {"command", "commit", "versions", "cpu"} <= set(prov), f"{path.name}: incomplete provenance"
        assert "onnxruntime" in prov["versions"], f"{path.name}: no onnxruntime version"
