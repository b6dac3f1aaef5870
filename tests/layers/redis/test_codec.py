"""The wire format on its own: envelopes, stamps, deadlines, encryption. No Redis."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import msgpack
import pytest

from wsviews.layers import MessageTooLarge
from wsviews.layers.redis.codec import (
    ACK,
    DISCARD,
    GROUP,
    GROUP_ADD,
    MESSAGE,
    Codec,
    MalformedPayload,
    fernet_key,
    is_batch,
    join_batch,
    split_batch,
    split_deadline,
    split_stamp,
    stamp,
    with_deadline,
)


@pytest.mark.parametrize(
    ("kind", "target", "body"),
    [
        (MESSAGE, "specific.abc!def", {"type": "t", "b": b"\x00\xff", "s": "\u00e9"}),
        (GROUP, "room", {"type": "t", "n": [1, {"x": None}]}),
        (GROUP_ADD, ["room", "specific.abc!def", "proc", "req"], None),
        (DISCARD, ["room", "specific.abc!def"], None),
        (ACK, "request-id", None),
    ],
)
def test_envelopes_round_trip(kind: int, target: Any, body: Any) -> None:
    codec = Codec()
    assert codec.unpack(codec.pack(kind, target, body)) == (kind, target, body)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xc1", b"not msgpack", msgpack.packb({"type": "bare"}), msgpack.packb([2, 0, "c", {}]),
     msgpack.packb([1, MESSAGE, "c", "no dict"]), msgpack.packb([1, GROUP, 7, {}]),
     msgpack.packb([1, GROUP_ADD, ["g"], None]), msgpack.packb([1, DISCARD, ["g", 1], None]),
     msgpack.packb([1, ACK, 5, None]), msgpack.packb([1, 99, "c", {}])],
)
def test_malformed_envelopes_are_refused(payload: bytes) -> None:
    with pytest.raises(MalformedPayload):
        Codec().unpack(payload)


def test_bytes_and_str_stay_distinct() -> None:
    codec = Codec()
    message = codec.loads(codec.dumps({"b": b"x", "s": "x"}))
    assert type(message["b"]) is bytes and type(message["s"]) is str


def test_a_stamped_group_message_gets_its_offset_and_epoch() -> None:
    codec = Codec()
    envelope = codec.pack(GROUP, "room", {"type": "pub"})
    assert split_stamp(stamp(42, "e-1", envelope)) == (42, "e-1", envelope)
    assert codec.unpack(stamp(42, "e-1", envelope)) == (
        GROUP, "room", {"type": "pub", "offset": 42, "epoch": "e-1"},
    )


def test_stamps_survive_encryption() -> None:
    """The stamp is outside the ciphertext: Redis computes it, the receiver still decrypts."""
    codec = Codec(["a-key"])
    envelope = codec.pack(GROUP, "room", {"type": "pub"})
    assert codec.unpack(stamp(3, "e", envelope))[2] == {"type": "pub", "offset": 3, "epoch": "e"}


@pytest.mark.parametrize(
    "payload",
    [b"\0", b"\0" + b"12", b"\0x:e:" + Codec().pack(GROUP, "g", {}), b"\012:e",
     b"\012:\xff:" + Codec().pack(GROUP, "g", {}),
     b"\01:e:" + Codec().pack(MESSAGE, "a!b", {})],
)
def test_bad_stamps_are_refused(payload: bytes) -> None:
    with pytest.raises(MalformedPayload):
        Codec().unpack(payload)


def test_max_message_size_names_the_fix() -> None:
    with pytest.raises(MessageTooLarge, match="max_message_size=100"):
        Codec(max_message_size=100).dumps({"blob": b"x" * 200})


def test_encrypted_payloads_are_opaque_and_rotate() -> None:
    old, new = Codec(["old"]), Codec(["new", "old"])
    data = old.dumps({"text": "top secret"})
    assert b"top secret" not in data
    assert new.loads(data) == {"text": "top secret"}
    with pytest.raises(MalformedPayload):
        Codec(["other"]).loads(data)


def test_fernet_keys_are_derived_as_channels_redis_derives_them() -> None:
    expected = base64.urlsafe_b64encode(hashlib.sha256(b"secret").digest())
    assert fernet_key("secret") == fernet_key(b"secret") == expected


def test_queued_items_carry_their_deadline() -> None:
    item = with_deadline(1234, b"payload")
    assert item == b"00000000001234payload"
    assert split_deadline(item) == (1234, b"payload")
    for bad in (b"", b"123", b"abcdefghijklmnpayload"):
        with pytest.raises(MalformedPayload):
            split_deadline(bad)


def test_batches_carry_payloads_as_they_are() -> None:
    codec = Codec(["a-key"])
    payloads = [codec.pack(MESSAGE, f"a!{n}", {"n": n}) for n in range(3)]
    batch = join_batch(payloads)
    assert is_batch(batch) and not any(is_batch(p) for p in payloads)
    assert split_batch(batch) == payloads
    assert [codec.unpack(p)[2] for p in split_batch(batch)] == [{"n": 0}, {"n": 1}, {"n": 2}]


@pytest.mark.parametrize("payload", [b"\1", b"\1\xc1", b"\1" + msgpack.packb(["str"]),
                                     b"\1" + msgpack.packb({"a": b"x"})])
def test_bad_batches_are_refused(payload: bytes) -> None:
    with pytest.raises(MalformedPayload):
        split_batch(payload)
