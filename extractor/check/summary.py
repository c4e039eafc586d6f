"""The terminal summary of a check run: one line per expectation, then the totals."""

from __future__ import annotations

from extractor.check.runner import CheckRun, Outcome

HEADERS = ("layer", "expectation", "critical", "observed", "result")


def result_word(outcome: Outcome) -> str:
    if outcome.passed:
        return "pass"
    if outcome.status == "error":
        return "ERROR"
    return "FAIL" if outcome.critical else "warn"


def format_summary(run: CheckRun) -> str:
    rows = [(o.layer, o.label, "yes" if o.critical else "no", o.observed, result_word(o)) for o in run.outcomes]
    widths = [max(len(str(r[i])) for r in [HEADERS, *rows]) for i in range(len(HEADERS))]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    lines = [line(HEADERS), line("-" * w for w in widths), *(line(r) for r in rows)]
    lines += run.skipped
    failed = run.critical_failures
    warnings = sum(1 for o in run.outcomes if not o.passed and not o.critical)
    passed = sum(1 for o in run.outcomes if o.passed)
    docs = run.data_docs or "none (nothing was validated)"
    lines.append(f"{passed} passed, {len(failed)} critical failed, {warnings} warnings; Data Docs: {docs}")
    return "\n".join(lines)
