"""imgomop: DICOM archive -> OMOP Medical Imaging tables and PHI-scrubbed research extracts."""

__version__ = "0.1.0"
