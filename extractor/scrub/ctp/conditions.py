"""The CTP condition language, shared by the DicomFilter script and the pixel script signatures.

    expression := and ('+' and)*            + is or (lowest precedence)
    and        := unary ('*' unary)*        * is and
    unary      := '!' unary | primary       ! is not (highest)
    primary    := '(' expression ')' | 'true.' | 'false.' | identifier '.' method '(' "string" ')'

Whitespace, `// to end of line` and `/* ... */` comments may separate tokens. Strings have no
escapes: a backslash is a backslash (so "ORIGINAL\\PRIMARY\\\\0000" is ImageType
ORIGINAL, PRIMARY, an empty value, 0000). Anything the language does not define (an unknown
method, keyword or tag form, a missing quote) is a ScriptError naming the file, line and column.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path

from pydicom import Dataset

from extractor.scrub.ctp.elements import (
    ElementPath,
    ElementRef,
    PrivateRef,
    TagRef,
    dictionary_vr,
    known_names,
    tag_for_name,
)
from extractor.scrub.ctp.java_regex import compile_java_regex


class ScriptError(ValueError):
    """A CTP script that cannot be understood completely; raised at load time."""

    def __init__(self, path: str | Path, line: int, column: int, message: str) -> None:
        super().__init__(f"{path}:{line}:{column}: {message}")
        self.path, self.line, self.column, self.message = str(path), line, column, message


@dataclass(frozen=True)
class ScriptNotice:
    """A construct outside the documented language that was accepted with a stated reading."""

    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


# --- source positions ----------------------------------------------------------------------


class SourceText:
    """A script's text with offset -> (line, column) and error helpers."""

    def __init__(self, text: str, path: str | Path) -> None:
        self.text, self.path = text, str(path)
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def position(self, offset: int) -> tuple[int, int]:
        line = _bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def error(self, offset: int, message: str) -> ScriptError:
        return ScriptError(self.path, *self.position(offset), message)

    def notice(self, offset: int, message: str) -> ScriptNotice:
        return ScriptNotice(self.path, *self.position(offset), message)


def _bisect_right(starts: list[int], offset: int) -> int:
    low, high = 0, len(starts)
    while low < high:
        middle = (low + high) // 2
        if starts[middle] <= offset:
            low = middle + 1
        else:
            high = middle
    return low


# --- the syntax tree -----------------------------------------------------------------------


class ElementValues:
    """The string values of one dataset, each path read once per evaluation."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        self._cache: dict[str, str] = {}

    def get(self, path: ElementPath) -> str:
        value = self._cache.get(path.text)
        if value is None:
            value = self._cache[path.text] = path.value_in(self.ds)
        return value


class Condition:
    line: int

    def evaluate(self, values: ElementValues) -> bool:
        raise NotImplementedError

    def terms(self) -> Iterator[Term]:
        raise NotImplementedError

    def matches(self, ds: Dataset) -> bool:
        return self.evaluate(ElementValues(ds))


@dataclass(frozen=True)
class Constant(Condition):
    value: bool
    line: int

    def evaluate(self, values: ElementValues) -> bool:
        return self.value

    def terms(self) -> Iterator[Term]:
        return iter(())


@dataclass(frozen=True)
class Term(Condition):
    """identifier.method("argument")"""

    path: ElementPath
    method: str
    argument: str
    line: int
    column: int
    test: Callable[[str], bool] = field(repr=False, compare=False)

    def evaluate(self, values: ElementValues) -> bool:
        return self.test(values.get(self.path))

    def terms(self) -> Iterator[Term]:
        yield self

    def __str__(self) -> str:
        return f'{self.path.text}.{self.method}("{self.argument}")'


@dataclass(frozen=True)
class Not(Condition):
    operand: Condition
    line: int

    def evaluate(self, values: ElementValues) -> bool:
        return not self.operand.evaluate(values)

    def terms(self) -> Iterator[Term]:
        return self.operand.terms()


@dataclass(frozen=True)
class And(Condition):
    operands: tuple[Condition, ...]
    line: int

    def evaluate(self, values: ElementValues) -> bool:
        return all(operand.evaluate(values) for operand in self.operands)

    def terms(self) -> Iterator[Term]:
        for operand in self.operands:
            yield from operand.terms()


@dataclass(frozen=True)
class Or(Condition):
    operands: tuple[Condition, ...]
    line: int

    def evaluate(self, values: ElementValues) -> bool:
        return any(operand.evaluate(values) for operand in self.operands)

    def terms(self) -> Iterator[Term]:
        for operand in self.operands:
            yield from operand.terms()


# --- the methods ---------------------------------------------------------------------------


def _numeric(text: str) -> float | None:
    """CTP's number reading: keep only digits and periods, then parse (so '-5 mm' reads 5)."""
    try:
        return float(re.sub(r"[^0-9.]", "", text))
    except ValueError:
        return None


