"""Outcomes of libiscsi's `iscsi-test-cu -d -v` runs, by CUnit's own verdict per test.

CUnit writes `Suite: <name>`, then `  Test: <name> ...` and, once the test returns,
`passed` or `FAILED` (followed by the failed assertions). Whatever the test logs comes
in between. libiscsi's helpers log each command that did not do what they checked for
as a bracketed `[FAILED] ...` line, also when the test expects exactly that failure,
so those lines are not verdicts; a test that decides it cannot run logs `[SKIPPED]`
and returns, which CUnit then counts as passed. A test with no verdict crashed or hung
the run. A Suite.Test seen more than once keeps its worst outcome.
"""

import re
from collections import Counter
from enum import Enum

_SUITE = re.compile(r"^Suite: (?P<suite>.+?)\s*$", re.MULTILINE)
_TEST = re.compile(r"^  Test: (?P<test>\S+) \.\.\.", re.MULTILINE)
_FAILED = re.compile(r"(?<!\[)\bFAILED\b(?!\])")  # CUnit's, not libiscsi's "[FAILED]"
_PASSED = re.compile(r"(?<![A-Za-z\[])passed")  # may run into the next log line
_SKIPPED = "[SKIPPED]"
_SUMMARY = re.compile(r"^Run Summary:", re.MULTILINE)


class Outcome(Enum):
    """Ordered from best to worst."""

    PASS = "pass"
    SKIP = "skip"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return list(Outcome).index(self)


def verdict(body: str) -> Outcome:
    """The outcome of one test from what the log holds between its `Test:` line and
    the next test, suite or run summary."""
    if _FAILED.search(body):
        return Outcome.FAIL
    if not _PASSED.search(body):
        return Outcome.FAIL  # no verdict: it crashed or hung
    return Outcome.SKIP if _SKIPPED in body else Outcome.PASS


def score(log: str) -> dict[str, Outcome]:
    """Each Suite.Test of the log with its outcome."""
    marks = sorted(
        [(m.start(), m.end(), "", m["suite"]) for m in _SUITE.finditer(log)]
        + [(m.start(), m.end(), m["test"], "") for m in _TEST.finditer(log)]
        + [(m.start(), m.end(), "", "") for m in _SUMMARY.finditer(log)]
    )
    starts = [start for start, *_ in marks] + [len(log)]
    outcomes: dict[str, Outcome] = {}
    suite = ""
    for (_, body_start, test, suite_name), body_end in zip(marks, starts[1:], strict=True):
        suite = suite_name or suite
        if test:
            key = f"{suite}.{test}"
            outcome = verdict(log[body_start:body_end])
            if key not in outcomes or outcome.rank > outcomes[key].rank:
                outcomes[key] = outcome
    return outcomes


def tally(outcomes: dict[str, Outcome]) -> Counter[Outcome]:
    return Counter(outcomes.values())
