"""Does a model's ``detect`` find just the one face of the sample photo, as stored and as the page's test sends it?

    python benchmarks/one_face.py MODEL     # exit 0: one face in each; exit 1: a second, false face (listed)

``regenerate.sh`` runs it after a not-a-face rule chose a model's detector threshold: a threshold that boxes a
second face on the project's own sample photo, or on its top 512 x 400 crop stored the way a phone stores a
turned photo (pixels turned, re-encoded as JPEG, an EXIF tag to turn them back: ``facepoints.testing.photos``,
as ``tests/test_browser.py`` sends it), is
not shipped, and the model keeps the detector's own threshold. Nothing here is a test set.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import facepoints  # noqa: E402
from facepoints.cli import sample_image_path  # noqa: E402
from facepoints.inference import read_image  # noqa: E402
from facepoints.testing.photos import phone_jpeg  # noqa: E402


def main(model_name: str) -> int:
    model = facepoints.load(model_name, threads=1)
    sample = sample_image_path()
    bad = 0
    with tempfile.TemporaryDirectory(prefix="facepoints-one-face-") as tmp:
        turned = phone_jpeg(sample, Path(tmp) / "turned.jpg")
        for name, path in (("sample", sample), ("sample as a turned phone JPEG", turned)):
            faces = model.detect(read_image(path))
            print(f"{model_name}, {name}: {len(faces)} faces " +
                  " ".join(f"[box {f.box.round(0).tolist()}, detection {f.detection_score:.3f}]" for f in faces))
            bad += len(faces) != 1
    return int(bad > 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "default"))
