"""A CTP DicomFilter script: one condition; instances for which it is true pass, the others are filtered."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset

from extractor.scrub.ctp.conditions import (
    Condition,
    ConditionParser,
    ScriptNotice,
    SourceText,
    Term,
)


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

    def matches(self, ds: Dataset) -> bool:
        return self.condition.matches(ds)


def load_filter_script(path: str | Path) -> FilterScript:
    path = Path(path)
    return parse_filter_script(path.read_text(encoding="utf-8"), path)


def parse_filter_script(text: str, path: str | Path = "<filter script>") -> FilterScript:
    source = SourceText(text, path)
    parser = ConditionParser(source)
    if not parser.peek():
        raise source.error(parser.pos, "expected an expression, found an empty script")
    condition = parser.parse_expression()
    if parser.peek():
        raise source.error(parser.pos, f"expected '+', '*' or the end of the script, found {parser.found()}")
    return FilterScript(Path(path), condition, tuple(parser.notices))
