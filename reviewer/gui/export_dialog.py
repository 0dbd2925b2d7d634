"""File > Export case…: a dialog for formats, identity and date shift; the export runs as a job.

The case comes from the viewer state (:func:`reviewer.export.from_view.case_from_state`) and goes through the
same :func:`reviewer.export.exporter.export_case` as ``reviewer export``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)


@dataclass
class ExportOptions:
    out_dir: str
    formats: tuple[str, ...]
    keep_phi: bool
    shift_days: int | None


class ExportDialog(QDialog):
    """Asks where and how to export; ``options()`` reads the choices (None until valid)."""

    def __init__(self, parent: QWidget | None = None, out_dir: str = ""):
        super().__init__(parent)
        self.setWindowTitle("Export case")
        self.out_edit = QLineEdit(out_dir)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.out_edit, 1)
        row.addWidget(browse)
        self.format_boxes = {f: QCheckBox(text) for f, text in (
            ("dicom", "DICOM (source series, SR findings, SEG masks, derived series)"),
            ("nifti", "NIfTI with JSON sidecar"), ("png", "PNG key images"))}
        for box in self.format_boxes.values():
            box.setChecked(True)
        self.keep_phi = QCheckBox("Keep patient identity (names, IDs, dates, UIDs) — not de-identified")
        self.keep_phi.setToolTip("Off: the DICOM PS3.15 basic confidentiality profile is applied. On: identity is "
                                 "kept, and the manifest records it.")
        self.shift = QCheckBox("Shift dates by")
        self.shift_days = QSpinBox()
        self.shift_days.setRange(-36500, 36500)
        self.shift_days.setValue(-365)
        self.shift_days.setSuffix(" days")
        self.shift_days.setEnabled(False)
        self.shift.toggled.connect(self.shift_days.setEnabled)
        self.keep_phi.toggled.connect(self._keep_phi_toggled)
        self.problem = QLabel("")
        self.problem.setStyleSheet("color: #c0392b")
        form = QFormLayout()
        form.addRow("Output folder", row)
        fmt = QVBoxLayout()
        for box in self.format_boxes.values():
            fmt.addWidget(box)
        form.addRow("Formats", fmt)
        form.addRow("Identity", self.keep_phi)
        shift_row = QHBoxLayout()
        shift_row.addWidget(self.shift)
        shift_row.addWidget(self.shift_days)
        shift_row.addStretch(1)
        form.addRow("Dates", shift_row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.problem)
        lay.addWidget(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to folder", self.out_edit.text())
        if folder:
            self.out_edit.setText(folder)

    def _keep_phi_toggled(self, on: bool) -> None:
        self.shift.setEnabled(not on)
        if on:
            self.shift.setChecked(False)

    def options(self) -> ExportOptions | None:
        formats = tuple(f for f, box in self.format_boxes.items() if box.isChecked())
        out = self.out_edit.text().strip()
        if not out:
            self.problem.setText("Choose an output folder.")
            return None
        if not formats:
            self.problem.setText("Choose at least one format.")
            return None
        if self.shift.isChecked() and self.shift_days.value() == 0:
            self.problem.setText("A shift of 0 days keeps the dates: untick the shift to remove them instead.")
            return None
        self.problem.setText("")
        return ExportOptions(out, formats, self.keep_phi.isChecked(),
                             self.shift_days.value() if self.shift.isChecked() else None)

    def _accept(self) -> None:
        if self.options() is not None:
            self.accept()


def export_current_case(window: Any, options: ExportOptions) -> Any:
    """Export what ``window.state`` shows as a job on ``window.runner``; returns the Job."""
    from reviewer.export.exporter import export_case
    from reviewer.export.from_view import case_from_state

    title = window.windowTitle()
    # the title names the series (often after its file): only an export that keeps identity uses it
    name = title.split("—", 1)[-1].strip() if options.keep_phi and "—" in title else "case"
    case = case_from_state(window.state, name=name)
    out = Path(options.out_dir)

    def done(result: Any) -> None:
        note = "identity KEPT" if options.keep_phi else "de-identified"
        window.notifier.info(f"Exported {len(result.files)} files ({note}) to {out}")
        for w in result.warnings:
            window.notifier.warning(w)

    return window.runner.submit(
        export_case, case, out, formats=options.formats, keep_phi=options.keep_phi,
        shift_days=options.shift_days, key="export", label="Exporting case", on_result=done,
        on_error=lambda exc: window.notifier.exception(exc, "Export failed"))


def run_export_dialog(window: Any) -> Any:
    """The File > Export case… action: ask, then export as a job (nothing when no image is shown)."""
    if window.state.primary is None:
        window.notifier.info("Open an image before exporting.")
        return None
    dlg = ExportDialog(window, out_dir=str(Path.home() / "reviewer-export"))
    if dlg.exec() != QDialog.DialogCode.Accepted:
        return None
    options = dlg.options()
    return export_current_case(window, options) if options is not None else None
