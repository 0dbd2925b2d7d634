"""The files and folders a user opened recently (File > Open Recent), kept in a small JSON file. Qt-free.

Stored in the user's config directory (``REVIEWER_CONFIG`` overrides it; the tests point it at a temporary folder).
A corrupt or unreadable file is treated as empty: a convenience list must never stop the app from starting.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

LIMIT = 10


def config_dir() -> Path:
    from platformdirs import user_config_dir

    p = Path(os.environ.get("REVIEWER_CONFIG") or user_config_dir("reviewer"))
    p.mkdir(parents=True, exist_ok=True)
    return p


class RecentPaths:
    def __init__(self, file: str | os.PathLike | None = None, limit: int = LIMIT):
        self.file = Path(file) if file is not None else config_dir() / "recent.json"
        self.limit = int(limit)

    def _read(self) -> list[str]:
        try:
            items = json.loads(self.file.read_text())
        except (OSError, ValueError):
            return []
        return [str(p) for p in items if isinstance(p, str)] if isinstance(items, list) else []

    def items(self) -> list[str]:
        """Most recent first; paths that no longer exist are left out."""
        return [p for p in self._read() if os.path.exists(p)]

    def add(self, path: str | os.PathLike) -> list[str]:
        p = os.path.abspath(os.fspath(path))
        items = [p] + [q for q in self._read() if q != p]
        items = items[: self.limit]
        try:
            tmp = self.file.with_suffix(".tmp")
            tmp.write_text(json.dumps(items, indent=1))
            os.replace(tmp, self.file)  # atomic: a crash never leaves half a file
        except OSError:
            pass
        return items

    def clear(self) -> None:
        try:
            self.file.unlink()
        except OSError:
            pass
