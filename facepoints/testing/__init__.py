"""Test material made by code (synthetic videos of real faces with known points), for tests and benchmarks.

Not needed to use facepoints; nothing in the runtime imports it.
"""
