"""A CTP DicomPixelAnonymizer script: `{ signature }` blocks, each followed by `(x,y,w,h)` regions.

Text outside braces and parentheses is commentary (so `//` has no meaning there: a region on a
`//` line is still a region, as in CTP). The first signature an instance matches chooses the
regions to blank; no match means no regions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from pydicom import Dataset

from extractor.scrub.ctp.conditions import (
    Condition,
    ConditionParser,
    ElementValues,
    ScriptNotice,
    SourceText,
)

_INTEGER = re.compile(r"\s*(\d+)\s*")
_REGION_END = re.compile(r"[(){}]")


class Rectangle(NamedTuple):
    """A region in pixels: left, top, width, height (it may extend past the image)."""

    x: int
    y: int
    width: int
    height: int

    def clipped(self, columns: int, rows: int) -> Rectangle | None:
        """The part inside a columns x rows image, or None if nothing of it is inside."""
        right, bottom = min(self.x + self.width, columns), min(self.y + self.height, rows)
        if right <= self.x or bottom <= self.y:
            return None
        return Rectangle(self.x, self.y, right - self.x, bottom - self.y)

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.width},{self.height}"


@dataclass(frozen=True)
class PixelRule:
    index: int  # 1-based, in file order
    line: int  # the line of the opening brace
    condition: Condition
    rectangles: tuple[Rectangle, ...]
    label: str  # the last commentary line before the block, as a human name for it
    script: str  # the script's file name

    @property
    def name(self) -> str:
        return f"{self.script}:{self.line}"

    @property
    def regions(self) -> tuple[Rectangle, ...]:
        return self.rectangles


@dataclass(frozen=True)
class PixelScript:
    path: Path
    rules: tuple[PixelRule, ...]
    notices: tuple[ScriptNotice, ...] = ()

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def reads_private(self) -> bool:
        return any(term.path.reads_private for rule in self.rules for term in rule.condition.terms())

    def regions_for(self, ds: Dataset) -> PixelRule | None:
        """The first rule whose signature the instance matches (CTP's semantics), or None."""
        values = ElementValues(ds)
        return next((rule for rule in self.rules if rule.condition.evaluate(values)), None)


def load_pixel_script(path: str | Path, *, strict: bool = False) -> PixelScript:
    path = Path(path)
    return parse_pixel_script(path.read_text(encoding="utf-8"), path, strict=strict)


def parse_pixel_script(text: str, path: str | Path = "<pixel script>", *, strict: bool = False) -> PixelScript:
    """Parse every block; strict=True also refuses the tolerated slip (a missing comma in a region)."""
    source = SourceText(text, path)
    reader = _BlockReader(source, strict)
    rules: list[PixelRule] = []
    commentary_start = 0
    while True:
        brace = reader.next_signature(commentary_start)
        if brace is None:
            break
        label = _label(text[commentary_start:brace])
        condition, after = reader.signature(brace)
        rectangles, commentary_start = reader.regions(after, brace)
        rules.append(PixelRule(len(rules) + 1, source.position(brace)[0], condition, rectangles, label, Path(path).name))
    return PixelScript(Path(path), tuple(rules), tuple(reader.notices))


class _BlockReader:
    def __init__(self, source: SourceText, strict: bool) -> None:
        self.source, self.text, self.strict = source, source.text, strict
        self.notices: list[ScriptNotice] = []

    def next_signature(self, start: int) -> int | None:
        """The next '{' after commentary; commentary holding a brace or parenthesis is an error."""
        for offset in range(start, len(self.text)):
            char = self.text[offset]
            if char == "{":
                return offset
            if char in "})":
                raise self.source.error(offset, f"unbalanced {char!r} in commentary")
            if char == "(":
                raise self.source.error(offset, "a region before the first signature (commentary may not hold parentheses)")
        return None

    def signature(self, brace: int) -> tuple[Condition, int]:
        parser = ConditionParser(self.source, brace + 1)
        if parser.peek() == "}":
            raise self.source.error(parser.pos, "empty signature: expected a condition")
        if not parser.peek():
            raise self.source.error(brace, "unterminated signature: no closing '}'")
        condition = parser.parse_expression()
        parser.expect("}", "'+', '*' or '}' closing the signature")
        self.notices.extend(parser.notices)
        return condition, parser.pos

    def regions(self, start: int, brace: int) -> tuple[tuple[Rectangle, ...], int]:
        """The regions after a signature, up to the next '{'; returns them and where commentary resumes."""
        rectangles: list[Rectangle] = []
        offset = start
        while offset < len(self.text) and self.text[offset] != "{":
            char = self.text[offset]
            if char == "(":
                end = _REGION_END.search(self.text, offset + 1)
                if end is None or end.group() != ")":
                    raise self.source.error(offset, "unterminated region: expected ')'")
                rectangles.append(self.rectangle(offset, end.start()))
                offset = end.end()
                continue
            if char in "})":
                raise self.source.error(offset, f"unbalanced {char!r} after a signature")
            offset += 1
        if not rectangles:
            raise self.source.error(brace, "a signature must be followed by at least one region (x,y,w,h)")
        return tuple(rectangles), self._commentary_start(start, offset)

    def _commentary_start(self, start: int, end: int) -> int:
        last_close = self.text.rfind(")", start, end)
        return last_close + 1

    def rectangle(self, open_at: int, close_at: int) -> Rectangle:
        body = self.text[open_at + 1 : close_at]
        parts = body.split(",")
        numbers = [part.strip() for part in parts]
        if len(parts) != 4 or not all(_INTEGER.fullmatch(part) for part in parts):
            spaced = re.fullmatch(r"\s*\d+(?:\s*,\s*|\s+)\d+(?:\s*,\s*|\s+)\d+(?:\s*,\s*|\s+)\d+\s*", body)
            if not spaced or self.strict:
                raise self.source.error(
                    open_at, f"a region is (x,y,w,h), four non-negative integers separated by commas; found ({body})"
                )
            numbers = re.findall(r"\d+", body)
            self.notices.append(
                self.source.notice(
                    open_at,
                    f"region ({body}) lacks a comma; CTP would skip it, read here as ({','.join(numbers)})",
                )
            )
        x, y, width, height = (int(n) for n in numbers)
        if width == 0 or height == 0:
            raise self.source.error(open_at, f"region ({body}) has no area (width and height must be positive)")
        return Rectangle(x, y, width, height)


def _label(commentary: str) -> str:
    for line in reversed(commentary.splitlines()):
        text = line.strip().lstrip("/").strip()
        if text and set(text) != {"*"}:
            return text
    return ""
