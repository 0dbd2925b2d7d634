"""Reader studies: blinded, randomised reading sessions with crash-safe storage, MRMC analysis and exports.

Modules: ``definition`` (the study file), ``randomise`` (per-reader order), ``schema`` + ``store`` (the reading
API on SQLite/PostgreSQL), ``images`` (case images as volumes), ``create`` (building studies), ``simulate``
(simulated readers), ``scoring`` + ``analysis`` (FROC/AFROC/wAFROC/ROC statistics), ``exports`` (CSV, iMRMC,
JAFROC, JSON), ``cli`` (``reviewer study ...``).
"""
