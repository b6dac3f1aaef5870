"""The JSON codec reads commands as Centrifugo's decoder does and writes its field order."""

from __future__ import annotations

import pytest

from wsviews.hub import codes
from wsviews.hub.commands import (
    BadCommand,
    Connect,
    History,
    Pong,
    Publish,
    RecoverHint,
    Send,
    Subscribe,
    decode_frame,
    encode_error,
    encode_publication_push,
    encode_reply,
)
from wsviews.hub.records import ClientInfo, Publication, StreamPosition


def test_python_sdk_frames_decode() -> None:
    """centrifuge-python's frames (epoch/offset always present, explicit false) decode."""
    [connect, subscribe, history] = decode_frame(
        '{"id": 1, "connect": {"token": "t", "name": "python", "subs": {"a": {"recover": true, '
        '"offset": 0, "epoch": ""}}}}\n'
        '{"id": 2, "subscribe": {"channel": "c", "recover": true, "epoch": "", "offset": 0, '
        '"flag": 1}}\n'
        '{"id": 3, "history": {"channel": "c", "limit": 0, "reverse": false, "since": '
        '{"offset": 4, "epoch": "e"}}}')
    assert connect == Connect(1, "t", None, {"a": RecoverHint(True, 0, "")}, "python")
    assert subscribe == Subscribe(2, "c", recover=True, flag=1)
    assert history == History(3, "c", 0, StreamPosition(4, "e"), False)


def test_pongs_and_sends() -> None:
    """No id and no send is a pong (even with other fields); send needs no id."""
    assert decode_frame("{}") == [Pong()]
    assert decode_frame('{"subscribe":{"channel":"x"}}') == [Pong()]
    assert decode_frame('{"send":{"data":{"a":1}}}') == [Send(0, b'{"a":1}')]


def test_null_is_absent() -> None:
    """JSON null leaves a field at its zero value, as Centrifugo's decoder does."""
    assert decode_frame('{"id":1,"publish":{"channel":null,"data":null}}') == [Publish(1)]
    assert decode_frame('{"id":1,"connect":null,"publish":{"channel":"a","data":1}}') == [
        Publish(1, "a", b"1")]


def test_payloads_keep_their_value_exactly() -> None:
    """Big integers survive, unicode stays unescaped, lone surrogates stay escaped."""
    [publish] = decode_frame('{"id":1,"publish":{"channel":"a","data":{"n":123456789012345678901234,'
                             '"s":"héllo","bad":"\\ud800"}}}')
    assert isinstance(publish, Publish)
    # The lone surrogate can only travel escaped, so this payload is all-ASCII JSON.
    assert publish.data == b'{"n":123456789012345678901234,"s":"h\\u00e9llo","bad":"\\ud800"}'
    [plain] = decode_frame('{"id":1,"publish":{"channel":"a","data":{"s":"héllo"}}}')
    assert isinstance(plain, Publish) and plain.data == '{"s":"héllo"}'.encode()


@pytest.mark.parametrize(("frame", "message"), [
    ("", "empty frame"),
    ('{"id":4294967296,"presence":{"channel":"a"}}', "command.id must be an integer"),
    ('{"id":1,"subscribe":{"channel":"a","offset":-1}}', "command.subscribe.offset must be"),
    ('{"id":1,"subscribe":{"channel":"a","recover":1}}', "command.subscribe.recover must be a boolean"),
    ('{"id":1,"connect":{"headers":{"a":1}}}', "command.connect.headers.a must be a string"),
    ('{"id":1,"history":{"channel":"a","since":[]}}', "command.history.since must be an object"),
    ('{"id":1,"presence":{"channel":"a"}}\n\n', "not JSON"),
    ("[" * 100000, "not JSON"),
])
def test_bad_commands_say_what_is_wrong(frame: str, message: str) -> None:
    """A bad command names the field and the expected type; decoding stops there."""
    decoded = decode_frame(frame)
    assert isinstance(decoded[-1], BadCommand)
    assert message in str(decoded[-1])


def test_encoding_uses_centrifugos_field_order_and_omissions() -> None:
    """Replies put id first; empty fields are left out; temporary only when true."""
    assert encode_reply(3, "publish", {}) == '{"id":3,"publish":{}}'
    assert encode_error(4, codes.ERROR_BAD_REQUEST) == \
        '{"id":4,"error":{"code":107,"message":"bad request"}}'
    assert encode_error(4, codes.ERROR_INTERNAL) == \
        '{"id":4,"error":{"code":100,"message":"internal server error","temporary":true}}'
    pub = Publication(b'{"a":1}', offset=2, info=ClientInfo("u", "c", None, b'{"r":1}'))
    assert encode_publication_push("ch", pub) == (
        '{"push":{"channel":"ch","pub":{"data":{"a":1},"info":{"user":"u","client":"c",'
        '"chan_info":{"r":1}},"offset":2}}}')