def _less_than(argument: str) -> Callable[[str], bool]:
    bound = _numeric(argument)
    return lambda value: bound is not None and (number := _numeric(value)) is not None and number < bound


def _greater_than(argument: str) -> Callable[[str], bool]:
    bound = _numeric(argument)
    return lambda value: bound is not None and (number := _numeric(value)) is not None and number > bound


def _matches(argument: str) -> Callable[[str], bool]:
    pattern = compile_java_regex(argument)
    return lambda value: pattern.fullmatch(value) is not None


METHODS: dict[str, Callable[[str], Callable[[str], bool]]] = {
    "equals": lambda arg: lambda value: value == arg,
    "equalsIgnoreCase": lambda arg: lambda value: value.lower() == arg.lower(),
    "matches": _matches,
    "contains": lambda arg: lambda value: arg in value,
    "containsIgnoreCase": lambda arg: lambda value: arg.lower() in value.lower(),
    "startsWith": lambda arg: lambda value: value.startswith(arg),
    "startsWithIgnoreCase": lambda arg: lambda value: value.lower().startswith(arg.lower()),
    "endsWith": lambda arg: lambda value: value.endswith(arg),
    "endsWithIgnoreCase": lambda arg: lambda value: value.lower().endswith(arg.lower()),
    "isLessThan": _less_than,
    "isGreaterThan": _greater_than,
}


# --- the parser ----------------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_TAG = re.compile(r"\[([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\]")
_PRIVATE_TAG = re.compile(r"\[([0-9A-Fa-f]{4})\[([^\[\]\"\n]+)\]([0-9A-Fa-f]{2})\]")


