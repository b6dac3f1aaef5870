"""The in-memory engine: the shared contract on a test clock, then what only it has."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

from wsviews.hub.engine import Engine, Publication, StreamPosition
from wsviews.hub.engine_memory import MemoryEngine

from .engine_contract import EngineContract, Hub, publish_many


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MemoryHub(Hub):
    unit = 10.0

    def __init__(self) -> None:
        self.clock = Clock()
        super().__init__(
            MemoryEngine(self.deliver, history_meta_ttl=self.meta_ttl_units * self.unit, clock=self.clock)
        )

    async def elapse(self, units: float) -> None:
        self.clock.now += units * self.unit

    async def lose_stream(self, channel: str) -> None:
        # A memory stream is lost when its position expires (or the process restarts):
        # past history_meta_ttl and any history_ttl the contract uses.
        await self.elapse(100)

    async def processes(self, count: int) -> list[Engine]:
        return [self.engine] * count  # one process: concurrency is many tasks


class TestMemoryEngineContract(EngineContract):
    @contextlib.asynccontextmanager
    async def make_hub(self) -> AsyncIterator[Hub]:
        yield MemoryHub()


@pytest.fixture
def hub() -> MemoryHub:
    return MemoryHub()


def sizes(engine: MemoryEngine) -> tuple[int, int, int]:
    """Return how many streams, idempotent results and pending deadlines the engine holds."""
    return len(engine._streams), len(engine._results), len(engine._deadlines)


async def test_deliver_runs_in_the_same_step_as_the_append(hub: MemoryHub) -> None:
    """When deliver() runs, the publication is already in the history and the offset is taken."""
    engine = hub.engine
    assert isinstance(engine, MemoryEngine)
    seen: list[tuple[int, list[int]]] = []

    def deliver(channel: str, publication: Publication) -> None:
        stream = engine._streams[channel]
        seen.append((publication.offset, [p.offset for p in stream.publications]))

    engine._deliver = deliver
    await publish_many(engine, "c", 3, history_size=2)
    assert seen == [(1, [1]), (2, [1, 2]), (3, [2, 3])]


async def test_a_failing_deliver_is_logged_and_the_publish_stands(
    hub: MemoryHub, caplog: pytest.LogCaptureFixture
) -> None:
    """deliver() raising is our bug: one ERROR with traceback; the publication keeps its place."""
    engine = hub.engine
    assert isinstance(engine, MemoryEngine)

    def deliver(channel: str, publication: Publication) -> None:
        raise RuntimeError("boom")

    engine._deliver = deliver
    with caplog.at_level(logging.ERROR, "wsviews.hub.engine"):
        position = await engine.publish("c", b"1", history_size=5, history_ttl=60)
    assert position is not None and position.offset == 1
    assert [r.exc_info is not None for r in caplog.records] == [True]
    assert "'c'" in caplog.records[0].getMessage()
    assert [p.offset for p in (await engine.history("c")).publications] == [1]


async def test_sweep_frees_what_expired(hub: MemoryHub) -> None:
    """sweep() drops expired publications, then forgotten positions and results: memory stays bounded."""
    engine = hub.engine
    assert isinstance(engine, MemoryEngine)
    for n in range(100):
        await engine.publish(f"ch{n}", b"x", history_size=5, history_ttl=hub.unit, idempotency_key="k",
                             idempotent_result_ttl=hub.unit)
    assert sizes(engine)[:2] == (100, 100)
    await hub.elapse(1.5)
    engine.sweep()
    # Publications and results are gone; positions remain until history_meta_ttl.
    assert sizes(engine)[:2] == (100, 0)
    assert all(not stream.publications for stream in engine._streams.values())
    await hub.elapse(hub.meta_ttl_units)
    engine.sweep()
    assert sizes(engine) == (0, 0, 0)


async def test_sweep_keeps_what_is_alive(hub: MemoryHub) -> None:
    """A stream published to again, or read, survives the sweep with its epoch."""
    engine = hub.engine
    assert isinstance(engine, MemoryEngine)
    position = await engine.publish("live", b"1", history_size=5, history_ttl=hub.unit * 2)
    for _ in range(10):
        await hub.elapse(1)
        position = await engine.publish("live", b"x", history_size=5, history_ttl=hub.unit * 2)
        engine.sweep()
    assert position == StreamPosition(11, position.epoch)
    assert len((await engine.history("live")).publications) == 5
    # The heap holds a bounded number of entries per stream, not one per publish.
    assert len(engine._deadlines) <= 3


async def test_steady_publishing_does_not_grow_the_sweep_heap(hub: MemoryHub) -> None:
    """With a constant history_ttl, publishing pushes no sweep entry after the first ones."""
    engine = hub.engine
    assert isinstance(engine, MemoryEngine)
    await publish_many(engine, "steady", 1)
    before = len(engine._deadlines)
    for _ in range(50):
        await hub.elapse(0.01)
        await publish_many(engine, "steady", 1)
    assert len(engine._deadlines) == before


async def test_a_changed_history_size_keeps_the_newest(hub: MemoryHub) -> None:
    """A publish with another history_size resizes the window, keeping the newest publications."""
    engine = hub.engine
    await publish_many(engine, "resize", 6, history_size=5)
    await publish_many(engine, "resize", 1, history_size=2)
    assert [p.offset for p in (await engine.history("resize")).publications] == [6, 7]
    await publish_many(engine, "resize", 2, history_size=4)
    assert [p.offset for p in (await engine.history("resize")).publications] == [6, 7, 8, 9]


async def test_tags_are_copied(hub: MemoryHub) -> None:
    """The history keeps its own copy of the tags: the caller may reuse its dict."""
    tags = {"k": "v"}
    await hub.engine.publish("tags", b"1", history_size=5, history_ttl=60, tags=tags)
    tags["k"] = "changed"
    assert (await hub.engine.history("tags")).publications[0].tags == {"k": "v"}


async def test_a_new_engine_has_new_epochs() -> None:
    """A restarted process makes new epochs, so no client recovers across the restart."""
    first, second = MemoryEngine(lambda c, p: None), MemoryEngine(lambda c, p: None)
    a = await first.publish("c", b"1", history_size=5, history_ttl=60)
    b = await second.publish("c", b"1", history_size=5, history_ttl=60)
    assert a is not None and b is not None and a.offset == b.offset == 1 and a.epoch != b.epoch
    assert not (await second.recover("c", a)).recovered


def test_history_meta_ttl_must_be_positive() -> None:
    """A zero history_meta_ttl is refused with the fix named."""
    with pytest.raises(ValueError, match="history_meta_ttl must be > 0"):
        MemoryEngine(lambda c, p: None, history_meta_ttl=0)


async def test_the_position_outlives_a_long_history_ttl(hub: MemoryHub) -> None:
    """history_ttl above history_meta_ttl: the position lives as long as the publications."""
    ttl = hub.unit * hub.meta_ttl_units * 3
    position = await hub.engine.publish("long", b"1", history_size=5, history_ttl=ttl)
    await hub.elapse(hub.meta_ttl_units * 2)
    hub.engine.sweep()
    history = await hub.engine.history("long")
    assert history.position == position and len(history.publications) == 1
