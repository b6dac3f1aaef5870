"""HubProtocol, driven with the frames the SDKs send, answers exactly as Centrifugo does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wsviews.hub import codes, config, tokens
from wsviews.hub.events import (
    Closed,
    ConnectRequest,
    ConnectResult,
    Event,
    HistoryRequest,
    MessageReceived,
    PositionCheckRequest,
    PresenceDue,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    Refreshed,
    RPCRequest,
    SubscribeRequest,
    SubscribeResult,
    SubscriptionRefreshed,
    Unsubscribed,
)
from wsviews.hub.protocol import HubProtocol, State
from wsviews.hub.records import ClientInfo, HistoryResult, PresenceStats, Publication, StreamPosition

NOW = 1_700_000_000.0
SECRET = "protocol-test-secret-0123456789-abcdef"
CHAT = {"name": "chat", "presence": True, "join_leave": True, "history_size": 10,
        "history_ttl": "300s", "force_recovery": True, "allow_subscribe_for_client": True,
        "allow_publish_for_subscriber": True, "allow_presence_for_subscriber": True,
        "allow_history_for_subscriber": True}
BASE: dict[str, Any] = {
    "client": {"token": {"hmac_secret_key": SECRET}},
    "channel": {"namespaces": [
        CHAT,
        {"name": "news", "allow_subscribe_for_client": True, "allow_subscribe_for_anonymous": True},
        {"name": "open", "allow_subscribe_for_client": True, "allow_user_limited_channels": True,
         "allow_publish_for_client": True, "publication_data_format": "json_object"},
        {"name": "rx", "allow_subscribe_for_client": True, "channel_regex": "^[a-z]+$"},
        {"name": "stream", "force_positioning": True, "history_size": 5, "history_ttl": "60s",
         "allow_subscribe_for_client": True},
    ]},
}


QUIET = {"ping_interval": -1, "presence_update_interval": "0s", "channel_position_check_delay": "0s"}


def hub(**client: Any) -> config.HubConfig:
    setting = json.loads(json.dumps(BASE))
    setting["client"].update(client)
    return config.parse(setting)


def token(user: str = "42", **kwargs: Any) -> str:
    kwargs.setdefault("now", NOW)
    return tokens.connection_token(user, config=hub(), **kwargs)


def sub_token(channel: str, user: str = "42", **kwargs: Any) -> str:
    kwargs.setdefault("now", NOW)
    return tokens.subscription_token(user, channel, config=hub(), **kwargs)


def lines(core: HubProtocol) -> list[dict[str, Any]]:
    """Return every reply and push sent since the last call, decoded."""
    return [json.loads(line) for frame in core.data_to_send() for line in frame.split("\n")]


def closed_with(events: list[Event]) -> codes.Disconnect:
    assert isinstance(events[-1], Closed), events
    return events[-1].disconnect


def new(config_: config.HubConfig | None = None, **kwargs: Any) -> HubProtocol:
    return HubProtocol(config_ or hub(), client_id="c1", now=NOW, server_version="0.1", **kwargs)


def connected(config_: config.HubConfig | None = None, user: str = "42", **kwargs: Any
              ) -> HubProtocol:
    core = new(config_, **kwargs)
    events = core.receive(json.dumps({"connect": {"token": token(user), "name": "js"}, "id": 1}),
                          NOW)
    assert isinstance(events[0], ConnectRequest)
    assert core.reply_connect(events[0], ConnectResult(), NOW) == []
    lines(core)
    return core


def subscribe(core: HubProtocol, channel: str, cmd_id: int = 2, result: SubscribeResult | None = None,
              **fields: Any) -> SubscribeRequest:
    events = core.receive(json.dumps({"subscribe": {"channel": channel, **fields}, "id": cmd_id}),
                          NOW)
    assert len(events) == 1 and isinstance(events[0], SubscribeRequest), (events, lines(core))
    request = events[0]
    if result is not None:
        core.reply_subscribe(request, result, NOW)
    return request


# Framing ---------------------------------------------------------------------

def test_connect_reply_is_byte_exact_with_ping_and_ttl() -> None:
    """The connect reply carries client, version, expiry, ping interval and pong, in Centrifugo's order."""
    core = new()
    frame = '{"connect":{"token":"' + token() + '","name":"js","version":"5.8.0"},"id":1}'
    [request] = core.receive(frame, NOW)
    assert isinstance(request, ConnectRequest)
    assert (request.user, request.source, request.expire_at, request.name, request.version) == (
        "42", "token", int(NOW) + 3600, "js", "5.8.0")
    assert core.state is State.AUTHENTICATING
    core.reply_connect(request, ConnectResult(), NOW)
    assert core.data_to_send() == [
        '{"id":1,"connect":{"client":"c1","version":"0.1","expires":true,"ttl":3600,"ping":25,'
        '"pong":true}}']
    assert core.state is State.CONNECTED


def test_several_commands_in_one_frame_are_answered_in_one_batched_frame() -> None:
    """Newline-separated commands are each handled; the replies leave newline-separated in one frame."""
    core = connected()
    events = core.receive('{"unsubscribe":{"channel":"a"},"id":2}\n{"unsubscribe":{"channel":"b"},'
                          '"id":3}\n', NOW)
    assert events == []
    assert core.data_to_send() == ['{"id":2,"unsubscribe":{}}\n{"id":3,"unsubscribe":{}}']
    assert core.data_to_send() == []


@pytest.mark.parametrize("frame", [
    "", "\n", "not json", "[1]", '{"id":1}', '{"id":1,"frobnicate":{}}', '{"id":"1","presence":{}}',
    '{"id":1,"subscribe":{"channel":5}}', '{"id":1,"subscribe":"chat:a"}', '{"id":-1}',
    '{"id":1,"history":{"channel":"chat:a","limit":"5"}}', '{"id":1,"ping":{}}',
    '{"id":1,"presence":{"channel":"chat:a"}}\n\n', '{"id":1,"subscribe":{"channel":""}}',
    '{"id":1,"subscribe":{"channel":"chat:a","delta":"zstd"}}', '{"id":1,"publish":{"data":1}}',
    '{"id":1,"refresh":{}}', '{"id":1,"presence":{"channel":NaN}}', '{"id":1,"sub_refresh":{}}',
])
def test_malformed_commands_close_with_bad_request(frame: str) -> None:
    """Unparsable, unknown, wrongly typed or incomplete commands close the connection with 3501."""
    core = connected()
    events = core.receive(frame, NOW)
    assert closed_with(events) == codes.DISCONNECT_BAD_REQUEST
    assert core.closed and core.close_reason == codes.DISCONNECT_BAD_REQUEST
    assert core.receive('{"id":9,"presence":{"channel":"chat:a"}}', NOW) == []


