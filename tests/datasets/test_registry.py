"""Contracts every registered dataset format keeps: it recognises its own files, and only those, and its
loader (one signature) gives cleaned samples in a known scheme."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepoints.datasets import FORMATS, DataError, DatasetSpec, LoadOptions, detect_format, load_dataset
from facepoints.schemes import load_scheme
from tests.datasets.builders import FORMAT_SAMPLES


def test_every_registered_format_has_a_sample_file() -> None:
    assert sorted(FORMAT_SAMPLES) == sorted(FORMATS)  # a new format brings a sample for these tests


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_a_format_recognises_its_own_files(name: str, tmp_path: Path) -> None:
    path = FORMAT_SAMPLES[name](tmp_path)
    assert detect_format(path) == name
    suffix = "" if path.is_dir() else path.suffix.lower()
    others = [f for f in FORMATS.values()
              if f.name != name and not f.fallback and (not f.suffixes or suffix in f.suffixes)]
    assert not [f.name for f in others if f.sniff(path)]  # no other format claims it


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_a_format_loads_cleaned_samples_through_one_signature(name: str, tmp_path: Path) -> None:
    path = FORMAT_SAMPLES[name](tmp_path)
    fmt = FORMATS[name]
    samples, report = fmt.load(path, LoadOptions(progress=False))
    assert samples and report.kept == len(samples) and report.records >= len(samples)
    sidecar = path.with_suffix(".yaml")  # custom formats: their scheme file beside them
    scheme = load_scheme(sidecar if fmt.own_scheme else samples[0].scheme)
    assert scheme.name == samples[0].scheme
    for s in samples:
        assert s.points.shape == (scheme.num_points, 2) and s.mask.shape == (scheme.num_points,)
        assert s.image.dtype == np.uint8 and s.image.ndim == 3 and s.image.shape[2] == 3
        assert np.isnan(s.points[~s.mask]).all() and np.isfinite(s.points[s.mask]).all()
        assert s.source and (s.visible is None or s.visible.shape == s.mask.shape)
    via, _ = load_dataset(str(path), progress=False)
    assert [s.source for s in via] == [s.source for s in samples]
    if not fmt.splits:
        with pytest.raises(DataError, match="no splits"):
            load_dataset(f"{path}@test", progress=False)


def test_unknown_files_and_formats_are_refused_by_name(tmp_path: Path) -> None:
    odd = tmp_path / "faces.xyz"
    odd.write_text("1 2 3\n")
    with pytest.raises(DataError, match="cannot tell the format of .*faces.xyz"):
        detect_format(odd)
    with pytest.raises(DataError, match="unknown dataset format 'nope'"):
        load_dataset(DatasetSpec(str(odd), format="nope"))


@pytest.mark.parametrize("name", sorted(n for n, f in FORMATS.items() if not f.image_folder))
def test_an_image_folder_for_a_format_without_one_is_refused(name: str, tmp_path: Path) -> None:
    path = FORMAT_SAMPLES[name](tmp_path)
    with pytest.raises(DataError, match="remove images:"):
        load_dataset(DatasetSpec(str(path), images=str(tmp_path)), progress=False)
