"""Send a message to every socket in a group, from sync or async code, in any process."""

from __future__ import annotations

import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from . import encoding

BROADCAST_TYPE = "wsviews.broadcast"


def broadcast_event(group: str, message: Any) -> dict[str, Any]:
    """Return the layer event for ``message``; raise ``TypeError`` if it cannot be sent.

    ``message`` is str, bytes, or anything JSON can encode. Channels
    consumers in the group receive the event in a ``wsviews_broadcast(self,
    event)`` method, with the message at ``event["message"]``. ``wsviews_sent_at``
    (``time.time()`` here) lets each receiving process record the broadcast's
    delivery latency (``wsviews_broadcast_latency_seconds``).
    """
    if not isinstance(message, (str, bytes)):
        encoding.dumps(message)  # fail here, in the caller, not in a delivery task
    return {"type": BROADCAST_TYPE, "group": group, "message": message, "wsviews_sent_at": time.time()}


async def abroadcast(group: str, message: Any) -> None:
    """Send ``message`` to every socket in ``group``; a group without members is a no-op."""
    await _layer().group_send(group, broadcast_event(group, message))


def broadcast(group: str, message: Any, *, on_commit: bool = False, using: str | None = None) -> None:
    """Send ``message`` to every socket in ``group`` from sync code.

    With ``on_commit=True`` the message goes only if and when the current
    transaction on database ``using`` commits (at once outside a transaction).
    """
    event = broadcast_event(group, message)
    send = async_to_sync(_layer().group_send)
    if on_commit:
        transaction.on_commit(lambda: send(group, event), using=using)
    else:
        send(group, event)


def _layer() -> Any:
    layer = get_channel_layer()
    if layer is None:
        raise ImproperlyConfigured(
            "broadcast() needs a channel layer: set CHANNEL_LAYERS, or leave it unset "
            "for wsviews' in-memory default."
        )
    return layer
