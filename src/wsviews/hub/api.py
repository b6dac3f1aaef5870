"""The server HTTP API, as Centrifugo serves it: ``POST api/<method>`` with a JSON body.

Authenticated by ``http_api.key``, sent as ``X-API-Key: <key>`` or
``Authorization: apikey <key>`` (``http_api.insecure`` turns the check off;
with neither a key nor ``insecure`` every request is refused, as Centrifugo
does). A success answers ``{"result": {...}}``; a refused command answers
``{"error": {"code": N, "message": "..."}}`` with HTTP 200, as Centrifugo's
default ``transport`` error mode; a request that is not JSON, or not
authenticated, gets HTTP 400 / 401.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import codes, server_api
from .codes import ClientError
from .node import get_node

__all__ = ["api", "call_method"]

logger = logging.getLogger("wsviews.hub")

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class _Refused(Exception):
    def __init__(self, error: ClientError, detail: str = "") -> None:
        super().__init__(detail or error.message)
        self.error = error


def _str(body: dict[str, Any], name: str, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise _Refused(codes.ERROR_BAD_REQUEST, f"{name!r} must be a non-empty string")
    return value


def _data(body: dict[str, Any]) -> Any:
    if "data" not in body:
        raise _Refused(codes.ERROR_BAD_REQUEST, "'data' is required")
    return body["data"]


def _channel(body: dict[str, Any]) -> str:
    channel = _str(body, "channel")
    try:
        get_node().channel_options(channel)
    except ValueError as exc:
        raise _Refused(codes.ERROR_UNKNOWN_CHANNEL, str(exc)) from None
    return channel


async def _publish(body: dict[str, Any]) -> dict[str, Any]:
    tags = body.get("tags")
    key = body.get("idempotency_key") or None
    return await server_api.apublish(_channel(body), _data(body), tags=tags, idempotency_key=key)


async def _broadcast(body: dict[str, Any]) -> dict[str, Any]:
    channels = body.get("channels")
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise _Refused(codes.ERROR_BAD_REQUEST, "'channels' must be a list of strings")
    data = _data(body)
    responses = []
    for channel in channels:
        try:
            responses.append({"result": await server_api.apublish(_channel({"channel": channel}),
                                                                  data)})
        except _Refused as exc:
            responses.append({"error": {"code": exc.error.code, "message": exc.error.message}})
    return {"responses": responses}


async def _subscribe(body: dict[str, Any]) -> dict[str, Any]:
    await server_api.asubscribe(_str(body, "user"), _channel(body),
                                client=_str(body, "client", False) or None)
    return {}


async def _unsubscribe(body: dict[str, Any]) -> dict[str, Any]:
    await server_api.aunsubscribe(_str(body, "user"), _str(body, "channel"),
                                  client=_str(body, "client", False) or None)
    return {}


async def _disconnect(body: dict[str, Any]) -> dict[str, Any]:
    how = body.get("disconnect") or {}
    if not isinstance(how, dict):
        raise _Refused(codes.ERROR_BAD_REQUEST, "'disconnect' must be an object {code, reason}")
    await server_api.adisconnect(_str(body, "user"), client=_str(body, "client", False) or None,
                                 code=how.get("code") or None, reason=how.get("reason") or "")
    return {}


async def _presence(body: dict[str, Any]) -> dict[str, Any]:
    return {"presence": await server_api.apresence(_channel(body))}


async def _presence_stats(body: dict[str, Any]) -> dict[str, Any]:
    return await server_api.apresence_stats(_channel(body))


async def _history(body: dict[str, Any]) -> dict[str, Any]:
    limit = body.get("limit", 0)
    if not isinstance(limit, int):
        raise _Refused(codes.ERROR_BAD_REQUEST, "'limit' must be an integer")
    since = body.get("since")
    if since is not None and not isinstance(since, dict):
        raise _Refused(codes.ERROR_BAD_REQUEST, "'since' must be an object {offset, epoch}")
    return await server_api.ahistory(_channel(body), limit=limit, since=since,
                                     reverse=bool(body.get("reverse")))


async def _history_remove(body: dict[str, Any]) -> dict[str, Any]:
    await server_api.ahistory_remove(_channel(body))
    return {}


async def _channels(body: dict[str, Any]) -> dict[str, Any]:
    return {"channels": await server_api.achannels()}


async def _info(body: dict[str, Any]) -> dict[str, Any]:
    return await server_api.ainfo()


METHODS: dict[str, Handler] = {
    "publish": _publish, "broadcast": _broadcast, "subscribe": _subscribe,
    "unsubscribe": _unsubscribe, "disconnect": _disconnect, "presence": _presence,
    "presence_stats": _presence_stats, "history": _history, "history_remove": _history_remove,
    "channels": _channels, "info": _info,
}


async def call_method(method: str, body: Any) -> dict[str, Any]:
    """Run one API command; return ``{"result": ...}`` or ``{"error": ...}``."""
    handler = METHODS.get(method)
    if handler is None:
        error = codes.ERROR_METHOD_NOT_FOUND
        return {"error": {"code": error.code, "message": f"{error.message}: {method!r}"}}
    if not isinstance(body, dict):
        error = codes.ERROR_BAD_REQUEST
        return {"error": {"code": error.code, "message": "the body must be a JSON object"}}
    try:
        return {"result": await handler(body)}
    except _Refused as exc:
        logger.info("hub API %s refused: %s", method, exc)
        return {"error": {"code": exc.error.code, "message": str(exc)}}
    except (TypeError, ValueError) as exc:
        logger.info("hub API %s refused: %s", method, exc)
        return {"error": {"code": codes.ERROR_BAD_REQUEST.code, "message": str(exc)}}
    except ConnectionError as exc:
        logger.warning("hub API %s failed: %s", method, exc)
        return {"error": {"code": codes.ERROR_INTERNAL.code, "message": codes.ERROR_INTERNAL.message}}


def _authorized(request: HttpRequest) -> bool:
    settings = get_node().config.http_api
    if settings.insecure:
        return True
    if not settings.key:
        return False
    given = request.headers.get("X-API-Key", "")
    if not given:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "apikey":
            given = value.strip()
    return bool(given) and hmac.compare_digest(given.encode(), settings.key.encode())


@csrf_exempt  # type: ignore[untyped-decorator]
async def api(request: HttpRequest, method: str = "batch") -> HttpResponse:
    """Serve ``POST api/<method>`` (and ``POST api`` with ``{"commands": [...]}``)."""
    if get_node().config.http_api.disabled:
        return JsonResponse({"error": "the hub's HTTP API is disabled"}, status=404)
    if request.method != "POST":
        response = JsonResponse({"error": "use POST with a JSON body"}, status=405)
        response["Allow"] = "POST"
        return response
    if not _authorized(request):  # django.request logs the 401 once
        return JsonResponse({"error": "unauthorized: send X-API-Key"}, status=401)
    try:
        body = json.loads(request.body or b"{}")
    except ValueError as exc:
        logger.info("hub API %s: body is not JSON: %s", method, exc)
        return JsonResponse({"error": f"the body is not JSON: {exc}"}, status=400)
    if method == "batch":
        commands = body.get("commands") if isinstance(body, dict) else None
        if not isinstance(commands, list):
            return JsonResponse({"error": "batch takes {\"commands\": [{method: {...}}, ...]}"},
                                status=400)
        replies = []
        for command in commands:
            if not isinstance(command, dict) or len(command) != 1:
                replies.append({"error": {"code": codes.ERROR_BAD_REQUEST.code,
                                          "message": "each command is {method: params}"}})
                continue
            (name, params), = command.items()
            replies.append(await call_method(name, params))
        return JsonResponse({"replies": replies})
    return JsonResponse(await call_method(method, body))
