"""Fill a preallocated (k, j, i) array with the pixels of DICOM slices, one copy, slice by slice.

Fast path: uncompressed little-endian pixel data is read with ``readinto`` straight into the output slice
(the file offset comes from the header scan), in a small thread pool: file reads release the GIL.
Everything else (compressed, big endian, deflated) is decoded by pydicom, one slice at a time.
Rescale (slope/intercept) and MONOCHROME1 inversion are applied per slice in place.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pydicom

from reviewer.errors import InputError
from reviewer.io.slices import SliceRef
from reviewer.jobs import JobToken

N_THREADS = max(1, min(4, os.cpu_count() or 1))


def stored_dtype(s: SliceRef) -> np.dtype:
    h = s.header
    if h.bits_allocated == 8:
        return np.dtype(np.int8 if h.pixel_representation else np.uint8)
    if h.bits_allocated == 16:
        return np.dtype("<i2" if h.pixel_representation else "<u2")
    if h.bits_allocated == 32:
        return np.dtype("<i4" if h.pixel_representation else "<u4")
    raise InputError(h.path, f"unsupported BitsAllocated {h.bits_allocated}")


def stored_range(s: SliceRef) -> tuple[int, int]:
    bits = s.header.bits_stored
    if s.header.pixel_representation:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _is_integral(v: float) -> bool:
    return float(v).is_integer()


def can_read_raw(s: SliceRef) -> bool:
    h = s.header
    return h.pixel_offset is not None and h.samples_per_pixel == 1 and h.bits_allocated in (8, 16, 32)


def decode_slice(s: SliceRef) -> np.ndarray:
    """Decode one slice with pydicom (any transfer syntax it has a plugin for); 2D float or int array."""
    from pydicom.pixels import pixel_array

    try:
        try:
            arr = pixel_array(s.path, index=s.frame) if s.frame is not None else pixel_array(s.path)
        except AttributeError:  # deflated files: pydicom needs the whole dataset inflated first
            ds = pydicom.dcmread(s.path)
            arr = pixel_array(ds, index=s.frame) if s.frame is not None else ds.pixel_array
    except Exception as exc:  # pydicom raises many types for damaged or unsupported data
        raise InputError(s.label(), f"cannot decode pixel data ({type(exc).__name__}: {exc})") from None
    if arr.ndim == (4 if s.header.samples_per_pixel > 1 else 3):
        arr = arr[0]  # a one-frame multi-frame object
    if s.header.samples_per_pixel > 1 and arr.ndim == 3:  # colour -> luminance (Rec. 601)
        arr = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
    return arr


def choose_output_dtype(slices: list[SliceRef]) -> np.dtype:
    """int16 when every rescale is integral and the stored data are integers of <= 16 bits, else float32.

    Whether the rescaled values really fit int16 is checked after reading (see :func:`read_slices`).
    """
    h = slices[0].header
    if h.samples_per_pixel != 1 or h.bits_allocated > 16:
        return np.dtype(np.float32)
    if all(_is_integral(s.slope) and _is_integral(s.intercept) for s in slices):
        return np.dtype(np.int16)
    return np.dtype(np.float32)


def _invert_mono1(raw: np.ndarray, s: SliceRef) -> None:
    lo, hi = stored_range(s)
    np.subtract(np.asarray(lo + hi, dtype=raw.dtype) if raw.dtype.kind != "f" else lo + hi, raw, out=raw,
                casting="unsafe")


def read_slices(slices: list[SliceRef], token: JobToken | None = None) -> tuple[np.ndarray, list[str]]:
    """Read ``slices`` (already in output order) into one (k, rows, cols) array with rescale applied.

    Returns (array, warnings).
    """
    h0 = slices[0].header
    rows, cols = h0.rows, h0.columns
    n = len(slices)
    for s in slices:
        if (s.header.rows, s.header.columns) != (rows, cols):
            raise InputError(s.label(), f"image size {s.header.columns}x{s.header.rows} differs from the series "
                                        f"({cols}x{rows})")
    out_dtype = choose_output_dtype(slices)
    out = np.empty((n, rows, cols), dtype=out_dtype)
    raw_minmax = np.zeros((n, 2), dtype=np.float64)
    warnings: list[str] = []
    stop = threading.Event()
    mono1 = [s.header.photometric == "MONOCHROME1" for s in slices]

    def read_one(k: int) -> None:
        if stop.is_set():
            return
        s = slices[k]
        dst = out[k]
        if can_read_raw(s):
            sd = stored_dtype(s)
            nbytes = rows * cols * sd.itemsize
            if out_dtype.itemsize == sd.itemsize and out_dtype.kind in "iu":
                raw = dst.view(sd)
            else:
                raw = np.empty((rows, cols), dtype=sd)
            offset = s.header.pixel_offset + (s.frame or 0) * nbytes
            with open(s.path, "rb") as f:
                f.seek(offset)
                got = f.readinto(memoryview(raw).cast("B"))
            if got != nbytes:
                raise InputError(s.label(), f"truncated pixel data: expected {nbytes} bytes, got {got}")
        else:
            raw = decode_slice(s)
            if raw.shape != (rows, cols):
                raise InputError(s.label(), f"decoded pixel data has shape {raw.shape}, expected {(rows, cols)}")
        if mono1[k]:
            _invert_mono1(raw, s)
        if out_dtype == np.int16:
            raw_minmax[k] = (raw.min(), raw.max())
            if not np.shares_memory(raw, dst):
                dst[...] = raw  # 8-bit data, or decoded data: copied into the int16 slice (range checked later)
        else:
            np.multiply(raw, s.slope, out=dst, casting="unsafe")
            dst += np.float32(s.intercept)

    total = n
    with ThreadPoolExecutor(max_workers=N_THREADS) as pool:
        futures = [pool.submit(read_one, k) for k in range(n)]
        try:
            for done, fut in enumerate(futures, 1):
                fut.result()
                if token is not None and (done % 16 == 0 or done == total):
                    token.progress(done, total, f"reading slice {done}/{total}")
        except BaseException:
            stop.set()
            raise

    if out_dtype == np.int16:
        out = _rescale_int16(out, slices, raw_minmax)
    return out, warnings


def _rescale_int16(out: np.ndarray, slices: list[SliceRef], raw_minmax: np.ndarray) -> np.ndarray:
    """Apply integral slope/intercept in place when every rescaled value fits int16; else convert to float32.

    In-place int16 arithmetic wraps modulo 2**16, so uint16 data viewed as int16 still gives the exact result
    whenever the true rescaled value fits int16 (checked from the real per-slice min/max).
    """
    slopes = np.array([s.slope for s in slices])
    inters = np.array([s.intercept for s in slices])
    a = raw_minmax[:, 0] * slopes + inters
    b = raw_minmax[:, 1] * slopes + inters
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    if lo >= -32768 and hi <= 32767:
        uniform = np.all(slopes == slopes[0]) and np.all(inters == inters[0])
        if uniform:
            if slopes[0] != 1:
                np.multiply(out, np.int16(slopes[0]), out=out, casting="unsafe")
            if inters[0] != 0:
                np.add(out, np.int16(inters[0]) if -32768 <= inters[0] <= 32767 else inters[0], out=out,
                       casting="unsafe")
        else:
            for k, s in enumerate(slices):
                if s.slope != 1:
                    np.multiply(out[k], np.int16(s.slope), out=out[k], casting="unsafe")
                if s.intercept != 0:
                    np.add(out[k], np.int16(s.intercept), out=out[k], casting="unsafe")
        return out
    # Out of int16 range: rebuild as float32 from the stored values (which are still intact in ``out``).
    res = np.empty(out.shape, dtype=np.float32)
    for k, s in enumerate(slices):
        sd = stored_dtype(s)
        raw = out[k].view(sd) if sd.itemsize == 2 else out[k]
        res[k] = raw.astype(np.float32) * np.float32(s.slope) + np.float32(s.intercept)
    return res
