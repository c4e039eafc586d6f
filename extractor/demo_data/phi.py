"""Invented identities: patients and clinicians with names, MRNs, addresses and phone numbers.

Small built-in lists, no real people. A few patients get names in other character sets
(ISO_IR 100, ISO 2022 IR 87, GB18030) because real archives carry them and harvesters break on them.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .catalog import MERGED_SITE_MRN_PREFIX

FAMILY_NAMES = tuple(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
    "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
    "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Okafor Kowalski Novak Lindqvist Haddad "
    "Patel Kim".split()
)
GIVEN_FEMALE = tuple(
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty Margaret "
    "Sandra Ashley Emily Donna Michelle Carol Amanda Melissa Deborah Stephanie Rebecca Laura Amara "
    "Ingrid".split()
)
GIVEN_MALE = tuple(
    "James Robert John Michael David William Richard Joseph Thomas Charles Christopher Daniel Matthew "
    "Anthony Mark Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy Ronald Tomasz "
    "Omar".split()
)
MIDDLE_INITIALS = "ABCDEFGHJKLMNPRSTW"
STREETS = (
    "Maple Avenue",
    "Oak Street",
    "Cedar Lane",
    "Elm Court",
    "Pine Ridge Road",
    "Lakeview Drive",
    "Birch Boulevard",
    "Willow Way",
    "Hillcrest Road",
    "Sunset Terrace",
    "Mill Pond Road",
    "Chestnut Street",
    "River Road",
    "Meadow Lane",
    "Orchard Drive",
)
CITIES = (
    ("Springfield", "IL", "62704"),
    ("Lakeview", "OH", "44095"),
    ("Fairmont", "WV", "26554"),
    ("Port Ellis", "MI", "49001"),
    ("Greenville", "SC", "29601"),
    ("Riverton", "WY", "82501"),
    ("Ashford", "CT", "06278"),
    ("Milltown", "NJ", "08850"),
)
AREA_CODES = ("217", "440", "304", "231", "864", "307")

# (family, given, sex, family in ASCII, given in ASCII)
LATIN1_NAMES = (
    ("Müller", "Jürgen", "M", "Mueller", "Juergen"),
    ("Lefèvre", "Hélène", "F", "Lefevre", "Helene"),
    ("Gonçalves", "Inês", "F", "Goncalves", "Ines"),
    ("Ångström", "Åke", "M", "Angstrom", "Ake"),
)
# (family romaji, kanji, hiragana, given romaji, kanji, hiragana, sex)
JAPANESE_NAMES = (
    ("Yamada", "山田", "やまだ", "Tarou", "太郎", "たろう", "M"),
    ("Tanaka", "田中", "たなか", "Hanako", "花子", "はなこ", "F"),
)
# (family pinyin, hanzi, given pinyin, hanzi, sex)
CHINESE_NAMES = (
    ("Wang", "王", "XiaoDong", "小东", "M"),
    ("Li", "李", "Mei", "梅", "F"),
)
CHARSET_LATIN1 = ("ISO_IR 100",)
CHARSET_JAPANESE = ("", "ISO 2022 IR 87")
CHARSET_CHINESE = ("GB18030",)


@dataclass(frozen=True)
class Name:
    dicom: str  # the PN value as written, with its ideographic/phonetic groups
    family: str  # natural spelling, for UTF-8 text (notes)
    given: str
    family_ascii: str  # for burned-in pixels, PDFs and ASCII headers
    given_ascii: str
    charset: tuple[str, ...] = ()  # SpecificCharacterSet this name needs

    @property
    def alphabetic(self) -> str:
        return self.dicom.split("=")[0]

    @property
    def display(self) -> str:
        return f"{self.given} {self.family}"

    @property
    def display_ascii(self) -> str:
        return f"{self.given_ascii} {self.family_ascii}"

    @property
    def banner(self) -> str:
        """How modality consoles print a name: 'MUELLER, JUERGEN'."""
        return f"{self.family_ascii.upper()}, {self.given_ascii.upper()}"


@dataclass(frozen=True)
class Patient:
    person_id: int
    sex: str
    birth_date: dt.date
    name: Name
    mrns: tuple[str, ...]  # the main site's MRN first; a second one for merged records
    address: str
    phone: str

    @property
    def charset(self) -> tuple[str, ...]:
        return self.name.charset


@dataclass(frozen=True)
class Clinician:
    name: Name
    npi: str  # a 10-digit provider number


def ascii_name(rng: random.Random, sex: str, uppercase: bool) -> Name:
    family = rng.choice(FAMILY_NAMES)
    given = rng.choice(GIVEN_FEMALE if sex == "F" else GIVEN_MALE)
    middle = rng.choice(MIDDLE_INITIALS)
    dicom = f"{family}^{given}^{middle}"
    return Name(dicom.upper() if uppercase else dicom, family, given, family, given)


def _of_sex(names: tuple[tuple[str, ...], ...], sex: str, sex_column: int, nth: int) -> tuple[str, ...]:
    matching = [entry for entry in names if entry[sex_column] == sex]
    return matching[nth % len(matching)]


def latin1_name(sex: str, nth: int = 0) -> Name:
    family, given, _, family_ascii, given_ascii = _of_sex(LATIN1_NAMES, sex, 2, nth)
    return Name(f"{family}^{given}", family, given, family_ascii, given_ascii, CHARSET_LATIN1)


def japanese_name(sex: str) -> Name:
    family, family_kanji, family_kana, given, given_kanji, given_kana, _ = _of_sex(JAPANESE_NAMES, sex, 6, 0)
    dicom = f"{family}^{given}={family_kanji}^{given_kanji}={family_kana}^{given_kana}"
    return Name(dicom, family_kanji, given_kanji, family, given, CHARSET_JAPANESE)


def chinese_name(sex: str) -> Name:
    family, family_hanzi, given, given_hanzi, _ = _of_sex(CHINESE_NAMES, sex, 4, 0)
    # No trailing '=' for the empty phonetic group: pydicom drops it on reading.
    dicom = f"{family}^{given}={family_hanzi}^{given_hanzi}"
    return Name(dicom, family_hanzi, given_hanzi, family, given, CHARSET_CHINESE)


def address(rng: random.Random) -> str:
    city, state, zip_code = rng.choice(CITIES)
    return f"{rng.randrange(10, 9900)} {rng.choice(STREETS)}, {city}, {state} {zip_code}"


def phone(rng: random.Random) -> str:
    # 555-01xx numbers are reserved for fiction.
    return f"({rng.choice(AREA_CODES)}) 555-01{rng.randrange(0, 100):02d}"


class MrnAllocator:
    """Unique medical record numbers: 8 digits at the main site, 'NG' + 6 digits at the merged one."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def _unique(self, make: Callable[[], str]) -> str:
        while True:
            value = make()
            if value not in self._used:
                self._used.add(value)
                return value

    def main_site(self) -> str:
        return self._unique(lambda: f"{self._rng.randrange(10_000_000, 99_999_999)}")

    def merged_site(self) -> str:
        return self._unique(lambda: f"{MERGED_SITE_MRN_PREFIX}{self._rng.randrange(100_000, 999_999)}")


