"""No client input makes HubProtocol raise, leak a subscription, or misroute a publication."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsviews.hub import codes, config, tokens
from wsviews.hub.events import (
    ConnectRequest,
    ConnectResult,
    Event,
    HistoryRequest,
    PositionCheckRequest,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    Request,
    RPCRequest,
    SubscribeRequest,
    SubscribeResult,
    Unsubscribed,
)
from wsviews.hub.protocol import HubProtocol
from wsviews.hub.records import ClientInfo, HistoryResult, PresenceStats, Publication, StreamPosition

NOW = 1_700_000_000.0
HUB = config.parse({
    "client": {"token": {"hmac_secret_key": "fuzz-secret-0123456789-abcdefghijklm"},
               "channel_limit": 4, "queue_max_size": 20000, "ping_interval": "5s",
               "pong_timeout": "2s"},
    "channel": {"namespaces": [
        {"name": "chat", "presence": True, "join_leave": True, "history_size": 5,
         "history_ttl": "60s", "force_recovery": True, "allow_subscribe_for_client": True,
         "allow_publish_for_subscriber": True, "allow_presence_for_subscriber": True,
         "allow_history_for_subscriber": True},
        {"name": "news", "allow_subscribe_for_client": True, "allow_subscribe_for_anonymous": True,
         "allow_publish_for_client": True},
        {"name": "open", "allow_user_limited_channels": True, "force_positioning": True,
         "history_size": 3, "history_ttl": "60s"},
    ]},
})
CHANNELS = ["chat:a", "chat:b", "news:n", "$chat:p", "nope:x", "open:f#42", "", "news:ü"]
TOKENS = [
    tokens.connection_token("42", config=HUB, channels=["chat:a"], now=NOW),
    tokens.connection_token("42", config=HUB, expires_in=30, now=NOW),
    tokens.connection_token("", config=HUB, now=NOW),
    tokens.connection_token("42", config=HUB, expires_in=5, now=NOW - 100),
    tokens.subscription_token("42", "$chat:p", config=HUB, expires_in=20, now=NOW),
    tokens.subscription_token("42", "chat:a", config=HUB, now=NOW),
    "not.a.token",
]
# Most generated traffic goes to a few channels, so subscriptions and pushes meet often.
LIKELY = st.sampled_from(["chat:b", "news:n", "chat:a"]) | st.sampled_from(CHANNELS)
METHODS = ["connect", "subscribe", "unsubscribe", "publish", "presence", "presence_stats",
           "history", "rpc", "send", "refresh", "sub_refresh", "ping", "bogus"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children,
                                                                      max_size=3),
    max_leaves=8)
field_values = st.one_of(json_values, st.sampled_from(CHANNELS), st.sampled_from(TOKENS),
                         st.integers(0, 12), st.booleans())
bodies = st.fixed_dictionaries({}, optional={
    name: field_values for name in (
        "channel", "token", "data", "recover", "offset", "epoch", "positioned", "recoverable",
        "join_leave", "delta", "type", "flag", "limit", "reverse", "method", "subs", "since", "tf")})
commands = st.builds(
    lambda cmd_id, method, body: {**({} if cmd_id is None else {"id": cmd_id}), method: body},
    st.one_of(st.none(), st.integers(-1, 20), st.just("1")), st.sampled_from(METHODS),
    st.one_of(bodies, json_values))
frames = st.one_of(
    st.lists(commands, min_size=1, max_size=4).map(lambda cs: "\n".join(json.dumps(c) for c in cs)),
    st.text(max_size=40), st.binary(max_size=40), st.just("{}"))
well_formed = st.builds(
    lambda cmd_id, method, channel, extra: json.dumps(
        {"id": cmd_id, method: {"channel": channel, **extra}}),
    st.integers(1, 30), st.sampled_from(["subscribe", "subscribe", "unsubscribe", "publish",
                                         "history", "presence", "sub_refresh"]),
    LIKELY,
    st.fixed_dictionaries({}, optional={
        "recover": st.booleans(), "offset": st.integers(0, 6), "epoch": st.sampled_from(["E", "F"]),
        "positioned": st.booleans(), "recoverable": st.booleans(), "join_leave": st.booleans(),
        "flag": st.integers(0, 3), "token": st.sampled_from(TOKENS), "data": json_values,
        "limit": st.integers(-1, 5)}))
ops = st.one_of(
    st.tuples(st.just("frame"), frames),
    st.tuples(st.just("frame"), well_formed),
    st.tuples(st.just("frame"), well_formed),
    st.tuples(st.just("tick"), st.floats(0, 40)),
    st.tuples(st.just("answer"), st.integers(0, 10), st.sampled_from(["ok", "error", "disconnect"])),
    st.tuples(st.just("push"), LIKELY, st.integers(0, 8),
              st.sampled_from(["", "E", "F"]), st.sampled_from(["pub", "join", "leave", "message"])),
    st.tuples(st.just("server"), st.sampled_from(["subscribe", "unsubscribe", "refresh", "stop"]),
              st.sampled_from(CHANNELS)),
)


class FuzzShell:
    """A shell that answers requests as the test says, tracking what it set up."""

    def __init__(self, connect_first: bool) -> None:
        self.now = NOW
        self.core = HubProtocol(HUB, client_id="fuzz", now=NOW, session_user="7")
        self.outstanding: list[Request] = []
        self.setups: Counter[str] = Counter()
        if connect_first:
            self.take(self.core.receive(json.dumps({"connect": {"token": TOKENS[0]}, "id": 1}),
                                        self.now))

    def take(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Unsubscribed):
                self.setups[event.channel] -= 1
                assert self.setups[event.channel] >= 0, f"undo without setup: {event}"
            elif isinstance(event, (ConnectRequest, SubscribeRequest, PublishRequest, PresenceRequest,
                                    PresenceStatsRequest, HistoryRequest, RPCRequest,
                                    PositionCheckRequest)):
                self.outstanding.append(event)
        self.check_output()

    def check_output(self) -> None:
        for frame in self.core.data_to_send():
            for line in frame.split("\n"):
                assert isinstance(json.loads(line), dict)   # {} is the server's ping

    def answer(self, index: int, mode: str) -> None:
        if not self.outstanding:
            return
        request = self.outstanding.pop(index % len(self.outstanding))
        core = self.core
        if mode != "ok":
            error = codes.DISCONNECT_SERVER_ERROR if mode == "disconnect" else codes.ERROR_INTERNAL
            self.take(core.reply_error(request, error))
            return
        top = StreamPosition(3, "E")
        pubs = (Publication(b"1", offset=2), Publication(b"2", offset=3))
        if isinstance(request, ConnectRequest):
            for sub in request.subscriptions:
                self.setups[sub.channel] += 1
            self.take(core.reply_connect(request, ConnectResult(subscriptions={
                s.channel: SubscribeResult(position=top, publications=pubs)
                for s in request.subscriptions}), self.now))
        elif isinstance(request, SubscribeRequest):
            self.setups[request.channel] += 1
            self.take(core.reply_subscribe(request, SubscribeResult(position=top, publications=pubs),
                                           self.now))
        elif isinstance(request, PublishRequest):
            self.take(core.reply_publish(request))
        elif isinstance(request, PresenceRequest):
            self.take(core.reply_presence(request, {"x": ClientInfo("1", "x")}))
        elif isinstance(request, PresenceStatsRequest):
            self.take(core.reply_presence_stats(request, PresenceStats(1, 1)))
        elif isinstance(request, HistoryRequest):
            self.take(core.reply_history(request, HistoryResult(pubs, top)))
        elif isinstance(request, RPCRequest):
            self.take(core.reply_rpc(request, request.data))
        elif isinstance(request, PositionCheckRequest):
            self.take(core.reply_position(request, top))

    def push(self, channel: str, offset: int, epoch: str, kind: str) -> None:
        core = self.core
        live = channel in core.channels
        before = len(core._out)
        if kind == "pub":
            events = core.push_publication(channel, Publication(b'{"n":1}', offset=offset),
                                           epoch=epoch)
        elif kind == "join":
            events = core.push_join(channel, ClientInfo("9", "c9"))
        elif kind == "leave":
            events = core.push_leave(channel, ClientInfo("9", "c9"))
        else:
            events = core.push_message(b'"hi"')
        if kind != "message" and not live:
            assert len(core._out) == before, "a push reached a channel the client is not in"
        self.take(events)

    def server(self, action: str, channel: str) -> None:
        core = self.core
        if action == "subscribe":
            self.take(core.subscribe(channel, self.now))
        elif action == "unsubscribe":
            self.take(core.unsubscribe(channel))
        elif action == "refresh":
            self.take(core.refresh(int(self.now) + 60, self.now))
        else:
            self.take(core.disconnect(codes.DISCONNECT_SHUTDOWN))

    def finish(self) -> None:
        while self.outstanding:
            self.answer(0, "ok")
        self.take(self.core.connection_lost())
        assert self.core.closed
        assert +self.setups == Counter(), f"subscriptions left set up: {+self.setups}"


@settings(max_examples=600, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.booleans(), st.lists(ops, max_size=25))
def test_any_input_sequence_is_handled_without_raising(connect_first: bool, steps: list[Any]) -> None:
    """For any frames, ticks, pushes and shell answers: no exception, only JSON lines go out,
    publications reach only subscribed channels, and every subscription set up is undone once."""
    shell = FuzzShell(connect_first)
    for step in steps:
        kind = step[0]
        if kind == "frame":
            shell.take(shell.core.receive(step[1], shell.now))
        elif kind == "tick":
            shell.now += step[1]
            shell.take(shell.core.tick(shell.now))
        elif kind == "answer":
            shell.answer(step[1], step[2])
        elif kind == "push":
            shell.push(*step[1:])
        else:
            shell.server(step[1], step[2])
        deadline = shell.core.next_deadline()
        assert deadline is None or isinstance(deadline, float)
    shell.finish()


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_arbitrary_frames_before_and_after_connect_never_raise(frame: str | bytes) -> None:
    """Random text or bytes, before connect and after, is answered or refused, never raised on."""
    for connect_first in (False, True):
        shell = FuzzShell(connect_first)
        if connect_first:
            shell.answer(0, "ok")
        shell.take(shell.core.receive(frame, NOW))
        shell.finish()
