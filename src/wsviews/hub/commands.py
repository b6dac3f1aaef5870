"""The JSON codec of the Centrifugal protocol: client commands in, replies and pushes out.

A client frame holds one or more commands, one JSON object per line (at most
one trailing newline). :func:`decode_frame` turns each line into a typed
command, checking field types as Centrifugo's decoder does: a wrongly typed
or unparsable command becomes a :class:`BadCommand` and decoding stops there.
An object with no ``id`` and no ``send`` is a pong, as Centrifugo reads it.

Replies and pushes are encoded one per line; the caller joins a batch with
``"\\n"`` into one frame. JSON payloads travel as raw bytes
(:mod:`wsviews.hub.records`) and are spliced in unparsed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .codes import ClientError
from .records import ClientInfo, Publication, StreamPosition

__all__ = [
    "BadCommand", "Command", "Connect", "History", "Ping", "Pong", "Presence", "PresenceStats",
    "Publish", "RPC", "RecoverHint", "Refresh", "Send", "SubRefresh", "Subscribe", "Unsubscribe",
    "decode_frame", "encode_error", "encode_publication_push", "encode_push", "encode_reply",
    "info_json", "publication_json", "raw_json",
]

_MAX_ID = 2**32 - 1
_MAX_OFFSET = 2**64 - 1


class BadCommand(ValueError):
    """A command that cannot be understood; the message says why (for logs)."""


@dataclass(frozen=True, slots=True)
class RecoverHint:
    """Where a server-side subscription stood when the client last saw it (``connect.subs``)."""

    recover: bool = False
    offset: int = 0
    epoch: str = ""


@dataclass(frozen=True, slots=True)
class Connect:
    id: int
    token: str = ""
    data: bytes | None = None
    subs: Mapping[str, RecoverHint] = field(default_factory=dict)
    name: str = ""
    version: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Subscribe:
    id: int
    channel: str = ""
    token: str = ""
    recover: bool = False
    epoch: str = ""
    offset: int = 0
    data: bytes | None = None
    positioned: bool = False
    recoverable: bool = False
    join_leave: bool = False
    delta: str = ""
    type: int = 0
    flag: int = 0
    tags_filter: bool = False


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    id: int
    channel: str = ""


@dataclass(frozen=True, slots=True)
class Publish:
    id: int
    channel: str = ""
    data: bytes | None = None
    type: int = 0


@dataclass(frozen=True, slots=True)
class Presence:
    id: int
    channel: str = ""


@dataclass(frozen=True, slots=True)
class PresenceStats:
    id: int
    channel: str = ""


@dataclass(frozen=True, slots=True)
class History:
    id: int
    channel: str = ""
    limit: int = 0
    since: StreamPosition | None = None
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class RPC:
    id: int
    method: str = ""
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Send:
    id: int
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Refresh:
    id: int
    token: str = ""


@dataclass(frozen=True, slots=True)
class SubRefresh:
    id: int
    channel: str = ""
    token: str = ""
    type: int = 0


@dataclass(frozen=True, slots=True)
class Ping:
    id: int


@dataclass(frozen=True, slots=True)
class Pong:
    pass


Command = (Connect | Subscribe | Unsubscribe | Publish | Presence | PresenceStats | History
           | RPC | Send | Refresh | SubRefresh | Ping | Pong)


# Decoding --------------------------------------------------------------------

def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _raw(value: Any) -> bytes | None:
    """Return a decoded JSON value encoded again compactly, None for absent / null."""
    if value is None:
        return None
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:   # a lone surrogate escape (\ud800) can only travel escaped
        return json.dumps(value, separators=(",", ":")).encode()


class _Fields:
    """Typed access to one request object's fields; absent and null mean the zero value."""

    __slots__ = ("_obj", "_where")

    def __init__(self, obj: Mapping[str, Any], where: str) -> None:
        self._obj = obj
        self._where = where

    def _get(self, key: str) -> Any:
        return self._obj.get(key)

    def _fail(self, key: str, expected: str, value: Any) -> BadCommand:
        return BadCommand(f"{self._where}.{key} must be {expected}, not {type(value).__name__}")

    def text(self, key: str) -> str:
        value = self._get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._fail(key, "a string", value)
        return value

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self._fail(key, "a boolean", value)
        return value

    def number(self, key: str, low: int, high: int) -> int:
        value = self._get(key)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self._fail(key, f"an integer in [{low}, {high}]", value)
        return value

    def raw(self, key: str) -> bytes | None:
        return _raw(self._get(key))

    def sub(self, key: str) -> _Fields | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._fail(key, "an object", value)
        return _Fields(value, f"{self._where}.{key}")

    def items(self) -> list[tuple[str, Any]]:
        return list(self._obj.items())

    def present(self, key: str) -> bool:
        return self._get(key) is not None


_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def _connect(cmd_id: int, f: _Fields) -> Connect:
    subs: dict[str, RecoverHint] = {}
    raw_subs = f.sub("subs")
    if raw_subs is not None:
        for channel, _ in raw_subs.items():
            hint = raw_subs.sub(channel)
            if hint is None:
                continue
            subs[channel] = RecoverHint(hint.flag("recover"), hint.number("offset", 0, _MAX_OFFSET),
                                        hint.text("epoch"))
    headers: dict[str, str] = {}
    raw_headers = f.sub("headers")
    if raw_headers is not None:
        for name, _ in raw_headers.items():
            headers[name] = raw_headers.text(name)
    return Connect(cmd_id, f.text("token"), f.raw("data"), subs, f.text("name"), f.text("version"),
                   headers)


