"""Window / level to uint8 grey values, fast: a precomputed lookup table for integer data. Qt-free.

For int16 / uint16 / (u)int8 slices the whole 8- or 16-bit value range goes through one uint8 table (65,536
entries, rebuilt only when the window or inversion changes), so a 512x512 slice costs one ``np.take``.
Float data is scaled with in-place numpy operations; NaN becomes black.
"""

from __future__ import annotations

import numpy as np


def _ramp(values: np.ndarray, width: float, level: float, inverted: bool) -> np.ndarray:
    lo = level - width / 2.0
    y = np.clip((values.astype(np.float64) - lo) * (255.0 / max(width, 1e-12)), 0.0, 255.0)
    if inverted:
        y = 255.0 - y
    return np.rint(y).astype(np.uint8)


class WindowLUT:
    """Maps slices of one dtype to C-contiguous uint8 with the current window; reuses its output buffer."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._lut: np.ndarray | None = None
        self._out: np.ndarray | None = None
        self._tmp: np.ndarray | None = None

    def _table(self, dtype: np.dtype, window: tuple[float, float], inverted: bool) -> np.ndarray:
        key = (dtype.str, float(window[0]), float(window[1]), bool(inverted))
        if key != self._key:
            info = np.iinfo(dtype)
            values = np.arange(2 ** (8 * dtype.itemsize), dtype=np.int64)
            if info.min < 0:  # table is indexed by the unsigned view: two's complement order
                values = values.astype(np.dtype(f"u{dtype.itemsize}")).view(dtype).astype(np.int64)
            self._lut = _ramp(values, window[0], window[1], inverted)
            self._key = key
        assert self._lut is not None
        return self._lut

    def _buffer(self, shape: tuple[int, ...]) -> np.ndarray:
        if self._out is None or self._out.shape != shape:
            self._out = np.empty(shape, dtype=np.uint8)
        return self._out

    def apply(self, raw: np.ndarray, window: tuple[float, float], inverted: bool = False, copy: bool = True) -> np.ndarray:
        """uint8 image of ``raw`` (any strides). ``copy=False`` reuses one output buffer between calls."""
        dt = raw.dtype
        out = self._buffer(raw.shape) if not copy else np.empty(raw.shape, dtype=np.uint8)
        if np.issubdtype(dt, np.integer) and dt.itemsize <= 2:
            lut = self._table(dt, window, inverted)
            idx = raw.view(np.dtype(f"u{dt.itemsize}")) if dt.kind == "i" else raw
            np.take(lut, idx, out=out)
            return out
        if dt == bool:
            return self.apply(raw.view(np.uint8), window, inverted, copy)
        # float (or wide integer) data: scale in float32
        if self._tmp is None or self._tmp.shape != raw.shape:
            self._tmp = np.empty(raw.shape, dtype=np.float32)
        t = self._tmp
        width, level = float(window[0]), float(window[1])
        np.subtract(raw, level - width / 2.0, out=t, casting="unsafe")
        np.multiply(t, 255.0 / max(width, 1e-12), out=t)
        np.nan_to_num(t, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
        np.clip(t, 0.0, 255.0, out=t)
        if inverted:
            np.subtract(255.0, t, out=t)
        np.rint(t, out=t)
        out[...] = t
        return out
