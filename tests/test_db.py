"""Stale database connections: closed through channels.db, at most once a second, on disconnect too."""

from __future__ import annotations

import time

import channels.db
import channels.generic.websocket
from asgiref.testing import ApplicationCommunicator
from django.test import TestCase

from inprocess import ChannelsClient, application
from wsviews import db


def scope(path: str) -> dict:
    return {"type": "websocket", "path": path, "query_string": b"", "headers": [(b"host", b"127.0.0.1")],
            "subprotocols": []}


def test_close_is_due_at_most_once_per_interval(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    monkeypatch.setattr(db, "_next_close", 0.0)
    assert db.close_due() is True
    assert db.close_due() is False
    now[0] += db.INTERVAL - 0.01
    assert db.close_due() is False
    now[0] += 0.02
    assert db.close_due() is True


async def test_the_close_goes_through_channels_db_looked_up_when_it_runs(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(channels.db, "close_old_connections", lambda: calls.append("patched"))
    await db.close_old_connections()
    assert calls == ["patched"]


async def test_connect_echo_disconnect_hops_to_a_thread_only_when_due(monkeypatch):
    """Twenty sockets within a second close stale connections once, not at each disconnect as Channels does.

    Channels' ``websocket_disconnect`` calls ``aclose_old_connections()``;
    on wsviews' loop that call follows the once-a-second policy.
    """
    calls: list[float] = []
    monkeypatch.setattr(channels.db, "close_old_connections", lambda: calls.append(time.monotonic()))
    monkeypatch.setattr(db, "_next_close", 0.0)
    started = time.monotonic()
    for i in range(20):
        # asgiref's communicator: Channels' would patch close_old_connections itself.
        communicator = ApplicationCommunicator(application(), scope("/ws/myapp/"))
        await communicator.send_input({"type": "websocket.connect"})
        assert (await communicator.receive_output(5))["type"] == "websocket.accept"
        await communicator.send_input({"type": "websocket.receive", "text": f"m{i}"})
        assert (await communicator.receive_output(5))["text"] == f"m{i}"
        await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        await communicator.wait(5)
    allowed = 1 + int((time.monotonic() - started) / db.INTERVAL) + 1
    assert 1 <= len(calls) <= allowed, f"{len(calls)} closes for 20 sockets"


async def test_outside_the_lean_loop_channels_aclose_still_closes_every_time(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(channels.db, "close_old_connections", lambda: calls.append(1))
    monkeypatch.setattr(db, "_next_close", time.monotonic() + 60)  # not due on the lean loop
    for _ in range(3):
        await channels.generic.websocket.aclose_old_connections()
    assert calls == [1, 1, 1]


class ConsumerUnderTestCaseTests(TestCase):
    """A consumer test written as Channels documents it keeps the TestCase's database connection."""

    async def test_a_due_close_leaves_the_test_connection_open(self):
        db._next_close = 0.0  # due now: the close runs during this handshake
        client = ChannelsClient("/ws/db/")
        self.assertEqual(await client.handshake(), 101)
        self.assertEqual(client.accepted_subprotocol, "db")
        db._next_close = 0.0
        await client.send_text("1234")
        self.assertEqual(await client.recv(), "1234")
        await client.leave()
