"""The MIRC CTP script languages: DicomFilter scripts and DicomPixelAnonymizer scripts.

Specifications: the RSNA MIRC wiki pages "The CTP DICOM Filter" and "The CTP DICOM Pixel
Anonymizer". Scripts are parsed completely at load time; what cannot be understood is a
ScriptError (file, line, column), and the few tolerated slips are listed in `notices`.
"""

from extractor.scrub.ctp.conditions import (
    Condition,
    ScriptError,
    ScriptNotice,
    Term,
    parse_condition,
)
from extractor.scrub.ctp.elements import element_text
from extractor.scrub.ctp.filter_script import FilterScript, load_filter_script, parse_filter_script
from extractor.scrub.ctp.java_regex import compile_java_regex, translate_java_regex
from extractor.scrub.ctp.pixel_script import (
    PixelRule,
    PixelScript,
    Rectangle,
    load_pixel_script,
    parse_pixel_script,
)

__all__ = [
    "Condition",
    "FilterScript",
    "PixelRule",
    "PixelScript",
    "Rectangle",
    "ScriptError",
    "ScriptNotice",
    "Term",
    "compile_java_regex",
    "element_text",
    "load_filter_script",
    "load_pixel_script",
    "parse_condition",
    "parse_filter_script",
    "parse_pixel_script",
    "translate_java_regex",
]
