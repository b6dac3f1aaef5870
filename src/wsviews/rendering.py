"""Render Django templates to HTML for sockets: once for a whole group, or once per socket.

``broadcast_html()`` renders with the context it is given and nothing else (no
request, no user), so that one render serves every member of the group in
every process. ``send_html()`` renders for one socket, with a request built
from its handshake, so templates see ``user``, ``request`` and the context
processors' variables as an HTTP view's templates do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, QueryDict, parse_cookie
from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH, CSRF_SESSION_KEY
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from . import abroadcast, broadcast

if TYPE_CHECKING:
    from . import WebSocket

TemplateName = str | Sequence[str]
Context = Mapping[str, Any]

# No token: {% csrf_token %} renders nothing (with DEBUG, Django warns once). Not
# Django's "NOTPROVIDED" sentinel, which the tag fails to render on Django 6.
_NO_CSRF_TOKEN = ""


def render_html(
    template_name: TemplateName, context: Context | None = None, request: HttpRequest | None = None
) -> SafeString:
    """Return ``template_name`` rendered with ``context`` by Django's template engine.

    A list of names renders the first that exists (``select_template``). With
    ``request`` the context processors run, as in ``render()``.
    """
    html: SafeString = render_to_string(template_name, dict(context or {}), request=request)
    return html


def broadcast_html(
    group: str,
    template_name: TemplateName,
    context: Context | None = None,
    *,
    on_commit: bool = False,
    using: str | None = None,
) -> SafeString:
    """Render ``template_name`` once and send the HTML to every socket in ``group``; return it.

    The template sees only ``context``: there is no request or user, since the
    same HTML goes to everyone. It is rendered now, in the caller, so that a
    template error is raised here; with ``on_commit=True`` the HTML is sent
    only if and when the current transaction on database ``using`` commits.
    """
    html = render_html(template_name, context)
    broadcast(group, str(html), on_commit=on_commit, using=using)
    return html


async def abroadcast_html(
    group: str, template_name: TemplateName, context: Context | None = None
) -> SafeString:
    """Render ``template_name`` once (in a thread: templates may query the database) and send it."""
    html = await sync_to_async(render_html)(template_name, context)
    await abroadcast(group, str(html))
    return html


def socket_request(socket: WebSocket) -> HttpRequest:
    """Return an ``HttpRequest`` describing ``socket``'s handshake, for templates.

    It has ``method`` "GET", ``path``, ``GET`` (the query string), ``COOKIES``,
    ``META`` (headers as ``HTTP_*``, client and server addresses), ``user`` and
    ``session`` from the handshake, and a scheme of https for ``wss``, so
    ``is_secure()``, ``get_host()`` and ``build_absolute_uri()`` work. It has
    no body, no ``resolver_match`` and no messages. ``META["CSRF_COOKIE"]`` is
    the page's CSRF secret when the handshake carried one, so ``csrf_token``
    is valid for forms posted over HTTP later.
    """
    return _SocketRequest(socket.scope)


def render_for_socket(
    socket: WebSocket, template_name: TemplateName, context: Context | None = None
) -> SafeString:
    """Render ``template_name`` for ``socket``: with its request, user and the context processors.

    ``csrf_token`` is the page's token when the handshake carried the CSRF
    cookie (or, with ``CSRF_USE_SESSIONS``, the session has one); otherwise
    ``{% csrf_token %}`` renders nothing, since a new token could never reach
    the browser's cookies over a websocket.
    """
    request = socket_request(socket)
    merged = dict(context or {})
    if "CSRF_COOKIE" not in request.META:
        merged.setdefault("csrf_token", _NO_CSRF_TOKEN)
    return render_html(template_name, merged, request=request)


async def send_html(
    socket: WebSocket, template_name: TemplateName, context: Context | None = None
) -> None:
    """Render ``template_name`` for ``socket`` (see ``render_for_socket``) and send it as text."""
    html = await sync_to_async(render_for_socket)(socket, template_name, context)
    await socket.send(str(html))


class _SocketRequest(HttpRequest):  # type: ignore[misc]  # Django ships no type hints
    """The handshake of a websocket, dressed as the GET request templates expect."""

    def __init__(self, scope: Mapping[str, Any]) -> None:
        super().__init__()
        self.scope = scope
        self.method = "GET"
        root = scope.get("root_path") or ""
        self.path = str(scope.get("path", "/"))
        self.path_info = self.path.removeprefix(root) if root else self.path
        query = scope.get("query_string", b"").decode("latin-1")
        self.GET = QueryDict(query)
        self.META = _meta(scope, query)
        cookies = scope.get("cookies")
        self.COOKIES = dict(cookies) if cookies is not None else parse_cookie(
            self.META.get("HTTP_COOKIE", ""))
        if "user" in scope:
            self.user = scope["user"]
        if "session" in scope:
            self.session = scope["session"]
        secret = self._csrf_secret()
        if secret is not None:
            self.META["CSRF_COOKIE"] = secret

    def _get_scheme(self) -> str:
        return "https" if self.scope.get("scheme") == "wss" else "http"

    def _csrf_secret(self) -> str | None:
        if settings.CSRF_USE_SESSIONS:
            session = getattr(self, "session", None)
            secret = session.get(CSRF_SESSION_KEY) if session is not None else None
        else:
            secret = self.COOKIES.get(settings.CSRF_COOKIE_NAME)
        # Only a well-formed secret: anything else would make a token that fails
        # as surely as none, and less clearly.
        if (isinstance(secret, str) and len(secret) == CSRF_SECRET_LENGTH
                and all(char in CSRF_ALLOWED_CHARS for char in secret)):
            return secret
        return None


def _meta(scope: Mapping[str, Any], query: str) -> dict[str, Any]:
    """Return the WSGI-style environ of a handshake, as Django's ASGIRequest builds it."""
    meta: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "QUERY_STRING": query,
        "SCRIPT_NAME": scope.get("root_path") or "",
        "PATH_INFO": scope.get("path", "/"),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
    }
    client = scope.get("client")
    if client:
        meta["REMOTE_ADDR"] = client[0]
        meta["REMOTE_HOST"] = client[0]
        meta["REMOTE_PORT"] = client[1]
    server = scope.get("server")
    if server:
        meta["SERVER_NAME"] = server[0]
        meta["SERVER_PORT"] = str(server[1])
    else:
        meta["SERVER_NAME"], meta["SERVER_PORT"] = "unknown", "0"
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        key = name if name in ("CONTENT_LENGTH", "CONTENT_TYPE") else f"HTTP_{name}"
        if key in meta:
            value = meta[key] + ("; " if key == "HTTP_COOKIE" else ",") + value
        meta[key] = value
    return meta
