"""The CTP script languages (extractor.scrub.ctp): the Stanford scripts load completely, the condition
language means what the CTP wiki says, and whatever cannot be understood fails at load time."""

from __future__ import annotations

import re
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence

from extractor.scrub.ctp import (
    Rectangle,
    ScriptError,
    element_text,
    load_filter_script,
    load_pixel_script,
    parse_condition,
    parse_filter_script,
    parse_pixel_script,
    translate_java_regex,
)

CTP_SCRIPTS = Path(__file__).resolve().parents[2] / "shared" / "ctp-scripts"
FILTER_SCRIPT = CTP_SCRIPTS / "stanford-filter.script"
PIXEL_SCRIPT = CTP_SCRIPTS / "stanford-scrubber.script"
SAMPLE_CT = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
TERM_PATTERN = re.compile(r"\.\s*([A-Za-z]+)\s*\(\s*\"")


def instance(**attributes: object) -> Dataset:
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def holds(condition: str, ds: Dataset) -> bool:
    return parse_condition(condition).matches(ds)


# --- the Stanford scripts load completely --------------------------------------------------


def test_stanford_filter_loads_with_every_term_understood() -> None:
    script = load_filter_script(FILTER_SCRIPT)
    code = re.sub(r"//[^\n]*", "", FILTER_SCRIPT.read_text())
    written = TERM_PATTERN.findall(code)  # counted independently of the parser
    assert len(written) == 907
    assert sorted(term.method for term in script.terms) == sorted(written)
    assert script.name == "stanford-filter.script"
    # the one construct outside the dictionary: [1018,1018], most likely meant as [0018,1018]
    assert [(n.line, n.message.split()[0]) for n in script.notices] == [(52, "[1018,1018]")]


def test_stanford_pixel_script_loads_every_block_with_its_regions() -> None:
    script = load_pixel_script(PIXEL_SCRIPT)
    text = PIXEL_SCRIPT.read_text()
    assert text.count("{") == text.count("}") == len(script.rules) == 188
    blocks = list(re.finditer(r"\{([^}]*)\}", text))
    assert len(blocks) == len(script.rules)
    for index, (block, rule) in enumerate(zip(blocks, script.rules, strict=True)):
        assert rule.line == text.count("\n", 0, block.start()) + 1
        assert len(list(rule.condition.terms())) == len(TERM_PATTERN.findall(block.group(1)))
        following = text[block.end() : blocks[index + 1].start() if index + 1 < len(blocks) else len(text)]
        written = [tuple(int(n) for n in re.findall(r"\d+", region)) for region in re.findall(r"\([^)]*\)", following)]
        assert [tuple(r) for r in rule.rectangles] == written, f"rule at line {rule.line}"
    assert sum(len(rule.rectangles) for rule in script.rules) == 205


def test_stanford_pixel_script_reports_its_two_irregularities() -> None:
    script = load_pixel_script(PIXEL_SCRIPT)
    assert [(n.line, n.column) for n in script.notices] == [(142, 60), (176, 3)]
    assert "lacks a comma" in script.notices[1].message
    xeleris = next(rule for rule in script.rules if rule.line == 162)
    assert xeleris.rectangles == (Rectangle(0, 0, 550, 50), Rectangle(675, 505, 780, 535))
    with pytest.raises(ScriptError) as error:
        load_pixel_script(PIXEL_SCRIPT, strict=True)
    assert (error.value.line, error.value.column) == (176, 3)


def test_stanford_pixel_rules_carry_their_names() -> None:
    rules = load_pixel_script(PIXEL_SCRIPT).rules
    assert rules[0].name == "stanford-scrubber.script:26"
    assert rules[0].label == "CT Dose Series"
    assert rules[0].regions == (Rectangle(0, 0, 512, 200),)
    assert next(r for r in rules if r.label.startswith("REG-XR03")).rectangles == (Rectangle(0, 2308, 2446, 137),)


def test_the_sample_ct_passes_the_stanford_filter_and_matches_no_pixel_rule() -> None:
    ds = pydicom.dcmread(SAMPLE_CT)
    assert load_filter_script(FILTER_SCRIPT).matches(ds)
    assert load_pixel_script(PIXEL_SCRIPT).regions_for(ds) is None


# --- values as CTP sees them ---------------------------------------------------------------


def test_a_missing_element_is_the_empty_string() -> None:
    ds = instance(Modality="CT")
    assert holds('Manufacturer.equals("")', ds)
    assert holds('[0019,1001].equals("")', ds)
    assert not holds('Manufacturer.contains("GE")', ds)


