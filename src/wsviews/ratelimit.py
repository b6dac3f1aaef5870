"""Per-socket rate limit on client messages: a token bucket, off unless ``WSVIEWS_RATE_LIMIT`` is set.

A socket may send ``burst`` messages at once and ``rate`` per second after
that; the first message over it closes the socket with 1008 (policy
violation). The bucket is refilled lazily from the monotonic clock when a
message arrives, so an idle socket costs nothing.
"""

from __future__ import annotations

import logging
import time

from .burstlog import BurstLog
from .conf import wsviews_settings

CLOSE_CODE = 1008

logger = logging.getLogger("wsviews")

_over_limit = BurstLog(
    logger, logging.INFO, "closed %d socket(s) over WSVIEWS_RATE_LIMIT with 1008 (last: %s)"
)


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; each client message takes one."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        """Take a token for one message; return False if there is none (the socket is over its limit)."""
        now = time.monotonic()
        tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens < 1:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1
        return True

    @property
    def reason(self) -> str:
        return f"rate limit exceeded: over {self.rate:g} messages a second (burst {self.burst})"


def new_bucket() -> TokenBucket | None:
    """Return a fresh bucket for one socket, or None when no rate limit is set."""
    limit = wsviews_settings.RATE_LIMIT
    if limit is None:
        return None
    rate, burst = limit
    return TokenBucket(rate, burst)


def report(path: str, bucket: TokenBucket) -> None:
    """Log (folded into one line per burst) that the socket at ``path`` was closed over its limit."""
    import asyncio

    _over_limit.hit(asyncio.get_running_loop(), f"{path}: {bucket.reason}")