def test_commands_before_a_bad_one_are_still_answered() -> None:
    """Commands preceding a malformed line in the same frame keep their replies."""
    core = connected()
    events = core.receive('{"unsubscribe":{"channel":"a"},"id":2}\n{oops', NOW)
    assert closed_with(events) == codes.DISCONNECT_BAD_REQUEST
    assert lines(core) == [{"id": 2, "unsubscribe": {}}]


def test_frame_over_the_size_limit_closes_with_1009() -> None:
    """A frame above message_size_limit is refused the way websocket servers do (1009)."""
    core = new(config.parse({**BASE, "websocket": {"message_size_limit": 100}}))
    assert closed_with(core.receive("x" * 101, NOW)) == codes.DISCONNECT_MESSAGE_TOO_BIG
    core = new(max_frame_size=10)
    assert closed_with(core.receive("é" * 6, NOW)) == codes.DISCONNECT_MESSAGE_TOO_BIG


def test_bytes_frames_are_read_as_utf8_text_and_binary_garbage_is_refused() -> None:
    """A binary frame holding UTF-8 JSON works; one that is not UTF-8 closes with 3501."""
    core = connected()
    assert core.receive(b'{"unsubscribe":{"channel":"x"},"id":2}', NOW) == []
    assert lines(core) == [{"id": 2, "unsubscribe": {}}]
    assert closed_with(core.receive(b"\xff\xfe", NOW)) == codes.DISCONNECT_BAD_REQUEST


def test_commands_before_connect_and_a_second_connect_close_with_bad_request() -> None:
    """Only connect may come first, and only once."""
    assert closed_with(new().receive('{"presence":{"channel":"chat:a"},"id":1}', NOW)) == \
        codes.DISCONNECT_BAD_REQUEST
    assert closed_with(new().receive("{}", NOW)) == codes.DISCONNECT_BAD_REQUEST
    core = connected()
    events = core.receive(json.dumps({"connect": {"token": token()}, "id": 5}), NOW)
    assert closed_with(events) == codes.DISCONNECT_BAD_REQUEST


# Connect ---------------------------------------------------------------------

def test_expired_connection_token_gets_109_and_the_connection_becomes_unusable() -> None:
    """An expired token is answered with error 109 (the SDK refreshes it); further commands close."""
    core = new()
    expired = token(expires_in=10, now=NOW - 60)
    assert core.receive(json.dumps({"connect": {"token": expired}, "id": 1}), NOW) == []
    assert lines(core) == [{"id": 1, "error": {"code": 109, "message": "token expired"}}]
    assert core.state is State.UNUSABLE
    assert closed_with(core.receive('{"id":2,"presence":{"channel":"chat:a"}}', NOW)) == \
        codes.DISCONNECT_BAD_REQUEST


@pytest.mark.parametrize("bad", [
    tokens.connection_token("42", config=config.parse({"client": {"token": {
        "hmac_secret_key": "another-secret-another-secret-0123456"}}}), now=NOW),
    sub_token("chat:a"),                           # a subscription token is no connection token
    "eyJhbGciOiJub25lIn0.eyJzdWIiOiI0MiJ9.",        # alg none
    "garbage",
])
def test_forged_or_malformed_connection_token_closes_with_3500(bad: str) -> None:
    """Tokens with a wrong signature, the none algorithm, a channel claim or no structure: 3500."""
    events = new().receive(json.dumps({"connect": {"token": bad}, "id": 1}), NOW)
    assert closed_with(events) == codes.DISCONNECT_INVALID_TOKEN


def test_without_token_the_session_user_or_anonymous_access_decides() -> None:
    """No token: the Django session user connects; else anonymous if allowed; else 3501."""
    core = new(session_user="7")
    [request] = core.receive('{"connect":{},"id":1}', NOW)
    assert isinstance(request, ConnectRequest)
    assert (request.user, request.source) == ("7", "session")
    [request] = new(hub(allow_anonymous_connect_without_token=True)).receive(
        '{"connect":{},"id":1}', NOW)
    assert isinstance(request, ConnectRequest)
    assert (request.user, request.source) == ("", "anonymous")
    assert closed_with(new().receive('{"connect":{},"id":1}', NOW)) == codes.DISCONNECT_BAD_REQUEST


def test_anonymous_connection_tokens_can_be_disallowed() -> None:
    """disallow_anonymous_connection_tokens turns a token with an empty sub into 3507."""
    core = new(hub(disallow_anonymous_connection_tokens=True))
    events = core.receive(json.dumps({"connect": {"token": token("")}, "id": 1}), NOW)
    assert closed_with(events) == codes.DISCONNECT_PERMISSION_DENIED


def test_token_channels_become_server_side_subscriptions_in_the_connect_reply() -> None:
    """``channels`` in the token subscribe server-side; connect.subs hints drive their recovery."""
    core = new()
    frame = json.dumps({"connect": {"token": token(channels=["chat:lobby", "news:x"]), "subs": {
        "chat:lobby": {"recover": True, "offset": 3, "epoch": "E"}}}, "id": 1})
    [request] = core.receive(frame, NOW)
    assert isinstance(request, ConnectRequest)
    lobby, news = request.subscriptions
    assert (lobby.channel, lobby.server_side, lobby.since, lobby.options.recoverable) == (
        "chat:lobby", True, StreamPosition(3, "E"), True)
    assert (news.channel, news.since, news.options.positioned) == ("news:x", None, False)
    missed = (Publication(b'{"n":4}', offset=4), Publication(b'{"n":5}', offset=5))
    core.reply_connect(request, ConnectResult(subscriptions={
        "chat:lobby": SubscribeResult(position=StreamPosition(5, "E"), publications=missed)}), NOW)
    [reply] = lines(core)
    assert reply["connect"]["subs"] == {
        "chat:lobby": {"recoverable": True, "epoch": "E", "publications": [
            {"data": {"n": 4}, "offset": 4}, {"data": {"n": 5}, "offset": 5}],
            "recovered": True, "offset": 3, "positioned": True, "was_recovering": True},
        "news:x": {}}
    core.push_publication("chat:lobby", Publication(b'{"n":6}', offset=6), epoch="E")
    assert lines(core) == [{"push": {"channel": "chat:lobby", "pub": {"data": {"n": 6}, "offset": 6}}}]