def test_multiple_values_are_joined_with_backslashes_and_strings_have_no_escapes() -> None:
    ds = instance(ImageType=["ORIGINAL", "PRIMARY", "", "0000"])
    assert element_text(ds["ImageType"]) == "ORIGINAL\\PRIMARY\\\\0000"
    assert holds(r'ImageType.equals("ORIGINAL\PRIMARY\\0000")', ds)
    assert holds(r'ImageType.contains("PRIMARY\\")', ds)
    assert not holds(r'ImageType.equals("ORIGINAL\PRIMARY\0000")', ds)


def test_numbers_compare_as_their_decimal_text() -> None:
    ds = instance(Rows=512, Columns=1024, SliceThickness="2.50", SeriesNumber="12")
    assert holds('Rows.equals("512") * Columns.containsIgnoreCase("102")', ds)
    assert holds('SliceThickness.equals("2.50") * SeriesNumber.equals("12")', ds)


def test_tags_are_eight_hex_digits_in_any_case_and_keywords_resolve_to_the_same_element() -> None:
    ds = instance(SeriesDescription="AW electronic film")
    assert holds('[0008,103e].equals("AW electronic film") * [0008,103E].equals("AW electronic film")', ds)
    assert holds('SeriesDescription.startsWith("AW")', ds)


def test_dcm4che_names_used_by_ctp_scripts_are_understood() -> None:
    ds = instance(SoftwareVersions="LOGIQE9:R6")
    assert holds('SoftwareVersion.startsWith("LOGIQE9") * SoftwareVersions.startsWith("LOGIQE9")', ds)


def test_private_elements_by_tag_and_by_creator() -> None:
    ds = Dataset()
    ds.add_new(0x00190010, "LO", "GEMS_ACQU_01")
    ds.add_new(0x00191002, "SL", 7)
    ds.add_new(0x00291008, "UN", b"SCREEN\x00")
    assert holds('[0019,1002].equals("7") * [0019,0010].equals("GEMS_ACQU_01")', ds)
    assert holds('[0019[GEMS_ACQU_01]02].equals("7")', ds)
    assert holds('[0019[OTHER CREATOR]02].equals("")', ds)
    assert holds('[0029,1008].equals("SCREEN")', ds)


def test_a_sequence_chain_reads_the_first_item() -> None:
    first, second = Dataset(), Dataset()
    first.RegionDataType, second.RegionDataType = 1, 2
    ds = instance(SequenceOfUltrasoundRegions=Sequence([first, second]))
    assert holds('SeqOfUltrasoundRegions::RegionDataType.equals("1")', ds)
    assert holds('[0018,6011]::[0018,6014].equals("1")', ds)
    assert holds('SequenceOfUltrasoundRegions::RegionDataType.equals("")', instance(SequenceOfUltrasoundRegions=Sequence()))
    assert holds('SequenceOfUltrasoundRegions::RegionDataType.equals("")', instance(Modality="US"))


def test_file_meta_elements_are_read_from_the_file_meta() -> None:
    ds = pydicom.dcmread(SAMPLE_CT)
    assert holds('[0002,0010].equals("1.2.840.10008.1.2.1")', ds)


# --- the methods and operators -------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ('Manufacturer.equals("GE MEDICAL SYSTEMS")', True),
        ('Manufacturer.equals("GE Medical Systems")', False),
        ('Manufacturer.equalsIgnoreCase("ge medical systems")', True),
        ('Manufacturer.contains("MEDICAL")', True),
        ('Manufacturer.contains("medical")', False),
        ('Manufacturer.containsIgnoreCase("medical")', True),
        ('Manufacturer.startsWith("GE ")', True),
        ('Manufacturer.startsWithIgnoreCase("ge m")', True),
        ('Manufacturer.endsWith("SYSTEMS")', True),
        ('Manufacturer.endsWithIgnoreCase("systems")', True),
        ('Manufacturer.matches("GE.*")', True),
        ('Manufacturer.matches("GE")', False),  # the whole value must match
        ('SeriesNumber.matches("[1-9]\\d{3,}")', True),
        ('Rows.isLessThan("1024")', True),
        ('Rows.isGreaterThan("1024")', False),
        ('SliceThickness.isGreaterThan("2 mm")', True),  # only digits and periods count
        ('Manufacturer.isLessThan("5")', False),  # not a number: false
        ("true.", True),
        ("false.", False),
    ],
)
def test_methods(term: str, expected: bool) -> None:
    ds = instance(Manufacturer="GE MEDICAL SYSTEMS", SeriesNumber="1001", Rows=512, SliceThickness="2.5")
    assert holds(term, ds) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("true. + false. * false.", True),  # * binds tighter than +
        ("(true. + false.) * false.", False),
        ("!false. * false.", False),  # ! binds tightest
        ("!(false. * false.)", True),
        ("!!true.", True),
        ("false. + false. + true.", True),
        ("true. * true. * false.", False),
    ],
)
def test_operator_precedence(expression: str, expected: bool) -> None:
    assert holds(expression, Dataset()) is expected


