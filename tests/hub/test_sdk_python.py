"""The real centrifuge-python SDK works against the protocol core (served by the test driver)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from wsviews.hub import config, tokens
from wsviews.hub.events import SubscriptionRefreshed

from .driver import DriverServer

HUB = {
    "client": {"token": {"hmac_secret_key": "py-test-secret-py-test-secret-0123456789"}},
    "channel": {
        "namespaces": [
            {"name": "news", "force_recovery": True, "history_size": 10, "history_ttl": "60s"},
            {"name": "secure", "presence": True, "allow_publish_for_subscriber": True,
             "allow_presence_for_subscriber": True},
        ],
    },
}


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_centrifuge_python_server_side_and_private_channels(centrifuge: Any) -> None:
    """Token server-side subscriptions, private channels with subscription tokens, their
    refresh, publish and presence work in centrifuge-python; a token for another channel
    ends the connection with 3500 and no reconnect."""
    hub_config = config.parse(HUB)
    now = time.time()
    seen: dict[str, list[Any]] = {"server_pubs": [], "server_subs": [], "disconnects": [],
                                  "private_pubs": [], "private_subscribed": []}

    class ClientEvents(centrifuge.ClientEventHandler):  # type: ignore[misc]
        async def on_subscribed(self, ctx: Any) -> None:
            seen["server_subs"].append((ctx.channel, ctx.recoverable, ctx.positioned))

        async def on_publication(self, ctx: Any) -> None:
            seen["server_pubs"].append((ctx.channel, ctx.pub.data, ctx.pub.offset))

        async def on_disconnected(self, ctx: Any) -> None:
            seen["disconnects"].append(ctx.code)

    class PrivateEvents(centrifuge.SubscriptionEventHandler):  # type: ignore[misc]
        async def on_subscribed(self, ctx: Any) -> None:
            seen["private_subscribed"].append(ctx.data)

        async def on_publication(self, ctx: Any) -> None:
            seen["private_pubs"].append((ctx.pub.data, ctx.pub.info.user))

    issued: list[float] = []

    async def sub_token(channel: str) -> str:
        issued.append(time.time())
        return tokens.subscription_token("ann", channel, config=hub_config, expires_in=2,
                                         data={"v": len(issued)}, info={"role": "editor"})

    async with DriverServer(hub_config).running() as hub:
        client = centrifuge.Client(
            hub.url, events=ClientEvents(),
            token=tokens.connection_token("ann", config=hub_config, channels=["news:ann"],
                                          info={"name": "Ann"}, now=now))
        await client.connect()
        await _until(lambda: bool(seen["server_subs"]))
        assert seen["server_subs"] == [("news:ann", True, True)]
        hub.engine.publish("news:ann", b'{"headline":"up"}', history_size=10)
        await _until(lambda: bool(seen["server_pubs"]))
        assert seen["server_pubs"] == [("news:ann", {"headline": "up"}, 1)]

        private = client.new_subscription("$secure:doc", events=PrivateEvents(), get_token=sub_token)
        await private.subscribe()
        await _until(lambda: bool(seen["private_subscribed"]))
        assert seen["private_subscribed"] == [{"v": 1}]
        await private.publish({"edit": 1})
        await _until(lambda: bool(seen["private_pubs"]))
        assert seen["private_pubs"] == [({"edit": 1}, "ann")]
        presence = await private.presence()
        assert [(c.user, c.chan_info) for c in presence.clients.values()] == [("ann", {"role": "editor"})]

        await _until(lambda: any(isinstance(e, SubscriptionRefreshed) for e in hub.log), 6.0)
        assert private.state == centrifuge.SubscriptionState.SUBSCRIBED

        forged = client.new_subscription("$secure:other", token=tokens.subscription_token(
            "ann", "$secure:doc", config=hub_config))
        await forged.subscribe()
        await _until(lambda: bool(seen["disconnects"]))
        assert seen["disconnects"] == [3500]
        assert client.state == centrifuge.ClientState.DISCONNECTED
        await client.disconnect()
