"""The headless core never imports Qt or pyqtgraph: checked statically and by importing it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "reviewer"
GUI_ONLY = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "shiboken6", "pytestqt")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
            if node.module.startswith("reviewer.gui"):
                names.add("reviewer.gui")
    return names


def test_no_qt_outside_gui():
    offenders = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if rel.parts[0] == "gui" or rel.name in ("cli.py",):
            continue
        bad = _imported_modules(path) & set(GUI_ONLY + ("reviewer.gui",))
        if bad:
            offenders.append(f"{rel}: {sorted(bad)}")
    assert not offenders, "Qt/pyqtgraph/GUI imported by headless modules:\n" + "\n".join(offenders)


def test_cli_imports_gui_only_lazily():
    """Each cli.py (the main one and the domains') may start the GUI, but only inside the function that does so."""
    clis = [p for p in PKG.rglob("cli.py") if p.relative_to(PKG).parts[0] != "gui"]
    assert PKG / "cli.py" in clis and len(clis) >= 6
    for path in clis:
        tree = ast.parse(path.read_text())
        top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        for node in top_level:
            mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            assert not (mod or "").startswith(("reviewer.gui",) + GUI_ONLY), (path, mod)


def test_importing_every_headless_module_loads_no_qt():
    modules = sorted(
        ".".join(("reviewer",) + p.relative_to(PKG).with_suffix("").parts)
        for p in PKG.rglob("*.py")
        if p.relative_to(PKG).parts[0] != "gui" and p.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m.removesuffix('.__init__'))\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {GUI_ONLY!r}]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
