"""PNG key images with the overlays as the viewer shows them, rendered without Qt (numpy + Pillow).

The slice through each finding is taken in its acquisition plane with the viewer's own primitives
(:mod:`reviewer.view.reslice` display frames, :mod:`reviewer.view.windowing` window LUT, the overlays' ``cut``),
so orientation and geometry are exactly those of the GUI: radiological convention, square pixels in mm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from reviewer.findings import Finding
from reviewer.geometry import Volume
from reviewer.view.overlays import Ellipses, Markers, Overlay, PointsOverlay, Rects, RGBAImage, SlicePlane, \
    SpheresOverlay
from reviewer.view.presets import default_window, find_preset, is_ct
from reviewer.view.reslice import display_frame
from reviewer.view.state import acquisition_plane
from reviewer.view.windowing import WindowLUT

MIN_WIDTH_PX = 512
FINDING_COLORS = {"person": (255, 200, 0), "device": (0, 220, 255)}


def findings_overlays(findings: Sequence[Finding], label: Callable[[Finding], str]) -> list[Overlay]:
    """Findings as the viewer draws them: spheres when a diameter is known, else point marks."""
    out: list[Overlay] = []
    for who in ("person", "device"):
        sized = [f for f in findings if f.observer_type == who and f.diameter_mm]
        points = [f for f in findings if f.observer_type == who and not f.diameter_mm]
        if sized:
            out.append(SpheresOverlay([f.center_lps for f in sized], [f.diameter_mm / 2 for f in sized],
                                      labels=[label(f) for f in sized], color=FINDING_COLORS[who],
                                      name=f"{who} findings"))
        if points:
            out.append(PointsOverlay([f.center_lps for f in points], labels=[label(f) for f in points],
                                     color=FINDING_COLORS[who], name=f"{who} marks", slab=1.0))
    return out


def window_for(volume: Volume) -> tuple[float, float]:
    if is_ct(volume):
        return find_preset(volume, "lung").window_for(volume)
    return default_window(volume)


def render_slice(volume: Volume, orientation: str, index: int, overlays: Sequence[Overlay],
                 window: tuple[float, float] | None = None) -> Image.Image:
    """One slice with overlays as an RGB Pillow image, resampled to square pixels (at least 512 px wide)."""
    plane = SlicePlane.of(volume, orientation, index)
    grey = WindowLUT().apply(plane.frame.slice_image(volume.array, index), window or window_for(volume))
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    shapes = []
    for ov in overlays:
        if not getattr(ov, "visible", True):
            continue
        for prim in ov.cut(plane):
            if isinstance(prim, RGBAImage):
                a = prim.rgba[..., 3:4].astype(np.float32) / 255.0 * float(ov.opacity)
                rgb = rgb * (1 - a) + prim.rgba[..., :3].astype(np.float32) * a
            else:
                shapes.append(prim)
    img = Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), "RGB")
    sx, sy = plane.frame.pixel_size
    h, w = grey.shape
    width_mm, height_mm = w * sx, h * sy
    scale_px = max(MIN_WIDTH_PX / width_mm, min(sx, sy) ** -1)  # output pixels per mm
    out_w, out_h = int(round(width_mm * scale_px)), int(round(height_mm * scale_px))
    img = img.resize((out_w, out_h), Image.Resampling.BILINEAR)
    fx, fy = out_w / w, out_h / h  # display pixel -> output pixel

    def to_px(x: float, y: float) -> tuple[float, float]:
        return ((x + 0.5) * fx, (y + 0.5) * fy)

    draw = ImageDraw.Draw(img)
    for prim in shapes:
        color = tuple(prim.color[:3]) if not isinstance(prim.color, str) else prim.color
        if isinstance(prim, Ellipses):
            for (x, y), (rx, ry), lab in zip(prim.centers, prim.radii, prim.labels or [""] * len(prim.centers)):
                cx, cy = to_px(x, y)
                draw.ellipse([cx - rx * fx, cy - ry * fy, cx + rx * fx, cy + ry * fy], outline=color, width=2)
                if lab:
                    draw.text((cx + rx * fx + 4, cy - ry * fy - 4), lab, fill=color)
        elif isinstance(prim, Markers):
            for (x, y), lab in zip(prim.xy, prim.labels):
                cx, cy = to_px(x, y)
                r = prim.size_px
                draw.line([cx - r, cy, cx - r / 3, cy], fill=color, width=2)
                draw.line([cx + r / 3, cy, cx + r, cy], fill=color, width=2)
                draw.line([cx, cy - r, cx, cy - r / 3], fill=color, width=2)
                draw.line([cx, cy + r / 3, cx, cy + r], fill=color, width=2)
                if lab:
                    draw.text((cx + r + 3, cy - r - 3), lab, fill=color)
        elif isinstance(prim, Rects):
            for (x0, y0), (x1, y1) in zip(prim.mins, prim.maxs):
                draw.rectangle([x0 * fx, y0 * fy, x1 * fx, y1 * fy], outline=color, width=2)
    labels = plane.frame.edge_labels()
    draw.text((4, out_h // 2), labels["left"], fill=(255, 255, 0))
    draw.text((out_w - 14, out_h // 2), labels["right"], fill=(255, 255, 0))
    draw.text((out_w // 2, 4), labels["top"], fill=(255, 255, 0))
    draw.text((out_w // 2, out_h - 14), labels["bottom"], fill=(255, 255, 0))
    return img


def write_key_images(volume: Volume, findings: Sequence[Finding], overlays: Sequence[Overlay], folder: Path,
                     label: Callable[[Finding], str], caption: Callable[[str], str] = str,
                     max_images: int = 24) -> list[Path]:
    """One PNG per finding (the slice through its centre), or the middle slice when there are none."""
    folder.mkdir(parents=True, exist_ok=True)
    orientation = acquisition_plane(volume)
    frame = display_frame(volume, orientation)
    all_overlays = list(overlays) + findings_overlays(findings, label)
    window = window_for(volume)
    targets: list[tuple[str, int, str]] = []
    for n, f in enumerate(findings[:max_images], 1):
        if not volume.geometry.contains_world(f.center_lps, margin_voxels=1.0):
            continue
        targets.append((f"finding-{n:02d}.png", frame.slice_index_of_world(f.center_lps), caption(label(f))))
    if not targets:
        targets.append(("overview.png", frame.n_slices // 2, ""))
    paths = []
    for name, index, text in targets:
        img = render_slice(volume, orientation, index, all_overlays, window)
        draw = ImageDraw.Draw(img)
        draw.text((6, img.height - 30), f"{orientation} slice {index + 1}/{frame.n_slices}  {text}"[:120],
                  fill=(255, 255, 255))
        path = folder / name
        img.save(path, format="PNG")  # no text chunks: nothing but pixels
        paths.append(path)
    return paths
