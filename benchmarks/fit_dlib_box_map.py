"""Fit dlib HOG box -> tight landmark box maps on training faces; writes facepoints/assets/dlib_box_map.json.

    python benchmarks/fit_dlib_box_map.py [--every 2]

dlib's five HOG sub-detectors (frontal, left/right profile-ish, two tilted)
each draw their own box, so each gets a ``BoxMap``. Training faces only
(YouTube-Faces training frames and the HELEN trainset); the test sets are
never used. Needs ``pip install 'facepoints[dlib]'``.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facepoints.datasets import load_dataset
from facepoints.detectors import BOX_MAP_FORMAT, BoxMaps, build_detector, fit_box_map
from facepoints.detectors.boxmap import matched_detection
from facepoints.detectors.dlib_hog import BOX_MAP_ASSET
from facepoints.geometry import tight_box

DATA = ROOT.parent / "shared" / "data"
SETS = ("youtube-faces-68/training_frames_keypoints.csv", "300w-68/helen/trainset")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--every", type=int, default=2)
    args = ap.parse_args()
    det = build_detector("dlib", upsample=1)
    found: dict[str, list] = defaultdict(list)
    tights: dict[str, list] = defaultdict(list)
    total = 0
    for rel in SETS:
        samples, _ = load_dataset(str(DATA / rel), progress=False)
        for s in samples[:: args.every]:
            total += 1
            t = tight_box(s.points, s.mask)
            d = matched_detection(det.detect(s.image), t, 0.3)
            if d is not None:
                found[d.cascade].append(d)
                tights[d.cascade].append(t)
    maps = {k: fit_box_map(found[k], np.array(tights[k])) for k in sorted(found) if len(found[k]) >= 5}
    meta = {"description": "dlib HOG box -> tight box of the 68 iBUG points, per sub-detector",
            "fitted_on": list(SETS), "every": args.every, "faces": {k: len(v) for k, v in found.items()},
            "photos": total, "command": f"python benchmarks/fit_dlib_box_map.py --every {args.every}"}
    out = ROOT / "facepoints" / "assets" / BOX_MAP_ASSET
    BoxMaps(maps, meta).save(out)
    print(f"wrote {out} ({BOX_MAP_FORMAT}): {meta['faces']} of {total} photos")


if __name__ == "__main__":
    main()