def _subscribe(cmd_id: int, f: _Fields) -> Subscribe:
    return Subscribe(
        cmd_id, f.text("channel"), f.text("token"), f.flag("recover"), f.text("epoch"),
        f.number("offset", 0, _MAX_OFFSET), f.raw("data"), f.flag("positioned"),
        f.flag("recoverable"), f.flag("join_leave"), f.text("delta"), f.number("type", *_INT32),
        f.number("flag", *_INT64), f.present("tf"))


def _history(cmd_id: int, f: _Fields) -> History:
    since = None
    raw_since = f.sub("since")
    if raw_since is not None:
        since = StreamPosition(raw_since.number("offset", 0, _MAX_OFFSET), raw_since.text("epoch"))
    return History(cmd_id, f.text("channel"), f.number("limit", *_INT32), since, f.flag("reverse"))


# Centrifugo's dispatch order: the first request present wins.
_METHODS: tuple[tuple[str, Any], ...] = (
    ("connect", _connect),
    ("subscribe", _subscribe),
    ("unsubscribe", lambda i, f: Unsubscribe(i, f.text("channel"))),
    ("publish", lambda i, f: Publish(i, f.text("channel"), f.raw("data"), f.number("type", *_INT32))),
    ("presence", lambda i, f: Presence(i, f.text("channel"))),
    ("presence_stats", lambda i, f: PresenceStats(i, f.text("channel"))),
    ("history", _history),
    ("rpc", lambda i, f: RPC(i, f.text("method"), f.raw("data"))),
    ("send", lambda i, f: Send(i, f.raw("data"))),
    ("refresh", lambda i, f: Refresh(i, f.text("token"))),
    ("sub_refresh", lambda i, f: SubRefresh(i, f.text("channel"), f.text("token"),
                                            f.number("type", *_INT32))),
    ("ping", lambda i, f: Ping(i)),
)


def _decode_line(line: str) -> Command:
    try:
        obj = json.loads(line, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise BadCommand(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadCommand(f"a command must be a JSON object, not {type(obj).__name__}")
    top = _Fields(obj, "command")
    cmd_id = top.number("id", 0, _MAX_ID)
    if cmd_id == 0 and obj.get("send") is None:
        return Pong()
    for name, build in _METHODS:
        request = top.sub(name)
        if request is not None:
            command: Command = build(cmd_id, request)
            return command
    raise BadCommand("no known request in command (expected one of "
                     + ", ".join(name for name, _ in _METHODS) + ")")


def decode_frame(text: str) -> list[Command | BadCommand]:
    """Return the frame's commands in order; a :class:`BadCommand` ends the list.

    Centrifugo's framing: commands separated by single newlines, at most one
    trailing newline; an empty frame is itself a bad command.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        return [BadCommand("empty frame")]
    decoded: list[Command | BadCommand] = []
    for line in lines:
        try:
            decoded.append(_decode_line(line))
        except BadCommand as exc:
            decoded.append(exc)
            break
    return decoded


# Encoding --------------------------------------------------------------------

def raw_json(data: bytes) -> orjson.Fragment:
    """Return JSON bytes to splice into a line as they are, minus raw newlines.

    A raw newline would split the line in two (it delimits replies in a
    frame); in valid JSON it can only be whitespace, so dropping it changes
    nothing a client decodes (Centrifugo does the same).
    """
    return orjson.Fragment(data.replace(b"\n", b"") if b"\n" in data else data)


def info_json(info: ClientInfo) -> dict[str, Any]:
    """Return the wire form of a ClientInfo (``user`` and ``client`` always present)."""
    out: dict[str, Any] = {"user": info.user, "client": info.client}
    if info.conn_info:
        out["conn_info"] = raw_json(info.conn_info)
    if info.chan_info:
        out["chan_info"] = raw_json(info.chan_info)
    return out


def publication_json(pub: Publication) -> dict[str, Any]:
    """Return the wire form of a Publication, leaving out empty fields as Centrifugo does."""
    out: dict[str, Any] = {}
    if pub.data:
        out["data"] = raw_json(pub.data)
    if pub.info is not None:
        out["info"] = info_json(pub.info)
    if pub.offset:
        out["offset"] = pub.offset
    if pub.tags:
        out["tags"] = dict(pub.tags)
    if pub.time:
        out["time"] = pub.time
    return out


def encode_reply(cmd_id: int, method: str, result: Mapping[str, Any]) -> str:
    """Return the line answering command ``cmd_id`` (``{"id":..,"subscribe":{..}}``)."""
    return orjson.dumps({"id": cmd_id, method: result}).decode()


def encode_error(cmd_id: int, error: ClientError) -> str:
    """Return the line answering command ``cmd_id`` with an error."""
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.temporary:
        body["temporary"] = True
    return orjson.dumps({"id": cmd_id, "error": body}).decode()


def encode_push(channel: str, kind: str, body: Mapping[str, Any]) -> str:
    """Return a push line (``{"push":{"channel":..,"pub":{..}}}``); ``channel`` "" is left out."""
    push: dict[str, Any] = {"channel": channel, kind: body} if channel else {kind: body}
    return orjson.dumps({"push": push}).decode()


def encode_publication_push(channel: str, pub: Publication) -> str:
    """Return the publication push line, the same for every subscriber: encode it once per fan-out."""
    return encode_push(channel, "pub", publication_json(pub))
