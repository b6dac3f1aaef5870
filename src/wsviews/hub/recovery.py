"""Stream-position arithmetic: can a client's position be recovered, is a publication next.

A positioned subscription knows the offset and epoch of the last publication
it delivered. Recovery hands a reconnecting client everything it missed, or
tells it honestly that it cannot (``recovered: false``), never a stream with
a hole in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from .records import Publication, StreamPosition

__all__ = ["Next", "Recovery", "next_publication", "recover", "unrecoverable_history"]


@dataclass(frozen=True, slots=True)
class Recovery:
    """The outcome of a recovery attempt.

    ``publications`` are what the client missed (empty unless ``recovered``);
    ``position`` is where the client stands once it has them.
    """

    recovered: bool
    publications: tuple[Publication, ...]
    position: StreamPosition


def recover(since: StreamPosition, top: StreamPosition,
            publications: Sequence[Publication]) -> Recovery:
    """Return whether ``publications`` (read after ``since``) bring the client to ``top``.

    Recovered means: same epoch (or the client knows none), and either
    nothing was missed (``since`` is the top) or the publications run without
    a gap from ``since.offset + 1`` to ``top.offset``. An offset from the
    future, another epoch, or a truncated read (history evicted, limit hit)
    is not recovered; the client then starts from ``top``.
    """
    not_recovered = Recovery(False, (), top)
    if since.epoch and since.epoch != top.epoch:
        return not_recovered
    if not publications:
        return Recovery(True, (), top) if since.offset == top.offset else not_recovered
    expected = since.offset + 1
    for pub in publications:
        if pub.offset != expected:
            return not_recovered
        expected += 1
    if publications[-1].offset != top.offset:
        return not_recovered
    return Recovery(True, tuple(publications), top)


class Next(Enum):
    """What to do with a publication arriving on a positioned subscription."""

    DELIVER = "deliver"        # the next offset: send it, advance
    DUPLICATE = "duplicate"    # already delivered (or before the subscription point): drop
    GAP = "gap"                # something was lost: the client must resubscribe and recover


def next_publication(position: StreamPosition, offset: int, epoch: str) -> Next:
    """Classify a publication at ``offset`` (of stream ``epoch``, "" if unknown) against ``position``."""
    if epoch and position.epoch and epoch != position.epoch:
        return Next.GAP
    if offset > position.offset + 1:
        return Next.GAP
    if offset <= position.offset:
        return Next.DUPLICATE
    return Next.DELIVER


def unrecoverable_history(since: StreamPosition, top: StreamPosition, reverse: bool) -> bool:
    """Return whether a history read ``since`` a position cannot be served (error 112).

    That is the case when the position belongs to another epoch, or, reading
    forward, lies beyond the stream's top.
    """
    if since.epoch and since.epoch != top.epoch:
        return True
    return not reverse and since.offset > top.offset
