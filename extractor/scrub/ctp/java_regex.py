"""Translate a java.util.regex pattern (the `matches` method of the CTP scripts) to Python `re`.

CTP evaluates `matches` with Java's String.matches: the whole value must match, \\d \\w \\s \\b and
case-insensitive matching are ASCII-only, and `.` stops at any line terminator. Constructs that
mean something different in Python are rewritten; constructs Python cannot express are refused
(ValueError) rather than approximated, so a script never silently tests something else.
"""

from __future__ import annotations

import re

# Java's POSIX character classes (US-ASCII only by default), as the inside of a Python class
_POSIX_CLASSES = {
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": "\\x00-\\x7f",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": "!-/:-@\\[-`{-~",
    "Graph": "!-~",
    "Print": " -~",
    "Blank": " \\t",
    "Cntrl": "\\x00-\\x1f\\x7f",
    "XDigit": "0-9a-fA-F",
    "Space": " \\t\\n\\x0b\\f\\r",
}
_JAVA_DOT = "[^\\n\\r\\x85\\u2028\\u2029]"  # Java's `.` without DOTALL: any char but a line terminator
_REFUSED_ESCAPES = {
    "h": "\\h (horizontal whitespace)",
    "H": "\\H",
    "v": "\\v (vertical whitespace in Java, a single VT in Python)",
    "V": "\\V",
    "R": "\\R (linebreak matcher)",
    "X": "\\X (grapheme cluster)",
    "G": "\\G (end of previous match)",
}
_INLINE_FLAGS = re.compile(r"\(\?([a-zA-Z-]+)[:)]")


def compile_java_regex(pattern: str) -> re.Pattern[str]:
    """Compile a Java regular expression for full-string matching; ValueError if it cannot be translated."""
    translated = translate_java_regex(pattern)
    try:
        return re.compile(translated, re.ASCII)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc


def translate_java_regex(pattern: str) -> str:
    dotall = any("s" in flags.split("-")[0] for flags in _INLINE_FLAGS.findall(pattern))
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            piece, i = _escape(pattern, i, in_class)
            out.append(piece)
            continue
        if in_class:
            if char == "[":
                raise ValueError(f"nested character classes (Java union) are not supported: {pattern!r}")
            if pattern.startswith("&&", i):
                raise ValueError(f"character class intersection (&&) is not supported: {pattern!r}")
            if char == "]":
                in_class = False
            out.append(char)
            i += 1
            continue
        if char == "[":
            in_class = True
            out.append(char)
            i += 1
            # a leading ] (or ^]) is a literal in both dialects
            for lead in ("^", "]"):
                if i < len(pattern) and pattern[i] == lead:
                    out.append("\\]" if lead == "]" else lead)
                    i += 1
            continue
        if char == "." and not dotall:
            out.append(_JAVA_DOT)
            i += 1
            continue
        if pattern.startswith("(?<", i) and i + 3 < len(pattern) and pattern[i + 3] not in "=!":
            out.append("(?P<")  # named group; (?<= and (?<! are lookbehinds in both dialects
            i += 3
            continue
        out.append(char)
        i += 1
    if in_class:
        raise ValueError(f"unterminated character class: {pattern!r}")
    return "".join(out)


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """Translate the escape sequence starting at pattern[i] (a backslash); return it and the next index."""
    if i + 1 >= len(pattern):
        raise ValueError(f"pattern ends with a lone backslash: {pattern!r}")
    code = pattern[i + 1]
    if code == "Q":
        end = pattern.find("\\E", i + 2)
        literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
        return re.escape(literal), len(pattern) if end < 0 else end + 2
    if code in _REFUSED_ESCAPES:
        raise ValueError(f"{_REFUSED_ESCAPES[code]} has no Python equivalent: {pattern!r}")
    if code in "pP":
        return _posix_class(pattern, i, in_class)
    if code == "z":
        return "\\Z", i + 2
    if code == "Z":
        return "(?=[\\n\\r\\x85\\u2028\\u2029]?\\Z)", i + 2
    if code == "e":
        return "\\x1b", i + 2
    if code == "c" and i + 2 < len(pattern):
        return f"\\x{ord(pattern[i + 2]) ^ 64:02x}", i + 3
    if code == "0":
        digits = re.match(r"[0-7]{1,3}", pattern[i + 2 :])
        if not digits:
            raise ValueError(f"\\0 must be followed by octal digits: {pattern!r}")
        value = int(digits.group(), 8)
        if value > 0o377:  # Java reads at most \0377
            digits = re.match(r"[0-7]{1,2}", pattern[i + 2 :])
            value = int(digits.group(), 8)
        return f"\\x{value:02x}", i + 2 + len(digits.group())
    if code == "x" and pattern.startswith("{", i + 2):
        end = pattern.find("}", i + 3)
        if end < 0:
            raise ValueError(f"unterminated \\x{{...}}: {pattern!r}")
        return f"\\U{int(pattern[i + 3 : end], 16):08x}", end + 1
    if code == "k" and pattern.startswith("<", i + 2):
        end = pattern.find(">", i + 3)
        if end < 0:
            raise ValueError(f"unterminated \\k<name>: {pattern!r}")
        return f"(?P={pattern[i + 3 : end]})", end + 1
    return pattern[i : i + 2], i + 2


def _posix_class(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    negated = pattern[i + 1] == "P"
    match = re.match(r"\{(?:Is)?(\w+)\}", pattern[i + 2 :])
    if not match or match.group(1) not in _POSIX_CLASSES:
        raise ValueError(f"unsupported property class {pattern[i : i + 2 + (match.end() if match else 1)]}: {pattern!r}")
    body = _POSIX_CLASSES[match.group(1)]
    end = i + 2 + match.end()
    if in_class:
        if negated:
            raise ValueError(f"a negated property class inside [...] is not supported: {pattern!r}")
        return body, end
    return (f"[^{body}]" if negated else f"[{body}]"), end
