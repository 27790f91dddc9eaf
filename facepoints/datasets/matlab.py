"""MATLAB .mat files (v5 via scipy, v7.3 via h5py) for the AFLW-19 and COFW annotations.

scipy and h5py come with the training extras; the base install reads the other formats without them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from facepoints.datasets.core import DataError

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _optional_module(name: str, why: str) -> Any:
    """scipy and h5py come with the training extras; the base install reads the other formats without them."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise DataError(f"{why} needs the Python package {name!r}: pip install 'facepoints[train]'") from None


def _is_hdf5(path: Path) -> bool:
    """MATLAB v7.3 files are HDF5 behind a 512-byte text header (COFW_train_color.mat is one)."""
    with open(path, "rb") as f:
        head = f.read(520)
    return head[:8] == _HDF5_SIGNATURE or head[512:520] == _HDF5_SIGNATURE


def mat_variables(path: str | Path) -> set[str]:
    """Names of the variables in a .mat file, without loading them."""
    p = Path(path)
    if _is_hdf5(p):
        h5py = _optional_module("h5py", "reading MATLAB v7.3 files")
        with h5py.File(p, "r") as f:
            return {k for k in f if not k.startswith("#")}
    sio = _optional_module("scipy.io", "reading .mat files")
    try:
        return {name for name, _, _ in sio.whosmat(p)}
    except Exception as e:  # scipy raises several types for files that are not .mat
        raise DataError(f"{p}: not a readable MATLAB file ({e})") from None


def _h5_value(f: Any, obj: Any) -> Any:
    h5py = _optional_module("h5py", "reading MATLAB v7.3 files")
    if isinstance(obj, h5py.Group):
        return {k: _h5_value(f, obj[k]) for k in obj}
    data = obj[()]
    cls = obj.attrs.get("MATLAB_class", b"")
    cls = cls.decode() if isinstance(cls, bytes) else str(cls)
    if h5py.check_dtype(ref=obj.dtype) is not None:  # a cell array: references to its elements
        out = np.empty(data.shape, dtype=object)
        for idx in np.ndindex(data.shape):
            out[idx] = _h5_value(f, f[data[idx]])
        return out.T
    if cls == "char":
        return "".join(chr(c) for c in np.asarray(data).T.ravel())
    return np.asarray(data).T  # HDF5 holds MATLAB's column-major arrays with their axes reversed


def read_mat(path: str | Path, names: tuple[str, ...]) -> dict[str, Any]:
    """The named variables of a .mat file (v5 via scipy, v7.3 via h5py), in MATLAB's axis order.

    Cell arrays come back as numpy object arrays, strings as ``str`` (v7.3)
    or 1-element string arrays (v5); ``mat_str`` unwraps either.
    """
    p = Path(path)
    if _is_hdf5(p):
        h5py = _optional_module("h5py", "reading MATLAB v7.3 files")
        with h5py.File(p, "r") as f:
            return {n: _h5_value(f, f[n]) for n in names if n in f}
    sio = _optional_module("scipy.io", "reading .mat files")
    try:
        return dict(sio.loadmat(p, variable_names=list(names)))
    except Exception as e:  # as in mat_variables: scipy's error types vary with the damage
        raise DataError(f"{p}: not a readable MATLAB file ({e})") from None


def mat_str(x: Any) -> str:
    while isinstance(x, np.ndarray):
        if x.dtype.kind in "US" and x.ndim <= 1 and x.size == 1:
            return str(x.reshape(-1)[0])
        if x.size != 1:
            raise ValueError(f"expected one string, got an array of shape {x.shape}")
        x = x.reshape(-1)[0]
    return str(x)


def mat_image(x: Any) -> np.ndarray:
    """An image stored in a MATLAB cell (H x W grey or H x W x 3) as RGB uint8."""
    a = np.asarray(x)
    if a.dtype == object or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)) or 0 in a.shape:
        raise ValueError(f"not an image: array of shape {a.shape}, dtype {a.dtype}")
    if a.dtype != np.uint8:
        a = np.asarray(a, dtype=np.float64)
        a = (a * 255.0 if a.max() <= 1.0 else a).clip(0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)
