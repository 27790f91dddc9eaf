"""Deprecated: the loaders moved to ``facepoints.datasets``; this module re-exports them for old imports."""

from facepoints.datasets import *  # noqa: F401,F403
from facepoints.datasets import FORMATS
from facepoints.datasets import __all__ as _all

DATASETS = {name: fmt.load for name, fmt in FORMATS.items()}
OWN_SCHEME_FORMATS = frozenset(name for name, fmt in FORMATS.items() if fmt.own_scheme)
__all__ = [*_all, "DATASETS", "OWN_SCHEME_FORMATS"]