def test_token_channel_in_an_undeclared_namespace_is_error_102() -> None:
    """A server-side channel whose namespace is not declared refuses the connect with 102."""
    core = new()
    assert core.receive(json.dumps({"connect": {"token": token(channels=["nope:x"])}, "id": 1}),
                        NOW) == []
    assert lines(core) == [{"id": 1, "error": {"code": 102, "message": "unknown channel"}}]


def test_the_shell_can_refuse_a_connect_with_an_error_or_a_disconnect() -> None:
    """reply_error answers the connect with an error reply (unusable) or closes the connection."""
    core = new()
    [request] = core.receive(json.dumps({"connect": {"token": token()}, "id": 1}), NOW)
    assert isinstance(request, ConnectRequest)
    core.reply_error(request, codes.ERROR_LIMIT_EXCEEDED)
    assert lines(core) == [{"id": 1, "error": {"code": 106, "message": "limit exceeded"}}]
    assert core.state is State.UNUSABLE
    core = new()
    [request] = core.receive(json.dumps({"connect": {"token": token()}, "id": 1}), NOW)
    assert isinstance(request, ConnectRequest)
    assert closed_with(core.reply_error(request, codes.DISCONNECT_CONNECTION_LIMIT)) == \
        codes.DISCONNECT_CONNECTION_LIMIT


def test_commands_sent_before_the_connect_reply_are_handled_after_it() -> None:
    """Commands pipelined behind connect wait for the shell's answer instead of failing."""
    core = new()
    events = core.receive(json.dumps({"connect": {"token": token()}, "id": 1}) + "\n"
                          + '{"subscribe":{"channel":"news:a"},"id":2}', NOW)
    assert [type(e) for e in events] == [ConnectRequest]
    assert isinstance(events[0], ConnectRequest)
    [request] = core.reply_connect(events[0], ConnectResult(), NOW)
    assert isinstance(request, SubscribeRequest) and request.channel == "news:a"


def test_a_connection_that_never_connects_is_closed_as_stale() -> None:
    """Without a successful connect within stale_close_delay the connection closes with 3502."""
    core = new()
    assert core.next_deadline() == NOW + 10
    assert core.tick(NOW + 9) == []
    assert closed_with(core.tick(NOW + 10)) == codes.DISCONNECT_STALE


def test_insecure_mode_ignores_expiry_and_admits_everything() -> None:
    """client.insecure: connections never expire and any declared channel may be subscribed."""
    core = new(hub(insecure=True))
    [request] = core.receive(json.dumps({"connect": {"token": token()}, "id": 1}), NOW)
    assert isinstance(request, ConnectRequest) and request.expire_at == 0
    core.reply_connect(request, ConnectResult(), NOW)
    assert "expires" not in lines(core)[0]["connect"]
    assert subscribe(core, "stream:locked").channel == "stream:locked"


def test_server_time_is_included_when_configured() -> None:
    """connect_include_server_time adds ``time`` (Unix milliseconds) to the connect reply."""
    core = new(hub(connect_include_server_time=True, ping_interval=-1))
    [request] = core.receive('{"connect":{"token":"' + token() + '"},"id":1}', NOW)
    assert isinstance(request, ConnectRequest)
    core.reply_connect(request, ConnectResult(data=b'{"motd":"hi"}'), NOW)
    assert lines(core) == [{"id": 1, "connect": {"client": "c1", "version": "0.1", "expires": True,
                                                 "ttl": 3600, "data": {"motd": "hi"},
                                                 "time": int(NOW * 1000)}}]


# Ping / pong -----------------------------------------------------------------

def test_server_pings_and_expects_a_pong_in_time() -> None:
    """An empty frame ({}) goes out every ping_interval; no pong within pong_timeout closes with 3012."""
    core = connected(hub(presence_update_interval="0s"))
    assert core.next_deadline() == NOW + 25
    assert core.tick(NOW + 24) == [] and core.data_to_send() == []
    core.tick(NOW + 25)
    assert core.data_to_send() == ["{}"]
    assert core.next_deadline() == NOW + 33
    assert core.receive("{}", NOW + 26) == []
    assert core.next_deadline() == NOW + 50
    core.tick(NOW + 50)
    assert core.data_to_send() == ["{}"]
    assert closed_with(core.tick(NOW + 58)) == codes.DISCONNECT_NO_PONG


def test_a_pong_without_a_ping_closes_with_bad_request() -> None:
    """Pongs answer pings; an unsolicited one is a protocol error (3501), as in Centrifugo."""
    core = connected()
    assert closed_with(core.receive("{}", NOW + 1)) == codes.DISCONNECT_BAD_REQUEST


def test_pings_can_be_disabled() -> None:
    """ping_interval -1 leaves ping and pong out of the connect reply and sends no pings."""
    core = new(hub(ping_interval=-1))
    [request] = core.receive('{"connect":{"token":"' + token() + '"},"id":1}', NOW)
    assert isinstance(request, ConnectRequest)
    core.reply_connect(request, ConnectResult(), NOW)
    assert "ping" not in lines(core)[0]["connect"]
    assert core.next_deadline() == NOW + 27            # presence updates only
    core.tick(NOW + 100)
    assert core.data_to_send() == []


# Subscribe -------------------------------------------------------------------

def test_subscribe_with_the_js_sdk_frame_resolves_options_and_answers_exactly() -> None:
    """The SDK's subscribe (flag, positioned, recoverable, join_leave) gets the namespace's options."""
    core = connected()
    request = subscribe(core, "chat:room", recoverable=True, positioned=True, join_leave=True, flag=1)
    options = request.options
    assert (options.presence, options.join_leave, options.push_join_leave, options.positioned,
            options.recoverable, options.history_size, options.history_ttl) == (
        True, True, True, True, True, 10, 300.0)
    assert request.info == ClientInfo("42", "c1", None, None)
    assert core.data_to_send() == []
    core.reply_subscribe(request, SubscribeResult(position=StreamPosition(7, "ep")), NOW)
    assert core.data_to_send() == [
        '{"id":2,"subscribe":{"recoverable":true,"epoch":"ep","offset":7,"positioned":true}}']


def test_a_plain_subscription_reply_is_empty() -> None:
    """Without positioning, expiry or data the subscribe result is ``{}``."""
    core = connected()
    subscribe(core, "news:a", result=SubscribeResult())
    assert core.data_to_send() == ['{"id":2,"subscribe":{}}']


