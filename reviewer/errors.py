"""Errors a user sees: each names the file (or thing) and the problem."""

from __future__ import annotations

import os


class ReviewerError(Exception):
    """Base class for errors that carry a message meant for the user."""


class InputError(ReviewerError):
    """Bad input: a corrupt or truncated file, a wrong shape, a missing tag, an empty folder..."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class ModelMismatchError(ReviewerError):
    """A model that does not fit the data it is asked to process."""


def read_json_file(path, what: str = "file"):
    """Parse a JSON file; a missing or malformed file raises InputError naming the file and what it should be."""
    import json
    from pathlib import Path

    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(p, f"{what} not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(p, f"{what} is not valid JSON ({exc})") from None