def test_comments_and_whitespace_between_tokens() -> None:
    script = parse_filter_script(
        '// a line comment\nModality.equals("CT") /* a block\ncomment */ *\n  ( Rows . equals ( "512" ) // trailing\n )\n'
    )
    assert script.matches(instance(Modality="CT", Rows=512))
    assert not script.matches(instance(Modality="CT", Rows=256))


@pytest.mark.parametrize(
    ("java", "python"),
    [
        (r"[1-9]\d{3,}", r"[1-9]\d{3,}"),
        (r"\QA+B\E.", r"A\+B" + r"[^\n\r\x85\u2028\u2029]"),
        (r"(?<year>\d{4})\k<year>", r"(?P<year>\d{4})(?P=year)"),
        (r"(?<=a)b(?<!c)", r"(?<=a)b(?<!c)"),
        (r"\p{Upper}[\p{Digit}_]\P{Alpha}", r"[A-Z][0-9_][^a-zA-Z]"),
        (r"abc\z", r"abc\Z"),
        (r"(?s)a.b", r"(?s)a.b"),
    ],
)
def test_java_regular_expressions_are_translated(java: str, python: str) -> None:
    assert translate_java_regex(java) == python


def test_java_regex_semantics_ascii_classes_and_full_match() -> None:
    assert holds('Manufacturer.matches("\\w+")', instance(Manufacturer="ACME"))
    assert not holds('Manufacturer.matches("\\w+")', instance(Manufacturer="ÄCME"))  # \w is ASCII in Java
    assert not holds('Manufacturer.matches("A.C")', instance(Manufacturer="A\rC"))  # . stops at \r in Java


# --- what cannot be understood is an error with a position ---------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "says"),
    [
        ('Modality.equals("CT") *\n  Manufacturer.equalz("GE")', 2, 16, "unknown method 'equalz'"),
        ('Modalty.equals("CT")', 1, 1, "did you mean Modality"),
        ('[0008,060].equals("CT")', 1, 1, "eight hex digits"),
        ('[0008, 0060].equals("CT")', 1, 1, "no spaces"),
        ("Modality.equals(CT)", 1, 17, "quoted string"),
        ('Modality.equals("CT)\n+ true.', 1, 17, "unterminated string"),
        ('(Modality.equals("CT")', 1, 23, "expected '+', '*' or ')'"),
        ('Modality.equals("CT") Rows.equals("1")', 1, 23, "expected '+', '*' or the end"),
        ('Modality.equals("CT") +', 1, 24, "expected a term"),
        ("true * false.", 1, 1, "expected 'true.'"),
        ("Modality", 1, 9, "expected '.' and a method"),
        ('Modality::Rows.equals("1")', 1, 1, "only a sequence may be followed by ::"),
        ('SequenceOfUltrasoundRegions.equals("")', 1, 1, "ends in a sequence"),
        ('[0008,0060[X]01].equals("")', 1, 1, "expected a tag"),
        ('Manufacturer.matches("[a-z&&[^e]]")', 1, 22, "intersection"),
        ('Manufacturer.matches("\\p{L}+")', 1, 22, "unsupported property class"),
        ('Manufacturer.matches("(unclosed")', 1, 22, "invalid regular expression"),
        ('Modality.equals("CT") /* never closed', 1, 23, "unterminated /* comment"),
        ("  // only a comment\n", 2, 1, "empty script"),
    ],
)
def test_filter_script_errors_name_file_line_and_column(text: str, line: int, column: int, says: str) -> None:
    with pytest.raises(ScriptError) as error:
        parse_filter_script(text, "site.script")
    assert (error.value.path, error.value.line, error.value.column) == ("site.script", line, column)
    assert says in error.value.message
    assert str(error.value).startswith(f"site.script:{line}:{column}: ")


