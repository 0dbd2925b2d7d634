"""Reading and writing images: DICOM (classic and enhanced multi-frame), NIfTI, MHD/RAW, NRRD and fastMRI HDF5.

Headless: nothing here imports Qt. Entry points: :func:`catalog.scan_paths`, :func:`loader.load_volume`,
:func:`loader.load_series`, :func:`writer.write_volume`.
"""
