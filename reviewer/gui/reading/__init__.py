"""Reader-study GUI: the full-screen reading window (``window``), its image pane (``canvas``) and the study
builder dialog (``builder``). The logic lives Qt-free in :mod:`reviewer.studies.reading`."""
