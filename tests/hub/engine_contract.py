"""The behaviour every hub engine shares: one mixin, subclassed per engine.

A backend's test module subclasses :class:`EngineContract` and implements
``make_hub()``, an async context manager yielding a :class:`Hub`: the engine
under test plus what a test needs around it (what was delivered live, a way
to let time pass, a way to lose a stream, more processes on the same storage).
Times are in *units*: a backend picks how long one is (the memory engine's
clock is the test's own, so its units cost nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from wsviews.hub.engine import (
    ClientInfo,
    Engine,
    PresenceStats,
    Publication,
    StreamPosition,
)

TIMEOUT = 10.0


class Hub:
    """An engine under test and its surroundings."""

    #: Seconds in one time unit.
    unit = 1.0
    #: The engine's history_meta_ttl, in units.
    meta_ttl_units = 4

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.delivered: list[tuple[str, Publication]] = []
        self._arrived = asyncio.Event()

    def deliver(self, channel: str, publication: Publication) -> None:
        self.delivered.append((channel, publication))
        self._arrived.set()

    async def wait_delivered(self, count: int, timeout: float = TIMEOUT) -> tuple[Publication, ...]:
        """Wait until ``count`` publications were delivered; return them."""
        async with asyncio.timeout(timeout):
            while len(self.delivered) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return tuple(publication for _, publication in self.delivered)

    async def elapse(self, units: float) -> None:
        """Let ``units`` of time pass."""
        raise NotImplementedError

    async def lose_stream(self, channel: str) -> None:
        """Make the storage lose everything it had about ``channel``'s stream."""
        raise NotImplementedError

    async def processes(self, count: int) -> list[Engine]:
        """Return ``count`` engines standing for processes that share this one's storage and delivery."""
        raise NotImplementedError


def info(client: str, user: str, conn: bytes | None = None, chan: bytes | None = None) -> ClientInfo:
    return ClientInfo(user, client, conn, chan)


async def publish_many(engine: Engine, channel: str, count: int, **options: Any) -> list[StreamPosition]:
    options.setdefault("history_size", 1000)
    options.setdefault("history_ttl", 300)
    positions = []
    for n in range(count):
        position = await engine.publish(channel, b'{"n":%d}' % n, **options)
        assert position is not None
        positions.append(position)
    return positions


