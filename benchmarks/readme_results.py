"""The README's results table, rendered from benchmarks/results/ so that no figure is typed by hand.

    python benchmarks/readme_results.py          # rewrite the block between the README's results markers

tests/test_readme.py renders it again and fails when the README and the results files disagree.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- results:start (benchmarks/readme_results.py) -->", "<!-- results:end -->"
ROWS = [  # (name in results, label, recipe)
    ("default", "`default` (int8, shipped)", "`configs/default.yaml`: distilled from a 45-epoch `accurate`"),
    ("default +flip", "`default` + flip averaging", "opt-in `flip_average=True`: the mirrored crop too"),
    ("default-float32", "`default`, float32 twin", "same weights, not quantised"),
    ("fast", "`fast` (int8, shipped)", "`configs/student.yaml`: smaller and faster, distilled from a 112 px model"),
    ("accurate", "`accurate` (int8, shipped)", "`configs/teacher128.yaml`: 128 px, 2.8 M parameters, opt-in"),
    ("seed_baseline", "`seed_baseline`", "`configs/seed_baseline.yaml` (the seed write-up)"),
    ("dlib", "dlib 68-point predictor", "reference; trained on 300-W, AFW included"),
    ("mediapipe", "MediaPipe Face Mesh 0.10.21", "reference; 468 vertices mapped to 68 on training faces"),
    ("kaggle15", "`kaggle15` (int8, 15 points)", "`configs/kaggle15.yaml`; NME by eye-centre distance"),
]


def _load(name: str) -> dict:
    path = RESULTS / name
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _speed(method: str, speed: dict) -> str:
    key = {"dlib": "dlib shape_predictor_68"}.get(method, method)
    rows = [r for r in speed.get("rows", []) if r["method"] == key and r["threads"] == 1
            and not r["runtime"].startswith("torch")]
    return f"{rows[0]['ms_per_face_b1']:.2f}" if rows else ""


def render() -> str:
    acc, speed = _load("accuracy.json"), _load("speed.json")
    by = {(r["name"], r["dataset"]): r for r in acc.get("results", [])}
    lines = ["| model | recipe | AFW NME / FR@10 / AUC | YouTube-Faces test NME / FR@10 / AUC | "
             "landmark step ms/face (1 thread) |", "|---|---|---|---|---:|"]
    for name, label, recipe in ROWS:
        cells = []
        for ds in ("afw", "youtube-test"):
            r = by.get((name, ds))
            cells.append(f"{r['nme_mean']:.2f} % / {r['failure_rate']:.1f} % / {r['auc']:.3f}" if r else "")
        if any(cells):
            lines.append(f"| {label} | {recipe} | {cells[0]} | {cells[1]} | {_speed(name, speed)} |")
    lines += ["", *detection_table(_load("detection.json"))]
    prov = acc.get("provenance", {})
    lines += ["", f"Measured by `{prov.get('command', 'python benchmarks/accuracy.py')}` at commit "
              f"`{prov.get('commit', '?')}` ({prov.get('versions', {}).get('onnxruntime', '?')} onnxruntime) and "
              "`python benchmarks/speed.py`; tight ground-truth boxes, NME in % of the outer-eye-corner distance."]
    return "\n".join(lines)


def detection_table(det: dict) -> list[str]:
    """Face finding on whole AFW photos: each detector alone, and what ``detect`` returns with it."""
    rows = [r for r in det.get("rows", []) if r["set"] == "afw-scenes"]
    if not rows:
        return []
    out = ["| face detector (AFW scenes, whole photos) | faces found | false detections | ms per photo |",
           "|---|---:|---:|---:|"]
    out += [f"| {r['detector']} | {r['found']} / {r['faces']} ({100 * r['recall']:.1f} %) | {r['false_positives']} | "
            f"{r['ms_per_photo_median']:.0f} |" for r in rows]
    cmd = det.get("provenance", {}).get("command", "python benchmarks/detection.py")
    return [*out, "", f"Detection by `{cmd}` (1 thread; `+landmarks`: what `detect` returns, 68 points included)."]


def block(text: str) -> str:
    m = re.search(re.escape(START) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    return m.group(1) if m else ""


def main() -> None:
    text = README.read_text(encoding="utf-8")
    if START not in text:
        raise SystemExit(f"README.md has no {START} marker")
    new = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: f"{START}\n{render()}\n{END}", text,
                 flags=re.S)
    README.write_text(new, encoding="utf-8")
    print(render())


if __name__ == "__main__":
    main()
