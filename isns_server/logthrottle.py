"""Repeated warnings summarised per key and interval.

One noisy peer (a login storm, a flood of half-open connections) or one lasting fault (a
full disk, no file descriptors left) must not fill the log: the first occurrence of each
key in an interval is logged, the rest are counted and reported with the next line that
gets through (and logged in full at DEBUG, for whoever is chasing one of them). Time is
passed in, so the rule is tested without a clock.
"""

import logging
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(slots=True)
class _Window:
    opened: float
    suppressed: int = 0


class LogThrottle:
    """At most one line per key per `interval` seconds; keys beyond `max_keys` evict the
    least recently logged, so a spoofed-source flood cannot grow the table."""

    def __init__(self, logger: logging.Logger, interval: float, max_keys: int = 1024) -> None:
        self._logger = logger
        self.interval = interval
        self._max_keys = max_keys
        self._windows: OrderedDict[Hashable, _Window] = OrderedDict()

    def log(self, level: int, key: Hashable, now: float, text: str, *args: object) -> bool:
        """Log `text % args` unless `key` already logged within the interval; True if logged."""
        window = self._windows.get(key)
        if window is not None and now - window.opened < self.interval:
            window.suppressed += 1
            self._logger.debug(text, *args)
            return False
        if window is not None and window.suppressed:
            text += " (and %d more like it in the previous %.0f s)"
            args = (*args, window.suppressed, now - window.opened)
        self._windows[key] = _Window(now)
        self._windows.move_to_end(key)
        while len(self._windows) > self._max_keys:
            self._windows.popitem(last=False)
        self._logger.log(level, text, *args)
        return True

    def warning(self, key: Hashable, now: float, text: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, now, text, *args)
