"""Synthetic chest CT with lung nodules, deterministic from a seed.

The phantom is defined in patient millimetres (LPS, relative to the grid centre) and rasterised with soft,
partial-volume edges on an LPS-aligned canvas; the result is then transposed/flipped onto the requested grid, so
any axis-aligned direction matrix (flipped or permuted axes) gives the same anatomy at the same world positions.

Anatomy (HU): air -1000, subcutaneous fat -100, muscle +45, mediastinal/pericardial fat -90, heart +40, aorta +45,
pulmonary trunk and hilar vessels +40, lungs about -850 (denser posteriorly) with space-filling arterial and venous
trees (Murray-law radii, partial-volume rendering) and an airway tree (trachea, main bronchi, several generations:
air lumen, soft-tissue wall), oesophagus, liver/spleen/stomach (with gas) under the diaphragm domes, vertebrae
(cortical ~+1100, cancellous ~+250, discs +80, canal, posterior arches), ribs with costal cartilage, sternum,
scanner table. Nodules: solid, part-solid and ground-glass, some lobulated or spiculated, inserted with
:func:`insert_nodule`. Noise: in-plane correlated Gaussian.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from reviewer.geometry import Geometry, Volume

GENERATOR_VERSION = "1"
KINDS = ("solid", "part-solid", "ground-glass")
DEFAULT_SHAPE = (160, 256, 256)
DEFAULT_SPACING = (1.4, 1.4, 2.0)
DEFAULT_CENTER = (0.0, 0.0, -150.0)  # LPS mm of the grid centre (gives a scanner-like origin)

HU_AIR = -1000.0
HU_FAT = -100.0
HU_MUSCLE = 45.0
HU_MED_FAT = -90.0
HU_BLOOD = 40.0
HU_LUNG = -850.0
HU_CORTICAL = 1100.0
HU_CANCELLOUS = 250.0
HU_SOLID = 40.0
HU_GGO = -600.0


@dataclass
class Nodule:
    """A nodule in world coordinates (LPS mm)."""

    center: tuple[float, float, float]
    diameter_mm: float
    kind: str = "solid"  # 'solid' | 'part-solid' | 'ground-glass'
    id: str = ""
    lobulated: bool = False
    spiculated: bool = False
    solid_fraction: float = 0.5  # part-solid: core diameter / nodule diameter

    def __post_init__(self) -> None:
        self.kind = str(self.kind)
        if self.kind not in KINDS:
            raise ValueError(f"nodule kind must be one of {KINDS}, got {self.kind!r}")
        self.center = tuple(round(float(c), 4) for c in self.center)
        self.diameter_mm = float(self.diameter_mm)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["center"] = list(self.center)
        return d


# ----------------------------------------------------------------------------------------------------------------
# small geometric helpers (all distances in mm, negative inside)
def _soft(d: np.ndarray, w: float) -> np.ndarray:
    """Partial-volume fraction of a surface at signed distance d (mm) for voxels of size w."""
    f = np.asarray(d, dtype=np.float32) * np.float32(-1.0 / w)
    f += np.float32(0.5)
    np.maximum(f, 0.0, out=f)
    np.minimum(f, 1.0, out=f)
    return f


def _ellipse2(x, y, a, b):
    """Approximate signed distance to an axis-aligned ellipse (x/a)^2 + (y/b)^2 = 1."""
    q = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    g = np.sqrt((x / a**2) ** 2 + (y / b**2) ** 2)
    return (q - 1.0) / np.maximum(g / np.maximum(q, 1e-6), 1e-6)


def _ellipsoid(x, y, z, a, b, c):
    q = np.sqrt((x / a) ** 2 + (y / b) ** 2 + (z / c) ** 2)
    g = np.sqrt((x / a**2) ** 2 + (y / b**2) ** 2 + (z / c**2) ** 2)
    return (q - 1.0) / np.maximum(g / np.maximum(q, 1e-6), 1e-6)


def _superellipse(x, y, a, b):
    """Signed distance (first order near the surface, scaled by the smaller semi-axis) to the superellipse
    |x/a|^2.5 + |y/b|^2.5 = 1, a rounded-rectangle body cross-section."""
    u = np.abs(x / a)
    v = np.abs(y / b)
    s = u * u * np.sqrt(u) + v * v * np.sqrt(v)
    s -= 1.0
    s *= np.minimum(a, b) / 2.5
    return s


def _seg_dist(X, Y, Z, p0, p1):
    d = np.asarray(p1, float) - np.asarray(p0, float)
    L2 = float(d @ d) or 1e-9
    ax, ay, az = X - p0[0], Y - p0[1], Z - p0[2]
    t = np.clip((ax * d[0] + ay * d[1] + az * d[2]) / L2, 0.0, 1.0)
    dx, dy, dz = ax - t * d[0], ay - t * d[1], az - t * d[2]
    return np.sqrt(dx * dx + dy * dy + dz * dz), t


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class _Canvas:
    """LPS-aligned float32 HU canvas; coordinates are mm relative to the grid centre."""

    def __init__(self, shape_zyx: tuple[int, int, int], spacing_xyz: Sequence[float]):
        self.shape = tuple(int(s) for s in shape_zyx)
        self.sp = np.asarray(spacing_xyz, dtype=float)
        nz, ny, nx = self.shape
        self.n = np.array([nx, ny, nz])
        self.axes = [((np.arange(n) - (n - 1) / 2.0) * s).astype(np.float32) for n, s in zip(self.n, self.sp)]
        self.X = self.axes[0][None, None, :]
        self.Y = self.axes[1][None, :, None]
        self.Z = self.axes[2][:, None, None]
        self.vol = np.full(self.shape, HU_AIR, dtype=np.float32)
        self.w = float(np.mean(self.sp))
        self.acc: dict[str, np.ndarray] = {}
        self.acc_box: dict[str, list[np.ndarray]] = {}

    def to_index(self, p):
        return np.asarray(p, float) / self.sp + (self.n - 1) / 2.0

    def box(self, lo, hi):
        i0 = np.maximum(np.floor(self.to_index(lo)).astype(int), 0)
        i1 = np.minimum(np.ceil(self.to_index(hi)).astype(int) + 1, self.n)
        if np.any(i1 <= i0):
            return None
        sl = (slice(i0[2], i1[2]), slice(i0[1], i1[1]), slice(i0[0], i1[0]))
        return sl, self.X[..., sl[2]], self.Y[:, sl[1], :], self.Z[sl[0]], (i0, i1)

    def paint(self, sl, frac, hu):
        v = self.vol[sl]
        v += frac * (hu - v)

    def _acc(self, name, ib):
        if name not in self.acc:
            self.acc[name] = np.zeros(self.shape, np.float32)
            self.acc_box[name] = [ib[0].copy(), ib[1].copy()]
        else:
            b = self.acc_box[name]
            b[0] = np.minimum(b[0], ib[0])
            b[1] = np.maximum(b[1], ib[1])
        return self.acc[name]

    def tube(self, p0, p1, r0, r1, name, inner: tuple[str, float] | None = None):
        """Tapered capsule into accumulator ``name`` (max-combined); ``inner`` = (name, wall thickness mm)."""
        p0 = np.asarray(p0, float)
        p1 = np.asarray(p1, float)
        rm = max(r0, r1) + self.w
        b = self.box(np.minimum(p0, p1) - rm, np.maximum(p0, p1) + rm)
        if b is None:
            return
        sl, X, Y, Z, ib = b
        dist, t = _seg_dist(X, Y, Z, p0, p1)
        r = r0 + t * (r1 - r0)
        a = self._acc(name, ib)[sl]
        np.maximum(a, _soft(dist - r, self.w), out=a)
        if inner is not None:
            a2 = self._acc(inner[0], ib)[sl]
            np.maximum(a2, _soft(dist - np.maximum(r - inner[1], 0.0), self.w), out=a2)

    def flush(self, name, hu, clip=None):
        """Paint an accumulator with ``hu`` (scalar) and drop it."""
        if name not in self.acc:
            return
        lo, hi = self.acc_box.pop(name)
        sl = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
        f = self.acc.pop(name)[sl]
        if clip is not None:
            f = f * clip[sl]
        self.paint(sl, f, hu)


# ----------------------------------------------------------------------------------------------------------------
def _space_filling_tree(start, pts, r_root, frac=0.45, min_radius=0.0, leaf=2):
    """Kitaoka-style tree: each branch heads towards the centroid of its territory, which is then halved.

    Radii follow Murray's law with flow proportional to the territory's point count. Returns (p0, p1, r) rows.
    """
    N = len(pts)
    segs: list[tuple] = []
    stack = [(np.asarray(start, float), pts)]
    r_leaf = r_root * (1.0 / N) ** (1 / 3)
    while stack:
        s, P = stack.pop()
        n = len(P)
        r = r_root * (n / N) ** (1 / 3)
        if r < min_radius:
            continue
        c = P.mean(axis=0)
        v = c - s
        dist = math.sqrt(float(v @ v))
        if n <= leaf or dist < 1.0:
            if r_leaf >= min_radius:
                for q in P:
                    segs.append((s, q, r_leaf))
            continue
        e = s + v * frac
        segs.append((s, e, r))
        u = v / dist
        Q = P - c
        Q -= np.outer(Q @ u, u)
        k = int(np.argmax(Q.var(axis=0)))
        side = Q[:, k] > 0
        if side.all() or not side.any():
            side = np.arange(n) < n // 2
        stack.append((e, P[side]))
        stack.append((e, P[~side]))
    return segs


def _render_tree(cv: _Canvas, segs, name, big_radius):
    """Large segments as explicit capsules; small ones splatted along their axis (blurred later)."""
    small = []
    for p0, p1, r in segs:
        if r >= big_radius:
            cv.tube(p0, p1, r, r * 0.92, name)
        else:
            small.append((p0, p1, r))
    if not small:
        return
    p0 = np.array([s[0] for s in small])
    p1 = np.array([s[1] for s in small])
    r = np.array([s[2] for s in small])
    L = np.linalg.norm(p1 - p0, axis=1)
    step = 0.4 * float(cv.sp.min())
    n = np.maximum(1, np.ceil(L / step).astype(int))
    seg = np.repeat(np.arange(len(small)), n)
    first = np.cumsum(n) - n
    t = (np.arange(n.sum()) - first[seg] + 0.5) / n[seg]
    pts = p0[seg] + t[:, None] * (p1 - p0)[seg]
    w = (np.pi * r[seg] ** 2 * (L / n)[seg] / float(np.prod(cv.sp))).astype(np.float32)
    idx = np.rint(cv.to_index(pts)).astype(int)
    ok = np.all((idx >= 0) & (idx < cv.n), axis=1)
    idx, w = idx[ok], w[ok]
    if "splat" not in cv.acc:
        cv.acc["splat"] = np.zeros(cv.shape, np.float32)
    np.add.at(cv.acc["splat"], (idx[:, 2], idx[:, 1], idx[:, 0]), w)


# ----------------------------------------------------------------------------------------------------------------
def _canonical_frame(direction: np.ndarray):
    """For a signed permutation direction: for each LPS axis a, the ijk axis p(a) and its sign."""
    D = np.asarray(direction, float)
    A = np.abs(D)
    perm = A.argmax(axis=1)
    if sorted(perm.tolist()) != [0, 1, 2] or not np.allclose(A.max(axis=1), 1.0, atol=1e-6):
        return None
    signs = np.sign(D[np.arange(3), perm])
    return perm, signs


def _to_grid(canon: np.ndarray, perm, signs) -> np.ndarray:
    """Canonical array (z, y, x) -> array (k, j, i) of the grid whose direction is the signed permutation."""
    c = canon
    for a in range(3):
        if signs[a] < 0:
            c = np.flip(c, axis=2 - a)
    # canonical array axis of LPS axis a is 2 - a; output array axis of ijk axis p is 2 - p
    inv = np.empty(3, int)
    inv[perm] = np.arange(3)  # inv[p] = LPS axis a carried by ijk axis p
    order = [2 - inv[2 - ax] for ax in range(3)]
    return np.ascontiguousarray(np.transpose(c, order))


def series_uid(seed: int, prefix: str = "1.2.826.0.1.3680043.8.498.") -> str:
    """Deterministic DICOM-UID-like identifier for the demo CT of ``seed``."""
    h = hashlib.sha256(f"reviewer-demo-chest-ct-v{GENERATOR_VERSION}-{seed}".encode()).hexdigest()
    return prefix + str(int(h, 16))[: 64 - len(prefix)].lstrip("0")


# ----------------------------------------------------------------------------------------------------------------
def make_chest_ct(
    seed: int = 0,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: tuple[float, float, float] = DEFAULT_SPACING,
    origin: tuple[float, float, float] | None = None,
    direction: Any = None,
    nodules: int | Sequence[Nodule] | None = None,
    noise_hu: float = 20.0,
    token=None,
) -> tuple[Volume, list[Nodule]]:
    """A synthetic chest CT (int16 HU) and its nodules.

    ``shape`` is (k, j, i); ``spacing`` (i, j, k) mm. ``origin`` defaults to the value that puts the grid centre
    at LPS (0, 0, -150). ``direction`` must be a signed permutation matrix (columns = LPS directions of i, j, k);
    the anatomy sits at the same world positions whatever the direction. ``nodules``: None for 6-10 random ones,
    an int for that many, or a list of :class:`Nodule` to insert as given (world centres).
    """
    rng = np.random.default_rng([int(seed), 7321])
    D = np.eye(3) if direction is None else np.asarray(direction, float)
    frame = _canonical_frame(D)
    if frame is None:
        raise ValueError("make_chest_ct supports axis-aligned (signed permutation) direction matrices only")
    perm, signs = frame
    shape = tuple(int(s) for s in shape)
    size_ijk = np.array([shape[2], shape[1], shape[0]])
    sp_ijk = np.asarray(spacing, float)
    if origin is None:
        center = np.asarray(DEFAULT_CENTER)
        origin = center - D @ (sp_ijk * (size_ijk - 1) / 2.0)
    geom = Geometry(shape, tuple(sp_ijk), tuple(np.asarray(origin, float)), tuple(map(tuple, D)))
    center = geom.center_world()
    n_lps = size_ijk[perm]
    sp_lps = sp_ijk[perm]

    def prog(i, msg):
        if token is not None:
            token.progress(i, 10, msg)

    prog(0, "body")
    cv = _Canvas((n_lps[2], n_lps[1], n_lps[0]), sp_lps)
    _build_anatomy(cv, rng, prog)

    prog(8, "nodules")
    canon_geom = Geometry(cv.shape, tuple(sp_lps), tuple(center - sp_lps * (n_lps - 1) / 2.0))
    if nodules is None or isinstance(nodules, (int, np.integer)):
        count = int(rng.integers(6, 11)) if nodules is None else int(nodules)
        nod_list = _place_nodules(cv, rng, count, center)
    else:
        nod_list = [Nodule(**n.to_dict()) if isinstance(n, Nodule) else Nodule(**n) for n in nodules]
    for i, nod in enumerate(nod_list):
        if not nod.id:
            nod.id = f"N{i + 1:02d}"
        insert_nodule(cv.vol, canon_geom, nod, rng)

    prog(9, "noise")
    if noise_hu > 0:
        noise = rng.standard_normal(cv.shape, dtype=np.float32)
        ndimage.gaussian_filter(noise, sigma=(0.0, 0.8, 0.8), output=noise, truncate=3.0)
        noise *= np.float32(noise_hu / float(noise[::4, ::4, ::4].std()))
        cv.vol += noise
    np.clip(cv.vol, -1024, 3071, out=cv.vol)
    np.rint(cv.vol, out=cv.vol)
    arr = _to_grid(cv.vol.astype(np.int16), perm, signs)

    vol = Volume(
        arr,
        geom,
        modality="CT",
        unit="HU",
        name=f"Demo chest CT (seed {seed})",
        source=f"reviewer.demo.chest_ct v{GENERATOR_VERSION} seed={seed}",
        metadata={
            "generator": "reviewer.demo.chest_ct",
            "generator_version": GENERATOR_VERSION,
            "seed": int(seed),
            "series_uid": series_uid(seed),
            "nodules": [n.to_dict() for n in nod_list],
        },
        default_window=(1500.0, -600.0),
    )
    prog(10, "done")
    return vol, nod_list


# ----------------------------------------------------------------------------------------------------------------
def _build_anatomy(cv: _Canvas, rng: np.random.Generator, prog) -> None:
    X, Y, Z = cv.X, cv.Y, cv.Z
    w = cv.w
    jit = lambda s: float(rng.uniform(-s, s))  # noqa: E731

    # --- body outline, fat, muscle, thoracic cavity (cross-sections vary along z) -----------------------------
    a_b = (150.0 + jit(10)) + 12.0 * np.exp(-(((Z + 10.0) / 140.0) ** 2))
    b_b = (104.0 + jit(8)) + 8.0 * np.exp(-(((Z + 40.0) / 150.0) ** 2))
    y0 = -5.0
    fat_l, fat_ap = 14.0 + jit(5), 11.0 + jit(4)
    a_c, b_c, yc = a_b - (fat_l + 16.0), b_b - 31.0, y0 - 7.0
    body = _superellipse(X, Y - y0, a_b, b_b)
    cv.paint(np.s_[:], _soft(body, w), HU_FAT)
    del body
    muscle = _superellipse(X, Y - y0, a_b - fat_l, b_b - fat_ap)
    cv.paint(np.s_[:], _soft(muscle, w), HU_MUSCLE)
    del muscle
    cav = _ellipse2(X, Y - yc, a_c, b_c)
    cv.paint(np.s_[:], _soft(cav, w), HU_MED_FAT)

    # table (carbon shell) under the patient
    y_t = y0 + float(b_b.max()) + 6.0
    b = cv.box((-170, y_t - 20, -1e4), (170, y_t + 12, 1e4))
    if b is not None:
        sl, bx, by, bz, _ = b
        curve = y_t - 15.0 * (1 - (bx / 170.0) ** 2)
        d = np.maximum(np.abs(by - curve) - 3.0, np.abs(bx) - 170.0) + 0 * bz
        cv.paint(sl, _soft(d, w), 250.0)
    prog(1, "lungs")

    # --- diaphragm and abdomen -------------------------------------------------------------------------------
    ax = np.abs(X)
    z_top = np.where(X < 0, -65.0 + jit(6), -80.0 + jit(6)).astype(np.float32)  # right dome higher
    z_dia = z_top - 55.0 * (((ax - 65.0) / 75.0) ** 2 + ((Y - yc + 5.0) / 85.0) ** 2) - 25.0 * _smoothstep((Y - yc) / 70.0)
    d_dia = z_dia - Z  # > 0 below the dome
    below = _soft(np.maximum(cav, -d_dia + 2.0), w)
    cv.paint(np.s_[:], below, 35.0)
    del below
    for c, axes, hu, extra in (
        ((-55.0, -5.0, -150.0), (100.0, 90.0, 85.0), 58.0, None),  # liver
        ((85.0, 45.0, -125.0), (30.0, 45.0, 40.0), 46.0, None),  # spleen
        ((55.0, -30.0, -130.0), (42.0, 38.0, 42.0), 18.0, None),  # stomach (fluid)
        ((55.0, -30.0, -130.0), (42.0, 38.0, 42.0), HU_AIR, "gas"),  # stomach gas cap
    ):
        lo = np.array(c) - np.array(axes) - 2
        hi = np.array(c) + np.array(axes) + 2
        bx = cv.box(lo, hi)
        if bx is None:
            continue
        sl, bX, bY, bZ, _ = bx
        d = _ellipsoid(bX - c[0], bY - c[1], bZ - c[2], *axes)
        d = np.maximum(d, (d_dia[sl] * -1.0) + 3.0)
        d = np.maximum(d, cav[sl] + 3.0)
        if extra == "gas":
            d = np.maximum(d, (c[2] + 18.0) - bZ)
        cv.paint(sl, _soft(d, w), hu)

    # --- heart geometry (painted after the lungs' vessels and airways so that it carves them) --------------------
    hc = np.array([22.0 + jit(5), -30.0 + jit(5), -62.0 + jit(6)])
    hax = np.array([68.0, 52.0, 52.0]) * (1 + jit(0.06))
    th = math.radians(-32.0 + jit(6))
    ct_, st_ = math.cos(th), math.sin(th)

    def heart_sdf(grow):
        r = float(hax.max()) + grow + 3
        sl, bX, bY, bZ, _ = cv.box(hc - r, hc + r)
        px, py, pz = bX - hc[0], bY - hc[1], bZ - hc[2]
        u, v = ct_ * px + st_ * py, -st_ * px + ct_ * py
        return sl, _ellipsoid(u, v, pz, *(hax + grow))

    def paint_heart():
        for grow, hu in ((6.0, HU_MED_FAT + 10.0), (0.0, HU_BLOOD)):
            sl, d = heart_sdf(grow)
            if grow == 0.0:
                d = np.maximum(d, d_dia[sl] * -1.0 + 1.0)  # sits on the diaphragm
            cv.paint(sl, _soft(d, w), hu)

    # --- lungs -------------------------------------------------------------------------------------------------
    env = _ellipsoid(ax - 70.0, Y - yc - 8.0 - 0.1 * Z, Z + 45.0, 88.0, 112.0, 172.0 + jit(6))
    x_med = 9.0 + 14.0 * _smoothstep((Z - 20.0) / 40.0) + 8.0 * _smoothstep((Y - yc) / 60.0)
    d_lung = np.maximum(np.maximum(cav + 4.0, env), np.maximum(d_dia, x_med - ax))
    del env, x_med
    y_spine = float(yc + b_c.mean() - 14.0)
    d_spine = -(np.sqrt(X**2 + (Y - y_spine) ** 2) - 28.0)  # paravertebral margin
    np.maximum(d_lung, d_spine, out=d_lung)
    sl_h, d_h = heart_sdf(6.0)
    np.maximum(d_lung[sl_h], -d_h, out=d_lung[sl_h])
    del d_h
    lung = _soft(d_lung, w)
    grad = (HU_LUNG - 22.0 + 45.0 * _smoothstep((Y - yc + 60.0) / 140.0)).astype(np.float32)
    cv.paint(np.s_[:], lung, grad)
    cv.lung = lung
    cv.d_lung = d_lung
    prog(2, "mediastinum")

    z_max = float(cv.axes[2][-1]) + 10
    z_min = float(cv.axes[2][0]) - 10
    aorta = [(-2, -22, -50, 13.0), (-14, -28, 10, 14.5), (-12, -22, 55, 14.0), (5, -2, 72, 13.0),
             (20, 22, 62, 12.0), (24, 44, 35, 11.5), (18, 50, -40, 11.0), (10, 54, z_min, 10.5)]
    aorta = [(np.array(p[:3], float) + np.array([jit(3), jit(3), 0]), p[3]) for p in aorta]
    for (p0, r0), (p1, r1) in zip(aorta[:-1], aorta[1:]):
        cv.tube(p0, p1, r0, r1, "aorta")
    cv.flush("aorta", 45.0)
    # superior vena cava
    cv.tube((-35, -15, -40), (-35, -12, z_max), 9.0, 9.0, "svc")
    cv.flush("svc", 38.0)
    # oesophagus with a little air
    cv.tube((6, 30, z_max), (10, 34, -120), 8.0, 8.0, "eso", inner=("eso_air", 6.5))
    cv.flush("eso", 38.0)
    cv.flush("eso_air", -500.0)
    prog(3, "airways")

    # --- trachea, main bronchi and airway trees --------------------------------------------------------------
    carina = np.array([0.0 + jit(3), 12.0, 28.0 + jit(5)])
    hila = {s: np.array([s * (48.0 + jit(3)), 2.0 + jit(3), 8.0 + jit(4)]) for s in (-1, 1)}
    cv.tube((0, 8, z_max), carina, 9.5, 9.0, "aw_wall", inner=("aw_lumen", 2.0))
    bronchus_end = {}
    for s in (-1, 1):
        e = hila[s] + np.array([0, 8.0, 4.0])
        cv.tube(carina, e, 7.5 if s < 0 else 6.8, 6.5, "aw_wall", inner=("aw_lumen", 1.6))
        bronchus_end[s] = e

    # sample lung territories for the trees
    sub = (slice(None, None, 2), slice(None, None, 3), slice(None, None, 3))
    kk, jj, ii = np.nonzero(d_lung[sub] < -3.0)
    pts_all = np.stack([cv.axes[0][ii * 3], cv.axes[1][jj * 3], cv.axes[2][kk * 2]], axis=1).astype(float)

    def territory(s, n):
        p = pts_all[(pts_all[:, 0] * s) > 0]
        pick = p[rng.choice(len(p), size=min(n, len(p)), replace=False)]
        return pick + rng.uniform(-1, 1, pick.shape) * cv.sp

    prog(4, "vessels")
    big = 1.0 * float(cv.sp.min())
    for s in (-1, 1):
        # airways: lumen radius from 6 mm down to ~1 mm
        aw = _space_filling_tree(bronchus_end[s], territory(s, 700), 6.0, frac=0.5, min_radius=1.0)
        for p0, p1, r in aw:
            if r >= 1.0:
                wall = 0.25 * r + 0.5
                cv.tube(p0, p1, r + wall, 0.92 * r + wall, "aw_wall", inner=("aw_lumen", wall))
        # pulmonary arteries from the hilum, veins from the left atrium
        art = _space_filling_tree(hila[s], territory(s, 1500), 7.0, frac=0.45)
        _render_tree(cv, art, "vessel", big)
        la = hc + np.array([s * 28.0, 40.0, 25.0])
        vein = _space_filling_tree(la, territory(s, 1300), 6.5, frac=0.45)
        _render_tree(cv, vein, "vessel", big)
        cv.tube(np.array([10.0, -40.0, -25.0]), hila[s], 13.0 if s > 0 else 11.0, 8.0, "vessel")  # pulmonary trunk
    prog(6, "vessel rendering")
    if "splat" in cv.acc:
        sp = cv.acc.pop("splat")
        nz_k = np.nonzero(sp.any(axis=(1, 2)))[0]
        if len(nz_k):
            ks = slice(max(0, nz_k[0] - 3), nz_k[-1] + 4)
            ndimage.gaussian_filter(sp[ks], sigma=(0.45, 0.6, 0.6), output=sp[ks], truncate=2.5)
        np.minimum(sp, 1.0, out=sp)
        if "vessel" in cv.acc:
            lo, hi = cv.acc_box["vessel"]
            sl = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
            np.maximum(sp[sl], cv.acc.pop("vessel")[sl], out=sp[sl])
            cv.acc_box.pop("vessel")
        # vessels only inside the cavity (no twigs in the chest wall)
        sp *= _soft(cav + 2.0, w)
        cv.paint(np.s_[:], sp, HU_BLOOD)
        del sp
    cv.flush("vessel", HU_BLOOD)
    cv.flush("aw_wall", 30.0)
    cv.flush("aw_lumen", HU_AIR + 10)
    paint_heart()
    prog(7, "bones")

    # --- spine ---------------------------------------------------------------------------------------------------
    y_vb = float(yc + b_c.mean() - 15.0)
    period = 27.0 + jit(1.5)
    phase = jit(period / 2)
    bx = cv.box((-40, y_vb - 22, -1e4), (40, y_vb + 56, 1e4))
    sl, bX, bY, bZ, _ = bx
    zl = np.mod(bZ - phase, period) - period / 2  # position within a vertebra (disc at +-period/2)
    vb_r = _ellipse2(bX, bY - y_vb, 21.0, 16.0)
    d_vb = np.maximum(vb_r, np.abs(zl) - (period / 2 - 2.6))
    cv.paint(sl, _soft(np.maximum(vb_r, 0 * zl), w), 80.0)  # disc material everywhere in the column
    cv.paint(sl, _soft(d_vb, w), HU_CORTICAL)
    cv.paint(sl, _soft(d_vb + 2.2, w), HU_CANCELLOUS)
    y_canal = y_vb + 24.0
    rc = np.sqrt(bX**2 + (bY - y_canal) ** 2)
    # posterior arch: ring around the canal, behind the body, upper part of each vertebra
    arch = np.maximum(np.maximum(np.abs(rc - 10.0) - 3.0, y_canal - 6.0 - bY), np.abs(zl + 2.0) - 8.0)
    spinous = np.maximum(np.maximum(np.abs(bX) - 3.5, np.abs(bY - (y_canal + 19.0)) - 9.0), np.abs(zl + 5.0 + 0.3 * (bY - y_canal)) - 6.0)
    transverse = np.maximum(np.maximum(np.abs(bY - y_canal - 2.0) - 4.5, np.abs(np.abs(bX) - 20.0) - 12.0), np.abs(zl + 1.0) - 6.0)
    post = np.minimum(np.minimum(arch, spinous), transverse)
    cv.paint(sl, _soft(post, w), HU_CORTICAL * 0.9)
    cv.paint(sl, _soft(post + 1.6, w), HU_CANCELLOUS)
    cv.paint(sl, _soft(rc - 7.0, w), 20.0)  # canal: cord/CSF
    del zl, vb_r, d_vb, rc, arch, spinous, transverse, post

    # --- ribs with costal cartilage, sternum --------------------------------------------------------------------
    z_axis = cv.axes[2]
    a_of = lambda z: float(np.interp(z, z_axis, a_c[:, 0, 0]))  # noqa: E731
    b_of = lambda z: float(np.interp(z, z_axis, b_c[:, 0, 0]))  # noqa: E731
    z_first = 128.0 + jit(5)
    rib_gap = 23.0 + jit(1.5)
    for n in range(12):
        zr = z_first - n * rib_gap
        reach = 0.9 * math.pi if n < 7 else (0.75 * math.pi if n < 10 else 0.5 * math.pi)
        scale = 1.0
        drop = 40.0 + 10.0 * (n > 3)
        for s in (-1, 1):
            phis = np.linspace(0.18 * math.pi, reach, 16)
            pts = []
            for phi in phis:
                z = zr - drop * (1 - math.cos(phi)) / 2
                r_off = 7.0
                x = s * (a_of(z) * scale + r_off) * math.sin(phi)
                y = yc + (b_of(z) * (0.85 + 0.15 * scale) + r_off) * math.cos(phi)
                pts.append(np.array([x, y, z]))
            n_cart = 4 if n < 7 else 2
            for q, (p0, p1) in enumerate(zip(pts[:-1], pts[1:])):
                cart = q >= len(pts) - 1 - n_cart and n < 10
                name = ("cart", None) if cart else ("rib", ("rib_marrow", 1.4))
                cv.tube(p0, p1, 4.2, 4.2, name[0], inner=name[1])
    cv.flush("cart", 110.0)
    cv.flush("rib", HU_CORTICAL * 0.95)
    cv.flush("rib_marrow", HU_CANCELLOUS - 30.0)
    y_st = float(yc - b_c.mean() - 3.0)
    bx = cv.box((-20, y_st - 10, -70), (20, y_st + 10, 115))
    if bx is not None:
        sl, bX, bY, bZ, _ = bx
        half_w = 12.0 + 10.0 * _smoothstep((bZ - 60.0) / 30.0)
        d_st = np.maximum(np.maximum(np.abs(bX) - half_w, np.abs(bY - y_st) - 6.0), np.abs(bZ - 20.0) - 85.0)
        cv.paint(sl, _soft(d_st, w), HU_CORTICAL * 0.9)
        cv.paint(sl, _soft(d_st + 1.5, w), HU_CANCELLOUS)
    del d_dia, z_dia, cav


def _sphere_dirs(n=26):
    g = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) if (a, b, c) != (0, 0, 0)], float)
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def _place_nodules(cv: _Canvas, rng: np.random.Generator, count: int, center: np.ndarray) -> list[Nodule]:
    """Random nodules inside the lungs, away from pleura, mediastinum, large vessels and each other."""
    kinds = list(KINDS) + list(rng.choice(KINDS, size=max(0, count - 3), p=[0.6, 0.2, 0.2]))
    kinds = kinds[:count]
    rng.shuffle(kinds)
    ranges = {"solid": (3.0, 30.0), "part-solid": (8.0, 30.0), "ground-glass": (5.0, 30.0)}
    diam = [float(np.exp(rng.uniform(*np.log(ranges[k])))) for k in kinds]
    if count >= 2:  # make sure the size range is covered: one small solid, one large
        solid = [i for i, k in enumerate(kinds) if k == "solid"]
        diam[solid[0]] = float(rng.uniform(3.0, 5.0))
        big = max((i for i in range(count) if i != solid[0]), key=lambda i: diam[i])
        diam[big] = float(rng.uniform(20.0, 30.0))
    kk, jj, ii = np.nonzero(cv.d_lung[::2, ::2, ::2] < -8.0)
    cand = np.stack([cv.axes[0][ii * 2], cv.axes[1][jj * 2], cv.axes[2][kk * 2]], axis=1)
    dirs = _sphere_dirs()
    placed: list[tuple[np.ndarray, float]] = []
    out = []
    order = np.argsort(diam)[::-1]  # big ones first
    res: dict[int, Nodule] = {}
    for idx in order:
        d = diam[idx]
        for attempt in range(400):
            if attempt and attempt % 100 == 0:
                d *= 0.8
            p = cand[rng.integers(len(cand))].astype(float)
            r = d / 2
            probe = np.vstack([p, p + dirs * (r + 5.0), p + dirs * (r * 0.6)])
            ix = np.rint(cv.to_index(probe)).astype(int)
            if np.any(ix < 0) or np.any(ix >= cv.n):
                continue
            if np.any(cv.d_lung[ix[:, 2], ix[:, 1], ix[:, 0]] > -2.0):
                continue
            hu = cv.vol[ix[:, 2], ix[:, 1], ix[:, 0]]
            if hu[0] > -700 or np.mean(hu < -600) < 0.85:
                continue
            if any(np.linalg.norm(p - q) < r + rq + 8.0 for q, rq in placed):
                continue
            placed.append((p, r))
            kind = kinds[idx]
            res[idx] = Nodule(
                center=tuple(float(v) for v in (p.astype(float) + center)),
                diameter_mm=round(d, 2),
                kind=kind,
                lobulated=bool(d >= 8 and rng.random() < 0.4),
                spiculated=bool(kind != "ground-glass" and d >= 10 and rng.random() < 0.4),
                solid_fraction=round(max(float(rng.uniform(0.35, 0.6)), min(0.8, 4.5 / d)), 3) if kind == "part-solid" else 0.5,
            )
            break
    for i in range(count):
        if i in res:
            out.append(res[i])
    return out


# ----------------------------------------------------------------------------------------------------------------
def nodule_model(nodule: Nodule, rng: np.random.Generator) -> dict[str, Any]:
    """Random shape/density details of a nodule (lobes, spicules, HU), drawn from ``rng``."""
    r = nodule.diameter_mm / 2
    lobes = [(np.zeros(3), r)]
    if nodule.lobulated:
        for _ in range(int(rng.integers(3, 6))):
            v = rng.normal(size=3)
            v /= np.linalg.norm(v)
            rl = r * rng.uniform(0.45, 0.65)
            lobes.append((v * (r - rl * rng.uniform(0.55, 0.9)), rl))
    spicules = []
    if nodule.spiculated:
        for _ in range(int(rng.integers(6, 13))):
            v = rng.normal(size=3)
            v /= np.linalg.norm(v)
            spicules.append((v, r * rng.uniform(0.5, 1.2), max(0.5, r * rng.uniform(0.07, 0.13))))
    return {
        "r": r,
        "lobes": lobes,
        "spicules": spicules,
        "hu_solid": HU_SOLID + float(rng.uniform(-10, 12)),
        "hu_ggo": HU_GGO + float(rng.uniform(-60, 80)),
        "texture": float(rng.uniform(8, 18)),
    }


def insert_nodule(volume_array: np.ndarray, geometry: Geometry, nodule: Nodule, rng: np.random.Generator,
                  model: dict[str, Any] | None = None) -> tuple[slice, slice, slice] | None:
    """Blend a synthetic nodule into a CT array (HU) in place: ``x_new = x_nod * m + x * (1 - m)``.

    Works on any geometry (uses world coordinates of the local bounding box). HU-aware: the nodule never lowers
    the density of what it covers (vessels crossing a ground-glass nodule stay visible, bone stays bone).
    Returns the array slices touched, or None when the nodule lies outside the grid.
    """
    mdl = model or nodule_model(nodule, rng)
    r = mdl["r"]
    reach = r * 2.3 + 3.0 if mdl["spicules"] else r * 1.6 + 3.0
    c = np.asarray(nodule.center, float)
    corners = np.array([[a, b, d] for a in (-1, 1) for b in (-1, 1) for d in (-1, 1)], float) * reach + c
    ijk = geometry.world_to_voxel(corners)
    lo = np.maximum(np.floor(ijk.min(axis=0)).astype(int), 0)
    hi = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + 1, np.asarray(geometry.size_ijk))
    if np.any(hi <= lo):
        return None
    sl = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    kr, jr, ir = (np.arange(lo[a], hi[a], dtype=float) for a in (2, 1, 0))
    M = geometry.direction_matrix * np.asarray(geometry.spacing)[None, :]
    o = np.asarray(geometry.origin) - c
    # local coordinates (mm from the nodule centre) of the box voxels, broadcast over (k, j, i)
    P = [o[a] + M[a, 0] * ir[None, None, :] + M[a, 1] * jr[None, :, None] + M[a, 2] * kr[:, None, None] for a in range(3)]
    vox = float(np.mean(geometry.spacing))
    d = None
    for off, rl in mdl["lobes"]:
        dl = np.sqrt((P[0] - off[0]) ** 2 + (P[1] - off[1]) ** 2 + (P[2] - off[2]) ** 2) - rl
        d = dl if d is None else np.minimum(d, dl)
    d = np.broadcast_to(d, (len(kr), len(jr), len(ir)))
    x = volume_array[sl].astype(np.float32)
    tex = rng.standard_normal(x.shape).astype(np.float32)
    tex = ndimage.gaussian_filter(tex, 1.0) * 2.5 * mdl["texture"]
    if nodule.kind == "ground-glass":
        soft_w = 0.3 * r + 0.7 * vox
        m = _smoothstep(0.5 - d / soft_w)
        x_nod = mdl["hu_ggo"] + 2 * tex
    else:
        m = _soft(d, 0.6 * vox)
        for v, L, rs in mdl["spicules"]:
            ds, t = _seg_dist(P[0], P[1], P[2], v * r * 0.7, v * (r + L))
            np.maximum(m, _soft(ds - rs * (1 - 0.7 * t), 0.6 * vox) * (1 - 0.3 * t), out=m)
        x_nod = mdl["hu_solid"] + tex
        if nodule.kind == "part-solid":
            rc = r * nodule.solid_fraction
            core = _soft(np.sqrt(P[0] ** 2 + P[1] ** 2 + P[2] ** 2) - rc, 0.6 * vox)
            halo = _smoothstep(0.5 - d / (0.2 * r + 0.7 * vox))
            halo = np.maximum(halo, m * 0.0)
            x_nod = (mdl["hu_ggo"] + 2 * tex) * (1 - core) + x_nod * core
            # spicules of a part-solid nodule are solid strands
            m_sp = np.clip(m - _soft(d, 0.6 * vox), 0, 1) if mdl["spicules"] else 0.0
            x_nod = x_nod * (1 - m_sp) + (mdl["hu_solid"] + tex) * m_sp
            m = np.maximum(halo, np.maximum(core, m))
    x_nod = np.maximum(x_nod, x)  # HU-aware: never lower the density of what is there
    out = x_nod * m + x * (1 - m)
    if np.issubdtype(volume_array.dtype, np.integer):
        info = np.iinfo(volume_array.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    volume_array[sl] = out.astype(volume_array.dtype)
    return sl


# ----------------------------------------------------------------------------------------------------------------
def lung_mask(volume: Volume, threshold: float = -400.0, min_ml: float = 300.0) -> np.ndarray:
    """Boolean lung mask from HU alone (independent of the generator): large air components inside the body,
    holes (vessels, nodules) filled slice by slice along k."""
    a = volume.array
    low = a < threshold
    lab, n = ndimage.label(low)
    if n == 0:
        return np.zeros(a.shape, bool)
    border = np.unique(np.concatenate([lab[:, 0, :].ravel(), lab[:, -1, :].ravel(), lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    vox_ml = float(np.prod(volume.spacing)) / 1000.0
    keep = np.zeros(n + 1, bool)
    keep[1:] = sizes[1:] * vox_ml >= min_ml
    keep[border] = False
    keep[0] = False
    mask = keep[lab]
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndimage.generate_binary_structure(2, 1)
    return ndimage.binary_fill_holes(mask, structure=st)
