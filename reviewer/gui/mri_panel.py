"""Dock "MRI reconstruction & FNAF": a thin widget over :class:`reviewer.mri.lab.MriLab`.

Reconstruct (a job) -> the linked comparison layout shows ground truth | zero-filled | model(s), each pane
captioned with SSIM / NMSE / PSNR (volume and current slice). "Place on click" adds an FNAF feature where the
ground-truth pane is clicked; the feature's loss region is a world-coordinate box overlay in every pane and
every caption gets the attack loss, HIT / MISS and the information-preservation value. Search runs as a job and
lists the worst features; selecting one (or Next / Previous) applies it to every pane. Workers never touch
widgets: results come back through the main window's JobRunner.
"""

from __future__ import annotations

import logging
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
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from reviewer.gui.notifications import cards_or_warn, error_boundary
from reviewer.mri.lab import GROUND_TRUTH, ZERO_FILLED, FeatureResult, LabResult, MriLab, standard_center_fraction
from reviewer.view.state import MAX_PANES

log = logging.getLogger(__name__)

TITLE = "MRI reconstruction & FNAF"
OVERLAY_NAME = "FNAF loss region"
SHAPE_LABELS = (("random-walk", "random walk (official)"), ("disk", "disk"), ("gaussian", "Gaussian blob"))
SIZE_LABELS = {"random-walk": "Length (steps)", "disk": "Radius", "gaussian": "Sigma"}
WARN_STYLE = "color: #ffb040; font-weight: bold;"
GAINS = (1, 2, 5, 10, 20, 50, 100)


def _difference_gain(gt: np.ndarray, diffs: list[np.ndarray]) -> int:
    """A round gain that brings the largest errors into the image's grey range (shown as 'xG' in captions)."""
    top = float(np.percentile(gt, 99.5)) or 1.0
    err = max((float(np.percentile(d, 99.9)) for d in diffs), default=0.0)
    if err <= 0:
        return 1
    ok = [g for g in GAINS if g * err <= 0.8 * top]
    return ok[-1] if ok else 1


def _voxel(geometry, world) -> tuple[int, int, int] | None:
    """(slice, row, col) of a world point on the lab's grid, or None outside it."""
    i, j, k = np.rint(geometry.world_to_voxel(np.asarray(world, dtype=float).reshape(3))).astype(int).reshape(3)
    n, h, w = geometry.shape
    if not (0 <= k < n and 0 <= j < h and 0 <= i < w):
        return None
    return int(k), int(j), int(i)


