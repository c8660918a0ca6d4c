"""The conformance test's scorer on captured iscsi-test-cu logs (cunit_logs/README.md)."""

from pathlib import Path

import pytest

from ..cunit_verdicts import Outcome, score, tally

LOGS = Path(__file__).parent / "cunit_logs"


def scored(name: str) -> dict[str, Outcome]:
    return score((LOGS / name).read_text())


def test_bracketed_failed_lines_are_not_verdicts() -> None:
    """iSCSIDataSnInvalid logs each write it expects to fail; CUnit passes it."""
    assert scored("datasn-invalid-ours.log") == {"iSCSIdatasn.iSCSIDataSnInvalid": Outcome.PASS}


def test_cunit_failed_is_a_failure_and_a_bracketed_line_after_passed_is_not() -> None:
    assert scored("multipath-reset-failed-ours.log") == {
        "Reserve6.LUNReset": Outcome.PASS,
        "MultipathIO.Reset": Outcome.FAIL,
    }


def test_skipped_tests_and_one_suite_line_per_test() -> None:
    assert scored("reset-tests-tgtd.log") == {
        "PreventAllow.ColdReset": Outcome.SKIP,
        "PreventAllow.WarmReset": Outcome.SKIP,
        "PreventAllow.LUNReset": Outcome.SKIP,
        "Reserve6.LUNReset": Outcome.PASS,
        "MultipathIO.Reset": Outcome.PASS,
    }


def test_passed_running_into_a_debug_line_is_a_verdict() -> None:
    assert scored("prevent-allow-debug-ours.log") == {"PreventAllow.ColdReset": Outcome.PASS}


def test_a_long_verbose_body() -> None:
    log = "write10-residuals-verbose-ours.log"
    assert scored(log) == {"iSCSIResiduals.Write10Residuals": Outcome.PASS}


def test_a_test_without_a_verdict_failed() -> None:
    """The run crashed or hung in it."""
    assert scored("datasn-invalid-truncated.log") == {
        "iSCSIdatasn.iSCSIDataSnInvalid": Outcome.FAIL
    }


@pytest.mark.parametrize(
    ("outcomes", "kept"),
    [(("passed", "FAILED"), Outcome.FAIL), (("passed", "[SKIPPED] x\npassed"), Outcome.SKIP)],
)
def test_a_test_seen_twice_keeps_its_worst_outcome(
    outcomes: tuple[str, str], kept: Outcome
) -> None:
    log = "".join(f"Suite: S\n  Test: T ...{outcome}\n" for outcome in outcomes)
    assert score(log) == {"S.T": kept}
    assert tally(score(log))[kept] == 1


def test_nothing_before_the_first_suite_counts() -> None:
    log = "found matching LU device identifier for all (2) paths\nFAILED to pass\n"
    assert score(log) == {}
