import logging

import pytest

from isns_server.logthrottle import LogThrottle


@pytest.fixture
def throttle() -> LogThrottle:
    return LogThrottle(logging.getLogger("test.throttle"), interval=10.0, max_keys=2)


def test_first_line_per_key_and_interval_logged_rest_counted(
    throttle: LogThrottle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "test.throttle")
    assert throttle.warning("a", 0.0, "login failed from %s", "a")
    assert not throttle.warning("a", 1.0, "login failed from %s", "a")
    assert not throttle.warning("a", 9.9, "login failed from %s", "a")
    assert throttle.warning("b", 2.0, "login failed from %s", "b")
    assert throttle.warning("a", 10.0, "login failed from %s", "a")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "login failed from a"),
        (logging.DEBUG, "login failed from a"),
        (logging.DEBUG, "login failed from a"),
        (logging.WARNING, "login failed from b"),
        (logging.WARNING, "login failed from a (and 2 more like it in the previous 10 s)"),
    ]


def test_keys_beyond_the_bound_evict_the_oldest(throttle: LogThrottle) -> None:
    throttle.warning("a", 0.0, "x")
    throttle.warning("b", 0.0, "x")
    throttle.warning("c", 0.0, "x")
    assert throttle.warning("a", 1.0, "x"), "a was evicted, so it logs again"
    assert not throttle.warning("c", 1.0, "x")
