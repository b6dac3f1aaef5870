"""Servers of ``hosts``: which one owns a name, and running commands with the failure mapping."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from wsviews.layers import ChannelLayerUnavailable
from wsviews.layers.redis.config import decode_hosts
from wsviews.layers.redis.shards import Shards

from ..redis_server import free_port
from .conftest import REDIS


class Owner:
    """What owns the shards in the layer: told when a loop with clients closes."""

    def closing(self, loop: asyncio.AbstractEventLoop) -> None:
        pass


OWNER = Owner()


def make(hosts: list[str]) -> Shards:
    return Shards(decode_hosts(hosts), dict.fromkeys(("failed", "outages"), 0), 5.0, OWNER.closing)


def test_names_spread_over_servers_even_when_they_differ_only_at_the_end() -> None:
    shards = make([REDIS, REDIS.replace("/11", "/12"), REDIS.replace("/11", "/13")])
    owners = [shards.index(f"room{n}") for n in range(30)]
    assert set(owners) == {0, 1, 2}
    assert owners == [shards.index(f"room{n}") for n in range(30)]  # stable
    assert make([REDIS]).index("anything") == 0


def test_a_script_is_hashed_once() -> None:
    shards = make([REDIS])
    assert shards.script("return 1") is shards.script("return 1")
    assert shards.script("return 1").sha == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"


async def test_an_unreachable_server_is_one_warning_and_a_clear_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    shards = make([f"redis://127.0.0.1:{port}/0"])
    with caplog.at_level(logging.WARNING, "wsviews.layers.redis"):
        for _ in range(3):
            with pytest.raises(ChannelLayerUnavailable, match=f"127.0.0.1:{port}.*retry later"):
                await shards.run(0, lambda r: r.ping())
    assert [r.getMessage()[:22] for r in caplog.records] == ["Cannot reach Redis at "]
    assert shards.stats == {"failed": 3, "outages": 1}


async def test_run_script_sends_an_unknown_script_whole(raw: Any) -> None:
    shards = make([REDIS])
    source = "return {KEYS[1], ARGV[1]}"
    await raw.script_flush()
    assert await shards.run_script(0, source, ["k"], ["v"]) == [b"k", b"v"]
    assert (await raw.script_exists(shards.script(source).sha)) == [True]
    assert await shards.run_script(0, source, ["k2"], ["v2"]) == [b"k2", b"v2"]
    clients = shards.forget_loop(asyncio.get_running_loop())
    assert clients is not None
    await clients.aclose()