@pytest.mark.parametrize(("since", "top", "pubs", "recovered"), [
    ((5, "E"), (7, "E"), (6, 7), True),          # the missing two
    ((7, "E"), (7, "E"), (), True),              # nothing missed
    ((9, "E"), (7, "E"), (), False),             # an offset from the future
    ((5, "OLD"), (7, "E"), (6, 7), False),       # another epoch
    ((2, "E"), (7, "E"), (5, 6, 7), False),      # history no longer reaches back far enough
    ((5, "E"), (7, "E"), (6,), False),           # a truncated read
])
def test_recovery_is_reported_only_when_the_stream_has_no_gap(
        since: tuple[int, str], top: tuple[int, str], pubs: tuple[int, ...], recovered: bool) -> None:
    """recovered: true only with the same epoch and every publication from since+1 to the top."""
    core = connected()
    request = subscribe(core, "chat:room", recover=True, offset=since[0], epoch=since[1],
                        recoverable=True, positioned=True)
    assert request.since == StreamPosition(*since)
    result = SubscribeResult(position=StreamPosition(*top), publications=tuple(
        Publication(b'{"n":%d}' % n, offset=n) for n in pubs))
    core.reply_subscribe(request, result, NOW)
    [reply] = lines(core)
    body = reply["subscribe"]
    assert body.get("recovered", False) is recovered
    assert body["was_recovering"] is True
    if recovered:
        assert body["offset"] == since[0]
        assert [p["offset"] for p in body.get("publications", [])] == list(pubs)
    else:
        assert body["offset"] == top[0] and "publications" not in body
        assert body["epoch"] == top[1]


def test_the_reject_unrecovered_flag_turns_failed_recovery_into_error_112() -> None:
    """With flag 2 (getState in the SDK) an unrecoverable position is error 112, not recovered: false."""
    core = connected()
    request = subscribe(core, "chat:room", recover=True, offset=9, epoch="E", flag=3)
    events = core.reply_subscribe(request, SubscribeResult(position=StreamPosition(7, "E")), NOW)
    assert lines(core) == [{"id": 2, "error": {"code": 112, "message": "unrecoverable position"}}]
    assert [type(e) for e in events] == [Unsubscribed]          # the shell undoes its setup
    assert subscribe(core, "chat:room", cmd_id=3).channel == "chat:room"


@pytest.mark.parametrize(("channel", "fields", "code"), [
    ("nope:x", {}, 102),
    ("$chat:secret", {}, 103),
    ("stream:x", {"type": 1}, 103),
    ("stream:x", {"type": 4}, 108),
    ("chat:" + "x" * 300, {}, 107),
    ("rx:UPPER", {}, 107),
    ("news:ünï", {}, 107),
    ("chat:room", {"tf": {"key": "a", "cmp": "eq", "val": "b"}}, 107),
    ("open:feed#7,8", {}, 103),
])
def test_subscribe_refusals_use_centrifugos_error_codes(channel: str, fields: dict[str, Any],
                                                        code: int) -> None:
    """Undeclared namespace 102, private or not permitted 103, map 103, shared poll 108, bad name 107."""
    core = connected()
    events = core.receive(json.dumps({"subscribe": {"channel": channel, **fields}, "id": 2}), NOW)
    assert events == []
    assert lines(core)[0]["error"]["code"] == code


def test_user_limited_channels_admit_exactly_the_listed_users() -> None:
    """``open:feed#42,43`` admits users 42 and 43 (allow_user_limited_channels) and nobody else."""
    assert isinstance(subscribe(connected(), "open:feed#41,42"), SubscribeRequest)
    core = connected(user="44")
    assert core.receive('{"subscribe":{"channel":"open:feed#41,42"},"id":2}', NOW) == []
    assert lines(core)[0]["error"]["code"] == 103


def test_anonymous_clients_subscribe_only_where_allowed() -> None:
    """allow_subscribe_for_anonymous opens a namespace to anonymous clients; others stay closed."""
    core = connected(hub(), user="")
    assert isinstance(subscribe(core, "news:a"), SubscribeRequest)
    assert core.receive('{"subscribe":{"channel":"chat:a"},"id":3}', NOW) == []
    assert lines(core)[0]["error"]["code"] == 103


def test_duplicate_and_over_limit_subscriptions_are_refused() -> None:
    """A channel subscribed (or being subscribed) twice is 105; beyond channel_limit 106."""
    core = connected(hub(channel_limit=1))
    subscribe(core, "news:a")
    assert core.receive('{"subscribe":{"channel":"news:a"},"id":3}', NOW) == []
    assert core.receive('{"subscribe":{"channel":"news:b"},"id":4}', NOW) == []
    assert [r["error"]["code"] for r in lines(core)] == [105, 106]


def test_delta_is_negotiated_off() -> None:
    """A client asking for fossil delta is answered without ``delta``: publications come in full."""
    core = connected()
    subscribe(core, "news:a", delta="fossil", result=SubscribeResult())
    assert lines(core) == [{"id": 2, "subscribe": {}}]


def test_subscription_tokens_grant_private_channels_with_their_info_and_data() -> None:
    """A valid subscription token admits ``$`` channels; its info and data reach the subscription."""
    core = connected()
    st = sub_token("$chat:vip", info={"role": "admin"}, data={"welcome": 1}, expires_in=60,
                   override={"presence": False})
    request = subscribe(core, "$chat:vip", token=st)
    assert request.options.channel_info == b'{"role":"admin"}'
    assert request.options.presence is False
    assert request.info.chan_info == b'{"role":"admin"}'
    core.reply_subscribe(request, SubscribeResult(position=StreamPosition(0, "e")), NOW)
    [reply] = lines(core)
    assert reply["subscribe"] == {"expires": True, "ttl": 60, "epoch": "e", "positioned": True,
                                  "recoverable": True, "data": {"welcome": 1}}


@pytest.mark.parametrize(("make", "outcome"), [
    (lambda: sub_token("$chat:vip", expires_in=10, now=NOW - 60), 109),
    (lambda: tokens.subscription_token("42", "$chat:vip", config=config.parse({"client": {
        "token": {"hmac_secret_key": "a-different-secret-0123456789-abcdef"}}}), now=NOW), 103),
    (lambda: sub_token("$chat:other"), 3500),
    (lambda: sub_token("$chat:vip", user="43"), 3500),
    (lambda: sub_token("$chat:vip", client="someone-else"), 3500),
])
def test_bad_subscription_tokens(make: Any, outcome: int) -> None:
    """Expired: 109 (the SDK fetches another); forged: 103; for another channel, user or client: 3500."""
    core = connected()
    events = core.receive(json.dumps({"subscribe": {"channel": "$chat:vip", "token": make()},
                                      "id": 2}), NOW)
    if outcome >= 3000:
        assert closed_with(events).code == outcome
    else:
        assert events == [] and lines(core)[0]["error"]["code"] == outcome


