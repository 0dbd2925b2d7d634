"""Main window: viewer in the centre, study browser and messages docked left, menus and a status bar.

The window holds no viewing state of its own: everything goes through the Qt-free ``ViewerState``; menu
actions call its methods and are bound back to its events. Long work (scanning, loading, the device probe)
runs as jobs through the one :class:`JobRunner`; failures become non-modal notices and the app keeps running.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

import reviewer
from reviewer.geometry import Volume
from reviewer.gui.binding import Binding, bind
from reviewer.gui.browser import StudyBrowser, format_dims
from reviewer.gui.export_dialog import run_export_dialog
from reviewer.gui.jobs_qt import Job, JobProgressWidget, JobRunner
from reviewer.gui.notifications import LogDock, Notifier, ToastArea, error_boundary, guarded

log = logging.getLogger(__name__)

APP_TITLE = "Reviewer"
LAYOUTS = (("single", "Single", "Ctrl+1"), ("mpr", "MPR (axial / coronal / sagittal)", "Ctrl+2"),
           ("compare", "Compare", "Ctrl+3"))
OPEN_FILTER = ("Images (*.dcm *.DCM *.ima *.IMA *.nii *.nii.gz *.mhd *.mha *.nrrd *.nhdr *.h5 *.hdf5);;"
               "All files (*)")

MOUSE_AND_KEYS = (
    ("Mouse wheel, Up / Down, Page Up / Page Down", "next / previous slice"),
    ("Home / End", "first / last slice"),
    ("Left drag", "window width (left-right) and level (up-down)"),
    ("Right drag", "zoom"),
    ("Middle drag", "pan"),
    ("Click", "place the crosshair (all panes follow in MPR)"),
    ("1 - 5", "window presets (CT: lung, mediastinum, soft tissue, bone, brain)"),
    ("I", "invert grey scale"),
    ("R or Space", "reset zoom, pan and window"),
    ("A / C / S", "axial / coronal / sagittal (single and compare layouts)"),
    ("Ctrl+1 / Ctrl+2 / Ctrl+3", "single / MPR / compare layout"),
    ("Ctrl+O / Ctrl+Shift+O", "open folder / open files (or drop them on the window)"),
    ("Double-click in the study browser", "open a series"),
)


def describe_device_job(token=None) -> str:
    """The device line for the status bar; imports torch, so it runs as a job off the GUI thread."""
    from reviewer.device import describe_device

    return describe_device()


def series_name(info: Any, max_len: int = 40) -> str:
    """Short name of a series for panes, the title and notices (long file names / UIDs are middle-elided)."""
    desc = (getattr(info, "series_description", "") or "").strip()
    if not desc:
        files = getattr(info, "files", None) or []
        desc = os.path.basename(files[0]) if files else str(getattr(info, "uid", "series"))
    if len(desc) > max_len:
        half = (max_len - 1) // 2
        desc = f"{desc[:half]}…{desc[-half:]}"
    return desc


class MainWindow(QMainWindow):
    """The reviewer's main window. ``state`` is the ViewerState shown by the central ViewerWidget."""

    seriesLoaded = Signal(object)  # Volume, after it was handed to the state
    demoOpened = Signal(bool)  # True when the demo CT was opened with its nodules, False when that failed

    def __init__(self, state: Any = None, parent: QWidget | None = None):
        super().__init__(parent)
        from reviewer.gui.viewer import ViewerWidget
        from reviewer.view.state import ViewerState

        self.setWindowTitle(APP_TITLE)
        self.setObjectName("reviewerMainWindow")
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self.state = state if state is not None else ViewerState()
        self.notifier = Notifier(self)
        self.runner = JobRunner(self)
        self.runner.error_handler = lambda job, exc: self.notifier.exception(exc, job.label, job.traceback)
        self.current_series: Any = None
        self._bindings: list[Binding] = []
        self._overlay_bindings: list[Binding] = []
        self._guide: QDialog | None = None
        self.mri_dock: Any = None  # the MRI reconstruction & FNAF panel, created on first use
        self.detection_dock: Any = None  # the nodule detection lab, created on first use

        # centre: the viewer
        self.viewer = ViewerWidget(self.state)
        self.viewer.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCentralWidget(self.viewer)
        self.toasts = ToastArea(self.notifier, self)

        # left: studies and messages
        self.browser = StudyBrowser(self.runner, self.notifier)
        self.browser.seriesActivated.connect(self.open_series)
        self.browser_dock = QDockWidget("Studies", self)
        self.browser_dock.setObjectName("studiesDock")
        self.browser_dock.setWidget(self.browser)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.browser_dock)
        self.log_dock = LogDock(self.notifier, self)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.log_dock)
        self.splitDockWidget(self.browser_dock, self.log_dock, Qt.Orientation.Vertical)
        self.resizeDocks([self.browser_dock, self.log_dock], [700, 160], Qt.Orientation.Vertical)

        # status bar: read-out | jobs | device
        self.readout_label = QLabel("")
        self.readout_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.readout_label.setMinimumWidth(200)
        self.job_widget = JobProgressWidget(self.runner)
        self.device_label = QLabel("Device: detecting…")
        self.device_label.setToolTip("Compute device used for the models (override with --device)")
        sb = self.statusBar()
        sb.addWidget(self.readout_label, 1)
        sb.addPermanentWidget(self.job_widget)
        sb.addPermanentWidget(self.device_label)
        self.viewer.readout.connect(self._show_readout)

        self._build_menus()
        self._connect_state()
        self.seriesLoaded.connect(self._series_for_tools)
        self.device_job = self.runner.submit(
            describe_device_job, key="device", label="Detecting device", quiet=True,
            on_result=self._device_found, on_error=self._device_failed,
        )

    # -- menus ------------------------------------------------------------------------------------------------
    def _action(self, menu: QMenu, text: str, slot: Callable[[], Any] | None = None,
                shortcut: str | Sequence[str] | None = None, tip: str = "", checkable: bool = False) -> QAction:
        act = QAction(text, self)
        if shortcut:
            seqs = [shortcut] if isinstance(shortcut, str) else list(shortcut)
            act.setShortcuts([QKeySequence(s) for s in seqs])
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            act.setStatusTip(tip)
            act.setToolTip(tip)
        act.setCheckable(checkable)
        if slot is not None:
            act.triggered.connect(lambda _checked=False, s=slot: self._guard(s))
        menu.addAction(act)
        return act

    def _guard(self, slot: Callable[[], Any]) -> None:
        with error_boundary(self.notifier):
            slot()

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        self.act_open_folder = self._action(m, "Open &Folder…", self.open_folder_dialog, "Ctrl+O",
                                            "Scan a folder (recursively) for DICOM, NIfTI, MHD, NRRD and fastMRI files")
        self.act_open_files = self._action(m, "Open &Files…", self.open_files_dialog, "Ctrl+Shift+O")
        self.recent_menu = m.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._rebuild_recent_menu)
        self._rebuild_recent_menu()
        self.act_open_demo = self._action(m, "Open &Demo", self.open_demo_job, tip="Generate (once) and open the "
                                          "synthetic chest CT with its nodules and the fastMRI knee file")
        self.act_export_case = self._action(m, "&Export case…", lambda: run_export_dialog(self), tip="Export the "
                                            "image and its findings as DICOM SR/SEG, NIfTI and PNG (de-identified)")
        m.addSeparator()
        self.act_quit = self._action(m, "&Quit", self.close, QKeySequence(QKeySequence.StandardKey.Quit).toString()
                                     or "Ctrl+Q")

        v = mb.addMenu("&View")
        lm = v.addMenu("&Layout")
        self.layout_group = QActionGroup(self)
        self.layout_actions: dict[str, QAction] = {}
        for key, text, sc in LAYOUTS:
            act = self._action(lm, text, None, sc, checkable=True)
            self.layout_group.addAction(act)
            self.layout_actions[key] = act
        om = v.addMenu("&Orientation")
        self.orientation_group = QActionGroup(self)
        self.orientation_actions: dict[str, QAction] = {}
        for key, sc in (("axial", "A"), ("coronal", "C"), ("sagittal", "S")):
            act = self._action(om, key.capitalize(), None, sc, f"Show {key} slices (single and compare layouts)",
                               checkable=True)
            self.orientation_group.addAction(act)
            self.orientation_actions[key] = act
        self.preset_menu = v.addMenu("&Window presets")
        self.preset_actions: list[QAction] = []
        self._build_preset_menu(None)
        self.act_invert = self._action(v, "&Invert", None, "I", "Invert the grey scale", checkable=True)
        self.act_reset = self._action(v, "&Reset view", self._if_image(lambda: self.state.reset_view()), ["R", "Space"],
                                      "Reset zoom, pan and window")
        v.addSeparator()
        self.overlay_menu = v.addMenu("&Overlays")
        self.overlay_actions: dict[str, QAction] = {}
        self._rebuild_overlay_menu()
        v.addSeparator()
        v.addAction(self.browser_dock.toggleViewAction())
        v.addAction(self.log_dock.toggleViewAction())

        t = mb.addMenu("&Tools")
        self.act_mri_lab = self._action(t, "&MRI lab (reconstruction && FNAF)", self.show_mri_lab,
                                        tip="Reconstruct under-sampled MRI with the models, compare them and "
                                            "place or search false-negative adversarial features")
        self.act_detection_lab = self._action(t, "&Nodule detection lab", self.show_detection_lab,
                                              tip="Run the standard and robust nodule detectors on the CT, compare "
                                                  "them, insert synthetic nodules and stress-test the models")
        t.addSeparator()
        self.act_read_study = self._action(t, "&Read a study…", self.read_study_dialog,
                                           tip="Read a reader study full screen, blinded (resumes where you stopped)")
        self.act_new_study = self._action(t, "&New reader study…", self.new_study_dialog,
                                          tip="Build a blinded reader study from images, an FNAF evaluation or "
                                              "synthetic nodule insertions")

        h = mb.addMenu("&Help")
        self.act_guide = self._action(h, "&Mouse and keyboard guide", self.show_guide, "F1")
        self.act_about = self._action(h, "&About Reviewer", self.show_about)
        # every shortcut works from anywhere in the window (menus are part of it), so keys 1-5 / I / R reach the
        # viewer even while the browser has focus; a focused text field (the filter) still gets its typing.
        for act in self.findChildren(QAction):
            if not act.shortcut().isEmpty():
                self.addAction(act)

    def _build_preset_menu(self, volume: Volume | None) -> None:
        from reviewer.view.presets import load_presets, presets_for

        presets = presets_for(volume) if volume is not None else load_presets()["ct"]
        for act in self.preset_actions:
            self.removeAction(act)
            act.deleteLater()
        self.preset_menu.clear()
        self.preset_actions = []
        for p in presets:
            text = p.name[:1].upper() + p.name[1:]
            if not p.is_percentile:
                text += f"  (W {p.width:g} / L {p.level:g})"
            key = p.key or p.name
            act = self._action(self.preset_menu, text, self._if_image(lambda k=key: self.state.apply_preset(k)), p.key or None,
                               f"Window preset {text}")
            self.preset_actions.append(act)
            if p.key:
                self.addAction(act)

    def _rebuild_overlay_menu(self) -> None:
        for b in self._overlay_bindings:
            b.disconnect()
        self._overlay_bindings = []
        self.overlay_menu.clear()
        for act in self.overlay_actions.values():
            act.deleteLater()
        self.overlay_actions = {}
        overlays = list(_overlays_of(self.state))
        if not overlays:
            none = self.overlay_menu.addAction("(no overlays)")
            none.setEnabled(False)
            return
        for ov in overlays:
            name = ov.name
            act = self._action(self.overlay_menu, name, None, checkable=True, tip=f"Show or hide {name}")
            self.overlay_actions[name] = act
            self._overlay_bindings.append(bind(
                act, self.state, "overlays", signal="toggled", setter="setChecked",
                from_state=lambda s, n=name: bool(_overlay(s, n) is not None and _overlay(s, n).visible),
                to_state=lambda s, on, n=name: s.set_overlay_visible(n, bool(on)),
            ))

    # -- state <-> widgets -----------------------------------------------------------------------------------
    def _connect_state(self) -> None:
        s = self.state
        for key, act in self.layout_actions.items():
            self._bindings.append(bind(
                act, s, "layout", signal="toggled", setter="setChecked",
                from_state=lambda st, k=key: st.layout == k,
                to_state=lambda st, on, k=key: self._set_layout(k) if on and st.layout != k else None,
            ))
        for key, act in self.orientation_actions.items():
            self._bindings.append(bind(
                act, s, "orientation", signal="toggled", setter="setChecked",
                from_state=lambda st, k=key: st.orientation == k,
                to_state=lambda st, on, k=key: st.set_orientation(k) if on else None,
            ))
        self._bindings.append(bind(
            self.act_invert, s, "inverted", signal="toggled", setter="setChecked",
            to_state=lambda st, on: st.set_inverted(bool(on)),
        ))
        s.events.overlays.connect(self._overlays_changed)
        s.events.crosshair.connect(self._crosshair_moved)

    def _crosshair_moved(self, world: Any) -> None:
        """Until the mouse moves over an image, the read-out shows the value under the crosshair."""
        if self.state.primary is not None:
            self._show_readout("crosshair  " + self.state.readout(world))

    def _overlays_changed(self, *_: Any) -> None:
        names = [o.name for o in _overlays_of(self.state)]
        if names != list(self.overlay_actions):
            self._rebuild_overlay_menu()

    def _set_layout(self, key: str) -> None:
        with error_boundary(self.notifier, f"Layout {key}"):
            self.state.set_layout(key)
        # a refused layout (e.g. compare with one series) puts the radio buttons back on the state's layout
        for b in self._bindings:
            if b.field == "layout":
                b.update_widget()

    def _show_readout(self, text: str) -> None:
        self.readout_label.setText("   ‖   ".join(line for line in str(text).splitlines() if line))

    def _if_image(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Viewing commands do nothing (quietly) while no image is shown."""
        return lambda: fn() if self.state.primary is not None else None

    # -- status bar --------------------------------------------------------------------------------------------
    def _device_found(self, text: str) -> None:
        self.device_label.setText(f"Device: {text}")

    def _device_failed(self, exc: BaseException) -> None:
        self.device_label.setText("Device: unavailable")
        self.notifier.warning(f"Could not determine the compute device: {exc}")

    # -- opening -----------------------------------------------------------------------------------------------
    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder")
        if folder:
            self.open_paths([folder])

    def open_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open files", "", OPEN_FILTER)
        if files:
            self.open_paths(files)

    def _rebuild_recent_menu(self) -> None:
        from reviewer.recent import RecentPaths

        self.recent_menu.clear()
        items = RecentPaths().items()
        for i, path in enumerate(items):
            shown = path.replace("&", "&&")  # a literal '&' in a path is not a mnemonic
            act = self.recent_menu.addAction(f"&{i + 1}  {shown}" if i < 9 else shown)
            act.setToolTip(path)
            act.triggered.connect(lambda _=False, p=path: self.open_paths([p]))
        if not items:
            self.recent_menu.addAction("(nothing opened yet)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self._clear_recent)

    def _clear_recent(self) -> None:
        from reviewer.recent import RecentPaths

        RecentPaths().clear()
        self._rebuild_recent_menu()

    def open_paths(self, paths: Iterable[str | os.PathLike], open_first: bool = True,
                   on_done: Callable[[Any], None] | None = None) -> Job:
        """Scan files/folders into the browser; with ``open_first`` the first image series found is opened."""
        from reviewer.recent import RecentPaths

        paths = [os.fspath(p) for p in paths]
        recent = RecentPaths()
        for p in reversed(paths):
            recent.add(p)

        def done(catalog: Any) -> None:
            if open_first and catalog is not None:
                first = next((s for s in catalog.series if s.kind == "image"), None)
                if first is not None:
                    self.open_series(first)
            if on_done is not None:
                on_done(catalog)

        return self.browser.scan(paths, on_done=done)

    def open_series(self, info: Any, after: Callable[[Volume], None] | None = None) -> Job:
        """Load a series as a job (a newer load supersedes an older one) and show it."""
        from reviewer.io.loader import load_series

        name = series_name(info)
        return self.runner.submit(
            load_series, info, key="load", label=f"Loading {name}",
            on_result=lambda vol: self._series_loaded(info, vol, after),
            on_error=lambda exc: self.notifier.exception(exc, f"Could not open {name}"),
        )

    def _series_loaded(self, info: Any, volume: Volume, after: Callable[[Volume], None] | None) -> None:
        name = series_name(info)
        with error_boundary(self.notifier, f"Could not show {name}"):
            self.state.set_primary(volume, name)
            self.current_series = info
            self._build_preset_menu(volume)
            self._update_title(info, volume)
            for w in volume.warnings:
                self.notifier.warning(f"{name}: {w}")
            if after is not None:
                after(volume)
            self.focus_viewer()
            self.seriesLoaded.emit(volume)

    def _update_title(self, info: Any, volume: Volume) -> None:
        dims = format_dims(volume.geometry.size_ijk)
        mod = volume.modality or getattr(info, "modality", "") or ""
        name = series_name(info) if info is not None else volume.name
        self.setWindowTitle(f"{APP_TITLE} — {name} ({', '.join(x for x in (mod, dims) if x)})")

    def focus_viewer(self) -> None:
        """Give the keyboard to the first image pane (slice keys need a pane; 1-5 / I / R work anywhere)."""
        views = getattr(self.viewer, "views", None) or []
        (views[0] if views else self.viewer).setFocus(Qt.FocusReason.OtherFocusReason)

    # -- tools ---------------------------------------------------------------------------------------------------
    def show_mri_lab(self) -> Any:
        """Show (creating once) the MRI reconstruction & FNAF dock, fed with the open MR series."""
        from reviewer.gui.mri_panel import MriPanel

        return self._show_lab("mri_dock", MriPanel, 400)

    def show_detection_lab(self) -> Any:
        """Show (creating once) the nodule detection lab dock, fed with the open CT."""
        from reviewer.gui.detection_panel import DetectionPanel

        return self._show_lab("detection_dock", DetectionPanel, 600)

    def _show_lab(self, attr: str, panel_class: Callable[[Any], Any], width: int) -> Any:
        dock = getattr(self, attr)
        if dock is None:
            dock = panel_class(self)
            setattr(self, attr, dock)
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            # a lab's dock and the left-hand docks together squeeze the images: the study browser and the message
            # log step aside (the View menu brings them back; notices still appear as toasts)
            self.browser_dock.hide()
            self.log_dock.hide()
            self.resizeDocks([dock], [width], Qt.Orientation.Horizontal)
            if self.state.primary is not None:
                dock.series_opened(self.state.primary.volume)
        dock.show()
        dock.raise_()
        return dock

    # -- reader studies ------------------------------------------------------------------------------------------
    def read_study_dialog(self) -> None:
        """Choose a study folder and a reader, then open the full-screen reading window."""
        from PySide6.QtWidgets import QInputDialog

        folder = QFileDialog.getExistingDirectory(self, "Study folder (with study.json)")
        if not folder:
            return
        reader, ok = QInputDialog.getText(self, "Reader", "Your reader id:")
        if ok and reader.strip():
            self.read_study(folder, reader.strip())

    def read_study(self, folder: str, reader: str, full_screen: bool = True) -> Any:
        from reviewer.gui.reading.window import open_reading_window

        self.reading_window = open_reading_window(folder, reader, full_screen=full_screen)
        return self.reading_window

    def new_study_dialog(self) -> Any:
        from reviewer.gui.reading.builder import StudyBuilderDialog

        dlg = StudyBuilderDialog(self, self.runner)
        dlg.built.connect(lambda path: self.notifier.info(f"Reader study written: {path}"))
        dlg.show()
        self.study_builder = dlg
        return dlg

    def _series_for_tools(self, volume: Volume) -> None:
        """A fastMRI series opens the MRI lab; an open lab follows the series shown."""
        if (volume.metadata or {}).get("format") == "fastmri" and self.mri_dock is None:
            self.show_mri_lab()  # feeds it the series
            return
        if (volume.metadata or {}).get("format") == "fastmri":
            self.mri_dock.show()
        if self.mri_dock is not None:
            self.mri_dock.series_opened(volume)
        if self.detection_dock is not None:
            self.detection_dock.series_opened(volume)

    # -- demo --------------------------------------------------------------------------------------------------
    def open_demo_job(self) -> None:
        from reviewer.demo import generate_demo

        self.runner.submit(generate_demo, key="demo", label="Preparing demo data", on_result=self.open_demo,
                           on_error=lambda exc: (self.notifier.exception(exc, "Demo"), self.demoOpened.emit(False)))

    def open_demo(self, demo: Any) -> None:
        """Scan the demo folder(s), open the CT in MPR with the ground-truth nodules, lung window, crosshair on
        the largest nodule."""
        paths = [Path(demo.ct_path), Path(demo.mri_path)]
        folders = sorted({str(p.parent) for p in paths})
        ct_path = os.path.realpath(demo.ct_path)

        def scanned(catalog: Any) -> None:
            if catalog is None:
                self.demoOpened.emit(False)
                return
            ct = next((s for s in catalog.series
                       if any(os.path.realpath(f) == ct_path for f in (s.files or []))), None)
            if ct is None:
                self.notifier.error(f"{demo.ct_path}: the demo CT was not found by the scan")
                self.demoOpened.emit(False)
                return
            job = self.open_series(ct, after=lambda vol: self._show_demo_ct(demo, vol))
            job.on_error = lambda exc: (self.notifier.exception(exc, "Could not open the demo CT"),
                                        self.demoOpened.emit(False))

        self.open_paths(folders, open_first=False, on_done=scanned)

    def _show_demo_ct(self, demo: Any, volume: Volume) -> None:
        from reviewer.view.overlays import SpheresOverlay
        from reviewer.view.presets import is_ct

        ok = False
        try:
            if not is_ct(volume):  # the demo CT is in HU, but MetaImage headers carry no modality
                volume.modality, volume.unit = "CT", "HU"
                self._build_preset_menu(volume)
                self._update_title(self.current_series, volume)
            nodules = load_nodules(demo.ct_nodules_json)
            s = self.state
            with s.batch():
                s.set_layout("mpr")
                if nodules:
                    s.add_overlay(SpheresOverlay(
                        centers=[n["center"] for n in nodules],
                        radii_mm=[n["diameter_mm"] / 2.0 for n in nodules],
                        labels=[f"{n['kind']} {n['diameter_mm']:.0f} mm" for n in nodules],
                        name="ground truth nodules",
                    ))
                    largest = max(nodules, key=lambda n: n["diameter_mm"])
                    s.set_crosshair(largest["center"])
                s.apply_preset("lung")
            if nodules:
                self.notifier.info(
                    f"Demo chest CT: {len(nodules)} ground-truth nodules (green circles); crosshair on the largest, "
                    f"{largest['kind']} {largest['diameter_mm']:.0f} mm. Lung window (1).")
            ok = True
        finally:
            self.demoOpened.emit(ok)

    # -- help --------------------------------------------------------------------------------------------------
    def show_guide(self) -> QDialog:
        if self._guide is None:
            dlg = QDialog(self)
            dlg.setWindowTitle("Mouse and keyboard")
            rows = "".join(f"<tr><td style='padding:2px 14px 2px 0'><b>{k}</b></td><td>{v}</td></tr>"
                           for k, v in MOUSE_AND_KEYS)
            label = QLabel(f"<table>{rows}</table>")
            label.setTextFormat(Qt.TextFormat.RichText)
            buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
            buttons.rejected.connect(dlg.close)
            lay = QVBoxLayout(dlg)
            lay.addWidget(label)
            lay.addWidget(buttons)
            dlg.setModal(False)
            self._guide = dlg
        self._guide.show()
        self._guide.raise_()
        return self._guide

    def about_text(self) -> str:
        import PySide6
        import pyqtgraph

        device = self.device_label.text().removeprefix("Device: ")
        return (f"<h3>Reviewer {reviewer.__version__}</h3>"
                "<p>Hunt for the lesions deep-learning models miss.</p>"
                f"<p>Compute device: {device}<br>PySide6 {PySide6.__version__}, pyqtgraph {pyqtgraph.__version__}</p>")

    def show_about(self) -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Information, "About Reviewer", self.about_text(),
                          QMessageBox.StandardButton.Ok, self)
        box.setModal(False)
        box.show()
        return box

    # -- window events -----------------------------------------------------------------------------------------
    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if not getattr(self, "_shown_once", False):
            self._shown_once = True
            self.resizeDocks([self.browser_dock], [420], Qt.Orientation.Horizontal)
            self.resizeDocks([self.browser_dock, self.log_dock], [760, 140], Qt.Orientation.Vertical)

    def sizeHint(self) -> QSize:
        return QSize(1600, 1000)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _local_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: Any) -> None:
        if _local_paths(event.mimeData()):
            event.acceptProposedAction()

    @guarded("Drop")
    def dropEvent(self, event: QDropEvent) -> None:
        paths = _local_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.runner.shutdown(5000)
        close_views = getattr(self.viewer, "close_views", None)
        if close_views is not None:
            close_views()
        for b in self._bindings + self._overlay_bindings:
            b.disconnect()
        try:
            self.state.events.overlays.disconnect(self._overlays_changed)
            self.state.events.crosshair.disconnect(self._crosshair_moved)
        except Exception:  # noqa: BLE001
            pass
        if self._guide is not None:
            self._guide.close()
        if self.mri_dock is not None:
            self.mri_dock.unbind()
        if self.detection_dock is not None:
            self.detection_dock.unbind()
        super().closeEvent(event)


# -- helpers ------------------------------------------------------------------------------------------------------
def _local_paths(mime: Any) -> list[str]:
    if mime is None or not mime.hasUrls():
        return []
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile() and u.toLocalFile()]


def _overlays_of(state: Any) -> list[Any]:
    ovs = getattr(state, "overlays", None) or []
    return list(ovs.values()) if isinstance(ovs, dict) else list(ovs)


def _overlay(state: Any, name: str) -> Any:
    return next((o for o in _overlays_of(state) if o.name == name), None)


def _set_crosshair(state: Any, xyz: Sequence[float]) -> None:
    setter = getattr(state, "set_crosshair", None)
    if setter is not None:
        setter(tuple(float(v) for v in xyz))
    else:
        state.crosshair = tuple(float(v) for v in xyz)


def load_nodules(path: str | os.PathLike) -> list[dict]:
    """Ground-truth nodules from the demo JSON as dicts with ``center`` (LPS mm), ``diameter_mm`` and ``kind``."""
    import json

    data = json.loads(Path(path).read_text())
    items = data.get("nodules", data) if isinstance(data, dict) else data
    out = []
    for n in items:
        center = n.get("center_lps_mm") or n.get("center_lps") or n.get("center") or n.get("centre")
        diam = n.get("diameter_mm") or n.get("diameter")
        out.append({"center": [float(v) for v in center], "diameter_mm": float(diam), "kind": str(n.get("kind", ""))})
    return out

