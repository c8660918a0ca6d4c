"""Retry schedules: pure functions of the attempt number."""

from isns_server.schedule import doubling


def test_doubling_starts_at_the_first_pause_and_doubles() -> None:
    assert [doubling(n, 0.5) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]


def test_doubling_stops_at_its_limit() -> None:
    assert [doubling(n, 1.0, 60.0) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_doubling_stays_finite_however_many_attempts() -> None:
    assert doubling(10_000, 1.0, 60.0) == 60.0
    assert doubling(10_000, 1.0) == 2.0**64
