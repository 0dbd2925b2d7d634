"""Dock "Nodule detection lab": a thin widget over :class:`reviewer.detection.lab.DetectionLab`.

Run the standard and the robust FPR model (jobs; the candidate generator runs once) -> the compare layout shows
the CT twice, one pane per model, each with that model's detections at the threshold (circles of the estimated
diameter, labelled with the probability) and the ground truth in green on both. The sortable table lists every
candidate with both models' probability, uncertainty, the diameter, the location and the score difference;
clicking a row moves the linked crosshair there. The threshold slider filters table, overlays and hit counts.
Synthetic nodules are inserted at the crosshair, or searched (PGD) so the detector misses them; the stress
perturbations make a derived volume to re-run on. Workers never touch widgets.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from reviewer.detection.lab import (CG_TASK, COMPOSITIONS, FPR_TASK, PERTURBATIONS, DetectionLab, HardResult, LabRun,
                                    PerturbResult, nodule_params, row_truth)
from reviewer.gui.notifications import cards_or_warn, error_boundary

log = logging.getLogger(__name__)

TITLE = "Nodule detection lab"
WARN_STYLE = "color: #ffb040; font-weight: bold;"
STANDARD_COLOR = (255, 150, 40)  # orange
ROBUST_COLOR = (80, 170, 255)  # blue
TRUTH_COLOR = (0, 220, 0)  # green, as the demo's ground-truth circles
SELECTED_COLOR = (255, 255, 0)
GT_OVERLAY = "ground truth nodules"  # the demo opens with an overlay of this name: ours replaces it
SELECTED_OVERLAY = "selected candidate"
MIN_RADIUS_MM = 3.0
COLUMNS = ("#", "P std", "P rob", "Δ", "u std", "u rob", "Ø mm", "LPS mm", "truth")
NO_PERTURBATION = "none"


class _Item(QTableWidgetItem):
    """A table cell sorted by a number (None last), shown as text."""

    def __init__(self, text: str, key: float | None = None):
        super().__init__(text)
        self.key = key

    def __lt__(self, other):  # noqa: D105
        a = self.key if self.key is not None else -np.inf
        b = getattr(other, "key", None)
        b = b if b is not None else -np.inf
        return a < b


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


def overlay_name(model: str) -> str:
    return f"detections: {model}"


class DetectionPanel(QDockWidget):
    """The detection lab dock of a main window (uses its ``state``, ``runner`` and ``notifier``)."""

    def __init__(self, window: Any):
        super().__init__(TITLE, window)
        self.setObjectName("detectionLabDock")
        self.window_ = window
        self.state = window.state
        self.runner = window.runner
        self.notifier = window.notifier
        self.lab: DetectionLab | None = None
        self.result: LabRun | None = None
        self.hard: HardResult | None = None
        self.job = None
        self.detector_kw: dict[str, Any] = {}  # e.g. max_candidates (tests use small settings)
        self.device = None
        self._loaded: tuple | None = None  # (cg, standard, robust) card names the lab's detectors were built from
        self._rows: list = []  # rows shown, in table order before sorting
        self._shown_volume = None
        self._build()
        self._load_cards()
        self._update_enabled()

    # -- UI --------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        body = QWidget()
        lay = QVBoxLayout(body)
        lay.setContentsMargins(6, 6, 6, 6)
        self.source_label = QLabel("No CT: open a chest CT (File > Open Demo opens the demo CT with its nodules).")
        self.source_label.setWordWrap(True)
        lay.addWidget(self.source_label)
        self.warning_label = QLabel("")
        self.warning_label.setStyleSheet(WARN_STYLE)
        self.warning_label.setWordWrap(True)
        self.warning_label.setVisible(False)
        lay.addWidget(self.warning_label)
        self.derived_label = QLabel("")
        self.derived_label.setStyleSheet("color: #ff70d0; font-weight: bold;")
        self.derived_label.setWordWrap(True)
        self.derived_label.setVisible(False)
        lay.addWidget(self.derived_label)

        # models
        g = QGroupBox("Models")
        f = QFormLayout(g)
        self.cg_combo = QComboBox()
        self.cg_combo.setToolTip("Candidate generator (3D residual U-Net): runs once, both FPR models score its "
                                 "candidates")
        self.std_combo = QComboBox()
        self.std_combo.setToolTip("The standard false-positive-reduction model")
        self.rob_combo = QComboBox()
        self.rob_combo.setToolTip("The robust (adversarially augmented) false-positive-reduction model")
        f.addRow("Candidates", self.cg_combo)
        f.addRow(self._swatch("Standard", STANDARD_COLOR), self.std_combo)
        f.addRow(self._swatch("Robust", ROBUST_COLOR), self.rob_combo)
        self.no_models_label = QLabel("")
        self.no_models_label.setStyleSheet(WARN_STYLE)
        self.no_models_label.setWordWrap(True)
        self.no_models_label.setVisible(False)
        f.addRow(self.no_models_label)
        self.run_std_button = QPushButton("Run standard")
        self.run_rob_button = QPushButton("Run robust")
        self.run_both_button = QPushButton("Run both")
        self.run_both_button.setToolTip("Candidate generation once, then both FPR models (a job)")
        row = QHBoxLayout()
        for b in (self.run_std_button, self.run_rob_button, self.run_both_button):
            row.addWidget(b)
        f.addRow(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        f.addRow(row)
        self.timing_label = QLabel("")
        self.timing_label.setWordWrap(True)
        f.addRow(self.timing_label)
        lay.addWidget(g)

        # candidates
        g = QGroupBox("Candidates")
        v = QVBoxLayout(g)
        row = QHBoxLayout()
        row.addWidget(QLabel("Threshold"))
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(0, 100)
        self.threshold_slider.setValue(50)
        self.threshold_slider.setToolTip("Show candidates where either model's probability is at least this")
        self.threshold_label = QLabel("0.50")
        self.threshold_label.setMinimumWidth(34)
        row.addWidget(self.threshold_slider, 1)
        row.addWidget(self.threshold_label)
        v.addLayout(row)
        self.count_label = QLabel("")
        self.count_label.setWordWrap(True)
        v.addWidget(self.count_label)
        self.zoom_check = QCheckBox("Zoom in (×4) on the selected candidate")
        self.zoom_check.setToolTip("Clicking a row also zooms every pane onto it (R resets the view)")
        v.addWidget(self.zoom_check)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setSortingEnabled(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setStretchLastSection(True)
        tips = ["rank by the highest probability", "standard model's probability", "robust model's probability",
                "score difference: robust minus standard probability (a model that did not report the candidate "
                "counts 0)",
                "standard model's uncertainty (Beta head: 2 / (α + β))", "robust model's uncertainty",
                "estimated diameter (mean over the models)", "centre in patient LPS mm",
                "the ground-truth nodule the candidate lies in"]
        for c, tip in enumerate(tips):
            self.table.horizontalHeaderItem(c).setToolTip(tip)
        self.table.setMinimumHeight(200)
        v.addWidget(self.table)
        self.truth_label = QLabel("")
        self.truth_label.setWordWrap(True)
        self.truth_label.setTextFormat(Qt.TextFormat.RichText)
        v.addWidget(self.truth_label)
        self.truth_table = QTableWidget(0, 4)
        self.truth_table.setHorizontalHeaderLabels(["nodule", "Ø mm", "standard", "robust"])
        self.truth_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.truth_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.truth_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.truth_table.verticalHeader().setVisible(False)
        self.truth_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.truth_table.setMaximumHeight(150)
        v.addWidget(self.truth_table)
        lay.addWidget(g)

        # synthetic nodules
        g = QGroupBox("Synthetic nodule at the crosshair")
        f = QFormLayout(g)
        self.diameter_spin = self._spin(3.0, 30.0, 10.0, 1, " mm", 1.0)
        self.composition_combo = QComboBox()
        self.composition_combo.addItems(list(COMPOSITIONS))
        self.density_spin = self._spin(-100.0, 150.0, 40.0, 0, " HU", 10.0)
        self.density_spin.setToolTip("Density of the solid component (ground glass: -600 HU)")
        self.margin_spin = self._spin(0.0, 1.0, 0.8, 2, "", 0.1)
        self.margin_spin.setToolTip("Margin sharpness: 1 crisp, 0 fuzzy")
        self.lobulation_spin = self._spin(0.0, 1.0, 0.0, 2, "", 0.1)
        self.spiculation_spin = self._spin(0.0, 1.0, 0.0, 2, "", 0.1)
        f.addRow("Diameter", self.diameter_spin)
        f.addRow("Composition", self.composition_combo)
        f.addRow("Density", self.density_spin)
        f.addRow("Margin", self.margin_spin)
        f.addRow("Lobulation", self.lobulation_spin)
        f.addRow("Spiculation", self.spiculation_spin)
        self.insert_button = QPushButton("Insert nodule at crosshair")
        self.insert_button.setToolTip("Blend the nodule into the lung at the crosshair (a new derived volume, "
                                      "with the nodule as ground truth)")
        f.addRow(self.insert_button)
        self.rerun_check = QCheckBox("Re-run the models on the new volume")
        self.rerun_check.setChecked(True)
        self.rerun_check.setToolTip("After inserting or finding a nodule, run the models that ran before")
        f.addRow(self.rerun_check)
        self.against_combo = QComboBox()
        self.against_combo.setToolTip("The FPR model the search attacks")
        f.addRow("Search against", self.against_combo)
        self.missed_button = QPushButton("Find a nodule it misses here")
        self.missed_button.setToolTip("PGD over the nodule parameters (ε 0.15, step 0.05, 20 iterations) to "
                                      "minimise the model's response at the crosshair; ≥ 6 mm only")
        f.addRow(self.missed_button)
        self.hard_label = QLabel("")
        self.hard_label.setWordWrap(True)
        f.addRow(self.hard_label)
        lay.addWidget(g)

        # stress tests
        g = QGroupBox("Stress test the current view")
        f = QFormLayout(g)
        self.perturb_combo = QComboBox()
        self.perturb_combo.addItem("none (the un-perturbed volume)", NO_PERTURBATION)
        for key, (label, _kind, _level) in PERTURBATIONS.items():
            self.perturb_combo.addItem(label, key)
        f.addRow("Perturbation", self.perturb_combo)
        self.perturb_button = QPushButton("Apply and re-run")
        self.perturb_button.setToolTip("A derived volume with the perturbation (noise on the FPR input scale, as "
                                       "reviewer stress); both models run on it")
        self.revert_button = QPushButton("Back to the original CT")
        row = QHBoxLayout()
        row.addWidget(self.perturb_button, 1)
        row.addWidget(self.revert_button, 1)
        f.addRow(row)
        self.perturb_label = QLabel("")
        self.perturb_label.setWordWrap(True)
        f.addRow(self.perturb_label)
        lay.addWidget(g)
        lay.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        self.setWidget(scroll)
        self.setMinimumWidth(470)

        self.run_std_button.clicked.connect(lambda: self._guard(lambda: self.run("standard")))
        self.run_rob_button.clicked.connect(lambda: self._guard(lambda: self.run("robust")))
        self.run_both_button.clicked.connect(lambda: self._guard(lambda: self.run("both")))
        self.cancel_button.clicked.connect(self.cancel)
        self.threshold_slider.valueChanged.connect(lambda v: self._guard(lambda: self.set_threshold(v / 100.0)))
        self.table.itemSelectionChanged.connect(lambda: self._guard(self._row_selected))
        self.truth_table.itemSelectionChanged.connect(lambda: self._guard(self._truth_selected))
        self.insert_button.clicked.connect(lambda: self._guard(self.insert_at_crosshair))
        self.missed_button.clicked.connect(lambda: self._guard(self.find_missed_here))
        self.perturb_button.clicked.connect(lambda: self._guard(self.apply_perturbation))
        self.revert_button.clicked.connect(lambda: self._guard(self.revert))
        self.composition_combo.currentTextChanged.connect(self._composition_changed)
        for combo in (self.cg_combo, self.std_combo, self.rob_combo):
            combo.currentIndexChanged.connect(lambda _i: self._models_changed())

    @staticmethod
    def _swatch(text: str, color) -> QLabel:
        lb = QLabel(f"<span style='color: rgb{tuple(color)}; font-weight: bold'>●</span> {text}")
        lb.setTextFormat(Qt.TextFormat.RichText)
        return lb

    @staticmethod
    def _spin(lo: float, hi: float, value: float, decimals: int, suffix: str, step: float) -> QDoubleSpinBox:
        s = QDoubleSpinBox()
        s.setRange(lo, hi)
        s.setDecimals(decimals)
        s.setValue(value)
        s.setSuffix(suffix)
        s.setSingleStep(step)
        return s

    def _guard(self, fn) -> None:
        with error_boundary(self.notifier, TITLE):
            fn()

    # -- cards -----------------------------------------------------------------------------------------------
    def _load_cards(self) -> None:
        self.set_cards(cards_or_warn(self.notifier, CG_TASK), cards_or_warn(self.notifier, FPR_TASK))

    def set_cards(self, cg_cards: list, fpr_cards: list) -> None:
        """Fill the model choices: robust = the first card named or trained 'robust', standard = another one."""
        self.cg_cards = {c.name: c for c in cg_cards}
        self.fpr_cards = {c.name: c for c in fpr_cards}
        robust = [c.name for c in fpr_cards if _is_robust(c)]
        standard = [c.name for c in fpr_cards if not _is_robust(c)]
        for combo, names in ((self.cg_combo, list(self.cg_cards)), (self.std_combo, standard + robust),
                             (self.rob_combo, robust + standard)):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            combo.blockSignals(False)
        missing = []
        if not cg_cards:
            missing.append("no candidate-generator card")
        if not fpr_cards:
            missing.append("no false-positive-reduction card")
        self.no_models_label.setText(f"Detection models missing ({', '.join(missing)} in resources/models): "
                                     "train them with reviewer train cg|fpr." if missing else "")
        self.no_models_label.setVisible(bool(missing))
        self._models_changed()

    def selected_models(self, which: str = "both") -> list[str]:
        std, rob = self.std_combo.currentText(), self.rob_combo.currentText()
        names = {"standard": [std], "robust": [rob], "both": [std, rob]}[which]
        return list(dict.fromkeys(n for n in names if n))

    def _models_changed(self) -> None:
        self.against_combo.blockSignals(True)
        self.against_combo.clear()
        self.against_combo.addItems(self.selected_models("both"))
        self.against_combo.blockSignals(False)
        if self.lab is not None and self.result is None:
            self._refresh(panes=False)
        self._update_enabled()

    def _update_enabled(self) -> None:
        has_lab = self.lab is not None
        ready = has_lab and bool(self.cg_cards) and bool(self.fpr_cards)
        busy = self.job is not None and self.job.active
        for b in (self.run_std_button, self.run_rob_button, self.run_both_button, self.missed_button,
                  self.perturb_button):
            b.setEnabled(ready and not busy)
        self.insert_button.setEnabled(has_lab and not busy)
        self.revert_button.setEnabled(has_lab and not busy and self.lab.volume is not self.lab.original)

    # -- input -----------------------------------------------------------------------------------------------
    def series_opened(self, volume: Any) -> None:
        """A series was opened in the viewer: a CT becomes the lab's volume (anything else is ignored)."""
        from reviewer.view.presets import is_ct

        if volume is None or (volume.metadata or {}).get("mri_lab"):
            return
        if not is_ct(volume) and not str(volume.source).lower().endswith((".mhd", ".mha")):
            return
        self.set_lab(DetectionLab(volume))

    def set_lab(self, lab: DetectionLab) -> None:
        old = self.lab
        self.lab = lab
        self.result = None
        self.hard = None
        if old is not None and self._loaded is not None and old.detectors:
            lab.set_detectors(old.detectors, old._shared)  # the models do not change with the scan
            lab.cg_name = old.cg_name
            if old._shared is not None:
                old._shared.forget()
        self.hard_label.setText("")
        self.perturb_label.setText("")
        self.timing_label.setText("")
        self._shown_volume = None
        self._describe_source()
        self._refresh(panes=False)  # the viewer keeps its layout until there is something to compare

    def _describe_source(self) -> None:
        lab = self.lab
        v = lab.original
        si, sj, sk = v.spacing
        n = len(lab.ground_truth())
        srcs = lab.ground_truth_sources()
        src = ", ".join(Path(s).name if ("/" in s or "\\" in s) else s for s in srcs) or "none known"
        self.source_label.setToolTip("\n".join(srcs))
        self.source_label.setText(f"<b>{lab.name}</b><br>{v.shape[2]}×{v.shape[1]}×{v.shape[0]} voxels, "
                                  f"{si:.2f}×{sj:.2f}×{sk:.2f} mm; ground truth: {n} nodule(s) ({src})")

    # -- models and runs -------------------------------------------------------------------------------------
    def _preparer(self):
        """A worker-side function (re)building the lab's detectors when the chosen cards changed (the choice is
        read here, on the GUI thread)."""
        want = (self.cg_combo.currentText(), self.std_combo.currentText(), self.rob_combo.currentText())
        if not want[0] or not want[1]:
            raise ValueError("no detection models (see the Models box)")
        lab, loaded = self.lab, self._loaded
        cg = self.cg_cards[want[0]]
        fprs = [self.fpr_cards[n] for n in dict.fromkeys(want[1:]) if n]
        device, kw = self.device, dict(self.detector_kw)

        def prepare(token=None) -> None:
            if loaded == want and all(f.name in lab.detectors for f in fprs):
                return
            lab.load_models(cg, fprs, device=device, token=token, **kw)
            self._loaded = want

        return prepare

    def _submit(self, fn, label: str, on_result, key: str = "detection-lab"):
        self.job = self.runner.submit(fn, key=key, label=label, on_result=lambda r: self._finish(on_result, r),
                                      on_error=self._failed, on_progress=self._progress,
                                      on_cancelled=lambda: self._finish(None, None))
        self.progress.setValue(0)
        self.progress.setFormat(label)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self._update_enabled()
        return self.job

    def _progress(self, p) -> None:
        if p.total:
            self.progress.setValue(int(1000 * min(max(p.done / p.total, 0.0), 1.0)))
        if p.message:
            self.progress.setFormat(f"{p.message}  %p%")

    def _finish(self, callback, value) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self.job = None
        self._update_enabled()
        if callback is not None:
            callback(value)

    def _failed(self, exc: BaseException) -> None:
        self._finish(None, None)
        self.notifier.exception(exc, TITLE)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def run(self, which: str = "both"):
        """Run the standard, the robust or both models on the current volume (a job)."""
        if self.lab is None:
            raise ValueError("open a chest CT first")
        if not self.cg_cards or not self.fpr_cards:
            raise ValueError("no detection models (see the Models box)")
        names = self.selected_models(which)
        lab = self.lab
        prepare = self._preparer()

        def job(token=None):
            prepare(token.sub(0, 0.05, 1.0))
            return lab.run(names, token=token.sub(0.05, 1.0, 1.0))

        return self._submit(job, f"Detecting nodules: {', '.join(names)}", self.show_result)

    def show_result(self, result: LabRun) -> None:
        if self.lab is None or result.volume is not self.lab.volume:
            return
        self.result = result
        t = result.runs
        parts = [f"{n}: {len(r.findings)} candidates in {r.timings.get('total', 0):.1f} s" for n, r in t.items()]
        if result.candidates_reused:
            parts.append("candidate generation ran once for both")
        self.timing_label.setText("; ".join(parts))
        self._refresh()

    # -- display ---------------------------------------------------------------------------------------------
    @property
    def threshold(self) -> float:
        return self.lab.threshold if self.lab is not None else self.threshold_slider.value() / 100.0

    def set_threshold(self, t: float) -> None:
        t = float(min(max(t, 0.0), 1.0))
        if self.threshold_slider.value() != round(t * 100):
            self.threshold_slider.blockSignals(True)
            self.threshold_slider.setValue(round(t * 100))
            self.threshold_slider.blockSignals(False)
        self.threshold_label.setText(f"{t:.2f}")
        if self.lab is not None:
            self.lab.threshold = t
            self._refresh(panes=False)

    def pane_names(self) -> list[str]:
        """One pane per model (standard, robust), named after the models; one pane when they are the same."""
        return self.selected_models("both") or ["CT"]

    def _refresh(self, panes: bool = True) -> None:
        lab = self.lab
        if lab is None:
            return
        warnings = self.result.warnings if self.result is not None else self.card_warnings()
        self.warning_label.setText("\n".join(f"⚠ {w}" for w in warnings))
        self.warning_label.setVisible(bool(warnings))
        derived = []
        md = lab.volume.metadata or {}
        if md.get("synthetic_nodules"):
            derived.append(f"{len(md['synthetic_nodules'])} synthetic nodule(s) inserted")
        if lab.perturbation is not None and lab.volume is lab.perturbation.volume:
            derived.append(f"perturbed: {lab.perturbation.label}")
        self.derived_label.setText("DERIVED VOLUME, not an acquired image: " + "; ".join(derived) if derived else "")
        self.derived_label.setVisible(bool(derived))
        if panes:
            self._show_panes()
        self._fill_table()
        self._fill_truth()
        self._set_overlays()
        self._set_captions()
        self._update_enabled()

    def card_warnings(self) -> list[str]:
        """The domain check of the chosen cards on the current volume (before any model is loaded or run)."""
        try:
            from reviewer.detection.domain import check_domain
        except ImportError:  # the detector package without a domain check: the run reports them
            return self.lab.domain_warnings()
        cards = [c for c in (self.cg_cards.get(self.cg_combo.currentText()),
                             *(self.fpr_cards.get(n) for n in self.selected_models("both"))) if c is not None]
        out: list[str] = []
        for c in cards:
            for w in check_domain(self.lab.volume, c):
                if w not in out:
                    out.append(w)
        return out

    def _show_panes(self) -> None:
        """Both panes show the lab's current volume, in the compare layout; crosshair and window are kept."""
        lab = self.lab
        if self._shown_volume is lab.volume and list(self.state.pane_names) == self.pane_names():
            return
        s = self.state
        cross = s.crosshair if s.primary is not None else None
        window, preset = s.window, s.preset_name
        names = self.pane_names()
        with s.batch():
            s.set_primary(lab.volume, names[0])
            for n in names[1:]:
                s.add_pane(n, lab.volume)
            if cross is not None and lab.volume.geometry.contains_world(cross):
                s.set_crosshair(cross)
            if s.primary is not None and window is not None:
                s.set_window(*window, preset_name=preset)
            if len(names) > 1:
                s.set_layout("compare")
        self._shown_volume = lab.volume

    def visible_rows(self) -> list:
        return self.lab.rows_at() if self.lab is not None else []

    def _pair(self) -> tuple[str | None, str | None]:
        names = self.selected_models("both")
        std = names[0] if names else None
        rob = names[1] if len(names) > 1 else None
        return std, rob

    def _fill_table(self) -> None:
        t = self.table
        t.setSortingEnabled(False)
        t.blockSignals(True)
        t.clearContents()
        rows = self.visible_rows()
        self._rows = rows
        std, rob = self._pair()
        gt = self.lab.ground_truth() if self.lab is not None else []
        t.setRowCount(len(rows))
        bold = QFont()
        bold.setBold(True)
        for r, row in enumerate(rows):
            ps, pr = row.probability.get(std), row.probability.get(rob)
            diff = row.difference(std, rob) if (std and rob and self.result is not None
                                                and std in self.result.runs and rob in self.result.runs) else None
            truth = row_truth(gt, row)
            c = row.center_lps
            cells = [
                _Item(str(r + 1), -r),
                _Item(_fmt(ps), ps),
                _Item(_fmt(pr), pr),
                _Item(_fmt(diff, "+.3f"), diff),
                _Item(_fmt(row.uncertainty.get(std)), row.uncertainty.get(std)),
                _Item(_fmt(row.uncertainty.get(rob)), row.uncertainty.get(rob)),
                _Item(_fmt(row.diameter, ".1f"), row.diameter),
                _Item(f"{c[0]:.1f}, {c[1]:.1f}, {c[2]:.1f}", c[2]),
                _Item("—" if truth is None else f"nodule {truth + 1}", None if truth is None else -truth),
            ]
            for col, item in enumerate(cells):
                item.setData(Qt.ItemDataRole.UserRole, r)
                if col in (1, 2) and item.key is not None and item.key >= self.threshold:
                    item.setFont(bold)
                    item.setForeground(QColor(*(STANDARD_COLOR if col == 1 else ROBUST_COLOR)))
                if col == 3 and diff is not None and abs(diff) >= 0.3:
                    item.setForeground(QColor(230, 60, 60) if diff < 0 else QColor(40, 170, 40))
                if col == 8 and truth is not None:
                    item.setForeground(QColor(*TRUTH_COLOR))
                t.setItem(r, col, item)
        t.blockSignals(False)
        t.setSortingEnabled(True)
        total = len(self.result.rows) if self.result is not None else 0
        if self.result is None:
            self.count_label.setText("Run the models to list candidates.")
        else:
            self.count_label.setText(f"{len(rows)} of {total} candidates with a probability ≥ {self.threshold:.2f} "
                                     f"(either model); click a row to go there.")

    def _fill_truth(self) -> None:
        lab = self.lab
        gt = lab.ground_truth()
        hits = lab.hits()
        fps = lab.false_positives()
        std, rob = self._pair()
        t = self.truth_table
        t.blockSignals(True)
        t.setRowCount(len(gt))
        for r, g in enumerate(gt):
            cells = [g.label or g.kind, _fmt(g.diameter_mm, ".1f")]
            for m in (std, rob):
                if m in hits:
                    cells.append("HIT" if hits[m][r] else "MISS")
                else:
                    cells.append("—")
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text if c else f"{r + 1}. {text}")
                if text in ("HIT", "MISS"):
                    item.setForeground(QColor(40, 170, 40) if text == "HIT" else QColor(230, 60, 60))
                t.setItem(r, c, item)
        t.blockSignals(False)
        t.setVisible(bool(gt))
        if not gt:
            self.truth_label.setText("No ground truth known for this scan (insert a synthetic nodule to get one).")
            return
        lines = [f"<b>Ground truth</b>: {len(gt)} nodule(s) — at threshold {self.threshold:.2f}:"]
        for m, color in ((std, STANDARD_COLOR), (rob, ROBUST_COLOR)):
            if m in hits:
                lines.append(f"<span style='color: rgb{tuple(color)}'>■</span> {m}: {sum(hits[m])}/{len(gt)} hit, "
                             f"{fps[m]} false positive(s)")
        self.truth_label.setText("<br>".join(lines))

    def _set_overlays(self) -> None:
        from reviewer.view.overlays import SpheresOverlay

        lab = self.lab
        s = self.state
        names = self.pane_names()
        std, rob = self._pair()
        existing = {o.name for o in s.overlays}
        with s.batch():
            for name in list(existing):
                if name.startswith("detections: ") and name[len("detections: "):] not in (std, rob):
                    s.remove_overlay(name)
            rows = self.visible_rows()
            for m, color, pane in ((std, STANDARD_COLOR, names[0]), (rob, ROBUST_COLOR, names[-1])):
                if not m:
                    continue
                keep = [r for r in rows if r.probability.get(m) is not None and r.score(m) >= self.threshold]
                ov = SpheresOverlay(
                    centers=np.array([r.center_lps for r in keep], float).reshape(-1, 3),
                    radii_mm=[max((r.diameter_mm.get(m) or r.diameter or 0) / 2.0, MIN_RADIUS_MM) for r in keep],
                    labels=[f"{r.score(m):.2f}" for r in keep], color=color, name=overlay_name(m))
                ov.panes = (pane,)
                s.add_overlay(ov)
            gt = lab.ground_truth()
            if gt:
                s.add_overlay(SpheresOverlay(
                    centers=np.array([g.center_lps for g in gt], float).reshape(-1, 3),
                    radii_mm=[max((g.diameter_mm or 10.0) / 2.0, 1.0) for g in gt],
                    labels=[f"GT {i + 1}" for i in range(len(gt))], color=TRUTH_COLOR, name=GT_OVERLAY))
            elif GT_OVERLAY in existing:
                s.remove_overlay(GT_OVERLAY)

    def _set_captions(self) -> None:
        lab = self.lab
        names = self.pane_names()
        std, rob = self._pair()
        hits = lab.hits()
        gt = lab.ground_truth()
        caps = {}
        for m, pane, role in ((std, names[0], "standard"), (rob, names[-1], "robust")):
            if not m or (pane in caps):
                continue
            lines = [f"{role} FPR ({'orange' if role == 'standard' else 'blue'})"]
            if self.result is not None and m in self.result.runs:
                n = sum(1 for r in self.result.rows
                        if r.probability.get(m) is not None and r.score(m) >= self.threshold)
                lines.append(f"{n} detection(s) ≥ {self.threshold:.2f}")
                if gt and m in hits:
                    lines.append(f"ground truth {sum(hits[m])}/{len(gt)} hit")
            else:
                lines.append("not run")
            if self.result is not None and self.result.warnings:
                lines.append("⚠ outside the model's domain (see panel)")
            if lab.perturbation is not None and lab.volume is lab.perturbation.volume:
                lines.append(f"PERTURBED: {lab.perturbation.label}")
            if (lab.volume.metadata or {}).get("synthetic_nodules"):
                lines.append("contains synthetic nodule(s)")
            caps[pane] = "\n".join(lines)
        self.state.set_captions(caps)

    # -- navigation ------------------------------------------------------------------------------------------
    def _row_selected(self) -> None:
        items = self.table.selectedItems()
        if not items:
            return
        idx = items[0].data(Qt.ItemDataRole.UserRole)
        if idx is None or not 0 <= int(idx) < len(self._rows):
            return
        self.go_to(self._rows[int(idx)].center_lps)

    def _truth_selected(self) -> None:
        items = self.truth_table.selectedItems()
        gt = self.lab.ground_truth() if self.lab is not None else []
        if items and 0 <= items[0].row() < len(gt):
            self.go_to(gt[items[0].row()].center_lps)

    def go_to(self, world) -> None:
        """Move the linked crosshair (every pane follows) onto a world point and mark it."""
        from reviewer.view.overlays import PointsOverlay

        s = self.state
        with s.batch():
            s.set_crosshair(np.asarray(world, float))
            s.add_overlay(PointsOverlay([world], labels=[""], color=SELECTED_COLOR, size_px=6,
                                        name=SELECTED_OVERLAY))
            if self.zoom_check.isChecked() and s.primary is not None:
                self.zoom_on(world)

    def zoom_on(self, world, zoom: float = 4.0) -> None:
        """Zoom the panes of the current orientation onto a world point."""
        s = self.state
        fr = s.frame(s.orientation)
        x, y, _ = fr.world_to_display(np.asarray(world, float))
        sx, sy = fr.pixel_size
        s.set_view(s.orientation, zoom=zoom, pan=((x - (fr.width - 1) / 2.0) * sx, (y - (fr.height - 1) / 2.0) * sy))

    # -- synthesis -------------------------------------------------------------------------------------------
    def _composition_changed(self, text: str) -> None:
        self.density_spin.setEnabled(text != "ground-glass")

    def nodule_settings(self) -> dict:
        return {"diameter_mm": self.diameter_spin.value(), "composition": self.composition_combo.currentText(),
                "density_hu": self.density_spin.value(), "margin": self.margin_spin.value(),
                "lobulation": self.lobulation_spin.value(), "spiculation": self.spiculation_spin.value()}

    def _crosshair_in_volume(self) -> np.ndarray:
        c = np.asarray(self.state.crosshair, float)
        if self.lab is None:
            raise ValueError("open a chest CT first")
        if not self.lab.volume.geometry.contains_world(c):
            raise ValueError("the crosshair is outside the scan: click in the lung first")
        return c

    def insert_at_crosshair(self):
        """Insert the configured nodule at the crosshair (a job); the panes show the new volume, models re-run."""
        c = self._crosshair_in_volume()
        params = nodule_params(**self.nodule_settings())
        lab = self.lab
        seed = int(abs(hash(tuple(np.round(c, 1)))) % 100000)
        rerun = self._rerun_models()

        def job(token=None):
            out = lab.insert_nodule(c, params, seed=seed, token=token.sub(0, 0.2, 1.0))
            run = lab.run(rerun, token=token.sub(0.2, 1.0, 1.0)) if rerun else None
            return out, run

        return self._submit(job, f"Inserting a {params.diameter_mm:.0f} mm {params.kind} nodule",
                            self._inserted, key="detection-lab")

    def _rerun_models(self) -> list[str]:
        """The models to run again after a change of volume: those that ran, when the option is on."""
        if not self.rerun_check.isChecked() or self.result is None:
            return []
        return [m for m in self.result.models if m in self.selected_models("both")]

    def _inserted(self, value) -> None:
        (_volume, finding), run = value
        where = ", ".join(f"{v:.1f}" for v in finding.center_lps)
        self.notifier.info(f"Synthetic {finding.diameter_mm:.0f} mm nodule inserted at LPS ({where}) mm: it is "
                           "ground truth now." + ("" if run else " Run the models to see whether they find it."))
        self.result = None
        if run is not None:
            self.show_result(run)
        else:
            self._refresh()

    def find_missed_here(self):
        """PGD search for a nodule the chosen model misses at the crosshair (a job)."""
        c = self._crosshair_in_volume()
        lab = self.lab
        model = self.against_combo.currentText() or None
        seed = int(abs(hash(tuple(np.round(c, 1)))) % 100000)
        prepare = self._preparer()
        rerun = self._rerun_models()

        def job(token=None):
            prepare(token.sub(0, 0.05, 1.0))
            res = lab.find_missed_nodule(c, model=model, seed=seed, token=token.sub(0.05, 0.5, 1.0))
            run = lab.run(rerun, token=token.sub(0.5, 1.0, 1.0)) if rerun and not res.discarded else None
            return res, run

        return self._submit(job, f"Searching a nodule {model} misses", self._hard_found)

    def _hard_found(self, value) -> None:
        res, run = value
        self.hard = res
        s = res.search
        text = (f"Against {res.model}: response {res.before:.3f} (random nodule) → {res.after:.3f} "
                f"(PGD-searched, {s.params.diameter_mm:.1f} mm {s.params.kind}, "
                f"visible {s.measured_diameter_mm:.1f} mm)")
        if res.discarded:
            text += f". Discarded: {s.discarded_reason}. Try another spot deeper in the lung."
        else:
            text += ". Inserted at the crosshair as ground truth; run the models on it."
        self.hard_label.setText(text)
        if not res.discarded:
            self.result = None
            if run is not None:
                self.show_result(run)
            else:
                self._refresh()

    # -- stress tests ----------------------------------------------------------------------------------------
    def apply_perturbation(self, key: str | None = None, rerun: bool = True):
        """Apply the selected perturbation to the current (un-perturbed) volume and re-run both models."""
        if self.lab is None:
            raise ValueError("open a chest CT first")
        key = key or self.perturb_combo.currentData()
        lab = self.lab
        if key == NO_PERTURBATION:
            lab.clear_perturbation()
            self.perturb_label.setText("")
            self.result = None
            self._refresh()
            return self.run("both") if rerun else None
        c = np.asarray(self.state.crosshair, float)
        model = self.against_combo.currentText() or None
        names = self.selected_models("both")
        prepare = self._preparer()

        def job(token=None):
            prepare(token.sub(0, 0.05, 1.0))
            pr = lab.perturb(key, center_lps=c, model=model, token=token.sub(0.05, 0.3, 1.0))
            run = lab.run(names, token=token.sub(0.3, 1.0, 1.0)) if rerun else None
            return pr, run

        if key not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {key!r}")
        return self._submit(job, f"Stress test: {PERTURBATIONS[key][0]}", self._perturbed)

    def _perturbed(self, value) -> None:
        pr, run = value
        pr: PerturbResult
        text = f"Showing: {pr.label}."
        if pr.before is not None:
            text += f" {pr.model} at the crosshair: {pr.before:.3f} → {pr.after:.3f} (patch as the model sees it)."
        self.perturb_label.setText(text)
        self.result = None
        if run is not None:
            self.show_result(run)
        else:
            self._refresh()

    def revert(self) -> None:
        if self.lab is None:
            return
        self.lab.revert()
        self.result = None
        self.perturb_label.setText("")
        self.hard_label.setText("")
        self._refresh()

    # -- lifetime --------------------------------------------------------------------------------------------
    def unbind(self) -> None:
        """Nothing to disconnect: the panel writes to the state but listens to no state event."""


def _is_robust(card) -> bool:
    tr = card.training or {}
    return "robust" in card.name.lower() or bool(tr.get("robust")) or bool(tr.get("augment"))
