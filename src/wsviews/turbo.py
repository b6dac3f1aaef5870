"""Turbo Streams over websockets: build ``<turbo-stream>`` actions, broadcast them, serve the sources.

A page listens with ``{% turbo_stream_from "rows" %}`` (see
``wsviews.templatetags.wsviews``), which renders a stream source whose URL
carries the stream name signed with ``django.core.signing``; the
``turbo_streams`` view checks the signature and joins the group of that name.
Anything broadcast to the group (``broadcast_turbo_stream("rows", ...)``)
reaches the page, where Turbo applies it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.core import signing
from django.db.models import Model
from django.http import HttpRequest
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import SafeString

from . import abroadcast, broadcast, websocket
from .rendering import Context, TemplateName, render_html

if TYPE_CHECKING:
    from . import WebSocket

logger = logging.getLogger("wsviews")

ACTIONS = ("append", "prepend", "replace", "update", "remove", "before", "after", "refresh")
_CONTENT_ACTIONS = frozenset({"append", "prepend", "replace", "update", "before", "after"})
_ATTRIBUTE = re.compile(r"[a-z][a-z0-9-]*\Z")
# Group names the channel layers accept (Channels' own rule), shorter than 100 characters.
_GROUP_PART = re.compile(r"[a-zA-Z0-9_\-.]+\Z")
_MAX_GROUP = 99
_SALT = "wsviews.turbo.stream"

# The name of the route of ``turbo_streams`` that ``{% turbo_stream_from %}`` reverses.
URL_NAME = "turbo_streams"


def stream(action: str, html: Any = None, *, target: str | None = None,
           targets: str | None = None, **attributes: str | None) -> SafeString:
    """Return a ``<turbo-stream>`` element for ``action`` on ``target`` (an id) or ``targets`` (CSS).

    ``html`` (rendered into the element's ``<template>``) is required by the
    actions that insert content and refused by ``remove`` and ``refresh``;
    HTML not marked safe is escaped as text, as Django does everywhere.
    ``refresh`` takes no target. Further ``attributes`` (``method="morph"``,
    ``request_id=...``) become attributes, ``_`` written as ``-``; ``None``
    leaves one out.
    """
    if action not in ACTIONS:
        raise ValueError(f"Unknown Turbo Stream action {action!r}: use one of {', '.join(ACTIONS)}.")
    attrs: dict[str, str] = {"action": action}
    if action == "refresh":
        if target is not None or targets is not None:
            raise ValueError("A refresh action has no target: leave out target= and targets=.")
    elif (target is None) == (targets is None):
        raise ValueError("Pass target= (an element id) or targets= (a CSS selector), not both or neither.")
    elif target is not None:
        attrs["target"] = target
    else:
        attrs["targets"] = str(targets)
    for name, value in attributes.items():
        attribute = name.replace("_", "-")
        if not _ATTRIBUTE.match(attribute) or attribute in {"action", "target", "targets"}:
            raise ValueError(f"{name!r} cannot be a turbo-stream attribute.")
        if value is not None:
            attrs[attribute] = str(value)
    opening = format_html_join(" ", '{}="{}"', attrs.items())
    if action in _CONTENT_ACTIONS:
        if html is None:
            raise ValueError(f"A {action} action needs content: pass the HTML (or a template).")
        return format_html("<turbo-stream {}><template>{}</template></turbo-stream>",
                           opening, conditional_escape(html))
    if html is not None:
        raise ValueError(f"A {action} action takes no content.")
    return format_html("<turbo-stream {}></turbo-stream>", opening)


def append(html: Any, *, target: str | None = None, targets: str | None = None) -> SafeString:
    """Return an action appending ``html`` to the target's children (an element with the same id moves)."""
    return stream("append", html, target=target, targets=targets)


def prepend(html: Any, *, target: str | None = None, targets: str | None = None) -> SafeString:
    """Return an action inserting ``html`` before the target's first child."""
    return stream("prepend", html, target=target, targets=targets)


def before(html: Any, *, target: str | None = None, targets: str | None = None) -> SafeString:
    """Return an action inserting ``html`` before the target."""
    return stream("before", html, target=target, targets=targets)


def after(html: Any, *, target: str | None = None, targets: str | None = None) -> SafeString:
    """Return an action inserting ``html`` after the target."""
    return stream("after", html, target=target, targets=targets)


def replace(html: Any, *, target: str | None = None, targets: str | None = None,
            method: str | None = None) -> SafeString:
    """Return an action replacing the target with ``html`` (``method="morph"`` to morph it)."""
    return stream("replace", html, target=target, targets=targets, method=method)


def update(html: Any, *, target: str | None = None, targets: str | None = None,
           method: str | None = None) -> SafeString:
    """Return an action replacing the target's content with ``html``."""
    return stream("update", html, target=target, targets=targets, method=method)


def remove(*, target: str | None = None, targets: str | None = None) -> SafeString:
    """Return an action removing the target(s)."""
    return stream("remove", target=target, targets=targets)


def refresh(*, request_id: str | None = None, method: str | None = None,
            scroll: str | None = None) -> SafeString:
    """Return an action that makes Turbo reload the page (morphing it with ``method="morph"``).

    Turbo skips it on the page whose own request has ``request_id`` (its
    ``X-Turbo-Request-Id``), which has already rendered the change.
    """
    return stream("refresh", request_id=request_id, method=method, scroll=scroll)


def render_stream(action: str, template_name: TemplateName, context: Context | None = None, *,
                  target: str | None = None, targets: str | None = None,
                  request: HttpRequest | None = None, **attributes: str | None) -> SafeString:
    """Return ``action`` with ``template_name`` rendered (with ``context``) as its content."""
    html = render_html(template_name, context, request=request)
    return stream(action, html, target=target, targets=targets, **attributes)


def broadcast_turbo_stream(
    group: str, action: str, target: str | None = None, *, targets: str | None = None,
    template: TemplateName | None = None, context: Context | None = None, html: Any = None,
    on_commit: bool = False, using: str | None = None, **attributes: str | None,
) -> SafeString:
    """Build ``action`` once (from ``template`` and ``context``, or ``html``) and send it to ``group``.

    Return the ``<turbo-stream>`` sent. Like ``broadcast_html`` the template
    sees only ``context``, is rendered now, and ``on_commit=True`` waits for
    the transaction on ``using`` to commit.
    """
    element = _build(action, target, targets, template, context, html, attributes)
    broadcast(group, str(element), on_commit=on_commit, using=using)
    return element


async def abroadcast_turbo_stream(
    group: str, action: str, target: str | None = None, *, targets: str | None = None,
    template: TemplateName | None = None, context: Context | None = None, html: Any = None,
    **attributes: str | None,
) -> SafeString:
    """Async ``broadcast_turbo_stream``; a template is rendered in a thread."""
    element = await sync_to_async(_build)(action, target, targets, template, context, html, attributes)
    await abroadcast(group, str(element))
    return element


def _build(action: str, target: str | None, targets: str | None, template: TemplateName | None,
           context: Context | None, html: Any, attributes: Mapping[str, str | None]) -> SafeString:
    if template is not None:
        if html is not None:
            raise ValueError("Pass template= or html=, not both.")
        html = render_html(template, context)
    return stream(action, html, target=target, targets=targets, **attributes)


# Stream names


def stream_name(*parts: Any) -> str:
    """Return the stream (and group) name for ``parts``, joined with ``.``.

    A part is a string, a number, or a model instance (``app_label.model.pk``).
    Names are group names, so only ASCII letters, digits, ``-``, ``_`` and
    ``.`` may appear, and fewer than 100 characters.
    """
    if not parts:
        raise ValueError("A stream name needs at least one part, e.g. stream_name('rows').")
    pieces = []
    for part in parts:
        if isinstance(part, Model):
            if part.pk is None:
                raise ValueError(f"Cannot name a stream after an unsaved {type(part).__name__}.")
            piece = f"{part._meta.label_lower}.{part.pk}"
        else:
            piece = str(part)
        if not _GROUP_PART.match(piece):
            raise ValueError(
                f"Stream name part {piece!r} may only hold ASCII letters, digits, '-', '_' and '.'; "
                f"slugify it (django.utils.text.slugify) or use an id.")
        pieces.append(piece)
    name = ".".join(pieces)
    if len(name) > _MAX_GROUP:
        raise ValueError(f"Stream name {name[:40]!r}... is over {_MAX_GROUP} characters; use ids.")
    return name


def sign_stream_name(*parts: Any) -> str:
    """Return the stream name for ``parts`` signed with ``SECRET_KEY``, for a page to present."""
    return str(signing.Signer(salt=_SALT).sign(stream_name(*parts)))


def verify_stream_name(signed: str) -> str:
    """Return the stream name in ``signed``; raise ``django.core.signing.BadSignature`` if forged.

    Keys in ``SECRET_KEY_FALLBACKS`` are accepted, so rotating the key does
    not cut off open pages.
    """
    return str(signing.Signer(salt=_SALT).unsign(signed))


@websocket
async def turbo_streams(socket: WebSocket) -> None:
    """Serve one stream source: verify ``?stream=<signed name>``, join that group, stay open.

    A missing or forged name refuses the handshake (HTTP 403) with one
    warning line. The group is joined before the handshake completes, so a
    page that re-fetches its content once the socket is open cannot miss a
    change made in between. Messages from the page are ignored: Turbo's
    sources never send any.
    """
    signed = socket.query.get("stream")
    if not signed:
        await _refuse(socket, "no ?stream=: render this socket's URL with {% turbo_stream_from %}")
        return
    try:
        name = verify_stream_name(signed)
    except signing.BadSignature:
        await _refuse(socket, "bad stream signature: render the URL with {% turbo_stream_from %}")
        return
    await socket.join(name)
    await socket.accept()
    async for _ in socket:
        pass


async def _refuse(socket: WebSocket, reason: str) -> None:
    logger.warning("Forbidden (turbo stream): %s: %s", socket.path, reason)
    await socket.close(1008, reason)
