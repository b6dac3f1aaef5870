"""Codes, messages and reconnect rules are Centrifugo's, one by one."""

from __future__ import annotations

import pytest

from wsviews.hub import codes

ERRORS = [
    (codes.ERROR_INTERNAL, 100, "internal server error", True),
    (codes.ERROR_UNAUTHORIZED, 101, "unauthorized", False),
    (codes.ERROR_UNKNOWN_CHANNEL, 102, "unknown channel", False),
    (codes.ERROR_PERMISSION_DENIED, 103, "permission denied", False),
    (codes.ERROR_METHOD_NOT_FOUND, 104, "method not found", False),
    (codes.ERROR_ALREADY_SUBSCRIBED, 105, "already subscribed", False),
    (codes.ERROR_LIMIT_EXCEEDED, 106, "limit exceeded", False),
    (codes.ERROR_BAD_REQUEST, 107, "bad request", False),
    (codes.ERROR_NOT_AVAILABLE, 108, "not available", False),
    (codes.ERROR_TOKEN_EXPIRED, 109, "token expired", False),
    (codes.ERROR_EXPIRED, 110, "expired", False),
    (codes.ERROR_TOO_MANY_REQUESTS, 111, "too many requests", True),
    (codes.ERROR_UNRECOVERABLE_POSITION, 112, "unrecoverable position", False),
]
DISCONNECTS = [
    (codes.DISCONNECT_CONNECTION_CLOSED, 3000, "connection closed", True),
    (codes.DISCONNECT_SHUTDOWN, 3001, "shutdown", True),
    (codes.DISCONNECT_SERVER_ERROR, 3004, "internal server error", True),
    (codes.DISCONNECT_EXPIRED, 3005, "connection expired", True),
    (codes.DISCONNECT_SUB_EXPIRED, 3006, "subscription expired", True),
    (codes.DISCONNECT_SLOW, 3008, "slow", True),
    (codes.DISCONNECT_WRITE_ERROR, 3009, "write error", True),
    (codes.DISCONNECT_INSUFFICIENT_STATE, 3010, "insufficient state", True),
    (codes.DISCONNECT_FORCE_RECONNECT, 3011, "force reconnect", True),
    (codes.DISCONNECT_NO_PONG, 3012, "no pong", True),
    (codes.DISCONNECT_TOO_MANY_REQUESTS, 3013, "too many requests", True),
    (codes.DISCONNECT_STATE_INVALIDATED, 3014, "state invalidated", True),
    (codes.DISCONNECT_INVALID_TOKEN, 3500, "invalid token", False),
    (codes.DISCONNECT_BAD_REQUEST, 3501, "bad request", False),
    (codes.DISCONNECT_STALE, 3502, "stale", False),
    (codes.DISCONNECT_FORCE_NO_RECONNECT, 3503, "force disconnect", False),
    (codes.DISCONNECT_CONNECTION_LIMIT, 3504, "connection limit", False),
    (codes.DISCONNECT_CHANNEL_LIMIT, 3505, "channel limit", False),
    (codes.DISCONNECT_INAPPROPRIATE_PROTOCOL, 3506, "inappropriate protocol", False),
    (codes.DISCONNECT_PERMISSION_DENIED, 3507, "permission denied", False),
    (codes.DISCONNECT_NOT_AVAILABLE, 3508, "not available", False),
    (codes.DISCONNECT_TOO_MANY_ERRORS, 3509, "too many errors", False),
]


@pytest.mark.parametrize(("error", "code", "message", "temporary"), ERRORS)
def test_error_codes(error: codes.ClientError, code: int, message: str, temporary: bool) -> None:
    """Each client error has Centrifugo's code, message and temporary flag."""
    assert (error.code, error.message, error.temporary) == (code, message, temporary)


@pytest.mark.parametrize(("disconnect", "code", "reason", "reconnect"), DISCONNECTS)
def test_disconnect_codes(disconnect: codes.Disconnect, code: int, reason: str, reconnect: bool
                          ) -> None:
    """Each disconnect has Centrifugo's code and reason; 3500-3999 do not reconnect."""
    assert (disconnect.code, disconnect.reason, disconnect.reconnect) == (code, reason, reconnect)
    assert len(disconnect.reason.encode()) <= 123


@pytest.mark.parametrize(("code", "reconnect"), [
    (3499, True), (3500, False), (3999, False), (4000, True), (4499, True), (4500, False),
    (4999, False), (5000, True), (1009, True)])
def test_reconnect_ranges(code: int, reconnect: bool) -> None:
    """Application codes follow the same rule: 4500-4999 are terminal, 4000-4499 reconnect."""
    assert codes.Disconnect(code, "x").reconnect is reconnect


def test_unsubscribe_codes() -> None:
    """Server unsubscribe (2000) is final; insufficient state and expiry (2500+) resubscribe."""
    assert (codes.UNSUBSCRIBE_SERVER.code, codes.UNSUBSCRIBE_SERVER.resubscribe) == (2000, False)
    assert [(u.code, u.resubscribe) for u in (
        codes.UNSUBSCRIBE_INSUFFICIENT_STATE, codes.UNSUBSCRIBE_EXPIRED,
        codes.UNSUBSCRIBE_STATE_INVALIDATED)] == [(2500, True), (2501, True), (2502, True)]
