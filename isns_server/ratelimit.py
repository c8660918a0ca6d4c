"""Per-source rate limits for connectionless answers (SLP, iSNS over UDP)."""


class TokenBuckets:
    """Per-address token buckets: `rate` tokens a second up to `burst`, one per datagram.
    Kept in least-recently-seen order and cut at `capacity`, so spoofed addresses cannot
    grow the table; a forgotten address simply starts again with a full bucket."""

    def __init__(self, rate: float, burst: int, capacity: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._capacity = capacity
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, when)

    def allow(self, address: str, now: float) -> bool:
        tokens, then = self._buckets.pop(address, (self._burst, now))
        tokens = min(self._burst, tokens + max(0.0, now - then) * self._rate)
        allowed = tokens >= 1
        self._buckets[address] = (tokens - 1 if allowed else tokens, now)
        if len(self._buckets) > self._capacity:
            del self._buckets[next(iter(self._buckets))]
        return allowed