class ConditionParser:
    """Recursive descent over source.text[start:end]; positions stay those of the whole file."""

    def __init__(self, source: SourceText, start: int = 0, end: int | None = None) -> None:
        self.source, self.text = source, source.text
        self.pos, self.end = start, len(source.text) if end is None else end
        self.notices: list[ScriptNotice] = []

    # tokens

    def skip_blanks(self) -> None:
        while self.pos < self.end:
            if self.text[self.pos].isspace():
                self.pos += 1
            elif self.text.startswith("//", self.pos):
                newline = self.text.find("\n", self.pos, self.end)
                self.pos = self.end if newline < 0 else newline + 1
            elif self.text.startswith("/*", self.pos):
                close = self.text.find("*/", self.pos + 2, self.end)
                if close < 0:
                    raise self.source.error(self.pos, "unterminated /* comment")
                self.pos = close + 2
            else:
                return

    def peek(self) -> str:
        self.skip_blanks()
        return self.text[self.pos] if self.pos < self.end else ""

    def found(self) -> str:
        if self.pos >= self.end:
            return "the end of the script"
        return repr(self.text[self.pos : self.pos + 20].split("\n")[0])

    def expect(self, char: str, what: str) -> None:
        if self.peek() != char:
            raise self.source.error(self.pos, f"expected {what}, found {self.found()}")
        self.pos += 1

    # grammar

    def parse_expression(self) -> Condition:
        self.skip_blanks()
        line = self.source.position(self.pos)[0]
        operands = [self.parse_and()]
        while self.peek() == "+":
            self.pos += 1
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else Or(tuple(operands), line)

    def parse_and(self) -> Condition:
        self.skip_blanks()
        line = self.source.position(self.pos)[0]
        operands = [self.parse_unary()]
        while self.peek() == "*":
            self.pos += 1
            operands.append(self.parse_unary())
        return operands[0] if len(operands) == 1 else And(tuple(operands), line)

    def parse_unary(self) -> Condition:
        if self.peek() == "!":
            line = self.source.position(self.pos)[0]
            self.pos += 1
            return Not(self.parse_unary(), line)
        return self.parse_primary()

    def parse_primary(self) -> Condition:
        char = self.peek()
        if char == "(":
            self.pos += 1
            inner = self.parse_expression()
            self.expect(")", "'+', '*' or ')'")
            return inner
        if char == "[" or char.isalpha():
            return self.parse_term()
        raise self.source.error(self.pos, f"expected a term, '(' or '!', found {self.found()}")

    def parse_term(self) -> Condition:
        start = self.pos
        line, column = self.source.position(start)
        constant = re.compile(r"(true|false)\.").match(self.text, self.pos, self.end)
        if constant:
            self.pos = constant.end()
            return Constant(constant.group(1) == "true", line)
        path = self.parse_path()
        self.expect(".", f"'.' and a method after {path.text}")
        self.skip_blanks()
        method_match = _NAME.match(self.text, self.pos, self.end)
        if not method_match:
            raise self.source.error(self.pos, f"expected a method name after {path.text}., found {self.found()}")
        method = method_match.group()
        if method not in METHODS:
            raise self.source.error(self.pos, f"unknown method {method!r} (known: {', '.join(METHODS)})")
        self.pos = method_match.end()
        self.expect("(", f"'(' after {method}")
        self.skip_blanks()
        argument_at = self.pos
        argument = self.parse_string()
        self.expect(")", f"')' after the argument of {method}")
        try:
            test = METHODS[method](argument)
        except ValueError as exc:
            raise self.source.error(argument_at, str(exc)) from exc
        return Term(path, method, argument, line, column, test)

    def parse_string(self) -> str:
        if self.peek() != '"':
            raise self.source.error(self.pos, f'expected a "quoted string" argument, found {self.found()}')
        close = self.text.find('"', self.pos + 1, self.end)
        newline = self.text.find("\n", self.pos + 1, self.end)
        if close < 0 or (0 <= newline < close):
            raise self.source.error(self.pos, "unterminated string (a string ends on its line with a double quote)")
        value = self.text[self.pos + 1 : close]
        self.pos = close + 1
        return value

    def parse_path(self) -> ElementPath:
        start = self.pos
        refs = [self.parse_element()]
        while self.text.startswith("::", self.pos):
            self.pos += 2
            refs.append(self.parse_element())
        path = ElementPath(tuple(refs), self.text[start : self.pos])
        self.check_sequence_chain(path, start)
        return path

    def parse_element(self) -> ElementRef:
        at = self.pos
        if self.text.startswith("[", at):
            for pattern, build in ((_TAG, self.tag_ref), (_PRIVATE_TAG, self.private_ref)):
                match = pattern.match(self.text, at, self.end)
                if match:
                    self.pos = match.end()
                    return build(match, at)
            raise self.source.error(
                at, f"expected a tag [gggg,eeee] (eight hex digits, no spaces) or [gggg[creator]ee], found {self.found()}"
            )
        match = _NAME.match(self.text, at, self.end)
        if not match:
            raise self.source.error(at, f"expected a DICOM keyword or [gggg,eeee], found {self.found()}")
        name = match.group()
        if name in ("true", "false"):
            raise self.source.error(at, f"expected '{name}.' (the constant ends with a period), found {self.found()}")
        tag = tag_for_name(name)
        if tag is None:
            hint = get_close_matches(name, known_names(), n=1)
            suggestion = f"; did you mean {hint[0]}?" if hint else ""
            raise self.source.error(at, f"unknown DICOM keyword {name!r}{suggestion}")
        self.pos = match.end()
        return TagRef(tag)

    def tag_ref(self, match: re.Match[str], at: int) -> ElementRef:
        tag = int(match.group(1) + match.group(2), 16)
        if (tag >> 16) % 2 == 0 and dictionary_vr(tag) is None:
            self.notices.append(
                self.source.notice(at, f"{match.group()} is not in the DICOM dictionary; it reads as empty unless present")
            )
        return TagRef(tag)

    def private_ref(self, match: re.Match[str], at: int) -> ElementRef:
        group = int(match.group(1), 16)
        if group % 2 == 0:
            raise self.source.error(at, f"{match.group()} names a creator in an even (standard) group")
        return PrivateRef(group, match.group(2).strip(), int(match.group(3), 16))

    def check_sequence_chain(self, path: ElementPath, at: int) -> None:
        """The wiki's rule: every identifier but the last names a sequence, the last does not."""
        for index, ref in enumerate(path.refs):
            if not isinstance(ref, TagRef):
                continue
            vr = dictionary_vr(ref.tag)
            last = index == len(path.refs) - 1
            if vr is not None and last and vr == "SQ":
                raise self.source.error(at, f"{path.text} ends in a sequence; name an element inside it with ::")
            if vr is not None and not last and vr != "SQ":
                raise self.source.error(at, f"{path.text}: only a sequence may be followed by ::")


def parse_condition(text: str, path: str | Path = "<script>") -> Condition:
    """Parse a complete condition (the whole text must be one expression)."""
    return parse_whole_condition(text, path)[0]


def parse_whole_condition(text: str, path: str | Path = "<script>") -> tuple[Condition, tuple]:
    """The condition the whole text forms, and the notices about tolerated constructs."""
    source = SourceText(text, path)
    parser = ConditionParser(source)
    if not parser.peek():
        raise source.error(parser.pos, "expected an expression, found an empty script")
    condition = parser.parse_expression()
    if parser.peek():
        raise source.error(parser.pos, f"expected '+', '*' or the end of the script, found {parser.found()}")
    return condition, tuple(parser.notices)