class EngineContract:
    """History, recovery and presence as every engine provides them."""

    def make_hub(self) -> contextlib.AbstractAsyncContextManager[Hub]:
        raise NotImplementedError

    @pytest.fixture
    async def hub(self) -> AsyncIterator[Hub]:
        async with self.make_hub() as hub:
            yield hub

    # Publish and positions

    async def test_publish_without_history_delivers_without_a_position(self, hub: Hub) -> None:
        """Without history a publication is delivered with offset 0 and no epoch, and nothing is kept."""
        for size, ttl in ((0, 300), (10, 0), (0, 0)):
            assert await hub.engine.publish("news", b'"x"', history_size=size, history_ttl=ttl) is None
        delivered = await hub.wait_delivered(3)
        assert [(p.offset, p.epoch, p.data) for p in delivered] == [(0, "", b'"x"')] * 3
        history = await hub.engine.history("news")
        assert history.publications == ()
        assert history.position.offset == 0

    async def test_offsets_start_at_one_and_increase_by_one(self, hub: Hub) -> None:
        """Each publication gets the next offset of its channel; channels count on their own."""
        positions = await publish_many(hub.engine, "a", 5)
        other = await publish_many(hub.engine, "b", 2)
        assert [p.offset for p in positions] == [1, 2, 3, 4, 5]
        assert len({p.epoch for p in positions}) == 1 and positions[0].epoch
        assert [p.offset for p in other] == [1, 2]
        delivered = await hub.wait_delivered(7)
        expected = [("a", i) for i in range(1, 6)] + [("b", 1), ("b", 2)]
        assert [(c, p.offset) for c, p in hub.delivered] == expected
        assert {p.epoch for p in delivered[:5]} == {positions[0].epoch}

    async def test_concurrent_publishers_leave_no_gap(self, hub: Hub) -> None:
        """Many publishers at once: delivered order, history order and offsets are one sequence 1..N."""
        engines = await hub.processes(3)
        count = 240

        async def publish(n: int) -> StreamPosition | None:
            return await engines[n % len(engines)].publish(
                "busy", b"%d" % n, history_size=1000, history_ttl=300
            )

        positions = await asyncio.gather(*(publish(n) for n in range(count)))
        assert sorted(p.offset for p in positions if p) == list(range(1, count + 1))
        assert len({p.epoch for p in positions if p}) == 1
        delivered = await hub.wait_delivered(count)
        assert [p.offset for p in delivered] == list(range(1, count + 1))
        history = await hub.engine.history("busy")
        assert history.publications == delivered
        # The offset each publisher got back is the one its publication carries.
        by_data = {p.data: p.offset for p in delivered}
        assert all(by_data[b"%d" % n] == position.offset for n, position in enumerate(positions) if position)

    async def test_publication_fields_round_trip(self, hub: Hub) -> None:
        """Data, client info and tags come back byte for byte, live and from the history."""
        who = info("c1", "alice", b'{"name":"Alice"}', b'{"role":"admin"}')
        await hub.engine.publish(
            "room", b'{"text":"hi \\u00e9"}', history_size=10, history_ttl=300, info=who, tags={"k": "v"}
        )
        await hub.engine.publish("room", b"[]", history_size=10, history_ttl=300, info=info("c2", ""))
        delivered = await hub.wait_delivered(2)
        history = await hub.engine.history("room")
        assert history.publications == delivered
        first, second = delivered
        assert first.data == b'{"text":"hi \\u00e9"}' and first.info == who and first.tags == {"k": "v"}
        assert second.info == ClientInfo("", "c2", None, None) and second.tags is None

    # History reads

    async def test_history_keeps_the_last_history_size(self, hub: Hub) -> None:
        """A stream holds its last history_size publications; the top offset keeps counting."""
        await publish_many(hub.engine, "s", 10, history_size=3)
        history = await hub.engine.history("s")
        assert [p.offset for p in history.publications] == [8, 9, 10]
        assert history.position.offset == 10

    async def test_history_limit_since_and_reverse(self, hub: Hub) -> None:
        """History reads follow Centrifugo's limit/since/reverse rules."""
        positions = await publish_many(hub.engine, "h", 10)
        epoch = positions[0].epoch

        async def offsets(**kwargs: Any) -> list[int]:
            history = await hub.engine.history("h", **kwargs)
            assert history.position == StreamPosition(10, epoch)
            return [p.offset for p in history.publications]

        at = StreamPosition
        assert await offsets(limit=0) == []
        assert await offsets() == await offsets(limit=-1) == list(range(1, 11))
        assert await offsets(limit=3) == [1, 2, 3]
        assert await offsets(limit=3, reverse=True) == [10, 9, 8]
        assert await offsets(since=at(4, epoch)) == [5, 6, 7, 8, 9, 10]
        assert await offsets(since=at(4, epoch), limit=2) == [5, 6]
        assert await offsets(since=at(4, epoch), reverse=True) == [3, 2, 1]
        assert await offsets(since=at(4, epoch), reverse=True, limit=1) == [3]
        assert await offsets(since=at(1, epoch), reverse=True) == []
        assert await offsets(since=at(0, epoch)) == list(range(1, 11))
        assert await offsets(since=at(10, epoch)) == []
        assert await offsets(since=at(50, epoch)) == []
        assert await offsets(since=at(50, epoch), reverse=True, limit=2) == [10, 9]

    async def test_reading_an_empty_channel_fixes_the_epoch_publishes_continue(self, hub: Hub) -> None:
        """A read of a channel without a stream returns (0, epoch); the next publication continues it."""
        first = await hub.engine.history("fresh")
        assert first.publications == () and first.position.offset == 0 and first.position.epoch
        assert (await hub.engine.history("fresh")).position == first.position
        position = await hub.engine.publish("fresh", b"1", history_size=5, history_ttl=300)
        assert position == StreamPosition(1, first.position.epoch)
        recovery = await hub.engine.recover("fresh", first.position)
        assert recovery.recovered and [p.offset for p in recovery.publications] == [1]

    async def test_history_ttl_drops_publications_and_keeps_the_position(self, hub: Hub) -> None:
        """history_ttl after the last publish the publications are gone; offset and epoch live on."""
        positions = await publish_many(hub.engine, "t", 3, history_ttl=hub.unit)
        assert len((await hub.engine.history("t")).publications) == 3
        await hub.elapse(1.5)
        history = await hub.engine.history("t")
        assert history.publications == ()
        assert history.position == positions[-1]
        after = await hub.engine.publish("t", b"4", history_size=10, history_ttl=hub.unit)
        assert after == StreamPosition(4, positions[0].epoch)
        assert [p.offset for p in (await hub.engine.history("t")).publications] == [4]

    async def test_a_position_unused_for_history_meta_ttl_is_lost(self, hub: Hub) -> None:
        """history_meta_ttl after its last use a stream's position is gone: new epoch, offsets from 1."""
        positions = await publish_many(hub.engine, "m", 2, history_ttl=hub.unit)
        await hub.elapse(hub.meta_ttl_units + 0.5)
        history = await hub.engine.history("m")
        assert history.position.offset == 0
        assert history.position.epoch != positions[0].epoch
        again = await hub.engine.publish("m", b"x", history_size=10, history_ttl=hub.unit)
        assert again == StreamPosition(1, history.position.epoch)
        assert not (await hub.engine.recover("m", positions[-1])).recovered

    async def test_reads_keep_the_position_alive(self, hub: Hub) -> None:
        """A channel that is read (clients subscribing) keeps its epoch past history_meta_ttl."""
        position = (await publish_many(hub.engine, "r", 1, history_ttl=hub.unit))[0]
        for _ in range(2):
            await hub.elapse(hub.meta_ttl_units * 0.6)
            assert (await hub.engine.history("r", limit=0)).position == position

    async def test_a_lost_stream_gets_a_new_epoch(self, hub: Hub) -> None:
        """When the storage loses a stream, it starts again at offset 1 with another epoch."""
        positions = await publish_many(hub.engine, "lost", 3)
        await hub.lose_stream("lost")
        again = await hub.engine.publish("lost", b"new", history_size=10, history_ttl=300)
        assert again is not None and again.offset == 1 and again.epoch != positions[0].epoch
        history = await hub.engine.history("lost")
        assert [p.data for p in history.publications] == [b"new"]
        recovery = await hub.engine.recover("lost", positions[-1])
        assert not recovery.recovered and recovery.publications == () and recovery.position == again

    async def test_remove_history_keeps_the_position(self, hub: Hub) -> None:
        """remove_history drops publications; the position stays, so recovery across it fails."""
        positions = await publish_many(hub.engine, "rm", 4)
        await hub.engine.remove_history("rm")
        history = await hub.engine.history("rm")
        assert history.publications == () and history.position == positions[-1]
        assert not (await hub.engine.recover("rm", positions[1])).recovered
        assert (await hub.engine.recover("rm", positions[-1])).recovered
        await hub.engine.remove_history("never-published")

    # Recovery

    async def test_recover_returns_exactly_what_was_missed(self, hub: Hub) -> None:
        """50 publications after a position come back, all of them, in order: recovered."""
        since = (await publish_many(hub.engine, "rec", 7))[-1]
        missed = await publish_many(hub.engine, "rec", 50)
        recovery = await hub.engine.recover("rec", since)
        assert recovery.recovered
        assert [p.offset for p in recovery.publications] == list(range(8, 58))
        assert [p.data for p in recovery.publications] == [b'{"n":%d}' % n for n in range(50)]
        assert recovery.position == missed[-1]

    async def test_recover_with_nothing_missed(self, hub: Hub) -> None:
        """A client at the top recovers with no publications."""
        top = (await publish_many(hub.engine, "calm", 3))[-1]
        recovery = await hub.engine.recover("calm", top)
        assert recovery.recovered and recovery.publications == () and recovery.position == top

    async def test_recover_fails_when_the_window_does_not_cover_the_gap(self, hub: Hub) -> None:
        """With history_size 2, a client that missed 50 is not recovered and gets nothing."""
        since = (await publish_many(hub.engine, "small", 1, history_size=2))[-1]
        top = (await publish_many(hub.engine, "small", 50, history_size=2))[-1]
        recovery = await hub.engine.recover("small", since)
        assert not recovery.recovered and recovery.publications == () and recovery.position == top
        # One step back from the window's start is still covered.
        edge = await hub.engine.recover("small", StreamPosition(top.offset - 2, top.epoch))
        assert edge.recovered and [p.offset for p in edge.publications] == [50, 51]

    async def test_recover_fails_from_an_offset_from_the_future(self, hub: Hub) -> None:
        """An offset past the top (the client saw a stream that is gone) is not recovered."""
        top = (await publish_many(hub.engine, "future", 3))[-1]
        for offset in (4, 1000, 2**64 - 1):
            recovery = await hub.engine.recover("future", StreamPosition(offset, top.epoch))
            assert not recovery.recovered and recovery.publications == ()
            assert recovery.position == top

    async def test_recover_fails_from_another_epoch(self, hub: Hub) -> None:
        """Same offsets, another epoch: not recovered; no epoch at all: recovered by offset alone."""
        top = (await publish_many(hub.engine, "epochs", 5))[-1]
        recovery = await hub.engine.recover("epochs", StreamPosition(2, "other"))
        assert not recovery.recovered and recovery.publications == ()
        assert recovery.position == top
        recovery = await hub.engine.recover("epochs", StreamPosition(2, ""))
        assert recovery.recovered and [p.offset for p in recovery.publications] == [3, 4, 5]

    async def test_recover_fails_past_its_limit(self, hub: Hub) -> None:
        """A gap longer than the recovery limit is not recovered; one within it is."""
        since = (await publish_many(hub.engine, "lim", 1))[-1]
        await publish_many(hub.engine, "lim", 20)
        assert not (await hub.engine.recover("lim", since, limit=19)).recovered
        recovery = await hub.engine.recover("lim", since, limit=20)
        assert recovery.recovered and len(recovery.publications) == 20

    async def test_recover_fails_after_the_history_expired(self, hub: Hub) -> None:
        """After history_ttl a client behind the top cannot recover; one at the top can."""
        positions = await publish_many(hub.engine, "exp", 3, history_ttl=hub.unit)
        await hub.elapse(1.5)
        assert not (await hub.engine.recover("exp", positions[0])).recovered
        assert (await hub.engine.recover("exp", positions[-1])).recovered

    # Idempotent publish

    async def test_idempotent_publish_with_history(self, hub: Hub) -> None:
        """A repeated idempotency key returns the first position and publishes nothing."""
        first = await hub.engine.publish("idem", b"1", history_size=10, history_ttl=300, idempotency_key="k1")
        again = await hub.engine.publish("idem", b"1", history_size=10, history_ttl=300, idempotency_key="k1")
        other = await hub.engine.publish("idem", b"2", history_size=10, history_ttl=300, idempotency_key="k2")
        assert first == again and first is not None and other == StreamPosition(2, first.epoch)
        await hub.engine.publish("idem", b"3", history_size=10, history_ttl=300)
        delivered = await hub.wait_delivered(3)
        assert [p.data for p in delivered] == [b"1", b"2", b"3"]
        assert [p.data for p in (await hub.engine.history("idem")).publications] == [b"1", b"2", b"3"]
        # The same key on another channel is another publish.
        assert await hub.engine.publish("idem2", b"1", history_size=10, history_ttl=300, idempotency_key="k1")

    async def test_idempotent_publish_without_history(self, hub: Hub) -> None:
        """Without history a repeated key publishes once too."""
        for _ in range(3):
            options: dict[str, Any] = dict(history_size=0, history_ttl=0, idempotency_key="k")
            assert await hub.engine.publish("once", b"x", **options) is None
        await hub.engine.publish("once", b"y", history_size=0, history_ttl=0)
        delivered = await hub.wait_delivered(2)
        assert [p.data for p in delivered] == [b"x", b"y"]

    async def test_idempotent_results_expire(self, hub: Hub) -> None:
        """After idempotent_result_ttl the same key publishes again."""
        options: dict[str, Any] = dict(
            history_size=10, history_ttl=300, idempotency_key="k", idempotent_result_ttl=hub.unit
        )
        first = await hub.engine.publish("idexp", b"1", **options)
        await hub.elapse(1.5)
        second = await hub.engine.publish("idexp", b"1", **options)
        assert first is not None and second == StreamPosition(2, first.epoch)

    # Presence

    async def test_presence_counts_a_user_with_two_connections_once(self, hub: Hub) -> None:
        """Two connections of one user and one of another: 3 clients, 2 users."""
        engine = hub.engine
        a1, a2, b1 = info("a1", "alice", b'{"d":1}'), info("a2", "alice", None, b'{"c":2}'), info("b1", "bob")
        for client in (a1, a2, b1):
            await engine.add_presence("lobby", client.client, client)
        assert await engine.presence_stats("lobby") == PresenceStats(3, 2)
        assert await engine.presence("lobby") == {"a1": a1, "a2": a2, "b1": b1}
        await engine.remove_presence("lobby", "a1")
        assert await engine.presence_stats("lobby") == PresenceStats(2, 2)
        await engine.remove_presence("lobby", "a2")
        assert await engine.presence_stats("lobby") == PresenceStats(1, 1)
        assert await engine.presence("lobby") == {"b1": b1}
        await engine.remove_presence("lobby", "b1")
        await engine.remove_presence("lobby", "never-there")
        assert await engine.presence_stats("lobby") == PresenceStats(0, 0)
        assert await engine.presence("lobby") == {}

    async def test_presence_add_twice_updates_and_counts_once(self, hub: Hub) -> None:
        """Adding a client again replaces its info; a changed user moves the count."""
        engine = hub.engine
        await engine.add_presence("p", "c1", info("c1", "alice"))
        await engine.add_presence("p", "c1", info("c1", "alice", b'{"v":2}'))
        assert await engine.presence("p") == {"c1": info("c1", "alice", b'{"v":2}')}
        assert await engine.presence_stats("p") == PresenceStats(1, 1)
        await engine.add_presence("p", "c2", info("c2", "alice"))
        await engine.add_presence("p", "c1", info("c1", "bob"))
        assert await engine.presence_stats("p") == PresenceStats(2, 2)
        await engine.remove_presence("p", "c2")
        assert await engine.presence_stats("p") == PresenceStats(1, 1)
        assert await engine.presence("p") == {"c1": info("c1", "bob")}

    async def test_presence_refresh_batch_and_channels_apart(self, hub: Hub) -> None:
        """refresh_presence adds or updates many clients at once; channels do not mix."""
        engine = hub.engine
        clients = {f"c{n}": info(f"c{n}", f"u{n % 4}") for n in range(10)}
        await engine.refresh_presence("big", clients)
        await engine.refresh_presence("big", {})
        await engine.add_presence("other", "x", info("x", ""))
        await engine.add_presence("other", "y", info("y", ""))
        assert await engine.presence("big") == clients
        assert await engine.presence_stats("big") == PresenceStats(10, 4)
        # Anonymous connections count as one user.
        assert await engine.presence_stats("other") == PresenceStats(2, 1)
        assert await engine.presence_stats("nobody") == PresenceStats(0, 0)

    # Bad input

    async def test_bad_arguments_raise_errors_naming_the_fix(self, hub: Hub) -> None:
        """Wrong data types and out-of-range options raise before anything is published."""
        engine = hub.engine
        with pytest.raises(TypeError, match="orjson.dumps"):
            await engine.publish("x", "text", history_size=1, history_ttl=1)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="history_size"):
            await engine.publish("x", b"1", history_size=-1, history_ttl=1)
        with pytest.raises(ValueError, match="history_ttl"):
            await engine.publish("x", b"1", history_size=1, history_ttl=-1)
        with pytest.raises(ValueError, match="limit"):
            await engine.history("x", limit=-2)
        with pytest.raises(ValueError, match="offset"):
            await engine.recover("x", StreamPosition(-1, "e"))
        with pytest.raises(ValueError, match="offset"):
            await engine.history("x", since=StreamPosition(2**64, "e"))
        assert hub.delivered == []
        assert (await engine.history("x")).position.offset == 0
