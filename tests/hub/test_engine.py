"""The engine contract's pure parts: the recovery decision, group names, layer messages."""

from __future__ import annotations

import re

import pytest
from channels.layers import BaseChannelLayer

from wsviews.hub.engine import (
    ClientInfo,
    Publication,
    check_publish,
    group_for_channel,
    publication_from_message,
    publication_message,
)

CHANNELS = [
    "news", "chat:index", "$private", "user#42", "a_b", "a_5fb", "ünï", "a.b-c", "x" * 95, "x" * 96,
    "y" * 500, "chat:" + "z" * 200, "",
]


def test_group_names_are_valid_and_distinct() -> None:
    """Every channel maps to a valid layer group name, and distinct channels to distinct groups."""
    layer = BaseChannelLayer()
    groups = [group_for_channel(c) for c in CHANNELS]
    for group in groups:
        assert layer.require_valid_group_name(group)
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,99}", group)
    assert len(set(groups)) == len(CHANNELS)
    assert group_for_channel("news") == "hub.news"
    assert group_for_channel("chat:index") == "hub.chat_3aindex"
    assert group_for_channel("a_b") == "hub.a_5fb" != group_for_channel("a_5fb")
    assert group_for_channel("y" * 500).startswith("hub_")


def test_publication_messages_round_trip() -> None:
    """A publication survives the layer message, stamped or not."""
    who = ClientInfo("c", "u", b"{}", None)
    message = publication_message("chat:1", b'"x"', who, {"a": "b"})
    assert publication_from_message(message) == ("chat:1", Publication(b'"x"', 0, who, {"a": "b"}))
    message.update(offset=7, epoch="e")
    assert publication_from_message(message) == ("chat:1", Publication(b'"x"', 7, who, {"a": "b"}, epoch="e"))
    bare = publication_message("c", b"1")
    assert publication_from_message(bare) == ("c", Publication(b"1"))


@pytest.mark.parametrize(
    ("size", "ttl", "history"), [(10, 60, True), (0, 60, False), (10, 0, False), (1, 0.001, True)]
)
def test_history_is_on_only_with_size_and_ttl(size: int, ttl: float, history: bool) -> None:
    """History needs both history_size and history_ttl above zero, as in Centrifugo."""
    assert check_publish(b"1", size, ttl) is history


def test_publish_checks_name_the_fix() -> None:
    """Bad publish arguments raise errors that say what to do."""
    with pytest.raises(TypeError, match=r"already-encoded JSON bytes, got dict: encode it first"):
        check_publish({"a": 1}, 1, 1)
    with pytest.raises(ValueError, match=r"history_size must be an int >= 0"):
        check_publish(b"1", 1.5, 1)  # type: ignore[arg-type]