def special_names(rng: random.Random, sexes: Sequence[str]) -> dict[int, Name]:
    """Which patients (by position) get non-ASCII names: two Latin-1, one Japanese, one Chinese."""
    first, second, third, fourth = rng.sample(range(len(sexes)), 4)
    return {
        first: latin1_name(sexes[first], 0),
        second: latin1_name(sexes[second], 1),
        third: japanese_name(sexes[third]),
        fourth: chinese_name(sexes[fourth]),
    }


def make_patients(
    rng: random.Random,
    persons: Sequence[tuple[int, str, dt.date]],
    two_mrn_person_ids: set[int],
) -> list[Patient]:
    """One identity per (person_id, sex, birth date); persons in two_mrn_person_ids get a second MRN."""
    mrns = MrnAllocator(rng)
    specials = special_names(rng, [sex for _, sex, _ in persons])
    patients = []
    for index, (person_id, sex, birth_date) in enumerate(persons):
        name = specials.get(index) or ascii_name(rng, sex, uppercase=rng.random() < 0.5)
        patient_mrns = (mrns.main_site(),)
        if person_id in two_mrn_person_ids:
            patient_mrns += (mrns.merged_site(),)
        patients.append(Patient(person_id, sex, birth_date, name, patient_mrns, address(rng), phone(rng)))
    return patients


def make_clinicians(rng: random.Random, count: int) -> list[Clinician]:
    clinicians = []
    for _ in range(count):
        family = rng.choice(FAMILY_NAMES)
        given = rng.choice(GIVEN_FEMALE + GIVEN_MALE)
        name = Name(f"{family.upper()}^{given.upper()}^^^MD", family, given, family, given)
        clinicians.append(Clinician(name, f"1{rng.randrange(100_000_000, 999_999_999)}"))
    return clinicians


def make_technologists(rng: random.Random, count: int) -> list[Name]:
    return [ascii_name(rng, rng.choice("FM"), uppercase=False) for _ in range(count)]
