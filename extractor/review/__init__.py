"""The review report: a static HTML page for a data steward to check one scrub run before release.

- `collect`: the run's manifest from the identified warehouse, grouped by device signature, samples;
- `images`: thumbnails (frame choice, rescale, window/level, MONOCHROME1, colour), regions outlined;
- `diff`: original vs scrubbed header, attribute by attribute, and the PHI categories;
- `html`: the page; `report`: puts them together and writes the folder.
"""

from extractor.review.collect import ReviewError
from extractor.review.report import ReviewResult, write_review

__all__ = ["ReviewError", "ReviewResult", "write_review"]
