"""The One Euro filter (Casiez et al., CHI 2012) for tracked points: strong smoothing when still, little lag
when moving."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _alpha(dt: float, cutoff: np.ndarray | float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


@dataclass
class OneEuroFilter:
    """One Euro low-pass filter of a point set (or any array): smooth when still, little lag when moving.

    Each point's cutoff rises with the larger of two speeds: the mean speed of
    all points, and its own. A face mostly moves as a whole, and the mean speed
    of 68 points is far less noisy than one point's, so ``beta`` can be high
    without noise opening the filter. The point's own speed lets local motion
    through: a blink moves four eyelid points and must not be smoothed away.
    ``scale`` divides the speeds, so with the face size as scale one setting
    serves faces of every size and video resolution.
    """

    min_cutoff: float = 1.0
    beta: float = 0.0
    d_cutoff: float = 1.0
    _x: np.ndarray | None = field(default=None, repr=False)
    _dx: np.ndarray | None = field(default=None, repr=False)
    _t: float = field(default=0.0, repr=False)

    def __call__(self, x: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._dx is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self._t
        if dt <= 0:
            return self._x.copy()
        self._dx = self._dx + _alpha(dt, self.d_cutoff) * ((x - self._x) / dt - self._dx)
        if x.ndim:
            own = np.linalg.norm(self._dx, axis=-1, keepdims=True) if x.ndim > 1 else np.abs(self._dx)
            speed = np.maximum(own, own.mean())
        else:
            speed = np.abs(self._dx)
        cutoff = self.min_cutoff + self.beta * speed / max(scale, 1e-9)
        self._x = self._x + _alpha(dt, cutoff) * (x - self._x)
        self._t = t
        return self._x.copy()

    def reset(self) -> None:
        self._x, self._dx = None, None
