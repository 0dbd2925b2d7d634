"""Benchmark: our DICOM loader (scan + load) vs SimpleITK's ImageSeriesReader on the same CT series.

Writes a synthetic 512x512 int16 CT series with realistic headers, times both readers (best of ``repeats``)
and measures our peak memory in a fresh subprocess so SimpleITK's allocations do not pollute it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_ct_series(folder: str | os.PathLike, n_slices: int = 300, size: int = 512, seed: int = 0) -> list[str]:
    """A chest-like CT series: stored = HU + 1024 (uint12 in int16), RescaleIntercept -1024, 1.25 mm slices."""
    from pydicom.uid import generate_uid

    from reviewer.io.synthetic import ct_dataset

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot((xx - size / 2) / (size * 0.42), (yy - size / 2) / (size * 0.32))
    base = np.where(r < 1, 40, -1000).astype(np.int16)
    lungs = (np.hypot((np.abs(xx - size / 2) - size * 0.18) / (size * 0.13), (yy - size / 2) / (size * 0.22)) < 1)
    base[lungs] = -850
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    files = []
    for k in range(n_slices):
        ds = ct_dataset(study, series, frame)
        ds.PatientName, ds.PatientID, ds.StudyDate, ds.Modality = "Bench^CT", "BENCH01", "20240101", "CT"
        ds.SeriesDescription, ds.StudyDescription, ds.SeriesNumber = "Chest 1.25mm", "CT CHEST", 2
        ds.Manufacturer, ds.KVP, ds.ConvolutionKernel, ds.SliceThickness = "Bench", 120, "B40f", 1.25
        ds.InstanceNumber, ds.AcquisitionNumber = k + 1, 1
        ds.ImagePositionPatient = [-160.0, -160.0, -k * 1.25]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.625, 0.625]
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = -600, 1500
        hu = base + rng.integers(-20, 20, size=(size, size), dtype=np.int16)
        ds.PixelData = (hu + 1024).astype("<i2").tobytes()
        name = folder / f"IM{(k * 7919) % n_slices:05d}_{k}.dcm"  # file names not in slice order
        ds.save_as(name, enforce_file_format=True)
        files.append(str(name))
    return files


def _ours(folder: str):
    from reviewer.io.catalog import scan_paths
    from reviewer.io.loader import load_series

    cat = scan_paths([folder])
    return load_series(cat.image_series()[0])


def _simpleitk(folder: str):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder))
    img = reader.Execute()
    return img, sitk.GetArrayViewFromImage(img)


def _best(fn, folder: str, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn(folder)
        best = min(best, time.perf_counter() - t0)
        del result
    return best


_PEAK_SNIPPET = """
import json, sys
from reviewer.io.bench_io import _ours
import reviewer.io.catalog, reviewer.io.dicom_series, reviewer.io.dicom_enhanced, pydicom.pixels  # imports first

def hwm_kb():  # VmHWM: peak RSS of this process image (ru_maxrss would carry the parent's peak over exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

base = hwm_kb()
v = _ours(sys.argv[1])
peak = hwm_kb()
print(json.dumps({"base_kb": base, "peak_kb": peak, "nbytes": v.array.nbytes, "dtype": str(v.array.dtype)}))
"""


def measure_peak_rss(folder: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PEAK_SNIPPET, folder], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_io_bench(n_slices: int = 300, repeats: int = 3) -> dict:
    with tempfile.TemporaryDirectory(prefix="reviewer-bench-io-") as tmp:
        t0 = time.perf_counter()
        write_ct_series(tmp, n_slices)
        write_s = time.perf_counter() - t0
        ours_vol = _ours(tmp)  # warm the page cache and imports for both readers
        _, sitk_arr = _simpleitk(tmp)
        same = bool(np.array_equal(ours_vol.array, sitk_arr))
        del ours_vol, sitk_arr
        ours_s = _best(_ours, tmp, repeats)
        sitk_s = _best(_simpleitk, tmp, repeats)
        mem = measure_peak_rss(tmp)
    volume_mb = mem["nbytes"] / 2**20
    result = {
        "n_slices": n_slices, "repeats": repeats, "write_s": round(write_s, 3),
        "ours_s": round(ours_s, 4), "simpleitk_s": round(sitk_s, 4), "ratio": round(sitk_s / ours_s, 3),
        "peak_rss_mb": round(mem["peak_kb"] / 1024, 1), "rss_before_load_mb": round(mem["base_kb"] / 1024, 1),
        "load_added_rss_mb": round((mem["peak_kb"] - mem["base_kb"]) / 1024, 1), "volume_mb": round(volume_mb, 1),
        "dtype": mem["dtype"], "same_voxels_as_simpleitk": same,
    }
    print(f"DICOM series {n_slices} x 512 x 512 int16 (best of {repeats}, scan + load)")
    print(f"  {'reader':<12} {'seconds':>8}")
    print(f"  {'ours':<12} {ours_s:>8.3f}")
    print(f"  {'SimpleITK':<12} {sitk_s:>8.3f}")
    print(f"  ratio simpleitk_s / ours_s = {result['ratio']:.2f}")
    print(f"  our peak RSS {result['peak_rss_mb']} MB (before load {result['rss_before_load_mb']} MB, "
          f"volume {volume_mb:.0f} MB {mem['dtype']}); same voxels as SimpleITK: {same}")
    return result
