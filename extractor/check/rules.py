"""The catalogue of checks: one rule per kind of expectation, with its default criticality.

A rule id (`<layer>.<name>`) is what the summary shows, what Data Docs carry in each
expectation's meta, and the key of `[check.critical]` in imgomop.toml. The thresholds the
rate rules compare against are named here too, with their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

LAYERS = ("raw", "marts", "deid", "scrub")


@dataclass(frozen=True)
class Rule:
    id: str  # "<layer>.<name>"
    critical: bool  # default; [check.critical] overrides it
    summary: str

    @property
    def layer(self) -> str:
        return self.id.split(".", 1)[0]


RULES: tuple[Rule, ...] = (
    Rule("raw.has_series", True, "the harvest wrote at least one series"),
    Rule("raw.required_uids", True, "every instance has its SOP class, SOP instance, study and series UIDs"),
    Rule("raw.unique_uids", True, "SOP instance UIDs are unique among instances, series UIDs among series"),
    Rule("raw.uid_syntax", False, "UIDs are digits and dots, without leading zeros, at most 64 characters"),
    Rule("raw.harvest_error_rate", True, "the share of files in raw_harvest_error is at most max_harvest_error_rate"),
    Rule("marts.required", True, "columns the OMOP field spec requires are never NULL"),
    Rule("marts.unique", True, "primary keys of the field spec are unique"),
    Rule("marts.foreign_key", True, "foreign keys of the field spec point at existing rows"),
    Rule("marts.concept_known", True, "concept ids are 0 (unmapped) or concepts the warehouse knows"),
    Rule("marts.linkage_rate", True, "the share of series with an order that linked is at least min_linkage_rate"),
    Rule("deid.identified_value", True, "no text value equals an identified MRN, accession number, name or UID"),
    Rule("deid.date_shifted", True, "no date equals its unshifted original"),
    Rule("deid.text_allowlisted", True, "redacted free text holds only allowlisted words, short numbers and masks"),
    Rule("deid.uid_form", True, "UIDs are keyed hashes in the 2.25 form"),
    Rule("deid.deleted", True, "columns the de-identification deletes hold no value"),
    Rule("scrub.outcome_recorded", True, "every manifest row has a known outcome with its rule, error or output"),
    Rule("scrub.quarantine_rate", True, "the share of quarantined instances is at most max_quarantine_rate"),
    Rule("scrub.filtered_rate", False, "the share of filtered instances is at most max_filtered_rate"),
)

RULE_IDS = tuple(rule.id for rule in RULES)

# [check] thresholds and their defaults; min_linkage_rate defaults to the dbt var linkage_min_rate.
THRESHOLDS: dict[str, float | None] = {
    "min_linkage_rate": None,
    "max_harvest_error_rate": 0.05,
    "max_quarantine_rate": 0.01,
    "max_filtered_rate": 0.5,
}
