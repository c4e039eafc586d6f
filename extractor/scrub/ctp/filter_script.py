"""A CTP DicomFilter script: one condition; instances for which it is true pass, the others are filtered."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset

from extractor.scrub.ctp.conditions import Condition, ScriptNotice, Term, parse_whole_condition


@dataclass(frozen=True)
class FilterScript:
    path: Path
    condition: Condition
    notices: tuple[ScriptNotice, ...] = ()

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def terms(self) -> tuple[Term, ...]:
        return tuple(self.condition.terms())

    @property
    def reads_private(self) -> bool:
        return any(term.path.reads_private for term in self.terms)

    def matches(self, ds: Dataset) -> bool:
        return self.condition.matches(ds)


def load_filter_script(path: str | Path) -> FilterScript:
    path = Path(path)
    return parse_filter_script(path.read_text(encoding="utf-8"), path)


def parse_filter_script(text: str, path: str | Path = "<filter script>") -> FilterScript:
    condition, notices = parse_whole_condition(text, path)
    return FilterScript(Path(path), condition, notices)