def test_an_unrefreshed_subscription_is_unsubscribed_with_2501() -> None:
    """A token subscription not refreshed by expire_at + expired_sub_close_delay gets unsubscribe 2501."""
    core = connected(hub(**QUIET))
    request = subscribe(core, "$chat:vip", token=sub_token("$chat:vip", expires_in=30))
    core.reply_subscribe(request, SubscribeResult(position=StreamPosition(0, "e")), NOW)
    lines(core)
    assert core.next_deadline() == NOW + 55
    assert core.tick(NOW + 54) == []
    events = core.tick(NOW + 55)
    assert [type(e) for e in events] == [Unsubscribed]
    assert lines(core) == [{"push": {"channel": "$chat:vip", "unsubscribe": {
        "code": 2501, "reason": "subscription expired"}}}]


def test_sub_refresh_extends_a_subscription() -> None:
    """sub_refresh with a fresh token answers expires/ttl and moves the expiry deadline."""
    core = connected(hub(**QUIET))
    request = subscribe(core, "$chat:vip", token=sub_token("$chat:vip", expires_in=30))
    core.reply_subscribe(request, SubscribeResult(position=StreamPosition(0, "e")), NOW)
    lines(core)
    fresh = sub_token("$chat:vip", expires_in=600, now=NOW + 20, info={"v": 2})
    events = core.receive(json.dumps({"sub_refresh": {"channel": "$chat:vip", "token": fresh},
                                      "id": 3}), NOW + 20)
    assert events == [SubscriptionRefreshed("$chat:vip", int(NOW) + 620, b'{"v":2}')]
    assert lines(core) == [{"id": 3, "sub_refresh": {"expires": True, "ttl": 600}}]
    assert core.next_deadline() == NOW + 645
    assert core.tick(NOW + 100) == [] and core.data_to_send() == []


@pytest.mark.parametrize(("channel", "make", "outcome"), [
    ("news:none", lambda: sub_token("news:none"), 103),
    ("$chat:vip", lambda: "", 107),
    ("$chat:vip", lambda: sub_token("$chat:vip", expires_in=5, now=NOW - 60), 109),
    ("$chat:vip", lambda: "forged.token.here", 3500),
    ("$chat:vip", lambda: sub_token("$chat:else"), 3500),
])
def test_sub_refresh_refusals(channel: str, make: Any, outcome: int) -> None:
    """Not subscribed 103, no token 107, expired 109, invalid or for another channel 3500."""
    core = connected()
    request = subscribe(core, "$chat:vip", token=sub_token("$chat:vip", expires_in=30))
    core.reply_subscribe(request, SubscribeResult(position=StreamPosition(0, "e")), NOW)
    lines(core)
    events = core.receive(json.dumps({"sub_refresh": {"channel": channel, "token": make()},
                                      "id": 3}), NOW)
    if outcome >= 3000:
        assert closed_with(events).code == outcome
    else:
        assert lines(core) == [{"id": 3, "error": {"code": outcome, "message": {
            103: "permission denied", 107: "bad request", 109: "token expired"}[outcome]}}]


# Pushes ----------------------------------------------------------------------

def test_publications_reach_only_subscribed_channels() -> None:
    """push_publication for a channel the client is not subscribed to sends nothing."""
    core = connected()
    core.push_publication("news:a", Publication(b'{"x":1}'))
    assert core.data_to_send() == []
    subscribe(core, "news:a", result=SubscribeResult())
    lines(core)
    info = ClientInfo("9", "c9", b'{"n":"Bo"}', None)
    core.push_publication("news:a", Publication(b'{"x":1}', info=info, tags={"k": "v"}, time=5))
    assert core.data_to_send() == [
        '{"push":{"channel":"news:a","pub":{"data":{"x":1},"info":{"user":"9","client":"c9",'
        '"conn_info":{"n":"Bo"}},"tags":{"k":"v"},"time":5}}}']
    core.push_publication("news:b", Publication(b'{"x":2}'))
    assert core.data_to_send() == []


def test_publications_arriving_while_subscribing_are_delivered_after_the_reply() -> None:
    """Nothing published between the layer subscribe and the reply is lost, nor sent before it."""
    core = connected()
    request = subscribe(core, "chat:room", join_leave=True)
    core.push_publication("chat:room", Publication(b"1", offset=8), epoch="E")   # before the top
    core.push_join("chat:room", ClientInfo("42", "c1"))
    core.push_publication("chat:room", Publication(b"2", offset=9), epoch="E")
    assert core.data_to_send() == []
    core.reply_subscribe(request, SubscribeResult(position=StreamPosition(8, "E")), NOW)
    assert lines(core) == [
        {"id": 2, "subscribe": {"recoverable": True, "epoch": "E", "offset": 8, "positioned": True}},
        {"push": {"channel": "chat:room", "join": {"info": {"user": "42", "client": "c1"}}}},
        {"push": {"channel": "chat:room", "pub": {"data": 2, "offset": 9}}}]
    core.push_publication("chat:room", Publication(b"3", offset=10), epoch="E")
    assert lines(core) == [{"push": {"channel": "chat:room", "pub": {"data": 3, "offset": 10}}}]


def test_duplicates_are_dropped_and_gaps_resubscribe_the_client() -> None:
    """On a positioned subscription an old offset is dropped; a skipped one sends unsubscribe 2500."""
    core = connected()
    subscribe(core, "chat:room", result=SubscribeResult(position=StreamPosition(3, "E")))
    lines(core)
    core.push_publication("chat:room", Publication(b"3", offset=3), epoch="E")
    assert core.data_to_send() == []
    events = core.push_publication("chat:room", Publication(b"5", offset=5), epoch="E")
    assert [type(e) for e in events] == [Unsubscribed]
    assert lines(core) == [{"push": {"channel": "chat:room", "unsubscribe": {
        "code": 2500, "reason": "insufficient state"}}}]
    core.push_publication("chat:room", Publication(b"6", offset=6), epoch="E")
    assert core.data_to_send() == []


