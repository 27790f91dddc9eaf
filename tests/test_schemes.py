"""Point schemes: built-in tables, conversion, custom schemes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepoints.schemes import SchemeError, convert_points, load_scheme, scheme_from_dict


def test_flip_pairs_are_symmetric_and_eye_corners_swap() -> None:
    s = load_scheme("ibug68")
    perm = s.flip_permutation()
    assert (perm[perm] == np.arange(68)).all()
    assert perm[36] == 45 and perm[0] == 16 and perm[30] == 30 and perm[48] == 54
    assert s.normalise == (36, 45)
    assert sum(len(v) for v in s.regions.values()) == 68


@pytest.mark.parametrize("name,k,pair,by", [("aflw21", 21, (6, 11), "box"), ("aflw19", 19, (6, 11), "box"),
                                            ("wflw98", 98, (60, 72), "points"), ("cofw29", 29, (8, 9), "points")])
def test_new_builtin_schemes(name: str, k: int, pair: tuple[int, int], by: str) -> None:
    s = load_scheme(name)
    perm = s.flip_permutation()
    assert s.num_points == k and s.normalise == pair and s.normalise_by == by
    assert (perm[perm] == np.arange(k)).all()
    assert perm[pair[0]] == pair[1]  # the normalising eye corners are each other's mirror
    assert sorted(i for v in s.regions.values() for i in v) == list(range(k))
    assert load_scheme(name).to_dict().get("normalise_by", "points") == by


def test_convert_68_to_15_and_5() -> None:
    pts = np.arange(136, dtype=float).reshape(68, 2)
    mask = np.ones(68, bool)
    mask[37] = False
    out, valid = convert_points(pts, mask, "ibug68", "kaggle15")
    assert out.shape == (15, 2)
    np.testing.assert_allclose(out[0], pts[42:48].mean(0))  # subject's left eye = image right
    np.testing.assert_allclose(out[10], pts[30])
    assert not valid[1] and valid[0]  # the right eye centre needs point 37
    five, v5 = convert_points(pts, None, "ibug68", "five")
    np.testing.assert_allclose(five[2], pts[30])
    assert v5.all()
    with pytest.raises(SchemeError):
        convert_points(np.zeros((15, 2)), None, "kaggle15", "ibug68")


def test_custom_scheme_validation_and_missing_flip(tmp_path: Path) -> None:
    s = scheme_from_dict({"name": "tri", "points": ["a", "b", "c"], "normalise": [0, 1]})
    with pytest.raises(SchemeError, match="no flip table"):
        s.flip_permutation()
    with pytest.raises(SchemeError):
        scheme_from_dict({"name": "bad", "points": ["a"], "normalise": [0, 3]})
    path = tmp_path / "my.yaml"
    path.write_text("name: my\npoints: [l, r, n]\nflip_pairs: [[0, 1]]\nnormalise: [0, 1]\n")
    assert load_scheme(str(path)).flip_permutation().tolist() == [1, 0, 2]
