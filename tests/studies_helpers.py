"""Shared helpers for the reader-study tests: tiny studies on disk and a throwaway PostgreSQL server."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from reviewer.geometry import Volume
from reviewer.io.writer import write_volume
from reviewer.studies.definition import CaseDef, ImageRef, Lesion, ReaderDef, StudyDefinition, Truth

CONDS = ["standard U-Net 4x", "robust U-Net 4x"]


def tiny_study(folder: Path, n_cases: int = 6, readers=("R1", "R2"), paradigm: str = "froc",
               allow_back: bool = False, time_limit_s: float | None = None, scale: str = "1-5",
               conditions=CONDS) -> StudyDefinition:
    """``n_cases`` 2D cases (32 x 32, 1 mm, origin 0), every other one with a lesion at (10, 12, 0) mm, one
    image per condition under an opaque name."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    cases = []
    for c in range(n_cases):
        images = {}
        for j, cond in enumerate(conditions):
            name = f"images/img{c:02d}{'xy'[j]}.nii.gz"
            vol = Volume.from_array(rng.random((1, 32, 32)).astype(np.float32), spacing=(1.0, 1.0, 1.0))
            write_volume(vol, folder / name, sidecar=False)
            images[cond] = ImageRef(name)
        lesions = [Lesion(1, (10.0, 12.0, 0.0), 4.0)] if c % 2 == 0 else []
        cases.append(CaseDef(f"case{c:02d}", Truth(lesions), images))
    d = StudyDefinition("tiny", list(conditions), cases, [ReaderDef(r) for r in readers], paradigm=paradigm,
                        rating_scale=scale, acceptance_radius_mm=5.0, time_limit_s=time_limit_s)
    d.navigation.allow_back = allow_back
    d.write(folder / "study.json")
    return d


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server():
    """Start a throwaway PostgreSQL server (as the ``postgres`` user when running as root); yields a URL or a
    reason (str starting with 'skip:') when no server binaries are installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4].split(".")[0]))
    if not found:
        yield "skip: no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb)"
        return
    bindir = Path(found[-1]).parent
    prefix: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="reviewer-pg-"))
    if os.geteuid() == 0:
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            yield "skip: running as root and there is no 'postgres' system user to run the server"
            return
        os.chown(base, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = base / "data"
    port = _free_port()
    started = False
    try:
        subprocess.run(prefix + [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                 "--no-sync", "-E", "UTF8"], check=True, capture_output=True, timeout=120)
        opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"),
                                 "-w", "-t", "60", "start"], check=True, capture_output=True, timeout=90)
        started = True
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
