"""Study browser: patient > study > series tree filled from a :class:`reviewer.io.catalog.Catalog`.

Scanning runs ``scan_paths`` as a job (progress bar and cancel in the status bar). Image series open on
double-click (``seriesActivated(SeriesInfo)``); non-image objects (SR, RT, PR...) are listed greyed with their
kind and say why they cannot be opened.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Sequence

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QLineEdit, QTreeView, QVBoxLayout, QWidget

from reviewer.gui.jobs_qt import JobRunner
from reviewer.gui.notifications import Notifier

COLUMNS = ("Patient / study / series", "Date", "Modality", "Description", "Images", "Dimensions")
MAX_WIDTHS = (170, 76, 58, 120, 48, 96)  # px; long UIDs / descriptions are elided, full text in the tooltip
INFO_ROLE = Qt.ItemDataRole.UserRole + 1  # the SeriesInfo of a series row (column 0)
SORT_ROLE = Qt.ItemDataRole.UserRole + 2  # numeric-aware sort key
LEVEL_ROLE = Qt.ItemDataRole.UserRole + 3  # 'patient' | 'study' | 'series'
_GREY = QBrush(QColor(128, 128, 128))
_NON_IMAGE_KINDS = {
    "SR": "structured report",
    "RTSTRUCT": "RT structure set",
    "RTPLAN": "RT plan",
    "RTDOSE": "RT dose",
    "RTRECORD": "RT treatment record",
    "PR": "presentation state",
    "KO": "key object selection",
    "SEG": "segmentation",
    "REG": "registration",
    "DOC": "encapsulated document",
}


def format_date(d: str | None) -> str:
    d = (d or "").strip()
    if len(d) == 8 and d.isdigit():
        return f"{d[:4]}-{d[4:6]}-{d[6:]}"
    return d


def format_dims(dims: Sequence[int] | None) -> str:
    if not dims:
        return ""
    return "x".join(str(int(v)) for v in dims)


def non_image_kind(info: Any) -> str:
    """Human name of a non-image object, e.g. 'structured report (Basic Text SR Storage)'."""
    kind = _NON_IMAGE_KINDS.get((info.modality or "").upper(), "non-image object")
    sop = getattr(info, "sop_class_name", "") or ""
    return f"{kind} ({sop})" if sop and sop.lower() != kind else kind


def _item(text: str, sort: Any = None, tooltip: str = "") -> QStandardItem:
    it = QStandardItem(text)
    it.setEditable(False)
    it.setData(text.lower() if sort is None else sort, SORT_ROLE)
    if tooltip:
        it.setToolTip(tooltip)
    return it


class StudyBrowser(QWidget):
    """Filterable, sortable patient > study > series tree; double-click opens an image series."""

    seriesActivated = Signal(object)  # SeriesInfo
    scanFinished = Signal(object)  # Catalog of that scan (also emitted, empty, when the scan failed)

    def __init__(self, runner: JobRunner, notifier: Notifier, parent: QWidget | None = None):
        super().__init__(parent)
        self._runner = runner
        self._notifier = notifier
        self.series: dict[str, Any] = {}  # uid -> SeriesInfo, in scan order
        self.problems: list[str] = []

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter (patient, modality, description…)")
        self.filter_edit.setClearButtonEnabled(True)
        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(COLUMNS))
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setRecursiveFilteringEnabled(True)
        self.proxy.setAutoAcceptChildRows(True)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setSortRole(SORT_ROLE)
        self.filter_edit.textChanged.connect(self.proxy.setFilterFixedString)

        self.tree = QTreeView()
        self.tree.setModel(self.proxy)
        self.tree.setSortingEnabled(True)
        self.tree.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tree.setExpandsOnDoubleClick(True)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.tree.header().setStretchLastSection(False)
        self.tree.doubleClicked.connect(self._double_clicked)

        self.summary = QLabel("No studies. File > Open Folder…, or drop files here.")
        self.summary.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.filter_edit)
        lay.addWidget(self.tree, 1)
        lay.addWidget(self.summary)

    # -- scanning ---------------------------------------------------------------------------------------------
    def scan(self, paths: Iterable[str | os.PathLike], on_done: Callable[[Any], None] | None = None):
        """Scan files/folders as a job; the result is added to the tree. Returns the job handle.

        ``on_done(catalog)`` runs afterwards on the GUI thread, with None when the scan failed or was cancelled.
        """
        from reviewer.io.catalog import scan_paths

        paths = [os.fspath(p) for p in paths]
        where = paths[0] if len(paths) == 1 else f"{len(paths)} paths"
        return self._runner.submit(
            scan_paths, paths, label=f"Scanning {os.path.basename(where.rstrip(os.sep)) or where}",
            on_result=lambda cat: self._scanned(paths, cat, on_done),
            on_error=lambda exc: self._scan_failed(paths, exc, on_done),
            on_cancelled=lambda: self._scan_failed(paths, None, on_done),
        )

    def _scanned(self, paths: list[str], catalog: Any, on_done: Callable[[Any], None] | None) -> None:
        self.add_catalog(catalog)
        problems = list(catalog.problems)
        for p in problems[:8]:
            self._notifier.warning(p)
        if len(problems) > 8:
            self._notifier.warning(f"{len(problems) - 8} more files could not be read (see the Messages dock)")
        if not catalog.series and not problems:
            self._notifier.warning(f"No images found in {', '.join(paths)}")
        self.scanFinished.emit(catalog)
        if on_done is not None:
            on_done(catalog)

    def _scan_failed(self, paths: list[str], exc: BaseException | None,
                     on_done: Callable[[Any], None] | None) -> None:
        if exc is None:
            self._notifier.info(f"Scan of {', '.join(paths)} cancelled")
        else:
            self._notifier.exception(exc)
        self.scanFinished.emit(None)
        if on_done is not None:
            on_done(None)

    # -- model ------------------------------------------------------------------------------------------------
    def clear(self) -> None:
        self.series.clear()
        self.problems.clear()
        self._rebuild()

    def add_catalog(self, catalog: Any) -> None:
        for info in catalog.series:
            self.series[info.uid] = info
        self.problems.extend(catalog.problems)
        self._rebuild()

    def _rebuild(self) -> None:
        self.model.removeRows(0, self.model.rowCount())
        patients: dict[tuple, dict[str, list[Any]]] = {}
        for info in self.series.values():
            pkey = (info.patient_name or "", info.patient_id or "")
            patients.setdefault(pkey, {}).setdefault(info.study_uid or "", []).append(info)
        root = self.model.invisibleRootItem()
        n_studies = 0
        for (pname, pid), studies in patients.items():
            name = pname.replace("^", " ").strip()
            label = (f"{name}  [{pid}]" if name else pid) if pid else (name or "(no name)")
            p_row = [_item(label)] + [_item("") for _ in COLUMNS[1:]]
            p_row[0].setData("patient", LEVEL_ROLE)
            for study_uid, infos in studies.items():
                n_studies += 1
                first = infos[0]
                s_label = first.study_description or "Study"
                s_row = [
                    _item(s_label, tooltip=f"StudyInstanceUID {study_uid}"),
                    _item(format_date(first.study_date)),
                    _item(", ".join(sorted({i.modality for i in infos if i.modality}))),
                    _item(""),
                    _item(str(sum(i.n_images or 0 for i in infos)), sort=sum(i.n_images or 0 for i in infos)),
                    _item(""),
                ]
                s_row[0].setData("study", LEVEL_ROLE)
                for info in sorted(infos, key=lambda i: (i.series_number is None, i.series_number or 0)):
                    s_row[0].appendRow(self._series_row(info))
                p_row[0].appendRow(s_row)
            root.appendRow(p_row)
        self.tree.expandAll()
        for c, limit in enumerate(MAX_WIDTHS):
            self.tree.resizeColumnToContents(c)
            if self.tree.columnWidth(c) > limit:
                self.tree.setColumnWidth(c, limit)
        n_img = sum(1 for i in self.series.values() if i.kind == "image")
        n_other = len(self.series) - n_img
        if self.series:
            text = f"{len(patients)} patient(s), {n_studies} study(ies), {n_img} image series"
            if n_other:
                text += f", {n_other} non-image object(s)"
            self.summary.setText(text + ". Double-click a series to open it.")
        else:
            self.summary.setText("No studies. File > Open Folder…, or drop files here.")

    def _series_row(self, info: Any) -> list[QStandardItem]:
        if info.series_number is not None:
            name = f"Series {info.series_number}"
        else:
            name = (info.format or "file").upper() if info.format != "fastmri" else "fastMRI"
        files = info.files or []
        tip = f"{info.format}, {len(files)} file(s)\n{files[0] if files else ''}"
        if info.warnings:
            tip += "\n" + "\n".join(info.warnings)
        desc = info.series_description or (os.path.basename(files[0]) if files else "")
        non_image = info.kind != "image"
        if non_image:
            desc = f"{desc} — {non_image_kind(info)}, not an image" if desc else f"{non_image_kind(info)}, not an image"
        row = [
            _item(name, tooltip=tip),
            _item(format_date(info.study_date)),
            _item(info.modality or ""),
            _item(desc, tooltip=desc),
            _item("" if non_image and not info.n_images else str(info.n_images or 0), sort=int(info.n_images or 0)),
            _item(format_dims(info.dims), sort="x".join(f"{int(v):07d}" for v in (info.dims or ()))),
        ]
        row[0].setData(info, INFO_ROLE)
        row[0].setData("series", LEVEL_ROLE)
        if non_image:
            for it in row:
                it.setForeground(_GREY)
                it.setToolTip(f"{non_image_kind(info)}: listed for reference, cannot be displayed as an image")
        return row

    # -- access -----------------------------------------------------------------------------------------------
    def info_at(self, proxy_index: QModelIndex) -> Any:
        """SeriesInfo of the row of a (proxy) index, or None for patient/study rows."""
        if not proxy_index.isValid():
            return None
        src = self.proxy.mapToSource(proxy_index)
        first = src.siblingAtColumn(0)
        return self.model.itemFromIndex(first).data(INFO_ROLE) if first.isValid() else None

    def index_of(self, uid: str) -> QModelIndex:
        """Proxy index (column 0) of the series with this uid; invalid when filtered out or absent."""
        for item in self._iter_items():
            info = item.data(INFO_ROLE)
            if info is not None and info.uid == uid:
                return self.proxy.mapFromSource(item.index())
        return QModelIndex()

    def _iter_items(self):
        stack = [self.model.item(r) for r in range(self.model.rowCount())]
        while stack:
            it = stack.pop()
            yield it
            stack.extend(it.child(r) for r in range(it.rowCount()))

    def rows(self) -> list[tuple[str, list[str]]]:
        """(level, column texts) of every row, depth first in display order (for tests and debugging)."""
        out: list[tuple[str, list[str]]] = []

        def walk(parent: QModelIndex) -> None:
            for r in range(self.proxy.rowCount(parent)):
                idx = self.proxy.index(r, 0, parent)
                texts = [self.proxy.index(r, c, parent).data() or "" for c in range(len(COLUMNS))]
                out.append((idx.data(LEVEL_ROLE), texts))
                walk(idx)

        walk(QModelIndex())
        return out

    def activate(self, proxy_index: QModelIndex) -> None:
        """What a double-click does: open an image series, or say why an object cannot be opened."""
        info = self.info_at(proxy_index)
        if info is None:
            return
        if info.kind != "image":
            where = info.files[0] if info.files else info.uid
            self._notifier.warning(
                f"{where}: {non_image_kind(info)} ({info.modality}) is not an image and cannot be opened in the viewer"
            )
            return
        self.seriesActivated.emit(info)

    def _double_clicked(self, index: QModelIndex) -> None:
        self.activate(index)
