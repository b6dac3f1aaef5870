"""The production server under churn and fuzz: client behaviour never logs an ERROR or a traceback.

Real ``manage.py serve`` of the example project, real websocket clients:
thousands of connect/send/close cycles on the tutorial's consumer and on a
``@websocket`` view, clients that vanish mid-message, and hypothesis-made
frame sequences. Every socket's mistakes stay its own: a bystander socket
opened first still echoes at the end, and the server log holds no ERROR line
and no traceback.
"""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving_support import start_serve
from wsclient import ConnectionClosed, connect, recv

CYCLES = 10_000
CONCURRENCY = 40
ROUTES = ("/ws/myapp/", "/websocket/ws/myapp/", "/ws/chat/churn/")


@pytest.fixture(scope="module")
def churn_server(tmp_path_factory: pytest.TempPathFactory, _database: None):
    log = tmp_path_factory.mktemp("churn") / "server.log"
    with start_serve(log, {"WSVIEWS_MAX_MESSAGE_SIZE": 64 * 1024}) as server:
        yield server


def payload(route: str, n: int) -> str:
    return json.dumps({"text": f"m{n}"}) if "chat" in route else f"m{n}"


async def cycle(base: str, n: int, rng: random.Random) -> str:
    """One connection: connect, send, then leave in one of several ways; return how it ended."""
    route = ROUTES[n % len(ROUTES)]
    ws = await connect(base + route)
    try:
        await ws.send(payload(route, n))
        ending = rng.choice(("reply", "close", "abort", "abort-before-reply", "binary"))
        if ending == "reply":
            await recv(ws)
            await ws.close()
        elif ending == "close":
            await ws.close()
        elif ending == "binary":  # the tutorial's consumer takes no binary frame: 1003
            await ws.send(b"\x00\xff")
            with pytest.raises(ConnectionClosed):
                while True:
                    await recv(ws)
        else:
            if ending == "abort":
                await recv(ws)
            assert ws.transport is not None
            ws.transport.abort()  # the client vanishes; the server's send races it
        return ending
    finally:
        if ws.transport is not None and not ws.transport.is_closing():
            ws.transport.abort()


async def test_ten_thousand_cycles_on_views_and_consumers_log_no_error(churn_server):
    server = churn_server
    rng = random.Random(7)
    endings: dict[str, int] = {}
    async with connect(server.ws + "/ws/myapp/") as bystander:
        started = time.monotonic()
        queue = iter(range(CYCLES))

        async def worker() -> None:
            for n in queue:
                ending = await cycle(server.ws, n, rng)
                endings[ending] = endings.get(ending, 0) + 1

        async with asyncio.timeout(240):
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.monotonic() - started
        await bystander.send("still here")
        assert await recv(bystander) == "still here"
    assert sum(endings.values()) == CYCLES and len(endings) == 5, endings
    log = server.log()
    assert "ERROR" not in log and "Traceback" not in log, log[-3000:]
    print(f"{CYCLES} cycles in {elapsed:.1f} s ({CYCLES / elapsed:,.0f}/s): {endings}")


frames = st.lists(
    st.one_of(
        st.text(max_size=200).map(lambda t: ("text", t)),
        st.binary(max_size=200).map(lambda b: ("bytes", b)),
        st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=4),
                     max_leaves=20).map(lambda v: ("text", json.dumps(v))),
        st.integers(64 * 1024 - 2, 64 * 1024 + 2).map(lambda size: ("text", "x" * size)),
    ),
    min_size=1, max_size=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), sequence=frames, abort=st.booleans())
def test_fuzzed_frames_close_only_their_own_socket_and_log_no_error(churn_server, route, sequence, abort):
    async def run() -> None:
        ws = await connect(churn_server.ws + route, max_size=None)
        try:
            for _kind, data in sequence:
                await ws.send(data)
            if abort:
                assert ws.transport is not None
                ws.transport.abort()
            else:
                await ws.close()
        except ConnectionClosed:
            pass  # the server closed it for a frame it refused: that is allowed
        finally:
            if ws.transport is not None and not ws.transport.is_closing():
                ws.transport.abort()

        async with connect(churn_server.ws + "/ws/myapp/") as bystander:
            await bystander.send("ok")
            assert await recv(bystander) == "ok"

    asyncio.run(run())
    log = churn_server.log()
    assert "ERROR" not in log and "Traceback" not in log, log[-3000:]
