#!/usr/bin/env bash
# Every results file downstream of a shipped model, in the order the choices need: settings chosen on held-out
# photos first (each written into a model card), then the test sets, touched once, then the runtime figures.
#
#   bash benchmarks/regenerate.sh detector    # after a new detector or verifier: its choices, then all below
#   bash benchmarks/regenerate.sh landmarks   # after a new landmark model: its choices, then the tests and runtime
#   bash benchmarks/regenerate.sh tests       # the test sets, the README and the runtime figures only
#
# Run on quiet cores (pause any training: kill -STOP / kill -CONT) and keep the machine otherwise idle: the
# speed rows compare with dlib measured in the same run. Logs go to $LOGS (default /tmp/facepoints-regenerate).
# MediaPipe's reference runs in its own venv (.mpvenv, docs/benchmarks.md).
# If duplicates or refine_tol choose other values than facepoints/refine.py holds, set them there and run
# `regenerate.sh landmarks` again (the later choices and figures assume them; tests/test_shipped_detect.py checks).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LOGS=${LOGS:-/tmp/facepoints-regenerate}
mkdir -p "$LOGS"

run() {  # run NAME CMD...: one script, its log kept, the wall time shown
  local name=$1; shift
  local t0=$SECONDS
  echo "== $name: $*"
  "$@" > "$LOGS/$name.log" 2>&1 || { echo "FAILED: $name (see $LOGS/$name.log)"; exit 1; }
  echo "   done in $((SECONDS - t0)) s"
}

detector_choices() {
  run detector_pyramid $PY benchmarks/detector_pyramid.py --write-card
  run verifier $PY benchmarks/verifier.py --write-card
  run detector_validation $PY benchmarks/detector_validation.py  # with the card the two rules above wrote
}

# not_a_face_rule MODEL LOG OUT: the model takes its rule's detector threshold unless that boxes a second, false
# face on the sample photo or the page test's turned JPEG of it (fast's 0.28 did in session 27, the 140-epoch
# default's 0.21 and accurate's 0.37 in session 33); then it keeps the CNN's own threshold
not_a_face_rule() {
  local model=$1 log=$2 out=$3
  run "$log" $PY benchmarks/not_a_face.py --model "$model" --write-card --out "$out"
  $PY benchmarks/one_face.py "$model" ||
    run "${log}_own" $PY benchmarks/not_a_face.py --model "$model" --write-card --own-threshold --out "$out"
}

landmark_choices() {
  run quantization $PY benchmarks/quantization.py --models default fast accurate
  run calibrate_default $PY benchmarks/calibrate_scores.py --model facepoints/weights/default.onnx --write-card
  run calibrate_fast $PY benchmarks/calibrate_scores.py --model facepoints/weights/fast.onnx \
    --config configs/student.yaml --write-card --out benchmarks/results/fast
  run calibrate_accurate $PY benchmarks/calibrate_scores.py --model facepoints/weights/accurate.onnx \
    --config configs/teacher128.yaml --write-card --out benchmarks/results/accurate
  not_a_face_rule default not_a_face benchmarks/results/not_a_face
  not_a_face_rule fast not_a_face_fast benchmarks/results/not_a_face_fast
  not_a_face_rule accurate not_a_face_accurate benchmarks/results/not_a_face_accurate
  run duplicates $PY benchmarks/duplicates.py
  run refine_tol $PY benchmarks/detected_boxes.py --split validation
  run first_pass $PY benchmarks/first_pass.py
  run flip_tta $PY benchmarks/flip_tta.py
  run held_out_regions $PY benchmarks/held_out_regions.py
  run training_curves $PY benchmarks/training_curves.py
}

tests_and_runtime() {
  run accuracy $PY benchmarks/accuracy.py --models seed_baseline default kaggle15 fast accurate \
    --mediapipe-python .mpvenv/bin/python
  run detection $PY benchmarks/detection.py --repeats 3
  run detected_boxes $PY benchmarks/detected_boxes.py
  run speed $PY benchmarks/speed.py --models default fast accurate seed_baseline
  run shipped $PY benchmarks/shipped.py
  run readme_results $PY benchmarks/readme_results.py
  run group_photo $PY docs/make_group_photo.py
  run pictures $PY docs/make_pictures.py
  FACEPOINTS_SCREENSHOT=docs/web.png run screenshot $PY -m pytest -q tests/test_browser.py
  run video $PY benchmarks/video.py --videos 4 --frames 90
  run load $PY benchmarks/load.py
  run ray_throughput $PY benchmarks/ray_throughput.py --scenes 30 --youtube 100
  run throughput $PY benchmarks/throughput.py
}

case "${1:-}" in
  detector) detector_choices; landmark_choices; tests_and_runtime ;;
  landmarks) landmark_choices; tests_and_runtime ;;
  tests) tests_and_runtime ;;
  *) echo "usage: bash benchmarks/regenerate.sh detector|landmarks|tests" >&2; exit 2 ;;
esac