def test_load_filter_script_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.script"
    path.write_text('Modality.equals("CT")\n*\nRows.isAbout("512")\n')
    with pytest.raises(ScriptError, match=r"broken\.script:3:6: unknown method 'isAbout'"):
        load_filter_script(path)


# --- pixel scripts -------------------------------------------------------------------------

PIXEL_TEXT = """
GE CT dose
  { Modality.equals("CT") * Manufacturer.containsIgnoreCase("GE") }
  (0,0,512,110) ( 10 , 20 , 30 , 40 )

Any CT
  { Modality.equals("CT") }
  (0,0,100,10)
"""


def test_pixel_rules_first_match_wins() -> None:
    script = parse_pixel_script(PIXEL_TEXT, "site-pixels.script")
    rule = script.regions_for(instance(Modality="CT", Manufacturer="GE MEDICAL SYSTEMS"))
    assert rule is not None and rule.index == 1 and rule.line == 3 and rule.label == "GE CT dose"
    assert rule.rectangles == (Rectangle(0, 0, 512, 110), Rectangle(10, 20, 30, 40))
    assert rule.name == "site-pixels.script:3"
    assert script.regions_for(instance(Modality="CT", Manufacturer="SIEMENS")).label == "Any CT"
    assert script.regions_for(instance(Modality="MR")) is None


@pytest.mark.parametrize(
    ("text", "line", "column", "says"),
    [
        ('{ Modality.equals("CT") }\n(0,0,512)', 2, 1, "four non-negative integers"),
        ('{ Modality.equals("CT") }\n(0,0,512,x)', 2, 1, "four non-negative integers"),
        ('{ Modality.equals("CT") }\n(-5,0,512,10)', 2, 1, "four non-negative integers"),
        ('{ Modality.equals("CT") }\n(0,0,0,10)', 2, 1, "no area"),
        ('{ Modality.equals("CT") }\n(0,0,512,10', 2, 1, "unterminated region"),
        ('{ Modality.equals("CT") }\nno regions here\n{ true. } (0,0,1,1)', 1, 1, "at least one region"),
        ("{ }\n(0,0,1,1)", 1, 3, "empty signature"),
        ('{ Modality.equals("CT")\n(0,0,1,1)', 2, 1, "'}' closing the signature"),
        ('{ Modality.equalz("CT") }\n(0,0,1,1)', 1, 12, "unknown method 'equalz'"),
        ("Header (draft)\n{ true. }\n(0,0,1,1)", 1, 8, "region before the first signature"),
        ("{ true. }\n(0,0,1,1)\nstray } here", 3, 7, "unbalanced '}'"),
    ],
)
def test_pixel_script_errors_name_line_and_column(text: str, line: int, column: int, says: str) -> None:
    with pytest.raises(ScriptError) as error:
        parse_pixel_script(text, "site-pixels.script")
    assert (error.value.line, error.value.column) == (line, column)
    assert says in error.value.message


def test_a_region_missing_a_comma_is_a_notice_or_in_strict_mode_an_error() -> None:
    text = "{ true. }\n(1 2, 3, 4)"
    script = parse_pixel_script(text, "p.script")
    assert script.rules[0].rectangles == (Rectangle(1, 2, 3, 4),)
    assert [(n.line, n.column) for n in script.notices] == [(2, 1)]
    with pytest.raises(ScriptError, match="four non-negative integers"):
        parse_pixel_script(text, "p.script", strict=True)


def test_commentary_may_hold_slashes_and_stars_but_a_region_on_a_slash_line_still_counts() -> None:
    script = parse_pixel_script("// a note * with / marks\n{ true. }\n// (1,1,2,2) is not commented out\n", "p.script")
    assert script.rules[0].rectangles == (Rectangle(1, 1, 2, 2),)


def test_rectangles_clip_to_the_image() -> None:
    assert Rectangle(0, 0, 10000, 104).clipped(columns=2048, rows=2500) == Rectangle(0, 0, 2048, 104)
    assert Rectangle(675, 505, 780, 535).clipped(columns=328, rows=541) is None
    assert str(Rectangle(0, 0, 512, 110)) == "0,0,512,110"
    assert list(Rectangle(1, 2, 3, 4)) == [1, 2, 3, 4]


def test_an_unclosed_region_before_the_next_block_is_reported_where_it_opens() -> None:
    with pytest.raises(ScriptError) as error:
        parse_pixel_script('{ true. }\n(0,0,5,5\n{ Modality.equals("CT") }\n(0,0,1,1)', "p.script")
    assert (error.value.line, error.value.column) == (2, 1)
    assert "unterminated region" in error.value.message
