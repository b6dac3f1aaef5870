"""A record of every open socket in this process: who it is, where it goes, what it has done.

Each admitted websocket gets a :class:`Connection` in ``scope["wsviews.connection"]``
(read it with :func:`connection_of`) and a place in this process's registry
until it ends. The record is what revocation closes (:mod:`wsviews.revocation`),
what metrics count (:mod:`wsviews.metrics`) and what the admin page shows.

Counting is kept off the hot path's back: a message received or sent adds one
to an int slot of the record (no call, no lock); per-route totals are summed
from the records only when someone asks (a scrape, the admin page). Byte
counts cost a ``len()`` per message and are off unless ``WSVIEWS_METRICS_BYTES``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from .types import Scope

SCOPE_KEY = "wsviews.connection"

Close = Callable[[int, str], Awaitable[None]]


class Connection:
    """One open websocket: route, user, session, kind (``view``, ``consumer`` or ``hub``), counters.

    ``route`` is the URL pattern the handshake resolved to (``ws/chat/<slug:room>/``),
    not the path, so that metrics keep one series per route. ``kind`` starts as
    ``view`` or ``consumer``; the realtime hub sets it to ``hub`` and may set
    ``revoke_code`` (the close code revocation uses for it) and ``on_revoke``
    (an async callable taking ``(code, reason)`` that closes it its own way).
    """

    __slots__ = ("route", "path", "kind", "user_id", "username", "session_key", "opened_at",
                 "received", "sent", "bytes_received", "bytes_sent", "revoke_code", "on_revoke",
                 "count_bytes", "mailbox", "_close", "__weakref__")

    def __init__(self, route: str, path: str, kind: str, user: Any, session: Any,
                 close: Close | None = None, count_bytes: bool = False) -> None:
        self.route = route
        self.path = path
        self.kind = kind
        authenticated = user is not None and getattr(user, "is_authenticated", False)
        self.user_id: str | None = str(user.pk) if authenticated else None
        self.username: str | None = str(user.get_username()) if authenticated else None
        self.session_key: str | None = getattr(session, "session_key", None) if session is not None \
            else None
        self.opened_at = time.time()
        self.received = 0
        self.sent = 0
        self.bytes_received = 0
        self.bytes_sent = 0
        self.revoke_code: int | None = None
        self.on_revoke: Close | None = None
        self.count_bytes = count_bytes
        self.mailbox: Any = None  # the socket's Membership, once it has one (queue depth)
        self._close = close

    async def revoke(self, code: int, reason: str) -> None:
        """Close the socket because its user or session was revoked.

        A hub connection's ``on_revoke`` closes it with the hub's own code
        (``revoke_code`` if set); other sockets get ``code`` and ``reason``.
        """
        if self.revoke_code is not None:
            code = self.revoke_code
        closer = self.on_revoke or self._close
        if closer is not None:
            await closer(code, reason)

    def queued(self) -> int:
        """Return how many layer messages wait in this socket's mailbox."""
        mailbox = self.mailbox
        return mailbox.queued.messages if mailbox is not None else 0

    def __repr__(self) -> str:
        return (f"<Connection {self.kind} {self.route!r} user={self.user_id} "
                f"in={self.received} out={self.sent}>")


# The open records (a dict keeps insertion order: oldest first) and, per
# (route, kind), what the closed ones counted: received, sent, bytes in, bytes out.
_open: dict[Connection, None] = {}
_closed: dict[tuple[str, str], list[int]] = {}


def connection_of(scope: Scope) -> Connection | None:
    """Return the record of the socket whose scope is ``scope`` (None if it has none)."""
    found: Connection | None = scope.get(SCOPE_KEY)
    return found


def register(scope: Scope, route: str, kind: str, close: Close | None = None) -> Connection:
    """Make the record of the socket of ``scope``, put it in the scope and in the registry."""
    from .conf import wsviews_settings

    record = Connection(route, scope.get("path", ""), kind, scope.get("user"), scope.get("session"),
                        close, wsviews_settings.METRICS_BYTES)
    scope[SCOPE_KEY] = record
    _open[record] = None
    return record


def unregister(record: Connection) -> None:
    """Take ``record`` out of the registry; keep its counts in its route's totals."""
    if _open.pop(record, _MISSING) is _MISSING:
        return
    totals = _closed.get((record.route, record.kind))
    if totals is None:
        totals = _closed[(record.route, record.kind)] = [0, 0, 0, 0]
    totals[0] += record.received
    totals[1] += record.sent
    totals[2] += record.bytes_received
    totals[3] += record.bytes_sent


def open_connections() -> list[Connection]:
    """Return the records of the sockets open in this process, oldest first."""
    return list(_open)


def count() -> int:
    """Return how many sockets are open in this process."""
    return len(_open)


def of_user(user_id: str) -> Iterator[Connection]:
    """Yield the open records of the user whose primary key is ``user_id`` (as a string)."""
    return (record for record in list(_open) if record.user_id == user_id)


def of_session(session_key: str) -> Iterator[Connection]:
    """Yield the open records of the session ``session_key``."""
    return (record for record in list(_open) if record.session_key == session_key)


def totals() -> dict[tuple[str, str], list[int]]:
    """Return, per (route, kind), messages received and sent and bytes in and out, open and closed."""
    summed = {key: list(values) for key, values in _closed.items()}
    for record in list(_open):
        values = summed.get((record.route, record.kind))
        if values is None:
            values = summed[(record.route, record.kind)] = [0, 0, 0, 0]
        values[0] += record.received
        values[1] += record.sent
        values[2] += record.bytes_received
        values[3] += record.bytes_sent
    return summed


_MISSING = object()
