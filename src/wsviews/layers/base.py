"""The contract shared by wsviews' channel layers.

Every wsviews layer implements the Channels channel-layer specification
(``send``, ``receive``, ``new_channel``, the ``groups`` and ``flush``
extensions) and one extension of its own, ``attach``:

``attach(channel, deliver)``
    From now on, every message for ``channel`` (sent to it directly or to a
    group it belongs to) is handed to ``deliver(message)`` on the event loop,
    synchronously, instead of being queued for ``receive(channel)``. Each call
    gets its own shallow copy of the message. ``deliver`` must not block; it
    usually appends to a mailbox.

``detach(channel)``
    Stop delivering, and discard ``channel`` from every group of this process.

This is what lets an idle socket cost no task and no Redis connection, and a
group message be decoded once per process rather than once per member.
"""

from __future__ import annotations

from typing import Any

from channels.exceptions import MessageTooLarge as ChannelsMessageTooLarge
from channels.layers import BaseChannelLayer

from ..types import Deliver


class ChannelLayerUnavailable(ConnectionError):
    """The layer's server (Redis) cannot be reached; the message was not sent.

    A subclass of the built-in ``ConnectionError``, so code that already
    handles network errors handles this too.
    """


class MessageTooLarge(ChannelsMessageTooLarge):  # type: ignore[misc]  # channels is untyped
    """The serialised message is over the layer's ``max_message_size``; nothing was sent.

    A subclass of ``channels.exceptions.MessageTooLarge``, so code written
    for Channels catches it.
    """


class InvalidMessage(TypeError, AssertionError):
    """A message a channel layer cannot carry: not a dict, or using a reserved key; nothing was sent.

    Channels' own layers ``assert`` these rules, so code written for them
    expects an ``AssertionError``; this is one, and a ``TypeError`` too, and
    it is raised under ``python -O`` as well.
    """


def require_dict(message: Any) -> None:
    """Raise InvalidMessage unless ``message`` is a dict (the rule of ``group_send``)."""
    if not isinstance(message, dict):
        raise InvalidMessage(
            f"a channel layer message must be a dict, not {type(message).__name__}: "
            "send {'type': 'handler.name', ...}"
        )


def require_message(message: Any) -> None:
    """Raise InvalidMessage unless ``message`` is a dict without reserved keys (the rule of ``send``)."""
    require_dict(message)
    if "__asgi_channel__" in message:
        raise InvalidMessage(
            "'__asgi_channel__' is reserved for the layer: rename that key of the message"
        )


class AttachableChannelLayer(BaseChannelLayer):  # type: ignore[misc]
    """Base class for layers that can push messages to local receivers."""

    extensions = ["groups", "flush", "attach"]

    def attach(self, channel: str, deliver: Deliver) -> None:
        raise NotImplementedError("attach() not implemented (attach extension)")

    def detach(self, channel: str) -> None:
        raise NotImplementedError("detach() not implemented (attach extension)")

    async def close(self) -> None:
        """Release connections and background tasks; the layer may be used again after."""


def supports_attach(layer: Any) -> bool:
    """Return True if ``layer`` implements the ``attach`` extension."""
    return "attach" in getattr(layer, "extensions", ())

