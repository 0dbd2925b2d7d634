"""LUNA16 compatibility: CSV formats (``io``), the official FROC protocol (``froc``), reading LUNA16 folders
(``dataset``: ``resolve_luna16``, ``iter_luna16``) and the demo phantoms as a LUNA16 dataset (``demo_export``).

Kept import-free so ``reviewer --help`` stays instant; import the submodules.
"""
