"""A socket's place on the channel layer: its channel name, its mailbox, the groups it joined.

Views (``WebSocket.join``) and consumers (``ConsumerRunner``) both use it:

* :meth:`Membership.open` gets a channel name and starts delivery: pushed into
  the mailbox by a layer with the ``attach`` extension (no task per socket),
  else pulled by one reader task;
* :meth:`Membership.join` / :meth:`Membership.leave` add and discard groups;
* :meth:`Membership.leave_all` ends it all when the socket ends, however it
  ends: no more delivery, every group left;
* past ``WSVIEWS_MAX_QUEUE_MESSAGES`` / ``WSVIEWS_MAX_QUEUE_BYTES`` of backlog,
  :meth:`Membership.overflow` stops delivery at once and calls the subclass's
  :meth:`Membership.close_slow` (:mod:`wsviews.backpressure`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from typing import Any

from . import backpressure
from .conf import wsviews_settings
from .layers.base import supports_attach
from .mailbox import Mailbox

logger = logging.getLogger("wsviews")


class Membership(Mailbox):
    """A mailbox with a channel on ``layer``; subclasses implement ``handle(message)``.

    ``groups`` maps each group joined through :meth:`join` to the value given
    there (a view keeps its ``on_broadcast`` callback in it).
    """

    __slots__ = ("layer", "channel_name", "_groups", "_reader")

    def __init__(self, layer: Any, send: Any = None) -> None:
        super().__init__()
        self.layer = layer
        self.max_queue_messages = wsviews_settings.MAX_QUEUE_MESSAGES
        self.max_queue_bytes = wsviews_settings.MAX_QUEUE_BYTES
        self.transport_bytes = backpressure.transport_bytes_of(send)
        self.channel_name: str | None = None
        # Made on the first join: consumers join through the layer itself, and never need it.
        self._groups: dict[str, Any] | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def groups(self) -> dict[str, Any]:
        """The groups joined through :meth:`join`, each with the value given there."""
        if self._groups is None:
            self._groups = {}
        return self._groups

    async def open(self) -> str:
        """Return a new channel name whose messages are delivered to this mailbox."""
        layer = self.layer
        channel: str = await layer.new_channel()
        self.channel_name = channel
        if supports_attach(layer):
            layer.attach(channel, self)
        else:
            self._reader = asyncio.create_task(self.pull(functools.partial(layer.receive, channel)))
        return channel

    async def join(self, group: str, value: Any = None) -> None:
        """Add the channel to ``group``; :meth:`open` must have been awaited."""
        await self.layer.group_add(group, self.channel_name)
        self.groups[group] = value

    async def leave(self, group: str) -> None:
        """Discard the channel from ``group``; leaving a group not joined does nothing."""
        if self._groups is not None and self._groups.pop(group, _MISSING) is not _MISSING:
            await self.layer.group_discard(group, self.channel_name)

    def overflow(self) -> None:
        """The socket fell behind: drop its backlog, stop delivery and leave its groups, close it as slow."""
        if self.closed:
            return
        backpressure.record_slow(self.path, self._queued_messages, self.max_queue_messages,
                                 self.max_queue_bytes, self.route)
        self.close()
        if self._reader is not None:
            self._reader.cancel()
        layer, channel = self.layer, self.channel_name
        if channel is not None and supports_attach(layer):
            layer.detach(channel)  # synchronous: the next group message already skips it
        self.close_slow()

    @property
    def path(self) -> str:
        """The socket's path, for log lines."""
        return "?"

    @property
    def route(self) -> str:
        """The socket's route pattern, for the metrics (empty when unknown)."""
        return ""

    def close_slow(self) -> None:
        """Close the socket with 4008; subclasses send the close (see :func:`backpressure.close_slow`)."""

    async def leave_all(self, also: Iterable[str] = ()) -> None:
        """Stop delivery and leave every group joined here, and the groups in ``also``.

        With an attachable layer ``detach`` leaves every group of the channel
        at once, including those joined by calling the layer directly. With
        another layer each group is discarded; one that fails (the layer is
        down) is logged and left to the layer's group expiry.
        """
        if self._reader is not None:
            self._reader.cancel()
        self.close()
        channel = self.channel_name
        if channel is None:
            return
        layer = self.layer
        if supports_attach(layer):
            layer.detach(channel)
        else:
            for group in dict.fromkeys([*(self._groups or ()), *also]):
                try:
                    await layer.group_discard(group, channel)
                except Exception as exc:
                    logger.warning("Could not leave group %r on disconnect (%s); the layer's group "
                                   "expiry will remove it", group, exc or type(exc).__name__)
        self._groups = None


_MISSING = object()
