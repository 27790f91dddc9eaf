"""Applications on top of the 68 points: alignment, head pose, expression cues, AR overlays, video tracking.

Each module works on plain ``(68, 2)`` point arrays in image pixels (the
``facepoints.geometry`` convention), so it serves any model that outputs the
iBUG 68-point scheme. Nothing here imports torch: numpy, OpenCV and the ONNX
runtime only.
"""
