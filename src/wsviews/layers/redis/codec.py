"""Wire format of the Redis layer: msgpack envelopes, optionally Fernet-encrypted.

Every pub/sub payload is one envelope ``[version, kind, target, body]``:

=============  ======================  =====================================
kind           target                  body
=============  ======================  =====================================
``MESSAGE``    channel name            the message dict
``GROUP``      group name              the message dict
``GROUP_ADD``  ``[group, channel,``    ``None``
               ``reply_to, request]``
``DISCARD``    ``[group, channel]``    ``None``
``ACK``        request id              ``None``
=============  ======================  =====================================

A group message published by a script (``group_send_scripted``) may carry a
*stamp* in front of the envelope: ``b"\\0" OFFSET b":" EPOCH b":" ENVELOPE``,
where OFFSET is decimal digits and EPOCH any bytes but ``:``. The receiving
process sets ``message["offset"] = int(OFFSET)`` and ``message["epoch"] =
EPOCH`` (decoded as UTF-8). The stamp is outside the encryption: a script in
Redis computes it.

Payloads for the same process's inbox sent in the same moment travel as one
*batch*: ``b"\\1"`` then a msgpack array of the payloads, each as it would
have been published alone (encrypted, if it is). The receiving process
handles them one by one, in order.

Messages queued in Redis lists (normal channels, parked inbox messages) are
prefixed with their deadline, in milliseconds, as 14 ASCII digits, so Lua can
drop expired ones without decoding them.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any

import msgpack

from ..base import MessageTooLarge

VERSION = 1
MESSAGE, GROUP, GROUP_ADD, DISCARD, ACK = range(5)
DEADLINE_DIGITS = 14
#: The first bytes of a stamped and of a batched payload; an envelope (a msgpack
#: array, or a Fernet token) never starts with either.
STAMP, BATCH = 0, 1


class MalformedPayload(ValueError):
    """A payload from Redis that this layer cannot decode; it is dropped."""


class Codec:
    """Turn envelopes into bytes and back, enforcing ``max_message_size``."""

    def __init__(
        self,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        expiry: float = 60,
        max_message_size: int = 1024 * 1024,
    ) -> None:
        self.max_message_size = max_message_size
        self._crypter: Any = None
        # Fernet timestamps bound replay: a payload older than the expiry is refused.
        self._ttl = int(expiry) + 10
        if symmetric_encryption_keys:
            from cryptography.fernet import Fernet, MultiFernet

            self._crypter = MultiFernet([Fernet(fernet_key(k)) for k in symmetric_encryption_keys])

    def dumps(self, obj: Any) -> bytes:
        """Return ``obj`` serialised; raise MessageTooLarge over ``max_message_size``."""
        data: bytes = msgpack.packb(obj, use_bin_type=True)
        if self._crypter is not None:
            data = self._crypter.encrypt(data)
        if len(data) > self.max_message_size:
            raise MessageTooLarge(
                f"message is {len(data)} bytes serialised, over max_message_size="
                f"{self.max_message_size}: send a reference (an id, a URL) instead, or raise "
                "max_message_size in the layer CONFIG"
            )
        return data

    def loads(self, data: bytes) -> Any:
        """Return the object serialised in ``data``; raise MalformedPayload if it is not one."""
        try:
            if self._crypter is not None:
                data = self._crypter.decrypt(data, self._ttl)
            return msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:
            raise MalformedPayload(f"{type(exc).__name__}: {exc}") from None

    def pack(self, kind: int, target: Any, body: Any = None) -> bytes:
        """Return the serialised envelope."""
        return self.dumps([VERSION, kind, target, body])

    def unpack(self, data: bytes) -> tuple[int, Any, Any]:
        """Return ``(kind, target, body)`` of an envelope, validated, with its stamp applied."""
        if data and data[0] == STAMP:
            offset, epoch, data = split_stamp(data)
            kind, target, body = self._unpack(data)
            if kind != GROUP:
                raise MalformedPayload("a stamp on an envelope that is not a group message")
            body["offset"] = offset
            body["epoch"] = epoch
            return kind, target, body
        return self._unpack(data)

    def _unpack(self, data: bytes) -> tuple[int, Any, Any]:
        envelope = self.loads(data)
        if not isinstance(envelope, list) or len(envelope) != 4 or envelope[0] != VERSION:
            raise MalformedPayload(f"not a version {VERSION} envelope")
        _, kind, target, body = envelope
        if kind in (MESSAGE, GROUP):
            if not isinstance(target, str) or not isinstance(body, dict):
                raise MalformedPayload("message envelope without a name and a dict")
        elif kind == GROUP_ADD:
            if not (isinstance(target, list) and len(target) == 4
                    and all(isinstance(x, str) for x in target[:2])):
                raise MalformedPayload("group_add envelope without [group, channel, ...]")
        elif kind == DISCARD:
            if not (isinstance(target, list) and len(target) == 2
                    and all(isinstance(x, str) for x in target)):
                raise MalformedPayload("group_discard envelope without [group, channel]")
        elif kind == ACK:
            if not isinstance(target, str):
                raise MalformedPayload("ack envelope without a request id")
        else:
            raise MalformedPayload(f"unknown envelope kind {kind!r}")
        return kind, target, body


def is_batch(data: bytes) -> bool:
    """Return True if ``data`` is a batch of payloads."""
    return bool(data) and data[0] == BATCH


def join_batch(payloads: list[bytes]) -> bytes:
    """Return one payload carrying ``payloads`` (already serialised, and encrypted if need be)."""
    packed: bytes = msgpack.packb(payloads, use_bin_type=True)
    return b"\1" + packed


def split_batch(data: bytes) -> list[bytes]:
    """Return the payloads of a batch; raise MalformedPayload if it is not one."""
    try:
        payloads = msgpack.unpackb(data[1:], raw=False)
    except Exception as exc:
        raise MalformedPayload(f"batch: {type(exc).__name__}: {exc}") from None
    if not isinstance(payloads, list) or not all(isinstance(p, bytes) for p in payloads):
        raise MalformedPayload("batch is not a list of payloads")
    return payloads


def split_stamp(data: bytes) -> tuple[int, str, bytes]:
    """Return ``(offset, epoch, envelope)`` of a stamped payload; raise MalformedPayload if it is not one."""
    offset, sep, rest = data[1:].partition(b":")
    epoch, sep2, envelope = rest.partition(b":")
    if not (sep and sep2 and offset.isdigit()):
        raise MalformedPayload("stamp is not \\0OFFSET:EPOCH:")
    try:
        return int(offset), epoch.decode(), envelope
    except UnicodeDecodeError:
        raise MalformedPayload("stamp epoch is not UTF-8") from None


def stamp(offset: int, epoch: str, envelope: bytes) -> bytes:
    """Return ``envelope`` stamped as a script would stamp it (for tests and tools)."""
    return b"\0%d:%s:%s" % (offset, epoch.encode(), envelope)


def fernet_key(key: str | bytes) -> bytes:
    """Return the Fernet key derived from ``key`` exactly as channels_redis derives it."""
    if isinstance(key, str):
        key = key.encode("utf-8")
    return base64.urlsafe_b64encode(hashlib.sha256(key).digest())


def with_deadline(deadline_ms: int, payload: bytes) -> bytes:
    """Return a list item: the deadline as fixed-width digits, then the payload."""
    return b"%0*d" % (DEADLINE_DIGITS, deadline_ms) + payload


def split_deadline(item: bytes) -> tuple[int, bytes]:
    """Return ``(deadline_ms, payload)`` of a list item; raise MalformedPayload if it is not one."""
    head = item[:DEADLINE_DIGITS]
    if len(head) != DEADLINE_DIGITS or not head.isdigit():
        raise MalformedPayload("queued item without a deadline")
    return int(head), item[DEADLINE_DIGITS:]
