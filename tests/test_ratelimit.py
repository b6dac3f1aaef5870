"""WSVIEWS_RATE_LIMIT: a token bucket per socket; the first message over it closes with 1008."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.test import override_settings

from serving_support import log_lines, start_serve
from wsclient import ConnectionClosed, connect, recv
from wsviews import ratelimit
from wsviews.conf import WSViewsSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(ratelimit.time, "monotonic", clock)
    bucket = ratelimit.TokenBucket(rate=2, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5  # one token back at 2 a second
    assert [bucket.take(), bucket.take()] == [True, False]
    clock.now += 10  # never more than the burst saved up
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


@pytest.mark.parametrize("value", [(0, 1), (5, 0), (5, 1.5), "20/s", (True, 2), [1]])
def test_a_wrong_rate_limit_is_a_problem_naming_the_fix(value):
    with override_settings(WSVIEWS_RATE_LIMIT=value):
        (problem,) = WSViewsSettings.RATE_LIMIT.problems()
    assert "must be None or (messages a second > 0, burst >= 1)" in problem.message
    assert WSViewsSettings.RATE_LIMIT.hint.startswith("e.g. WSVIEWS_RATE_LIMIT = (20, 40)")


def test_no_bucket_without_a_limit():
    assert ratelimit.new_bucket() is None
    with override_settings(WSVIEWS_RATE_LIMIT=(20, 40)):
        bucket = ratelimit.new_bucket()
    assert bucket is not None and (bucket.rate, bucket.burst) == (20, 40)


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory, _database: None):
    log = tmp_path_factory.mktemp("ratelimit") / "server.log"
    with start_serve(log, {"WSVIEWS_RATE_LIMIT": [1, 3]}) as server:
        yield server


async def over_the_limit(url: str, messages: list[str]) -> tuple[list[str], int, str]:
    """Send ``messages`` at once; return the replies before the close, its code and reason."""
    async with connect(url) as ws:
        for message in messages:
            await ws.send(message)
        replies = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                replies.append(await recv(ws))
        return replies, closed.value.rcvd.code, closed.value.rcvd.reason


async def test_the_tutorial_consumer_over_the_limit_closes_1008_and_others_carry_on(limited_server):
    server = limited_server
    async with connect(server.ws + "/ws/myapp/") as bystander:
        replies, code, reason = await over_the_limit(server.ws + "/ws/myapp/", ["a", "b", "c", "d", "e"])
        assert replies == ["a", "b", "c"]
        assert (code, reason) == (1008, "rate limit exceeded: over 1 messages a second (burst 3)")
        await bystander.send("alive")
        assert await recv(bystander) == "alive"
    await asyncio.sleep(0.2)
    lines = [line for line in log_lines(server) if "WSVIEWS_RATE_LIMIT" in line]
    assert len(lines) == 1 and "/ws/myapp/" in lines[0], lines
    assert "Traceback" not in server.log() and "ERROR" not in server.log()


async def test_a_view_over_the_limit_closes_1008(limited_server):
    chat = limited_server.ws + "/ws/chat/ratelimit/"
    texts = [json.dumps({"text": str(i)}) for i in range(6)]
    replies, code, _ = await over_the_limit(chat, texts)
    assert [json.loads(r)["text"] for r in replies] == ["0", "1", "2"]
    assert code == 1008
    assert "Traceback" not in limited_server.log()
