"""Scrub stage: filter, blank pixels, de-identify metadata, write scrubbed DICOM files."""
