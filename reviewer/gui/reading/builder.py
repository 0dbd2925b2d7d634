"""The GUI study builder: a dialog filling a :class:`reviewer.studies.builder.BuilderSpec` and building it as a job.

Cases come from image files (a table: case id, condition, file, optional lesion x, y, z, diameter in LPS mm), an
FNAF evaluation folder, a synthetic-insertions JSON or the demo data; then conditions, readers, paradigm, scale,
randomisation, blinding, navigation, time limit and instructions. Problems with the form are listed in red
under it; errors of the build (an unreadable image, a bad JSON) appear there too, naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from reviewer.gui.jobs_qt import JobRunner
from reviewer.studies.builder import SOURCE_LABELS, SOURCES, BuilderSpec, FileRow, build_study

FILE_COLUMNS = ("case id", "condition", "image", "x", "y", "z", "diameter mm")


class StudyBuilderDialog(QDialog):
    """Build a reader study. Signal ``built(path_of_study_json)`` after a successful build."""

    built = Signal(str)

    def __init__(self, parent: QWidget | None = None, runner: JobRunner | None = None):
        super().__init__(parent)
        self.setWindowTitle("New reader study")
        self.runner = runner or JobRunner(self, max_threads=1)
        self.definition: Any = None
        self.job: Any = None
        lay = QVBoxLayout(self)

        top = QFormLayout()
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("e.g. FNAF pilot, knee MRI 4x")
        top.addRow("Study name", self.name_edit)
        out_row = QHBoxLayout()
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("the folder the study is written to")
        b = QPushButton("Choose…")
        b.clicked.connect(self._choose_out)
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(b)
        top.addRow("Folder", out_row)
        self.force_check = QCheckBox("overwrite a study already in this folder (its readings too)")
        top.addRow("", self.force_check)
        lay.addLayout(top)

        # cases
        cases = QGroupBox("Cases")
        cl = QVBoxLayout(cases)
        self.source_combo = QComboBox()
        for key in SOURCES:
            self.source_combo.addItem(SOURCE_LABELS[key], key)
        cl.addWidget(self.source_combo)
        self.source_stack = QStackedWidget()
        cl.addWidget(self.source_stack)
        self.source_stack.addWidget(self._files_page())
        self.source_stack.addWidget(self._path_page("fnaf_eval"))
        self.source_stack.addWidget(self._path_page("insertions"))
        demo = QLabel("The demo data are generated (once) and the cases built from them; this takes a minute.")
        demo.setWordWrap(True)
        self.source_stack.addWidget(demo)
        self.source_stack.addWidget(QLabel("Demo chest CT phantoms with 1-2 nodules, and normal ones."))
        self.source_combo.currentIndexChanged.connect(self.source_stack.setCurrentIndex)
        lay.addWidget(cases, 1)

        # reading design
        design = QGroupBox("Reading")
        form = QFormLayout(design)
        self.readers_edit = QLineEdit()
        self.readers_edit.setPlaceholderText("reader ids, comma-separated (e.g. R1, R2, R3)")
        form.addRow("Readers", self.readers_edit)
        self.paradigm_combo = QComboBox()
        for key, text in (("froc", "FROC: marks with ratings"), ("roc", "ROC: one rating per case"),
                          ("both", "Both: marks and a case rating")):
            self.paradigm_combo.addItem(text, key)
        form.addRow("Paradigm", self.paradigm_combo)
        self.scale_combo = QComboBox()
        self.scale_combo.addItem("1-5 (keys 1-5)", "1-5")
        self.scale_combo.addItem("0-100 (slider)", "0-100")
        form.addRow("Rating scale", self.scale_combo)
        self.radius_spin = QDoubleSpinBox()
        self.radius_spin.setRange(0.1, 100.0)
        self.radius_spin.setValue(5.0)
        self.radius_spin.setSuffix(" mm")
        form.addRow("Acceptance radius", self.radius_spin)
        rand = QHBoxLayout()
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.shuffle_check = QCheckBox("shuffle per reader")
        self.separate_check = QCheckBox("keep a case's conditions apart")
        self.counterbalance_check = QCheckBox("counterbalance")
        for c in (self.shuffle_check, self.separate_check, self.counterbalance_check):
            c.setChecked(True)
        rand.addWidget(QLabel("seed"))
        rand.addWidget(self.seed_spin)
        for c in (self.shuffle_check, self.separate_check, self.counterbalance_check):
            rand.addWidget(c)
        rand.addStretch(1)
        form.addRow("Randomisation", rand)
        blind = QHBoxLayout()
        self.hide_condition_check = QCheckBox("hide the condition")
        self.hide_files_check = QCheckBox("opaque file names")
        for c in (self.hide_condition_check, self.hide_files_check):
            c.setChecked(True)
            blind.addWidget(c)
        blind.addStretch(1)
        form.addRow("Blinding", blind)
        self.back_check = QCheckBox("readers may go back to earlier cases")
        form.addRow("Navigation", self.back_check)
        self.time_spin = QDoubleSpinBox()
        self.time_spin.setRange(0.0, 3600.0)
        self.time_spin.setSpecialValueText("no limit")
        self.time_spin.setSuffix(" s")
        form.addRow("Time limit per case", self.time_spin)
        self.instructions_edit = QPlainTextEdit()
        self.instructions_edit.setPlaceholderText("Shown to readers before they start (default: generated from "
                                                  "the paradigm and scale)")
        self.instructions_edit.setMaximumHeight(80)
        form.addRow("Instructions", self.instructions_edit)
        lay.addWidget(design)

        self.problems_label = QLabel("")
        self.problems_label.setWordWrap(True)
        self.problems_label.setStyleSheet("color: #ff6b6b;")
        self.problems_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.problems_label)
        self.status_label = QLabel("")
        lay.addWidget(self.status_label)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.create_button = self.buttons.addButton("Create study", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.create)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        self.resize(860, 820)

    # -- pages ---------------------------------------------------------------------------------------------------
    def _files_page(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Condition for added files"))
        self.condition_edit = QLineEdit("standard U-Net 4x")
        row.addWidget(self.condition_edit, 1)
        add = QPushButton("Add image files…")
        add.clicked.connect(self._add_files_dialog)
        rm = QPushButton("Remove rows")
        rm.clicked.connect(self._remove_rows)
        row.addWidget(add)
        row.addWidget(rm)
        lay.addLayout(row)
        self.files_table = QTableWidget(0, len(FILE_COLUMNS))
        self.files_table.setHorizontalHeaderLabels(FILE_COLUMNS)
        self.files_table.horizontalHeader().setStretchLastSection(False)
        self.files_table.setColumnWidth(2, 330)
        lay.addWidget(self.files_table, 1)
        hint = QLabel("One row per image: rows with the same case id are one case under several conditions. "
                      "A lesion (x, y, z in patient LPS mm and its diameter) on any row of a case makes it "
                      "abnormal; a case without lesions is normal.")
        hint.setWordWrap(True)
        lay.addWidget(hint)
        return page

    def _path_page(self, kind: str) -> QWidget:
        page = QWidget()
        lay = QFormLayout(page)
        row = QHBoxLayout()
        edit = QLineEdit()
        b = QPushButton("Choose…")
        row.addWidget(edit, 1)
        row.addWidget(b)
        if kind == "fnaf_eval":
            self.fnaf_edit = edit
            b.clicked.connect(lambda: self._choose_dir(self.fnaf_edit))
            lay.addRow("Evaluation folder", row)
        else:
            self.insertions_edit = edit
            b.clicked.connect(lambda: self._choose_file(self.insertions_edit, "JSON (*.json)"))
            lay.addRow("Insertions JSON", row)
            self.insertion_condition_edit = QLineEdit("CT")
            lay.addRow("Condition (entries without one)", self.insertion_condition_edit)
        return page

    # -- file rows -------------------------------------------------------------------------------------------------
    def add_files(self, paths: list[str], condition: str | None = None) -> None:
        cond = condition if condition is not None else self.condition_edit.text().strip()
        for p in paths:
            r = self.files_table.rowCount()
            self.files_table.insertRow(r)
            stem = Path(p).name.split(".")[0]
            for c, text in enumerate((stem, cond, str(p), "", "", "", "")):
                self.files_table.setItem(r, c, QTableWidgetItem(text))

    def set_lesion(self, row: int, x: float, y: float, z: float, diameter: float) -> None:
        for c, v in zip(range(3, 7), (x, y, z, diameter)):
            self.files_table.setItem(row, c, QTableWidgetItem(f"{v:g}"))

    def _add_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Image files", "", "Images (*.nii *.nii.gz *.mhd *.nrrd *.dcm "
                                                "*.png *.tif *.tiff);;All files (*)")
        if files:
            self.add_files(files)

    def _remove_rows(self) -> None:
        for r in sorted({i.row() for i in self.files_table.selectedIndexes()}, reverse=True):
            self.files_table.removeRow(r)

    def _rows(self) -> tuple[list[FileRow], list[str]]:
        rows, problems = [], []
        t = self.files_table
        for r in range(t.rowCount()):
            cell = [(t.item(r, c).text().strip() if t.item(r, c) else "") for c in range(len(FILE_COLUMNS))]
            lesion = None
            if any(cell[3:]):
                try:
                    lesion = tuple(float(v) for v in cell[3:])
                except ValueError:
                    problems.append(f"Row {r + 1}: a lesion needs numbers in x, y, z and diameter.")
            rows.append(FileRow(cell[0], cell[1], cell[2], lesion))
        return rows, problems

    # -- choosing paths --------------------------------------------------------------------------------------------
    def _choose_out(self) -> None:
        self._choose_dir(self.out_edit)

    def _choose_dir(self, edit: QLineEdit) -> None:
        d = QFileDialog.getExistingDirectory(self, "Choose a folder")
        if d:
            edit.setText(d)

    def _choose_file(self, edit: QLineEdit, flt: str) -> None:
        f, _ = QFileDialog.getOpenFileName(self, "Choose a file", "", flt)
        if f:
            edit.setText(f)

    # -- spec and build --------------------------------------------------------------------------------------------
    def spec(self) -> tuple[BuilderSpec, list[str]]:
        """The form as a BuilderSpec, and the problems found while reading it."""
        rows, problems = self._rows()
        source = self.source_combo.currentData()
        readers = [r.strip() for r in self.readers_edit.text().replace(";", ",").split(",") if r.strip()]
        spec = BuilderSpec(
            out_dir=self.out_edit.text().strip(), name=self.name_edit.text().strip(), source=source, files=rows,
            source_path=(self.fnaf_edit.text() if source == "fnaf_eval" else
                         self.insertions_edit.text() if source == "insertions" else "").strip(),
            insertion_condition=self.insertion_condition_edit.text().strip() or "CT", readers=readers,
            paradigm=self.paradigm_combo.currentData(), rating_scale=self.scale_combo.currentData(),
            acceptance_radius_mm=self.radius_spin.value(), seed=self.seed_spin.value(),
            shuffle=self.shuffle_check.isChecked(), separate_conditions=self.separate_check.isChecked(),
            counterbalance=self.counterbalance_check.isChecked(), hide_condition=self.hide_condition_check.isChecked(),
            hide_file_names=self.hide_files_check.isChecked(), allow_back=self.back_check.isChecked(),
            time_limit_s=self.time_spin.value() or None, instructions=self.instructions_edit.toPlainText(),
            force=self.force_check.isChecked())
        return spec, problems + spec.problems()

    def create(self) -> None:
        spec, problems = self.spec()
        if problems:
            self.problems_label.setText("\n".join(f"• {p}" for p in problems))
            return
        self.problems_label.setText("")
        self.status_label.setText("Building the study…")
        self.create_button.setEnabled(False)
        self.job = self.runner.submit(build_study, spec, key="build-study", label="Building the reader study",
                                      on_result=self._done, on_error=self._failed,
                                      on_progress=lambda p: self.status_label.setText(
                                          f"Building the study… {p.message}"))

    def _done(self, definition: Any) -> None:
        self.definition = definition
        self.create_button.setEnabled(True)
        out = os.path.join(self.out_edit.text().strip(), "study.json")
        self.status_label.setText(f"Wrote {out}: {len(definition.cases)} cases x {len(definition.conditions)} "
                                  f"conditions.")
        self.built.emit(out)
        self.accept()

    def _failed(self, exc: BaseException) -> None:
        self.create_button.setEnabled(True)
        self.status_label.setText("")
        self.problems_label.setText(f"• {exc}")
