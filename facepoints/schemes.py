"""Point schemes as data: names, flip partners, regions and the error normaliser.

Schemes live in YAML files (``facepoints/schemes/*.yaml``) so that a new markup
needs no code; ``load_scheme`` also accepts a path to a user's own YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

NORMALISE_BY = ("points", "box")


class SchemeError(ValueError):
    """A scheme file is inconsistent, or an operation needs data it lacks."""


@dataclass(frozen=True)
class PointScheme:
    name: str
    points: tuple[str, ...]
    regions: dict[str, tuple[int, ...]]
    normalise: tuple[int, int]
    flip_index: tuple[int, ...] | None = None
    description: str = ""
    derive: dict[str, tuple[tuple[int, ...], ...]] = field(default_factory=dict)
    # "points": errors are divided by the distance between the ``normalise``
    # pair; "box": by sqrt(w * h) of the face box, the AFLW protocol, whose
    # profile faces often lack one of any pair of points.
    normalise_by: str = "points"

    @property
    def num_points(self) -> int:
        return len(self.points)

    def flip_permutation(self) -> np.ndarray:
        """Index array p such that flipped_points = mirrored(points)[p].

        Refuses schemes without a flip table: a mirrored face with unswapped
        left/right labels silently teaches the model wrong points.
        """
        if self.flip_index is None:
            raise SchemeError(
                f"scheme {self.name!r} has no flip table (flip_pairs); "
                "horizontal flips are refused for it"
            )
        return np.asarray(self.flip_index, dtype=np.int64)

    def to_dict(self) -> dict:
        pairs = []
        if self.flip_index is not None:
            pairs = [[i, j] for i, j in enumerate(self.flip_index) if i < j]
        out: dict = {
            "name": self.name,
            "description": self.description,
            "points": list(self.points),
            "regions": {k: list(v) for k, v in self.regions.items()},
            "normalise": list(self.normalise),
        }
        if self.flip_index is not None:
            out["flip_pairs"] = pairs
        if self.normalise_by != "points":
            out["normalise_by"] = self.normalise_by
        if self.derive:
            out["derive"] = {k: [list(g) for g in v] for k, v in self.derive.items()}
        return out


def scheme_from_dict(d: dict) -> PointScheme:
    try:
        name = str(d["name"])
        points = tuple(str(p) for p in d["points"])
        regions = {str(k): tuple(int(i) for i in v) for k, v in (d.get("regions") or {}).items()}
        normalise = tuple(int(i) for i in d["normalise"])
    except KeyError as e:
        raise SchemeError(f"scheme is missing the field {e.args[0]!r}") from None
    k = len(points)
    if k == 0:
        raise SchemeError(f"scheme {name!r} has no points")
    if len(normalise) != 2 or not all(0 <= i < k for i in normalise) or normalise[0] == normalise[1]:
        raise SchemeError(f"scheme {name!r}: normalise must be two different indices below {k}")
    for region, idx in regions.items():
        if not all(0 <= i < k for i in idx):
            raise SchemeError(f"scheme {name!r}: region {region!r} has an index outside 0..{k - 1}")
    flip_index: tuple[int, ...] | None = None
    if "flip_pairs" in d and d["flip_pairs"] is not None:
        perm = list(range(k))
        seen: set[int] = set()
        for pair in d["flip_pairs"]:
            i, j = (int(x) for x in pair)
            if not (0 <= i < k and 0 <= j < k) or i in seen or j in seen:
                raise SchemeError(f"scheme {name!r}: bad or repeated flip pair {pair}")
            seen.update((i, j))
            perm[i], perm[j] = j, i
        flip_index = tuple(perm)
    derive = {
        str(src): tuple(tuple(int(i) for i in group) for group in groups)
        for src, groups in (d.get("derive") or {}).items()
    }
    for src, groups in derive.items():
        if len(groups) != k:
            raise SchemeError(f"scheme {name!r}: derive.{src} needs {k} groups, has {len(groups)}")
    normalise_by = str(d.get("normalise_by") or "points")
    if normalise_by not in NORMALISE_BY:
        raise SchemeError(f"scheme {name!r}: normalise_by must be one of {NORMALISE_BY}, not {normalise_by!r}")
    return PointScheme(
        name=name,
        points=points,
        regions=regions,
        normalise=(normalise[0], normalise[1]),
        flip_index=flip_index,
        description=str(d.get("description", "")),
        derive=derive,
        normalise_by=normalise_by,
    )


def _builtin_files() -> dict[str, Path]:
    folder = resources.files("facepoints") / "schemes"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def builtin_schemes() -> list[str]:
    return sorted(_builtin_files())


def load_scheme(name_or_path: str | Path | PointScheme) -> PointScheme:
    """A built-in scheme by name (``ibug68``), or a user's YAML scheme file."""
    if isinstance(name_or_path, PointScheme):
        return name_or_path
    files = _builtin_files()
    key = str(name_or_path)
    if key in files:
        path = files[key]
    else:
        path = Path(key)
        if not path.is_file():
            raise SchemeError(f"unknown scheme {key!r}: not one of {sorted(files)} and not a file")
    with open(path, encoding="utf-8") as f:
        return scheme_from_dict(yaml.safe_load(f))


def convert_points(
    points: np.ndarray, mask: np.ndarray | None, source: PointScheme | str, target: PointScheme | str
) -> tuple[np.ndarray, np.ndarray]:
    """Map points (..., K, 2) of one scheme to another using the target's ``derive`` table.

    Each target point is the mean of its source points; it is valid only when
    every source point is valid, so partial annotations never produce guesses.
    """
    src = load_scheme(source)
    dst = load_scheme(target)
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[-2:] != (src.num_points, 2):
        raise SchemeError(f"expected points (..., {src.num_points}, 2) for {src.name}, got {pts.shape}")
    m = np.ones(pts.shape[:-1], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if src.name == dst.name:
        return pts.copy(), m.copy()
    groups = derive_groups(src, dst)
    out = np.stack([pts[..., list(g), :].mean(axis=-2) for g in groups], axis=-2)
    valid = np.stack([m[..., list(g)].all(axis=-1) for g in groups], axis=-1)
    return out, valid


def derive_groups(source: PointScheme, target: PointScheme) -> tuple[tuple[int, ...], ...]:
    """The target's table of source-point groups, one group per target point."""
    groups = target.derive.get(source.name)
    if groups is None and target.name in _builtin_files():  # a model's saved scheme may predate a built-in table
        groups = load_scheme(target.name).derive.get(source.name)
    if groups is None:
        raise SchemeError(f"no conversion from {source.name} to {target.name}")
    return groups


def convert_scores(scores: np.ndarray, source: PointScheme | str, target: PointScheme | str) -> np.ndarray:
    """Per-point scores (..., K) in another scheme: a derived point is as sure as its least sure source."""
    src, dst = load_scheme(source), load_scheme(target)
    s = np.asarray(scores, dtype=np.float64)
    if src.name == dst.name:
        return s.copy()
    return np.stack([s[..., list(g)].min(axis=-1) for g in derive_groups(src, dst)], axis=-1)
