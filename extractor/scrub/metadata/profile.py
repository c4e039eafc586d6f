"""De-identification profiles: TOML files, validated on load.

A profile says how the metadata of a DICOM instance is de-identified. It starts from the
PS3.15 Basic Application Level Confidentiality Profile (``base = "basic"``) or from an
allowlist (``base = "allowlist"``: only listed attributes survive, and those that do are
still handled by the basic profile's rules), turns on PS3.15 options, and overrides single
attributes. Profiles are files (versioned, reviewed), never code. The shipped ones live in
``extractor/scrub/profiles/``; ``pre-irb.toml`` documents every key.

    name = "my-study"                       # required: [A-Za-z0-9._-]+
    description = "..."
    base = "basic"                          # "basic" | "allowlist"
    options = ["clean_descriptors", ...]    # friendly names or the Table E.1-1 column names
    method = ["imgomop my-study", "..."]   # DeidentificationMethod (LO values, <= 64 characters each)
    unknown_public = "remove"               # standard-group attributes pydicom does not know: remove | keep
    hash_unlisted_uids = true               # UI attributes not in Table E.1-1 (outside the DICOM root) are hashed
    dates_by_vr = true                      # DA/DT/TM attributes not in Table E.1-1 follow [dates] too

    [dates]
    mode = "shift"                          # shift | remove | keep_year | keep
    times = "keep"                          # keep | remove (times of day; a shift is in whole days)

    [combinations]                          # how Table E.1-1 combined actions resolve (defaults in confidentiality.py)
    "X/D" = "X"

    [attributes]                            # keyword or (gggg,eeee) -> action
    IconImageSequence = "remove"
    AccessionNumber = { action = "replace", value = "{param.AccessionNumber}", fallback_action = "hash_text", domain = "accession" }
    PatientName = { action = "replace", value = "{param.PatientName}", fallback = "ANONYMIZED" }

    [allowlist]                             # only with base = "allowlist"
    attributes = ["SOPClassUID", ...]       # for every modality
    [allowlist.CT]                          # extra attributes for one modality (the table name)...
    attributes = ["KVP", ...]
    [allowlist.CR_DX]                       # ...or for the modalities it lists
    modalities = ["CR", "DX"]
    attributes = [...]

    [[safe_private]]                        # kept only with the retain_safe_private option
    creator = "GEMS_ACQU_01"
    tag = "(0019,xx23)"
    name = "Table Speed"                    # documentation only

Actions: remove, empty, keep, dummy, hash_uid, hash_text (domain "accession" | "text"),
shift_date, redact (two-stage redaction, deid_sql/SPEC.md 6), clean (the table's C: redact
text, clean sequences recursively, remove what cannot be cleaned), replace (``value`` with
``{param.Name}`` placeholders filled from the per-study parameters; ``fallback`` (a literal)
or ``fallback_action`` when a parameter is missing, else the attribute is emptied;
``insert = true`` adds the attribute when the instance lacks it). The PS3.15 letters X Z K D
U C are accepted as aliases of remove, empty, keep, dummy, hash_uid, clean.

Every problem is reported with the file, the line and what to fix (``ProfileError``).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pydicom.datadict import (
    RepeatersDictionary,
    dictionary_VR,
    keyword_dict,
    repeater_has_keyword,
)

from extractor.scrub.metadata.confidentiality import (
    BASIC_PROFILE_CODE,
    CLEAN_PIXEL_DATA_CODE,
    COMBINED_ACTIONS,
    DEFAULT_COMBINATIONS,
    OPTION_CODES,
    OPTION_COLUMNS,
    OPTION_NAMES,
    TagPattern,
    format_tag,
    parse_tag_pattern,
)

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"

ACTIONS = frozenset(
    {"remove", "empty", "keep", "dummy", "hash_uid", "hash_text", "shift_date", "redact", "replace", "clean"}
)
ACTION_ALIASES = {"X": "remove", "Z": "empty", "K": "keep", "D": "dummy", "U": "hash_uid", "C": "clean"}
FALLBACK_ACTIONS = ACTIONS - {"replace"}
HASH_TEXT_DOMAINS = frozenset({"accession", "text"})
DATE_MODES = ("shift", "remove", "keep_year", "keep")
TIME_MODES = ("keep", "remove")
BASES = ("basic", "allowlist")

TEXT_VRS = frozenset({"AE", "AS", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})
STRING_VRS = TEXT_VRS | frozenset({"DA", "DT", "TM", "DS", "IS", "UI", "UR"})
INT_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV"})
FLOAT_VRS = frozenset({"FL", "FD"})

_TOP_KEYS = {
    "name", "description", "version", "base", "options", "method", "unknown_public",
    "hash_unlisted_uids", "dates_by_vr", "dates", "combinations", "attributes", "allowlist", "safe_private",
}
_RULE_KEYS = {"action", "value", "fallback", "fallback_action", "domain", "insert"}
_NAME = re.compile(r"[A-Za-z0-9._-]+")
_MODALITY = re.compile(r"[A-Z0-9_]{1,16}")
_PARAM = re.compile(r"\{param\.([A-Za-z_][A-Za-z0-9_]*)\}")
_PRIVATE_TAG = re.compile(r"^\(?\s*([0-9A-Fa-f]{4})\s*,\s*[xX]{2}([0-9A-Fa-f]{2})\s*\)?$")


class ProfileError(ValueError):
    """A profile file that cannot be used. ``issues`` holds (line or None, problem) pairs."""

    def __init__(self, source: str, issues: list[tuple[int | None, str]]):
        self.source = source
        self.issues = issues
        lines = [f"{source}:{line}: {problem}" if line else f"{source}: {problem}" for line, problem in issues]
        super().__init__("\n".join(lines))


# --- the profile --------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeRule:
    """One [attributes] entry, resolved."""

    key: str  # as written in the file
    pattern: TagPattern  # exact tag or a range such as (60XX,3000)
    action: str
    template: tuple[tuple[str, bool], ...] | None = None  # replace: (text, is_parameter) parts
    literal: int | float | None = None  # replace with a number (binary numeric VRs)
    fallback: str | None = None
    fallback_action: str | None = None
    domain: str | None = None
    insert: bool = False
    vr: str | None = None  # the dictionary VR of an exact tag

    @property
    def tag(self) -> int | None:
        return self.pattern.value if self.pattern.is_exact else None

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(text for text, is_param in (self.template or ()) if is_param)


@dataclass(frozen=True)
class SafePrivate:
    group: int
    creator: str
    element: int  # the low byte: (gggg,xxEE)
    name: str = ""


@dataclass(frozen=True)
class Profile:
    name: str
    source: str
    description: str = ""
    version: str = ""
    base: str = "basic"
    options: tuple[str, ...] = ()  # Table E.1-1 option columns, including the date option [dates] implies
    dates: str = "remove"
    times: str = "keep"
    method: tuple[str, ...] = ()
    unknown_public: str = "remove"
    hash_unlisted_uids: bool = True
    dates_by_vr: bool = True
    combinations: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_COMBINATIONS))
    attributes: tuple[AttributeRule, ...] = ()
    allowlist: frozenset[int] = frozenset()
    allowlist_by_modality: Mapping[str, frozenset[int]] = field(default_factory=dict)
    safe_private: tuple[SafePrivate, ...] = ()

    def method_codes(self, pixels_cleaned: bool = False) -> list[tuple[str, str]]:
        """(code value, code meaning) for DeidentificationMethodCodeSequence (DCM, CID 7050)."""
        codes = [BASIC_PROFILE_CODE]
        if pixels_cleaned:
            codes.append(CLEAN_PIXEL_DATA_CODE)
        codes.extend(OPTION_CODES[c] for c in OPTION_COLUMNS if c in self.options)
        return sorted(codes)

    def allowed_tags(self, modality: str | None) -> frozenset[int]:
        extra = self.allowlist_by_modality.get((modality or "").strip().upper(), frozenset())
        return self.allowlist | extra

    @property
    def compiled(self):  # -> rules.CompiledProfile
        from extractor.scrub.metadata.rules import compile_profile

        cached = self.__dict__.get("_compiled")
        if cached is None:
            cached = compile_profile(self)
            object.__setattr__(self, "_compiled", cached)
        return cached


# --- loading ------------------------------------------------------------------------------


def load_profile(path: Path | str) -> Profile:
    """Read and validate a profile file; ProfileError names the file, the line and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(str(path), [(None, "profile file not found")]) from None
    except UnicodeDecodeError as exc:
        raise ProfileError(str(path), [(None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    return parse_profile(text, str(path))


def shipped_profile(name: str) -> Profile:
    """One of the profiles in extractor/scrub/profiles (by file stem, e.g. "pre-irb")."""
    path = PROFILES_DIR / f"{name}.toml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))
        raise ProfileError(str(path), [(None, f"no shipped profile {name!r}; shipped: {names}")])
    return load_profile(path)


def shipped_profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def parse_profile(text: str, source: str = "<profile>") -> Profile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        line = int(m.group(1)) if m else (len(text.splitlines()) if "end of document" in str(exc) else None)
        raise ProfileError(source, [(line, f"not valid TOML: {exc}")]) from None
    return _Validator(text, source).profile(data)


class _Validator:
    def __init__(self, text: str, source: str):
        self.source = source
        self.locate = _Locator(text)
        self.issues: list[tuple[int | None, str]] = []

    def error(self, path: tuple, problem: str, needle: str | None = None) -> None:
        self.issues.append((self.locate(path, needle), problem))

    # --- top level ---
    def profile(self, data: dict[str, Any]) -> Profile:
        for key in data:
            if key not in _TOP_KEYS:
                self.error((key,), f"unknown key {key!r}; known keys: {', '.join(sorted(_TOP_KEYS))}")
        name = self.string(data, ("name",), required=True) or "unnamed"
        if "name" in data and isinstance(data["name"], str) and not _NAME.fullmatch(data["name"]):
            self.error(("name",), f"bad name {data['name']!r}: use letters, digits, '.', '_' and '-'")
        description = self.string(data, ("description",)) or ""
        version = data.get("version", "")
        if not isinstance(version, (str, int)):
            self.error(("version",), f"version must be a string or an integer, not {_type(version)}")
            version = ""
        base = self.choice(data, ("base",), BASES, "basic")
        options = self.options(data)
        dates, times, options = self.dates(data, options)
        method = self.method(data, name)
        unknown_public = self.choice(data, ("unknown_public",), ("remove", "keep"), "remove")
        hash_unlisted = self.boolean(data, ("hash_unlisted_uids",), True)
        dates_by_vr = self.boolean(data, ("dates_by_vr",), True)
        combinations = self.combinations(data)
        attributes = self.attributes(data)
        allowlist, by_modality = self.allowlists(data, base)
        safe_private = self.safe_private(data)
        if safe_private and "rtnSafePrivOpt" not in options:
            self.error(("safe_private",), "[[safe_private]] entries need the option retain_safe_private (else every private attribute is removed)")
        if self.issues:
            raise ProfileError(self.source, sorted(self.issues, key=lambda i: (i[0] or 0)))
        return Profile(
            name=name,
            source=self.source,
            description=description,
            version=str(version),
            base=base,
            options=options,
            dates=dates,
            times=times,
            method=method,
            unknown_public=unknown_public,
            hash_unlisted_uids=hash_unlisted,
            dates_by_vr=dates_by_vr,
            combinations=combinations,
            attributes=attributes,
            allowlist=allowlist,
            allowlist_by_modality=by_modality,
            safe_private=safe_private,
        )

    # --- scalars ---
    def string(self, table: dict, path: tuple, required: bool = False) -> str | None:
        key = path[-1]
        if key not in table:
            if required:
                self.error(path[:-1] or (key,), f"missing required key {key!r}")
            return None
        value = table[key]
        if not isinstance(value, str):
            self.error(path, f"{key} must be a string, not {_type(value)}")
            return None
        return value

    def choice(self, table: dict, path: tuple, choices: tuple[str, ...], default: str) -> str:
        key = path[-1]
        if key not in table:
            return default
        value = table[key]
        if value not in choices:
            self.error(path, f"{key} must be one of {', '.join(repr(c) for c in choices)}, not {value!r}")
            return default
        return value

    def boolean(self, table: dict, path: tuple, default: bool) -> bool:
        key = path[-1]
        if key not in table:
            return default
        value = table[key]
        if not isinstance(value, bool):
            self.error(path, f"{key} must be true or false, not {_type(value)}")
            return default
        return value

    # --- options and dates ---
    def options(self, data: dict) -> tuple[str, ...]:
        raw = data.get("options", [])
        if not isinstance(raw, list):
            self.error(("options",), f"options must be a list of option names, not {_type(raw)}")
            return ()
        cols: list[str] = []
        for item in raw:
            col = OPTION_NAMES.get(item) if isinstance(item, str) else None
            if col is None and item in OPTION_COLUMNS:
                col = item
            if col is None:
                self.error(("options",), f"unknown option {item!r}; known: {', '.join(OPTION_NAMES)}", needle=str(item))
                continue
            if col not in cols:
                cols.append(col)
        return tuple(cols)

    def dates(self, data: dict, options: tuple[str, ...]) -> tuple[str, str, tuple[str, ...]]:
        table = data.get("dates", {})
        if not isinstance(table, dict):
            self.error(("dates",), f"[dates] must be a table, not {_type(table)}")
            table = {}
        for key in table:
            if key not in ("mode", "times"):
                self.error(("dates", key), f"unknown key {key!r} in [dates]; known: mode, times")
        full = "rtnLongFullDatesOpt" in options
        modified = "rtnLongModifDatesOpt" in options
        if full and modified:
            self.error(("options",), "retain_longitudinal_full_dates and retain_longitudinal_modified_dates exclude each other")
        implied = "keep" if full else "shift" if modified else "remove"
        mode = self.choice(table, ("dates", "mode"), DATE_MODES, implied)
        times = self.choice(table, ("dates", "times"), TIME_MODES, "keep")
        if "mode" in table and mode in DATE_MODES:
            if full and mode != "keep":
                self.error(("dates", "mode"), f"dates mode {mode!r} contradicts the option retain_longitudinal_full_dates (use mode = \"keep\")")
            if modified and mode not in ("shift", "keep_year"):
                self.error(("dates", "mode"), f"dates mode {mode!r} contradicts the option retain_longitudinal_modified_dates (use \"shift\" or \"keep_year\")")
        opts = [o for o in options if o not in ("rtnLongFullDatesOpt", "rtnLongModifDatesOpt")]
        if mode == "keep":
            opts.append("rtnLongFullDatesOpt")
        elif mode in ("shift", "keep_year"):
            opts.append("rtnLongModifDatesOpt")
        return mode, times, tuple(c for c in OPTION_COLUMNS if c in opts)

    def method(self, data: dict, name: str) -> tuple[str, ...]:
        raw = data.get("method", [f"imgomop {name}"])
        values = [raw] if isinstance(raw, str) else raw
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            self.error(("method",), "method must be a string or a non-empty list of strings (DeidentificationMethod)")
            return (f"imgomop {name}",)
        for v in values:
            if len(v) > 64 or "\\" in v or not v.isascii():
                self.error(("method",), f"method value {v[:70]!r}: each value is an LO: at most 64 ASCII characters, no backslash", needle=v)
        return tuple(values)

    def combinations(self, data: dict) -> dict[str, str]:
        table = data.get("combinations", {})
        result = dict(DEFAULT_COMBINATIONS)
        if not isinstance(table, dict):
            self.error(("combinations",), f"[combinations] must be a table, not {_type(table)}")
            return result
        for combo, choice in table.items():
            if combo not in COMBINED_ACTIONS:
                self.error(("combinations", combo), f"unknown combined action {combo!r}; known: {', '.join(sorted(COMBINED_ACTIONS))}")
                continue
            allowed = combo.replace("*", "").split("/")
            if choice not in allowed:
                self.error(("combinations", combo), f"{combo} can resolve to {' or '.join(allowed)}, not {choice!r}")
                continue
            result[combo] = choice
        return result

    # --- attributes ---
    def resolve_tag(self, key: Any, path: tuple, what: str, needle: str | None = None) -> TagPattern | None:
        if not isinstance(key, str):
            self.error(path, f"{what} must be a keyword or a tag string, not {_type(key)}", needle)
            return None
        if key in keyword_dict:
            return parse_tag_pattern(format_tag(keyword_dict[key]))
        if repeater_has_keyword(key):
            mask = next(m for m, entry in RepeatersDictionary.items() if entry[4] == key)
            return parse_tag_pattern(mask.replace("x", "X"))
        try:
            pattern = parse_tag_pattern(key)
        except ValueError:
            hint = _close_keyword(key)
            self.error(path, f"unknown {what} {key!r}: not a DICOM keyword or tag{hint}", needle)
            return None
        if pattern.private or (pattern.mask >> 16 == 0xFFFF and (pattern.value >> 16) & 1):
            self.error(path, f"{what} {key!r} is a private attribute: private attributes are kept only through [[safe_private]] entries", needle)
            return None
        return pattern

    def attributes(self, data: dict) -> tuple[AttributeRule, ...]:
        table = data.get("attributes", {})
        if not isinstance(table, dict):
            self.error(("attributes",), f"[attributes] must be a table, not {_type(table)}")
            return ()
        rules: list[AttributeRule] = []
        seen: dict[tuple[int, int], str] = {}
        for key, spec in table.items():
            path = ("attributes", key)
            pattern = self.resolve_tag(key, path, "attribute")
            if pattern is None:
                continue
            ident = (pattern.mask, pattern.value)
            if ident in seen:
                self.error(path, f"attribute {key!r} is the same attribute as {seen[ident]!r}")
                continue
            seen[ident] = key
            rule = self.rule(key, pattern, spec, path)
            if rule is not None:
                rules.append(rule)
        return tuple(rules)

    def rule(self, key: str, pattern: TagPattern, spec: Any, path: tuple) -> AttributeRule | None:
        if isinstance(spec, str):
            spec = {"action": spec}
        if not isinstance(spec, dict):
            self.error(path, f"the action for {key} must be an action name or a table such as {{ action = \"replace\", value = \"...\" }}, not {_type(spec)}")
            return None
        for k in spec:
            if k not in _RULE_KEYS:
                self.error(path + (k,), f"unknown key {k!r} in the rule for {key}; known: {', '.join(sorted(_RULE_KEYS))}")
        action = self.action_name(spec.get("action"), path + ("action",), key, ACTIONS)
        if action is None:
            return None
        vr = None
        if pattern.is_exact:
            try:
                vr = dictionary_VR(pattern.value)
            except KeyError:
                vr = None
        ok = self.check_vr(action, vr, key, path, exact=pattern.is_exact)
        template = literal = fallback = fallback_action = domain = None
        insert = False
        if action == "replace":
            if "value" not in spec:
                self.error(path, f"replace for {key} needs a value (a text with optional {{param.Name}} placeholders)")
                return None
            value = spec["value"]
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                self.error(path + ("value",), f"value for {key} must be a string or a number, not {_type(value)}")
                return None
            if isinstance(value, str):
                template = self.template(value, path + ("value",), key)
                if vr in INT_VRS | FLOAT_VRS:
                    self.error(path + ("value",), f"{key} has VR {vr}: its value must be a number, not a string")
            else:
                if vr is not None and vr not in INT_VRS | FLOAT_VRS | {"IS", "DS"}:
                    self.error(path + ("value",), f"{key} has VR {vr}: its value must be a string, not a number")
                if vr in INT_VRS and not isinstance(value, int):
                    self.error(path + ("value",), f"{key} has VR {vr}: its value must be an integer")
                literal = value
                if vr in ("IS", "DS"):
                    template, literal = ((str(value), False),), None
            if "fallback" in spec and "fallback_action" in spec:
                self.error(path, f"give either fallback (a literal) or fallback_action for {key}, not both")
            if "fallback" in spec:
                fallback = spec["fallback"]
                if not isinstance(fallback, str):
                    self.error(path + ("fallback",), f"fallback for {key} must be a string, not {_type(fallback)}")
                    fallback = None
            if "fallback_action" in spec:
                fallback_action = self.action_name(spec["fallback_action"], path + ("fallback_action",), key, FALLBACK_ACTIONS)
                if fallback_action is not None:
                    self.check_vr(fallback_action, vr, key, path + ("fallback_action",), exact=pattern.is_exact)
            if "insert" in spec:
                insert = spec["insert"]
                if not isinstance(insert, bool):
                    self.error(path + ("insert",), f"insert for {key} must be true or false")
                    insert = False
                elif insert and not pattern.is_exact:
                    self.error(path + ("insert",), f"insert needs a single attribute, not the range {key}")
        else:
            for k in ("value", "fallback", "fallback_action", "insert"):
                if k in spec:
                    self.error(path + (k,), f"{k} only goes with action = \"replace\" (the action for {key} is {action!r})")
        if action == "hash_text" or fallback_action == "hash_text":
            domain = spec.get("domain", "text")
            if domain not in HASH_TEXT_DOMAINS:
                self.error(path + ("domain",), f"hash_text domain for {key} must be one of {', '.join(sorted(HASH_TEXT_DOMAINS))}, not {domain!r}")
                domain = None
        elif "domain" in spec:
            self.error(path + ("domain",), f"domain only goes with hash_text (the action for {key} is {action!r})")
        if not ok:
            return None
        return AttributeRule(key, pattern, action, template, literal, fallback, fallback_action, domain, insert, vr)

    def action_name(self, raw: Any, path: tuple, key: str, allowed: frozenset[str]) -> str | None:
        if raw is None:
            self.error(path[:-1], f"the rule for {key} needs an action")
            return None
        name = ACTION_ALIASES.get(raw, raw) if isinstance(raw, str) else raw
        if name not in allowed:
            self.error(path, f"bad action {raw!r} for {key}; use one of {', '.join(sorted(allowed))} (or X, Z, K, D, U, C)")
            return None
        return name

    def check_vr(self, action: str, vr: str | None, key: str, path: tuple, exact: bool) -> bool:
        generic = {"remove", "empty", "keep", "dummy", "clean"}
        if action in generic:
            return True
        if not exact:
            self.error(path, f"action {action!r} needs a single attribute; {key} is a range (use remove, empty, keep, dummy or clean)")
            return False
        if vr is None:
            return True  # group length or an attribute pydicom does not describe: checked when applied
        need = {
            "hash_uid": {"UI"},
            "shift_date": {"DA", "DT"},
            "hash_text": TEXT_VRS - {"AS"},
            "redact": TEXT_VRS - {"AS"},
            "replace": STRING_VRS | INT_VRS | FLOAT_VRS,
        }[action]
        if vr not in need:
            self.error(path, f"action {action!r} does not fit {key} (VR {vr}); it needs VR {' or '.join(sorted(need))}")
            return False
        return True

    def template(self, value: str, path: tuple, key: str) -> tuple[tuple[str, bool], ...]:
        parts: list[tuple[str, bool]] = []
        pos = 0
        buf = ""
        while pos < len(value):
            if value.startswith("{{", pos) or value.startswith("}}", pos):
                buf += value[pos]
                pos += 2
                continue
            ch = value[pos]
            if ch == "{":
                m = _PARAM.match(value, pos)
                if not m:
                    self.error(path, f"bad placeholder in the value for {key}: write {{param.Name}} (letters, digits, _), and {{{{ / }}}} for literal braces")
                    return ()
                if buf:
                    parts.append((buf, False))
                    buf = ""
                parts.append((m.group(1), True))
                pos = m.end()
                continue
            if ch == "}":
                self.error(path, f"unmatched '}}' in the value for {key}: write }}}} for a literal brace")
                return ()
            buf += ch
            pos += 1
        if buf:
            parts.append((buf, False))
        return tuple(parts)

    # --- allowlists and private attributes ---
    def allowlists(self, data: dict, base: str) -> tuple[frozenset[int], dict[str, frozenset[int]]]:
        table = data.get("allowlist")
        if table is None:
            if base == "allowlist":
                self.error(("base",), "base = \"allowlist\" needs an [allowlist] table listing the attributes that survive")
            return frozenset(), {}
        if base != "allowlist":
            self.error(("allowlist",), "[allowlist] lists are used only with base = \"allowlist\"")
        if not isinstance(table, dict):
            self.error(("allowlist",), f"[allowlist] must be a table, not {_type(table)}")
            return frozenset(), {}
        common = self.tag_list(table, ("allowlist",))
        by_modality: dict[str, set[int]] = {}
        for name, sub in table.items():
            if name == "attributes":
                continue
            path = ("allowlist", name)
            if not isinstance(sub, dict):
                self.error(path, f"allowlist key {name!r}: use `attributes = [...]` for every modality, or a table [allowlist.{name}] for one modality")
                continue
            for k in sub:
                if k not in ("attributes", "modalities"):
                    self.error(path + (k,), f"unknown key {k!r} in [allowlist.{name}]; known: attributes, modalities")
            modalities = sub.get("modalities", [name])
            if not isinstance(modalities, list) or not modalities:
                self.error(path + ("modalities",), "modalities must be a non-empty list of modality codes such as [\"CR\", \"DX\"]")
                continue
            tags = self.tag_list(sub, path)
            for modality in modalities:
                if not isinstance(modality, str) or not _MODALITY.fullmatch(modality):
                    self.error(path + ("modalities",), f"bad modality {modality!r}: a DICOM Modality code in capitals, e.g. CT", needle=str(modality))
                    continue
                by_modality.setdefault(modality, set()).update(tags)
        if base == "allowlist" and not common and not by_modality:
            self.error(("allowlist",), "the allowlist is empty: every attribute would be removed")
        return frozenset(common), {m: frozenset(t) for m, t in by_modality.items()}

    def tag_list(self, table: dict, path: tuple) -> set[int]:
        items = table.get("attributes", [])
        if not isinstance(items, list):
            self.error(path + ("attributes",), f"attributes must be a list of keywords or tags, not {_type(items)}")
            return set()
        tags: set[int] = set()
        for item in items:
            pattern = self.resolve_tag(item, path + ("attributes",), "allowlist attribute", needle=str(item))
            if pattern is None:
                continue
            if not pattern.is_exact:
                self.error(path + ("attributes",), f"allowlist entry {item!r} is a range; list single attributes", needle=str(item))
                continue
            tags.add(pattern.value)
        return tags

    def safe_private(self, data: dict) -> tuple[SafePrivate, ...]:
        items = data.get("safe_private", [])
        if not isinstance(items, list):
            self.error(("safe_private",), "safe_private must be an array of tables: [[safe_private]] creator = \"...\" tag = \"(gggg,xxee)\"")
            return ()
        result: list[SafePrivate] = []
        for i, item in enumerate(items):
            path = ("safe_private", i)
            if not isinstance(item, dict):
                self.error(path, "each [[safe_private]] entry must be a table")
                continue
            for k in item:
                if k not in ("creator", "tag", "name", "vr"):
                    self.error(path + (k,), f"unknown key {k!r} in [[safe_private]]; known: creator, tag, name, vr")
            creator, tag = item.get("creator"), item.get("tag")
            if not isinstance(creator, str) or not creator.strip():
                self.error(path, "[[safe_private]] needs creator = \"<private creator>\" (e.g. \"GEMS_ACQU_01\")")
                continue
            m = _PRIVATE_TAG.match(tag) if isinstance(tag, str) else None
            if not m:
                self.error(path + ("tag",), f"bad private tag {tag!r}: write (gggg,xxee) with an odd group, e.g. (0019,xx23)")
                continue
            group = int(m.group(1), 16)
            if not group & 1 or group < 0x0009:
                self.error(path + ("tag",), f"private tag {tag!r} needs an odd group of at least 0009")
                continue
            name = item.get("name", "")
            result.append(SafePrivate(group, creator.strip(), int(m.group(2), 16), name if isinstance(name, str) else ""))
        return tuple(result)


def _type(value: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "a list", dict: "a table"}.get(
        type(value), type(value).__name__
    )


def _close_keyword(key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, keyword_dict.keys(), n=1, cutoff=0.8)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- finding the line of a key ----------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_KEY_LINE = re.compile(rf"^\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=")


def _split_key(text: str) -> tuple[str, ...]:
    parts = re.findall(_KEY_PART, text)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


class _Locator:
    """Line numbers of TOML keys: enough of TOML to point at the offending line."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.keys: dict[tuple, int] = {}
        self.tables: dict[tuple, int] = {}
        header: tuple = ()
        counts: dict[tuple, int] = {}
        for number, line in enumerate(self.lines, start=1):
            m = _HEADER.match(line)
            if m and not _KEY_LINE.match(line):
                name = _split_key(m.group(2))
                if m.group(1) == "[[":
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    header = name + (index,)
                else:
                    header = name
                self.tables.setdefault(header, number)
                continue
            k = _KEY_LINE.match(line)
            if k:
                self.keys.setdefault(header + _split_key(k.group(1)), number)

    def __call__(self, path: tuple, needle: str | None = None) -> int | None:
        path = tuple(path)
        while path:
            line = self.keys.get(path) or self.tables.get(path)
            if line:
                if needle is not None:
                    for offset, text in enumerate(self.lines[line - 1 :]):
                        if f'"{needle}"' in text or f"'{needle}'" in text:
                            return line + offset
                return line
            path = path[:-1]
        return None