def test_a_new_epoch_on_a_live_subscription_is_insufficient_state() -> None:
    """A publication from another epoch means the stream was lost: the client must recover."""
    core = connected()
    subscribe(core, "chat:room", result=SubscribeResult(position=StreamPosition(3, "E")))
    lines(core)
    events = core.push_publication("chat:room", Publication(b"4", offset=4), epoch="NEW")
    assert [type(e) for e in events] == [Unsubscribed]


def test_a_gap_on_a_server_side_subscription_reconnects_with_3010() -> None:
    """Server-side subscriptions cannot be resubscribed by the client: insufficient state disconnects."""
    core = new()
    [request] = core.receive(json.dumps({"connect": {"token": token(channels=["chat:lobby"])},
                                         "id": 1}), NOW)
    assert isinstance(request, ConnectRequest)
    core.reply_connect(request, ConnectResult(subscriptions={
        "chat:lobby": SubscribeResult(position=StreamPosition(1, "E"))}), NOW)
    events = core.push_publication("chat:lobby", Publication(b"3", offset=3), epoch="E")
    assert closed_with(events) == codes.DISCONNECT_INSUFFICIENT_STATE


def test_join_and_leave_reach_only_subscribers_who_asked() -> None:
    """Joins and leaves are pushed only with join_leave requested (and allowed) or forced."""
    core = connected()
    subscribe(core, "chat:quiet", result=SubscribeResult(position=StreamPosition(0, "E")))
    subscribe(core, "chat:loud", cmd_id=3, join_leave=True,
              result=SubscribeResult(position=StreamPosition(0, "E")))
    lines(core)
    bo = ClientInfo("9", "c9")
    core.push_join("chat:quiet", bo)
    core.push_join("chat:loud", bo)
    core.push_leave("chat:loud", bo)
    assert lines(core) == [
        {"push": {"channel": "chat:loud", "join": {"info": {"user": "9", "client": "c9"}}}},
        {"push": {"channel": "chat:loud", "leave": {"info": {"user": "9", "client": "c9"}}}}]


def test_message_and_refresh_pushes() -> None:
    """push_message sends a ``message`` push; refresh() a ``refresh`` push with the new ttl."""
    core = connected()
    core.push_message(b'{"hello":true}')
    core.refresh(int(NOW) + 100, NOW)
    assert lines(core) == [{"push": {"message": {"data": {"hello": True}}}},
                           {"push": {"refresh": {"expires": True, "ttl": 100}}}]


def test_raw_newlines_in_payloads_never_split_a_reply() -> None:
    """Pretty-printed JSON payloads are sent without their raw newlines (one reply per line)."""
    core = connected()
    subscribe(core, "news:a", result=SubscribeResult())
    lines(core)
    core.push_publication("news:a", Publication(b'{\n  "x": "a\\nb"\n}'))
    assert core.data_to_send() == ['{"push":{"channel":"news:a","pub":{"data":{  "x": "a\\nb"}}}}']


# Unsubscribe -----------------------------------------------------------------

def test_unsubscribe_answers_and_tells_the_shell_to_undo() -> None:
    """unsubscribe replies {} and returns Unsubscribed carrying presence / join_leave to undo."""
    core = connected()
    subscribe(core, "chat:room", result=SubscribeResult(position=StreamPosition(0, "E")))
    lines(core)
    [event] = core.receive('{"unsubscribe":{"channel":"chat:room"},"id":3}', NOW)
    assert event == Unsubscribed("chat:room", ClientInfo("42", "c1"), True, True, False, None)
    assert lines(core) == [{"id": 3, "unsubscribe": {}}]
    core.push_publication("chat:room", Publication(b"1", offset=1), epoch="E")
    assert core.data_to_send() == []


def test_unsubscribing_while_subscribing_drops_the_late_answer() -> None:
    """A subscription cancelled before the shell answered gets no reply; its answer returns Unsubscribed."""
    core = connected()
    request = subscribe(core, "news:a")
    assert core.receive('{"unsubscribe":{"channel":"news:a"},"id":3}', NOW) == []
    second = subscribe(core, "news:a", cmd_id=4)
    events = core.reply_subscribe(request, SubscribeResult(), NOW)
    assert [type(e) for e in events] == [Unsubscribed]
    core.reply_subscribe(second, SubscribeResult(), NOW)
    assert lines(core) == [{"id": 3, "unsubscribe": {}}, {"id": 4, "subscribe": {}}]


def test_server_side_subscribe_and_unsubscribe_push_to_the_client() -> None:
    """subscribe() sends a ``subscribe`` push once answered; unsubscribe() an ``unsubscribe`` push."""
    core = connected()
    [request] = core.subscribe("chat:alerts", NOW)
    assert isinstance(request, SubscribeRequest) and request.server_side
    core.reply_subscribe(request, SubscribeResult(position=StreamPosition(4, "E")), NOW)
    assert lines(core) == [{"push": {"channel": "chat:alerts", "subscribe": {
        "recoverable": True, "epoch": "E", "offset": 4, "positioned": True}}}]
    [event] = core.unsubscribe("chat:alerts")
    assert isinstance(event, Unsubscribed) and event.reason == codes.UNSUBSCRIBE_SERVER
    assert lines(core) == [{"push": {"channel": "chat:alerts", "unsubscribe": {
        "code": 2000, "reason": "server unsubscribe"}}}]


# Publish, presence, history, RPC, send -------------------------------------

def test_publish_is_checked_then_handed_to_the_shell() -> None:
    """A permitted publish becomes a PublishRequest with the publisher's info and history settings."""
    core = connected()
    subscribe(core, "chat:room", result=SubscribeResult(position=StreamPosition(0, "E")))
    lines(core)
    [request] = core.receive('{"publish":{"channel":"chat:room","data":{"text":"hi"}},"id":3}', NOW)
    assert isinstance(request, PublishRequest)
    assert (request.data, request.info, request.history_size) == (
        b'{"text":"hi"}', ClientInfo("42", "c1"), 10)
    core.reply_publish(request)
    assert core.data_to_send() == ['{"id":3,"publish":{}}']


