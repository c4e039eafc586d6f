"""Only the optional C accelerators live here; everything else is in pyproject.toml.

`optional=True`: without a C compiler the install still succeeds and the harvest uses its
pure-Python walker, header JSON writer and scrub scanner (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("extractor.harvest._walk", ["extractor/harvest/_walk.c"], optional=True),
        Extension("extractor.harvest._header_json", ["extractor/harvest/_header_json.c"], optional=True),
        Extension("extractor.scrub._raw_scan", ["extractor/scrub/_raw_scan.c"], optional=True),
    ]
)
