"""One log line per burst of the same client-caused event, with a count.

A thousand idle connections timing out, or a flood of connections refused at
the file descriptor limit, are one event each to the operator; a line per
connection would bury the log (and fill the disk under attack). A
:class:`BurstLog` logs the first occurrence after a quiet period at once and
folds the later ones into at most one line per ``window`` seconds.
"""

from __future__ import annotations

import asyncio
import logging


class BurstLog:
    """Log ``message % count`` at ``level``: the first hit soon, then at most once per ``window`` seconds."""

    def __init__(self, logger: logging.Logger, level: int, message: str, window: float = 10.0) -> None:
        self.logger = logger
        self.level = level
        self.message = message
        self.window = window
        self._count = 0
        self._last = float("-inf")
        self._pending: asyncio.TimerHandle | None = None

    def hit(self, loop: asyncio.AbstractEventLoop, *args: object) -> None:
        """Count one occurrence; ``args`` (after the count) fill the message of the line that reports it."""
        self._count += 1
        self._args = args
        if self._pending is None:
            delay = max(0.0, self._last + self.window - loop.time())
            self._pending = loop.call_later(delay, self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._pending = None
        count, self._count = self._count, 0
        self._last = loop.time()
        if count:
            self.logger.log(self.level, self.message, count, *self._args)