class MriPanel(QDockWidget):
    """The MRI lab dock of a main window (uses its ``state``, ``runner`` and ``notifier``)."""

    def __init__(self, window: Any):
        super().__init__(TITLE.replace("&", "&&"), window)
        self.setObjectName("mriLabDock")
        self.window_ = window
        self.state = window.state
        self.runner = window.runner
        self.notifier = window.notifier
        self.lab: MriLab | None = None
        self.result: LabResult | None = None
        self.feature: FeatureResult | None = None
        self.search_results: list[FeatureResult] = []
        self.last_click: tuple[int, int, int] | None = None
        self.show_differences = False
        self._gain = 1
        self._cf_edited = False
        self._model_cache: dict[str, Any] = {}
        self._caption_slice: int | None = None
        self._shown_models: list[str] = []
        self._build()
        self._load_cards()
        self.state.events.clicked.connect(self._on_click)
        self.state.events.crosshair.connect(self._on_crosshair)
        self._update_enabled()

    # -- UI --------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        body = QWidget()
        lay = QVBoxLayout(body)
        lay.setContentsMargins(6, 6, 6, 6)

        self.source_label = QLabel("No MR input: open a fastMRI file (or an MR image, with simulated k-space).")
        self.source_label.setWordWrap(True)
        self.simulated_label = QLabel("")
        self.simulated_label.setStyleSheet(WARN_STYLE)
        self.simulated_label.setWordWrap(True)
        self.simulated_label.setVisible(False)
        lay.addWidget(self.source_label)
        lay.addWidget(self.simulated_label)

        # reconstruction
        g = QGroupBox("Reconstruction")
        f = QFormLayout(g)
        self.mask_combo = QComboBox()
        self.mask_combo.addItems(["random", "equispaced"])
        self.acc_combo = QComboBox()
        self.acc_combo.addItems(["4", "8"])
        self.cf_spin = QDoubleSpinBox()
        self.cf_spin.setDecimals(3)
        self.cf_spin.setRange(0.01, 0.5)
        self.cf_spin.setSingleStep(0.01)
        self.cf_spin.setValue(0.08)
        self.cf_spin.setToolTip("Fraction of central k-space columns always kept (fastMRI: 0.08 at 4x, 0.04 at 8x)")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(-1, 2**31 - 1)
        self.seed_spin.setSpecialValueText("file name (fastMRI validation)")
        self.seed_spin.setValue(-1)
        self.seed_spin.setToolTip("Mask seed; lowest value = fastMRI's validation seed tuple(map(ord, file name))")
        f.addRow("Mask", self.mask_combo)
        f.addRow("Acceleration", self.acc_combo)
        f.addRow("Centre fraction", self.cf_spin)
        f.addRow("Seed", self.seed_spin)
        self.model_list = QListWidget()
        self.model_list.setMaximumHeight(90)
        self.no_models_label = QLabel("")
        self.no_models_label.setWordWrap(True)
        self.no_models_label.setStyleSheet(WARN_STYLE)
        self.no_models_label.setVisible(False)
        f.addRow("Models", self.model_list)
        f.addRow(self.no_models_label)
        self.recon_button = QPushButton("Reconstruct")
        self.recon_button.setToolTip("Under-sample the k-space and run the checked models on every slice (a job)")
        self.diff_check = QCheckBox("Difference maps |output − ground truth|")
        self.diff_check.setToolTip("Show the zero-filled and model panes as amplified absolute errors")
        f.addRow(self.recon_button)
        f.addRow(self.diff_check)
        self.metrics_table = self._table(["SSIM", "NMSE", "PSNR"])
        f.addRow(self.metrics_table)
        lay.addWidget(g)

        # FNAF placement
        g = QGroupBox("FNAF: place a feature")
        f = QFormLayout(g)
        self.shape_combo = QComboBox()
        for key, text in SHAPE_LABELS:
            self.shape_combo.addItem(text, key)
        self.size_spin = QDoubleSpinBox()
        self.size_spin.setRange(0.1, 200.0)
        self.size_spin.setDecimals(1)
        self.size_spin.setValue(10.0)
        self.size_unit = QComboBox()
        self.size_unit.addItems(["px", "mm"])
        row = QHBoxLayout()
        row.addWidget(self.size_spin, 1)
        row.addWidget(self.size_unit)
        self.size_label = QLabel(SIZE_LABELS["random-walk"])
        f.addRow("Shape", self.shape_combo)
        f.addRow(self.size_label, row)
        self.intensity_spin = QDoubleSpinBox()
        self.intensity_spin.setDecimals(6)
        self.intensity_spin.setRange(0.0, 1e6)
        self.intensity_spin.setSingleStep(0.05)
        self.intensity_spin.setValue(0.5)
        self.intensity_mode = QComboBox()
        self.intensity_mode.addItem("× image range", "relative")
        self.intensity_mode.addItem("absolute", "absolute")
        row = QHBoxLayout()
        row.addWidget(self.intensity_spin, 1)
        row.addWidget(self.intensity_mode)
        f.addRow("Intensity", row)
        self.place_button = QPushButton("Place on click")
        self.place_button.setCheckable(True)
        self.place_button.setToolTip("When on, a left click on the ground-truth pane adds the feature there")
        self.clear_button = QPushButton("Clear")
        self.zoom_button = QPushButton("Zoom on feature")
        self.zoom_button.setToolTip("Zoom every pane 4x onto the feature (R resets the view)")
        row = QHBoxLayout()
        row.addWidget(self.place_button, 1)
        row.addWidget(self.zoom_button)
        row.addWidget(self.clear_button)
        f.addRow(row)
        self.feature_label = QLabel("")
        self.feature_label.setWordWrap(True)
        f.addRow(self.feature_label)
        self.fnaf_table = self._table(["loss", "result", "IP", "IP ≥ ε"])
        self.fnaf_table.horizontalHeaderItem(0).setToolTip("Masked NMSE of the model in the feature's loss region")
        f.addRow(self.fnaf_table)
        lay.addWidget(g)

        # search
        g = QGroupBox("FNAF: search the worst feature")
        f = QFormLayout(g)
        self.attack_combo = QComboBox()
        for key, text in (("rs", "random search"), ("fd", "finite differences"), ("pgd", "gradient (PGD)")):
            self.attack_combo.addItem(f"{key}: {text}", key)
        self.tries_spin = QSpinBox()
        self.tries_spin.setRange(1, 5000)
        self.tries_spin.setValue(64)
        self.radius_spin = QSpinBox()
        self.radius_spin.setRange(2, 160)
        self.radius_spin.setValue(12)
        self.radius_spin.setSuffix(" px")
        self.target_combo = QComboBox()
        self.target_combo.setToolTip("The model the search attacks; every model is then scored on what it finds")
        f.addRow("Attack", self.attack_combo)
        f.addRow("Tries", self.tries_spin)
        f.addRow("Against", self.target_combo)
        f.addRow("'Here' radius", self.radius_spin)
        self.search_here_button = QPushButton("Find worst feature here")
        self.search_here_button.setToolTip("Around the last click (or the crosshair) on the current slice")
        self.search_slice_button = QPushButton("… in this slice")
        self.search_slice_button.setToolTip("Anywhere in the central region [50, 270] of the current slice")
        row = QHBoxLayout()
        row.addWidget(self.search_here_button, 1)
        row.addWidget(self.search_slice_button, 1)
        f.addRow(row)
        self.results_list = QListWidget()
        self.results_list.setMaximumHeight(110)
        f.addRow(self.results_list)
        self.prev_button = QPushButton("◀ Previous")
        self.next_button = QPushButton("Next ▶")
        row = QHBoxLayout()
        row.addWidget(self.prev_button)
        row.addWidget(self.next_button)
        f.addRow(row)
        lay.addWidget(g)
        lay.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        self.setWidget(scroll)
        self.setMinimumWidth(340)

        # widget -> settings
        self.acc_combo.currentTextChanged.connect(self._acceleration_changed)
        self.cf_spin.valueChanged.connect(self._cf_changed)
        self.mask_combo.currentTextChanged.connect(lambda _t: self._sync_mask())
        self.seed_spin.valueChanged.connect(lambda _v: self._sync_mask())
        self.shape_combo.currentIndexChanged.connect(self._shape_changed)
        self.recon_button.clicked.connect(lambda: self._guard(self.reconstruct))
        self.diff_check.toggled.connect(lambda on: self._guard(lambda: self.set_differences(on)))
        self.clear_button.clicked.connect(lambda: self._guard(self.clear_feature))
        self.zoom_button.clicked.connect(lambda: self._guard(self.zoom_on_feature))
        self.search_here_button.clicked.connect(lambda: self._guard(lambda: self.search(here=True)))
        self.search_slice_button.clicked.connect(lambda: self._guard(lambda: self.search(here=False)))
        self.results_list.currentRowChanged.connect(lambda r: self._guard(lambda: self._select_result(r)))
        self.prev_button.clicked.connect(lambda: self.step_result(-1))
        self.next_button.clicked.connect(lambda: self.step_result(1))
        self.model_list.itemChanged.connect(lambda _i: self._update_enabled())

    @staticmethod
    def _fit_table(t: QTableWidget) -> None:
        t.resizeRowsToContents()
        h = t.horizontalHeader().height() + 2 * t.frameWidth()
        h += sum(t.rowHeight(r) for r in range(t.rowCount()))
        t.setFixedHeight(max(h, t.horizontalHeader().height() + 8))

    @staticmethod
    def _table(columns: list[str]) -> QTableWidget:
        t = QTableWidget(0, len(columns))
        t.setHorizontalHeaderLabels(columns)
        t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        t.setWordWrap(False)
        t.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        t.horizontalHeader().setMinimumSectionSize(40)
        t.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        t.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        MriPanel._fit_table(t)
        return t

    def _guard(self, fn) -> None:
        with error_boundary(self.notifier, TITLE):
            fn()

    def _load_cards(self) -> None:
        # standard models before their robust counterparts: panes read ground truth | zero-filled | standard | robust
        cards = sorted(cards_or_warn(self.notifier, "mri-reconstruction"),
                       key=lambda c: (bool(c.training.get("fnaf_robust")), c.name))
        self.set_cards(cards)

    def set_cards(self, cards: list) -> None:
        """Fill the model list (default: the first two checked)."""
        self.cards = {c.name: c for c in cards}
        self.model_list.clear()
        for i, c in enumerate(cards):
            item = QListWidgetItem(c.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if i < 2 else Qt.CheckState.Unchecked)
            item.setToolTip(c.description or str(c.path))
            self.model_list.addItem(item)
        self.no_models_label.setText("" if cards else "No reconstruction models are shipped (resources/models): "
                                     "only zero-filled is shown. Add a model card to compare models.")
        self.no_models_label.setVisible(not cards)
        self._update_enabled()

    def checked_models(self) -> list[str]:
        return [self.model_list.item(i).text() for i in range(self.model_list.count())
                if self.model_list.item(i).checkState() == Qt.CheckState.Checked]

    def set_checked_models(self, names: list[str]) -> None:
        for i in range(self.model_list.count()):
            it = self.model_list.item(i)
            it.setCheckState(Qt.CheckState.Checked if it.text() in names else Qt.CheckState.Unchecked)

    def _update_enabled(self) -> None:
        has_lab = self.lab is not None
        has_res = self.result is not None
        has_models = has_res and bool(self.result.outputs)
        self.recon_button.setEnabled(has_lab)
        self.diff_check.setEnabled(has_res)
        for w in (self.place_button, self.clear_button):
            w.setEnabled(has_res)
        self.zoom_button.setEnabled(self.feature is not None)
        for w in (self.search_here_button, self.search_slice_button):
            w.setEnabled(has_models)
        n = len(self.search_results)
        self.prev_button.setEnabled(n > 1)
        self.next_button.setEnabled(n > 1)

    # -- settings --------------------------------------------------------------------------------------------
    def _acceleration_changed(self, text: str) -> None:
        if not self._cf_edited:
            self.cf_spin.blockSignals(True)
            self.cf_spin.setValue(standard_center_fraction(int(text)))
            self.cf_spin.blockSignals(False)
        self._sync_mask()

    def _cf_changed(self, _v: float) -> None:
        self._cf_edited = True
        self._sync_mask()

    def _sync_mask(self) -> None:
        if self.lab is None:
            return
        m = self.lab.mask
        m.kind = self.mask_combo.currentText()
        m.acceleration = int(self.acc_combo.currentText())
        m.center_fraction = float(self.cf_spin.value())
        m.seed = None if self.seed_spin.value() < 0 else int(self.seed_spin.value())

    def _shape_changed(self, _i: int) -> None:
        key = self.shape_combo.currentData()
        self.size_label.setText(SIZE_LABELS.get(key, "Size"))
        defaults = {"random-walk": 10.0, "disk": 2.0, "gaussian": 1.5}
        self.size_spin.setValue(defaults.get(key, 2.0))
        self.size_unit.setCurrentText("px")

    # -- input -----------------------------------------------------------------------------------------------
    def series_opened(self, volume: Any) -> None:
        """A series was opened in the viewer: fastMRI files bring their k-space, MR images simulated k-space."""
        md = getattr(volume, "metadata", {}) or {}
        if "mri_lab" in md:
            return
        if md.get("format") == "fastmri" and volume.source:
            self.runner.submit(MriLab.from_file, volume.source, key="mri-open", label="Reading k-space",
                               on_result=self.set_lab,
                               on_error=lambda exc: self.notifier.exception(exc, "MRI lab"))
        elif (getattr(volume, "modality", "") or "").upper() == "MR":
            self.runner.submit(MriLab.from_volume, volume, key="mri-open", label="Simulating k-space",
                               on_result=self.set_lab,
                               on_error=lambda exc: self.notifier.exception(exc, "MRI lab"))

    def set_lab(self, lab: MriLab) -> None:
        self.lab = lab
        self.result = None
        self.feature = None
        self.search_results = []
        self.results_list.clear()
        self.metrics_table.setRowCount(0)
        self.fnaf_table.setRowCount(0)
        self._sync_mask()
        self.source_label.setText(f"<b>{lab.name}</b><br>{lab.n_slices} slices; ground truth: "
                                  f"{lab.ground_truth_source()}; input: {lab.input_label}")
        self.simulated_label.setText("SIMULATED K-SPACE: the input is a magnitude image; its k-space was "
                                     "simulated by FFT (no phase, no noise model). Not an acquisition."
                                     if lab.simulated else "")
        self.simulated_label.setVisible(lab.simulated)
        self._update_enabled()

    # -- reconstruction --------------------------------------------------------------------------------------
    def reconstruct(self):
        if self.lab is None:
            raise ValueError("open a fastMRI file or an MR image first")
        self._sync_mask()
        lab = self.lab
        names = self.checked_models()
        cards = [self.cards[n] for n in names if n in self.cards]
        cache = self._model_cache

        def job(token=None):
            models = {}
            for i, card in enumerate(cards):
                token.progress(i, len(cards) + 1, f"loading {card.name}")
                if card.name not in cache:
                    from reviewer.models.cards import build_model

                    cache[card.name] = build_model(card)
                models[card.name] = cache[card.name]
            lab.set_models(models)
            return lab.reconstruct_all(token=token.sub(0.1, 1.0, 1.0))

        acc = lab.mask.acceleration
        return self.runner.submit(job, key="mri-recon", label=f"Reconstructing {acc}x", on_result=self.show_result,
                                  on_error=lambda exc: self.notifier.exception(exc, "Reconstruction"))

    def show_result(self, result: LabResult) -> None:
        """Ground truth | zero-filled | models in the linked comparison layout, captions with the metrics."""
        self.result = result
        self.feature = None
        self.search_results = []
        self.results_list.clear()
        self.fnaf_table.setRowCount(0)
        self.feature_label.setText("")
        self._shown_models = list(result.outputs)[: MAX_PANES - 2]
        self.target_combo.clear()
        self.target_combo.addItems(list(result.outputs))
        # one gain for every error pane, set by the zero-filled error (models should do better than it)
        self._gain = _difference_gain(result.ground_truth, [result.difference(ZERO_FILLED)])
        old = self.state.crosshair if self.state.primary is not None else None
        s = self.state
        with s.batch():
            s.set_primary(result.volume(GROUND_TRUTH), GROUND_TRUTH)
            if old is not None and result.geometry.contains_world(old):
                s.set_crosshair(old)
            else:
                self._go_to_slice(result.ground_truth.shape[0] // 2)
            self._set_recon_panes()
            s.set_layout("compare")
            if OVERLAY_NAME in {o.name for o in s.overlays}:
                s.remove_overlay(OVERLAY_NAME)
        self._fill_metrics_table()
        self._update_captions(force=True)
        self._update_enabled()
        if len(result.outputs) > len(self._shown_models):
            self.notifier.info(f"{len(result.outputs)} models reconstructed; the panes show the first "
                               f"{len(self._shown_models)} (all are in the panel's table).")

    def _pane_array(self, name: str) -> np.ndarray:
        """The array a pane shows: reconstruction (or |error| x gain), with the current feature's slice."""
        res = self.result
        fr = self.feature
        if name == GROUND_TRUTH:
            arr = res.ground_truth
            if fr is not None:
                arr = arr.copy()
                arr[fr.slice_index] = fr.image
            return arr
        arr = res.reconstruction(name).copy()
        if fr is not None:
            arr[fr.slice_index] = fr.zero_filled if name == ZERO_FILLED else fr.scores[name].output
        if self.show_differences:
            gt = res.ground_truth.copy()
            if fr is not None:
                gt[fr.slice_index] = fr.image
            arr = np.abs(arr - gt) * self._gain
        return arr

    def _set_recon_panes(self) -> None:
        res = self.result
        s = self.state
        unit = f"a.u. (|error| ×{self._gain})" if self.show_differences else "a.u."
        with s.batch():
            if self.feature is not None:
                s.add_pane(GROUND_TRUTH, res.volume(GROUND_TRUTH, self._pane_array(GROUND_TRUTH)))
            for name in [ZERO_FILLED, *self._shown_models]:
                s.add_pane(name, res.volume(name, self._pane_array(name), unit=unit))

    def set_differences(self, on: bool) -> None:
        self.show_differences = bool(on)
        if self.diff_check.isChecked() != self.show_differences:
            self.diff_check.blockSignals(True)
            self.diff_check.setChecked(self.show_differences)
            self.diff_check.blockSignals(False)
        if self.result is None:
            return
        self._set_recon_panes()
        self._update_captions(force=True)

    def _fill_metrics_table(self) -> None:
        res = self.result
        t = self.metrics_table
        t.setRowCount(len(res.names))
        t.setVerticalHeaderLabels(res.names)
        for r, name in enumerate(res.names):
            m = res.metrics[name]
            for c, text in enumerate((f"{m['ssim']:.4f}", f"{m['nmse']:.5f}", f"{m['psnr']:.2f}")):
                t.setItem(r, c, QTableWidgetItem(text))
        self._fit_table(t)

    # -- captions --------------------------------------------------------------------------------------------
    def _current_slice(self) -> int | None:
        if self.result is None or self.state.primary is None:
            return None
        # the slice the panes show (the state's display frame rounds half-way positions its own way)
        s = self.state
        fr = s.frame(s.orientation, GROUND_TRUTH if GROUND_TRUTH in s.pane_names else None)
        d = np.asarray(fr.world_to_display(s.crosshair), dtype=float).reshape(3)
        d[2] = fr.slice_index_of_world(s.crosshair)
        world = np.asarray(fr.display_to_world(d), dtype=float).reshape(3)
        k = int(np.rint(self.result.geometry.world_to_voxel(world).reshape(3)[2]))
        return int(np.clip(k, 0, self.result.ground_truth.shape[0] - 1))

    def slice_number(self, k: int) -> int:
        """The 1-based slice number the panes show ("coronal 3/6") for array slice ``k`` of the lab's grid."""
        s = self.state
        geom = self.result.geometry
        n, h, w = geom.shape
        world = geom.voxel_to_world(((w - 1) / 2.0, (h - 1) / 2.0, k)).reshape(3)
        return s.frame(s.orientation, GROUND_TRUTH if GROUND_TRUTH in s.pane_names else None
                       ).slice_index_of_world(world) + 1

    def _go_to_slice(self, k: int) -> None:
        """Move the crosshair onto array slice ``k`` of the lab's grid, keeping its in-plane position."""
        geom = self.result.geometry
        ijk = geom.world_to_voxel(np.asarray(self.state.crosshair, dtype=float).reshape(3)).reshape(3)
        ijk[2] = k
        self.state.set_crosshair(geom.voxel_to_world(ijk).reshape(3))

    def _on_crosshair(self, _value: Any) -> None:
        if self.result is not None and GROUND_TRUTH in self.state.pane_names:
            self._update_captions()

    def _update_captions(self, force: bool = False) -> None:
        res = self.result
        if res is None:
            return
        k = self._current_slice()
        if not force and k == self._caption_slice:
            return
        self._caption_slice = k
        self.state.set_captions(self.captions_for(k))

    def captions_for(self, k: int | None) -> dict[str, str]:
        res = self.result
        lab = self.lab
        m = res.mask
        seed = "file seed" if m.seed is None else f"seed {m.seed}"
        source = "SIMULATED K-SPACE (from a magnitude image)" if res.simulated else "acquired k-space"
        fr = self.feature
        on_slice = fr is not None and fr.slice_index == k
        caps: dict[str, str] = {}
        gt_lines = [f"{lab.ground_truth_source() if lab else 'reference'}",
                    f"{m.kind} {m.acceleration}x, centre {m.center_fraction:g}, {seed}"]
        if res.simulated:
            gt_lines.insert(0, source)
        if on_slice:
            gt_lines.append(f"+ FNAF {fr.feature.shape} at row {fr.center[0]}, col {fr.center[1]}")
            gt_lines.append(f"IP {fr.ip:.2e} {'PASS' if fr.ip_ok else 'FAIL'} (ε {fr.ip_epsilon:g})")
        elif fr is not None:
            gt_lines.append(f"FNAF feature on slice {self.slice_number(fr.slice_index)}")
        caps[GROUND_TRUTH] = "\n".join(gt_lines)
        for name in [ZERO_FILLED, *self._shown_models]:
            vm = res.metrics[name]
            lines = [f"{source}" if res.simulated else "",
                     f"volume  SSIM {vm['ssim']:.3f}  NMSE {vm['nmse']:.4f}  PSNR {vm['psnr']:.1f}"]
            if k is not None:
                sm = res.slice_metrics[name]
                lines.append(f"slice {self.slice_number(k)}  SSIM {sm['ssim'][k]:.3f}  NMSE {sm['nmse'][k]:.4f}  "
                             f"PSNR {sm['psnr'][k]:.1f}")
            if self.show_differences:
                lines.append(f"DIFFERENCE |output − ground truth| ×{self._gain}")
            if on_slice:
                if name == ZERO_FILLED:
                    lines.append(f"FNAF: IP {fr.ip:.2e} {'PASS' if fr.ip_ok else 'FAIL'} "
                                 f"(feature {'survives' if fr.ip_ok else 'lost in'} under-sampling)")
                else:
                    sc = fr.scores[name]
                    lines.append(f"FNAF: attack loss {sc.loss:.2e} → {'HIT (lost)' if sc.hit else 'MISS (kept)'}")
                    lines.append(f"IP {sc.ip:.2e} {'PASS' if sc.ip_ok else 'FAIL'}")
            caps[name] = "\n".join(x for x in lines if x)
        return caps

    # -- FNAF ------------------------------------------------------------------------------------------------
    def _on_click(self, click: Any) -> None:
        if self.result is None or click.pane not in self.state.pane_names:
            return
        v = _voxel(self.result.geometry, click.world)
        if v is None:
            return
        self.last_click = v
        if self.place_button.isChecked() and click.pane == GROUND_TRUTH:
            self._guard(lambda: self.place_feature(*v))

    def feature_settings(self) -> dict:
        return {"shape": self.shape_combo.currentData(), "size": float(self.size_spin.value()),
                "size_unit": self.size_unit.currentText(), "intensity": float(self.intensity_spin.value()),
                "intensity_mode": self.intensity_mode.currentData()}

    def place_feature(self, k: int, row: int, col: int):
        """Add the configured feature at (slice, row, col) of the ground truth (a job; panes update on result)."""
        if self.lab is None or self.result is None:
            raise ValueError("reconstruct first")
        lab = self.lab
        kw = self.feature_settings()
        seed = int(row) * 1000 + int(col)
        return self.runner.submit(lab.place_feature, k, row, col, seed=seed, key="mri-fnaf",
                                  label="FNAF: feature through the models", on_result=self.apply_feature,
                                  on_error=lambda exc: self.notifier.exception(exc, "FNAF"), **kw)

    def apply_feature(self, fr: FeatureResult | None) -> None:
        """Show a feature (or none) in every pane: images, captions, loss-region overlay, the FNAF table."""
        from reviewer.view.overlays import BoxesOverlay

        self.feature = fr
        s = self.state
        with s.batch():
            if fr is None:
                if GROUND_TRUTH in s.pane_names:
                    s.add_pane(GROUND_TRUTH, self.result.volume(GROUND_TRUTH))
                if OVERLAY_NAME in {o.name for o in s.overlays}:
                    s.remove_overlay(OVERLAY_NAME)
            else:
                r0, r1, c0, c1 = fr.region_bounds()
                k = fr.slice_index
                s.add_overlay(BoxesOverlay.from_voxel_boxes(
                    self.result.geometry, (c0 - 1, r0 - 1, k), (c1 + 1, r1 + 1, k), labels=["FNAF"],
                    color=(255, 80, 220), name=OVERLAY_NAME))
                if self._current_slice() != k:
                    self._go_to_slice(k)
            self._set_recon_panes()
        self._fill_fnaf_table()
        self._update_captions(force=True)
        self._update_enabled()

    def zoom_on_feature(self, zoom: float = 4.0) -> None:
        """Zoom the linked panes onto the current feature."""
        if self.feature is None:
            return
        s = self.state
        r, c = self.feature.center
        world = self.result.geometry.voxel_to_world((c, r, self.feature.slice_index)).reshape(3)
        fr = s.frame(s.orientation, GROUND_TRUTH)
        x, y, _ = fr.world_to_display(world)
        sx, sy = fr.pixel_size
        s.set_view(s.orientation, zoom=zoom, pan=((x - (fr.width - 1) / 2.0) * sx, (y - (fr.height - 1) / 2.0) * sy))

    def clear_feature(self) -> None:
        if self.result is not None:
            self.apply_feature(None)

    def _fill_fnaf_table(self) -> None:
        fr = self.feature
        t = self.fnaf_table
        if fr is None:
            t.setRowCount(0)
            self._fit_table(t)
            self.feature_label.setText("")
            return
        p = fr.feature.params
        desc = f"{fr.feature.shape} at slice {self.slice_number(fr.slice_index)}, row {fr.center[0]}, col {fr.center[1]}"
        if "intensity_value" in p:
            desc += f"; intensity {p['intensity_value']:.4g}"
        if fr.attack != "placed":
            desc += f"; found by {fr.attack.upper()} against {fr.searched_model}"
        self.feature_label.setText(desc + f"; hit if attack loss ≥ {fr.hit_threshold:g}, IP pass if ≥ "
                                   f"{fr.ip_epsilon:g}")
        names = list(fr.scores)
        t.setRowCount(len(names))
        t.setVerticalHeaderLabels(names)
        for r, name in enumerate(names):
            sc = fr.scores[name]
            cells = [f"{sc.loss:.2e}", "HIT" if sc.hit else "MISS", f"{sc.ip:.2e}",
                     "PASS" if sc.ip_ok else "FAIL"]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 1:
                    item.setToolTip("HIT: the model lost the feature" if sc.hit else "MISS: the model kept it")
                    item.setForeground(QColor(230, 60, 60) if sc.hit else QColor(40, 160, 40))
                    f = QFont()
                    f.setBold(True)
                    item.setFont(f)
                t.setItem(r, c, item)
        self._fit_table(t)

    # -- search ----------------------------------------------------------------------------------------------
    def search(self, here: bool):
        if self.lab is None or self.result is None or not self.result.outputs:
            raise ValueError("reconstruct with at least one model first")
        k = self._current_slice()
        around = None
        if here:
            point = self.last_click if self.last_click is not None and self.last_click[0] == k else \
                _voxel(self.result.geometry, self.state.crosshair)
            if point is None:
                raise ValueError("click on the image first: 'here' searches around the last click")
            around = (point[1], point[2], int(self.radius_spin.value()))
        attack = self.attack_combo.currentData()
        target = self.target_combo.currentText() or None
        where = f"around row {around[0]}, col {around[1]}" if around else f"slice {self.slice_number(k)}"
        return self.runner.submit(
            self.lab.search_features, k, attack=attack, tries=int(self.tries_spin.value()), model=target,
            around=around, top=5, key="mri-fnaf", label=f"FNAF {attack.upper()} search {where}",
            on_result=self.show_search_results, on_error=lambda exc: self.notifier.exception(exc, "FNAF search"))

    def show_search_results(self, results: list[FeatureResult]) -> None:
        self.search_results = list(results)
        self.results_list.blockSignals(True)
        self.results_list.clear()
        for i, r in enumerate(results):
            sc = r.scores.get(r.searched_model)
            verdict = "HIT" if sc is not None and sc.hit else "miss"
            self.results_list.addItem(f"{i + 1}. loss {r.loss:.2e} {verdict}  at row {r.center[0]}, "
                                      f"col {r.center[1]}  (IP {r.ip:.1e})")
        self.results_list.blockSignals(False)
        self._update_enabled()
        if not results:
            self.notifier.info("The search found no feature that passes information preservation here.")
            return
        self.results_list.setCurrentRow(0)

    def _select_result(self, row: int) -> None:
        if 0 <= row < len(self.search_results):
            self.apply_feature(self.search_results[row])

    def step_result(self, delta: int) -> None:
        n = len(self.search_results)
        if n:
            self.results_list.setCurrentRow((self.results_list.currentRow() + delta) % n)

    # -- lifetime --------------------------------------------------------------------------------------------
    def unbind(self) -> None:
        for name, cb in (("clicked", self._on_click), ("crosshair", self._on_crosshair)):
            self.state.events[name].disconnect(cb)

    def closeEvent(self, ev):  # noqa: N802 - hiding the dock keeps it bound; only the window's close unbinds
        super().closeEvent(ev)