@pytest.mark.parametrize(("frame", "code"), [
    ('{"publish":{"channel":"chat:other","data":{"a":1}},"id":3}', 103),   # not subscribed
    ('{"publish":{"channel":"nope:x","data":{"a":1}},"id":3}', 102),
    ('{"publish":{"channel":"open:x"},"id":3}', 107),                      # no data
    ('{"publish":{"channel":"open:x","data":[1]},"id":3}', 107),           # not a JSON object
    ('{"publish":{"channel":"open:x","data":{},"type":1},"id":3}', 108),   # map publish
])
def test_publish_refusals(frame: str, code: int) -> None:
    """Publishing needs a declared namespace, permission, data in the namespace's format."""
    core = connected()
    assert core.receive(frame, NOW) == []
    assert lines(core)[0]["error"]["code"] == code


def test_presence_and_presence_stats_replies() -> None:
    """Presence answers ``{client: info}``; stats answers both counts, zeros included."""
    core = connected()
    subscribe(core, "chat:room", result=SubscribeResult(position=StreamPosition(0, "E")))
    lines(core)
    [presence, stats] = core.receive('{"presence":{"channel":"chat:room"},"id":3}\n'
                                     '{"presence_stats":{"channel":"chat:room"},"id":4}', NOW)
    assert isinstance(presence, PresenceRequest) and isinstance(stats, PresenceStatsRequest)
    core.reply_presence(presence, {"c1": ClientInfo("42", "c1", b'{"n":1}', b'{"r":2}')})
    core.reply_presence_stats(stats, PresenceStats(1, 1))
    assert core.data_to_send() == [
        '{"id":3,"presence":{"presence":{"c1":{"user":"42","client":"c1","conn_info":{"n":1},'
        '"chan_info":{"r":2}}}}}\n{"id":4,"presence_stats":{"num_clients":1,"num_users":1}}']
    [empty] = core.receive('{"presence_stats":{"channel":"chat:room"},"id":5}', NOW)
    assert isinstance(empty, PresenceStatsRequest)
    core.reply_presence_stats(empty, PresenceStats(0, 0))
    assert core.data_to_send() == ['{"id":5,"presence_stats":{"num_clients":0,"num_users":0}}']


def test_presence_refusals() -> None:
    """Presence off is 108; without permission (not subscribed here) 103."""
    core = connected()
    core.receive('{"presence":{"channel":"news:a"},"id":3}\n{"presence":{"channel":"chat:a"},"id":4}',
                 NOW)
    assert [r["error"]["code"] for r in lines(core)] == [108, 103]


def test_history_request_and_reply() -> None:
    """History goes to the shell with its limit capped; the reply carries publications, epoch, offset."""
    core = connected(hub(history_max_publication_limit=50))
    subscribe(core, "chat:room", result=SubscribeResult(position=StreamPosition(0, "E")))
    lines(core)
    [request] = core.receive('{"history":{"channel":"chat:room","limit":-1,"since":{"offset":1,'
                             '"epoch":"E"},"reverse":false},"id":3}', NOW)
    assert isinstance(request, HistoryRequest)
    assert (request.limit, request.since, request.reverse) == (50, StreamPosition(1, "E"), False)
    core.reply_history(request, HistoryResult((Publication(b'"a"', offset=2),),
                                              StreamPosition(2, "E")))
    assert core.data_to_send() == [
        '{"id":3,"history":{"publications":[{"data":"a","offset":2}],"epoch":"E","offset":2}}']


@pytest.mark.parametrize(("since", "top", "reverse", "code"), [
    ({"offset": 1, "epoch": "OLD"}, (5, "E"), False, 112),
    ({"offset": 9, "epoch": "E"}, (5, "E"), False, 112),
    ({"offset": 3, "epoch": "E"}, (5, "E"), False, 0),
    ({"offset": 3}, (5, "E"), True, 0),
])
def test_history_since_an_unservable_position_is_112(since: dict[str, Any], top: tuple[int, str],
                                                     reverse: bool, code: int) -> None:
    """A since from another epoch, or beyond the top, is error 112 unrecoverable position."""
    core = connected()
    subscribe(core, "chat:room", result=SubscribeResult(position=StreamPosition(0, "E")))
    lines(core)
    [request] = core.receive(json.dumps({"history": {"channel": "chat:room", "limit": 5,
                                                     "since": since, "reverse": reverse}, "id": 3}), NOW)
    assert isinstance(request, HistoryRequest)
    core.reply_history(request, HistoryResult((), StreamPosition(*top)))
    reply = lines(core)[0]
    assert reply.get("error", {}).get("code", 0) == code


def test_history_refusals() -> None:
    """History off 108, not permitted 103, reverse since offset 0 is 107."""
    core = connected()
    subscribe(core, "chat:room", result=SubscribeResult(position=StreamPosition(0, "E")))
    lines(core)
    core.receive('{"history":{"channel":"news:a","limit":1},"id":3}\n'
                 '{"history":{"channel":"chat:x","limit":1},"id":4}\n'
                 '{"history":{"channel":"chat:room","limit":1,"since":{"offset":0},"reverse":true},'
                 '"id":5}', NOW)
    assert [r["error"]["code"] for r in lines(core)] == [108, 103, 107]


def test_rpc_and_send() -> None:
    """rpc becomes an RPCRequest answered with data or an error; send is a notice with no reply."""
    core = connected()
    [rpc, sent] = core.receive('{"rpc":{"method":"sum","data":[1,2]},"id":3}\n'
                               '{"send":{"data":{"x":1}}}', NOW)
    assert isinstance(rpc, RPCRequest) and (rpc.method, rpc.data) == ("sum", b"[1,2]")
    assert sent == MessageReceived(b'{"x":1}')
    core.reply_rpc(rpc, b"3")
    [second] = core.receive('{"rpc":{"method":"nope"},"id":4}', NOW)
    assert isinstance(second, RPCRequest)
    core.reply_error(second, codes.ERROR_METHOD_NOT_FOUND)
    assert core.data_to_send() == ['{"id":3,"rpc":{"data":3}}\n'
                                   '{"id":4,"error":{"code":104,"message":"method not found"}}']


def test_temporary_errors_say_so() -> None:
    """Errors Centrifugo marks temporary (100, 111) carry ``temporary: true`` so the SDK retries."""
    core = connected()
    [rpc] = core.receive('{"rpc":{"method":"x"},"id":3}', NOW)
    assert isinstance(rpc, RPCRequest)
    core.reply_error(rpc, codes.ERROR_INTERNAL)
    assert lines(core) == [{"id": 3, "error": {"code": 100, "message": "internal server error",
                                               "temporary": True}}]


# Refresh and expiry ----------------------------------------------------------

def test_refresh_extends_the_connection() -> None:
    """refresh with a fresh token of the same user answers expires/ttl and moves the deadline."""
    core = connected()
    fresh = token(expires_in=7200, now=NOW + 3000, info={"v": 2})
    events = core.receive(json.dumps({"refresh": {"token": fresh}, "id": 3}), NOW + 3000)
    assert events == [Refreshed(int(NOW) + 10200, b'{"v":2}')]
    assert lines(core) == [{"id": 3, "refresh": {"expires": True, "ttl": 7200}}]
    assert core.tick(NOW + 3625) == []           # the old expiry passed: no disconnect


@pytest.mark.parametrize(("make", "code"), [
    (lambda: token(expires_in=5, now=NOW - 60), 3005),
    (lambda: "not-a-token", 3500),
    (lambda: token("43"), 3500),
    (lambda: token(channels=["chat:new"]), 3010),
])
def test_refresh_refusals(make: Any, code: int) -> None:
    """Expired 3005, invalid or another user's 3500, changed server-side channels 3010."""
    core = connected()
    assert closed_with(core.receive(json.dumps({"refresh": {"token": make()}, "id": 3}), NOW)).code \
        == code


def test_a_connection_not_refreshed_in_time_is_closed_with_3005() -> None:
    """At expire_at + expired_close_delay an unrefreshed connection closes with 3005."""
    core = connected()
    core.tick(NOW + 3624)
    assert not core.closed
    assert closed_with(core.tick(NOW + 3625)) == codes.DISCONNECT_EXPIRED


# Periodic work ---------------------------------------------------------------

def test_presence_is_refreshed_periodically() -> None:
    """Every presence_update_interval the shell is told which presence entries to refresh."""
    core = connected(hub(ping_interval=-1))
    request = subscribe(core, "chat:room", result=SubscribeResult(position=StreamPosition(0, "E")))
    assert core.tick(NOW + 27) == [PresenceDue((("chat:room", request.info),))]


def test_position_check_catches_publications_lost_in_transit() -> None:
    """A quiet positioned subscription is checked against the stream top; a higher top resubscribes."""
    core = connected(hub(ping_interval=-1, presence_update_interval="0s"))
    subscribe(core, "stream:x", result=SubscribeResult(position=StreamPosition(4, "E")))
    lines(core)
    assert core.next_deadline() == NOW + 40
    [check] = core.tick(NOW + 40)
    assert isinstance(check, PositionCheckRequest) and check.position == StreamPosition(4, "E")
    assert core.reply_position(check, StreamPosition(4, "E")) == []
    [check] = core.tick(NOW + 80)
    assert isinstance(check, PositionCheckRequest)
    [event] = core.reply_position(check, StreamPosition(6, "E"))
    assert isinstance(event, Unsubscribed) and event.reason == codes.UNSUBSCRIBE_INSUFFICIENT_STATE


def test_a_busy_positioned_subscription_is_not_checked() -> None:
    """Publications seen since the last check prove the position; no request is made."""
    core = connected(hub(ping_interval=-1, presence_update_interval="0s"))
    subscribe(core, "stream:x", result=SubscribeResult(position=StreamPosition(4, "E")))
    core.push_publication("stream:x", Publication(b"5", offset=5), epoch="E")
    assert core.tick(NOW + 40) == []


# Closing ---------------------------------------------------------------------

def test_closing_returns_every_live_subscription_then_closed() -> None:
    """disconnect() ends each live subscription (Unsubscribed) and then the connection (Closed)."""
    core = connected()
    subscribe(core, "news:a", result=SubscribeResult())
    pending = subscribe(core, "news:b", cmd_id=3)
    events = core.disconnect(codes.DISCONNECT_SHUTDOWN)
    assert [type(e) for e in events] == [Unsubscribed, Closed]
    assert closed_with(events) == codes.DISCONNECT_SHUTDOWN and codes.DISCONNECT_SHUTDOWN.reconnect
    [late] = core.reply_subscribe(pending, SubscribeResult(), NOW)
    assert isinstance(late, Unsubscribed) and late.channel == "news:b"
    assert core.tick(NOW + 1000) == [] and core.next_deadline() is None


def test_connection_lost_discards_unsent_data() -> None:
    """When the client is gone nothing is left to send, and the close code is 3000."""
    core = connected()
    core.push_message(b"1")
    assert closed_with(core.connection_lost()) == codes.DISCONNECT_CONNECTION_CLOSED
    assert core.data_to_send() == []


def test_answering_a_request_twice_is_a_shell_bug() -> None:
    """A request answered twice raises ValueError instead of sending a second reply."""
    core = connected()
    [rpc] = core.receive('{"rpc":{"method":"x"},"id":3}', NOW)
    assert isinstance(rpc, RPCRequest)
    core.reply_rpc(rpc)
    with pytest.raises(ValueError, match="already answered"):
        core.reply_rpc(rpc)


def test_a_client_that_does_not_read_is_closed_as_slow() -> None:
    """Unsent data beyond queue_max_size closes the connection with 3008 and drops the data."""
    core = connected(hub(queue_max_size=200))
    core.push_message(b'"' + b"x" * 100 + b'"')
    assert not core.closed
    events = core.push_message(b'"' + b"x" * 100 + b'"')
    assert closed_with(events) == codes.DISCONNECT_SLOW
    assert core.data_to_send() == []


def test_a_server_side_subscription_cancelled_during_connect_is_left_out_and_undone() -> None:
    """unsubscribe() while the connect is with the shell drops that channel from the connect reply."""
    core = new()
    [request] = core.receive(json.dumps({"connect": {"token": token(channels=["news:x"])}, "id": 1}),
                             NOW)
    assert isinstance(request, ConnectRequest)
    assert core.unsubscribe("news:x") == []
    [undo] = core.reply_connect(request, ConnectResult(), NOW)
    assert isinstance(undo, Unsubscribed) and undo.channel == "news:x"
    assert "subs" not in lines(core)[0]["connect"]
    assert core.channels == frozenset()


def test_protobuf_handshakes_are_recognised() -> None:
    """Centrifugo's three ways of asking for Protobuf are spotted, so the shell can answer 3506."""
    from wsviews.hub.protocol import wants_protobuf

    assert wants_protobuf("format=protobuf") and wants_protobuf("a=1&cf_protocol=protobuf")
    assert wants_protobuf("", ["centrifuge-protobuf"])
    assert not wants_protobuf("format=json") and not wants_protobuf("", ["centrifuge-json"])
    assert not codes.DISCONNECT_INAPPROPRIATE_PROTOCOL.reconnect
