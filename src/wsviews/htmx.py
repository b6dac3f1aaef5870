"""htmx over a websocket: read what ``ws-send`` submits, build the fragments ``ws-connect`` swaps.

The htmx websocket extension (npm ``htmx-ext-ws``) sends a form as one JSON
object: the form's fields, plus a ``HEADERS`` object with ``HX-Request``,
``HX-Trigger``, ``HX-Target``, ``HX-Current-URL``... Every top-level element
of a message it receives is swapped out of band, by its ``id`` unless its
``hx-swap-oob`` attribute says otherwise. ``receive_htmx()`` turns the first
into a ``QueryDict`` a Django form validates; the builders below write the
second.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.http import QueryDict
from django.utils.datastructures import CaseInsensitiveMapping
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

from . import WebSocketDisconnect, encoding

if TYPE_CHECKING:
    from . import WebSocket

logger = logging.getLogger("wsviews")

# Close codes for messages that are not what htmx-ext-ws sends. The extension
# reconnects only after 1006, 1011, 1012 and 1013, so a page that sent a bad
# message is not stuck resending it.
UNSUPPORTED_DATA = 1003  # a binary frame
INVALID_PAYLOAD = 1007  # text that is not JSON
POLICY_VIOLATION = 1008  # JSON, but not an htmx form message

_MAX_REASON = 120  # close reasons are limited to 123 bytes


class HtmxMessageError(ValueError):
    """A message is not what htmx's ``ws-send`` sends; ``code`` is the close code for it."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason} (close code {self.code})"


@dataclass(frozen=True, slots=True)
class HtmxMessage:
    """A form submitted by htmx over a websocket.

    ``data`` holds the form's fields as a ``QueryDict`` (a field sent several
    times keeps every value), ready for ``MyForm(message.data)``; ``headers``
    the ``HEADERS`` htmx sent, case-insensitively.
    """

    data: QueryDict
    headers: Mapping[str, str]

    @property
    def request(self) -> bool:
        """True: htmx always sends ``HX-Request: true`` (``receive_htmx`` requires it)."""
        return self.headers.get("HX-Request") == "true"

    @property
    def trigger(self) -> str | None:
        """The ``id`` of the element that sent the message (``HX-Trigger``), if it has one."""
        return self.headers.get("HX-Trigger")

    @property
    def trigger_name(self) -> str | None:
        """The ``name`` of the element that sent the message (``HX-Trigger-Name``)."""
        return self.headers.get("HX-Trigger-Name")

    @property
    def target(self) -> str | None:
        """The ``id`` of the sending element's ``hx-target`` (``HX-Target``)."""
        return self.headers.get("HX-Target")

    @property
    def current_url(self) -> str | None:
        """The URL of the page in the browser (``HX-Current-URL``)."""
        return self.headers.get("HX-Current-URL")

    @property
    def prompt(self) -> str | None:
        """The user's answer to ``hx-prompt`` (``HX-Prompt``)."""
        return self.headers.get("HX-Prompt")

    @property
    def boosted(self) -> bool:
        """True if the sending element is boosted (``HX-Boosted``)."""
        return self.headers.get("HX-Boosted") == "true"


def parse_htmx_message(data: str | bytes) -> HtmxMessage:
    """Return the ``HtmxMessage`` in one websocket message from ``ws-send``.

    Raise ``HtmxMessageError`` with close code 1003 for a binary frame, 1007
    for text that is not JSON, and 1008 for JSON that is not an htmx form
    message (not an object, no ``HEADERS`` object, no ``HX-Request: true``,
    values that are not strings, numbers, booleans or lists of them, or more
    fields than ``DATA_UPLOAD_MAX_NUMBER_FIELDS``). Values are turned into
    strings as htmx does for an HTTP request, so a form validates the same
    data whichever way it came.
    """
    if not isinstance(data, str):
        raise HtmxMessageError(UNSUPPORTED_DATA, "expected a text frame from htmx's ws-send, got binary")
    try:
        payload = encoding.loads(data)
    except encoding.JSONDecodeError as exc:
        raise HtmxMessageError(INVALID_PAYLOAD, f"invalid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise HtmxMessageError(
            POLICY_VIOLATION, f"expected a JSON object from htmx's ws-send, got {_json_kind(payload)}")
    headers = payload.get("HEADERS")
    if not isinstance(headers, dict):
        raise HtmxMessageError(
            POLICY_VIOLATION, 'no "HEADERS" object: send forms with htmx\'s ws-send (htmx-ext-ws)')
    parsed_headers = _headers(headers)
    if parsed_headers.get("HX-Request") != "true":
        raise HtmxMessageError(POLICY_VIOLATION, 'HEADERS lacks "HX-Request": "true": not sent by htmx')
    form = QueryDict(mutable=True)
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    count = 0
    for name, value in payload.items():
        if name == "HEADERS":
            continue
        values = list(_field_values(name, value))
        count += len(values)
        if limit is not None and count > limit:
            raise HtmxMessageError(
                POLICY_VIOLATION, f"more than {limit} fields (DATA_UPLOAD_MAX_NUMBER_FIELDS)")
        form.setlist(name, values)
    form._mutable = False
    return HtmxMessage(data=form, headers=CaseInsensitiveMapping(parsed_headers))


async def receive_htmx(socket: WebSocket) -> HtmxMessage:
    """Return the next form htmx sent on ``socket`` (see ``parse_htmx_message``).

    A message that is not one closes the socket with the error's code and
    reason, logs one warning line, and raises ``WebSocketDisconnect``, which
    ends a ``@websocket`` view quietly. Raise ``WebSocketDisconnect`` too when
    the client leaves.
    """
    data = await socket.receive()
    try:
        return parse_htmx_message(data)
    except HtmxMessageError as exc:
        reason = _truncate(exc.reason)
        logger.warning("Closed websocket %s with %d: %s", socket.path, exc.code, reason)
        await socket.close(exc.code, reason)
        raise WebSocketDisconnect(exc.code, reason) from None


# Out-of-band fragments

# The tag that may hold an element of each kind when the HTML parser reads it
# in a <template> (as htmx does): a <tr> in a <div> would be dropped.
_WRAPPERS = {
    "tr": "tbody", "td": "tr", "th": "tr", "thead": "table", "tbody": "table", "tfoot": "table",
    "caption": "table", "colgroup": "table", "col": "colgroup", "option": "select",
    "optgroup": "select", "li": "ul", "dt": "dl", "dd": "dl",
}
_FIRST_TAG = re.compile(r"\A(?:\s|<!--.*?-->)*<([a-zA-Z][a-zA-Z0-9-]*)(?=[\s/>])", re.DOTALL)
_HAS_OOB = re.compile(r"[^>]*\s(?:data-)?hx-swap-oob\s*=", re.IGNORECASE)


def css_id(element_id: str) -> str:
    """Return a CSS selector matching the element whose id is ``element_id`` (``#`` + escaped id)."""
    if not element_id:
        raise ValueError("An element id cannot be empty.")
    out = []
    for index, char in enumerate(element_id):
        code = ord(char)
        if code == 0:
            out.append("\ufffd")
        elif (code < 0x20 or code == 0x7F or (index == 0 and char.isdigit())
              or (index == 1 and char.isdigit() and element_id[0] == "-")):
            out.append(f"\\{code:x} ")
        elif code >= 0x80 or char.isalnum() or char in "-_":
            out.append(char)
        else:
            out.append("\\" + char)
    if element_id == "-":
        return "#\\-"
    return "#" + "".join(out)


def oob(html: Any, swap: str, selector: str) -> SafeString:
    """Return ``html`` wrapped for an out-of-band swap: ``swap`` (``beforeend``...) into ``selector``.

    ``html`` that is not marked safe (a rendered template is) is escaped, as
    Django does everywhere. The wrapper's tag suits the first element of
    ``html`` (a ``<tbody>`` for ``<tr>`` rows...), so the browser parses it.
    """
    content = conditional_escape(html)
    tag = _wrapper_for(content)
    return format_html('<{} hx-swap-oob="{}">{}</{}>', tag, f"{swap}:{selector}", content, tag)


def append(html: Any, *, target: str | None = None, targets: str | None = None,
           unless_present: str | None = None) -> SafeString:
    """Return a fragment that appends ``html`` inside the element with id ``target``.

    ``targets`` is a CSS selector instead (every match gets it). With
    ``unless_present`` (an element id, usually that of ``html``'s root) the
    fragment does nothing if that element is already inside the target, so a
    page that received it twice (a re-fetch and a broadcast) shows it once.
    """
    return oob(html, "beforeend", _selector(target, targets, unless_present))


def prepend(html: Any, *, target: str | None = None, targets: str | None = None,
            unless_present: str | None = None) -> SafeString:
    """Return a fragment that inserts ``html`` at the start of the target (see ``append``)."""
    return oob(html, "afterbegin", _selector(target, targets, unless_present))


def before(html: Any, *, target: str | None = None, targets: str | None = None) -> SafeString:
    """Return a fragment that inserts ``html`` before the target element."""
    return oob(html, "beforebegin", _selector(target, targets))


def after(html: Any, *, target: str | None = None, targets: str | None = None) -> SafeString:
    """Return a fragment that inserts ``html`` after the target element."""
    return oob(html, "afterend", _selector(target, targets))


def update(html: Any, *, target: str | None = None, targets: str | None = None) -> SafeString:
    """Return a fragment that replaces the content of the target element with ``html``."""
    return oob(html, "innerHTML", _selector(target, targets))


def replace(html: Any, *, target: str | None = None, targets: str | None = None) -> SafeString:
    """Return ``html`` marked to replace the target element (``hx-swap-oob="outerHTML:..."``).

    ``html`` must start with one element (it takes the target's place);
    without ``target``/``targets`` it replaces the element with its own id.
    """
    content = conditional_escape(html)
    match = _FIRST_TAG.match(content)
    if match is None:
        raise ValueError("replace() needs HTML that starts with an element, e.g. '<li id=\"item-1\">...'")
    if _HAS_OOB.match(content, match.end()):
        raise ValueError("replace() got HTML whose first element already has hx-swap-oob; remove it.")
    swap = "true" if target is None and targets is None else f"outerHTML:{_selector(target, targets)}"
    attribute = format_html(' hx-swap-oob="{}"', swap)
    return mark_safe(content[:match.end()] + attribute + content[match.end():])


def remove(*, target: str | None = None, targets: str | None = None) -> SafeString:
    """Return a fragment that removes the target element(s)."""
    return format_html('<div hx-swap-oob="{}"></div>', f"delete:{_selector(target, targets)}")


def refresh() -> SafeString:
    """Return a fragment that re-renders the page's body from its URL, as Turbo's refresh does.

    The fragment appends to ``<body>`` an element that, once htmx processes
    it, GETs the page's own URL and swaps the response's body in. The socket
    is closed with the old body and opened again by the new one, whose
    regions then re-fetch themselves as on any open.
    """
    return mark_safe(
        '<div hx-swap-oob="beforeend:body"><div hidden hx-get="" hx-trigger="load" '
        'hx-target="body" hx-swap="innerHTML"></div></div>'
    )


def _selector(target: str | None, targets: str | None, unless_present: str | None = None) -> str:
    if (target is None) == (targets is None):
        raise ValueError("Pass target= (an element id) or targets= (a CSS selector), not both or neither.")
    selector = css_id(target) if target is not None else str(targets)
    if unless_present is not None:
        if targets is not None and "," in selector:
            raise ValueError("unless_present= needs a target or a single selector, not a selector list.")
        selector = f"{selector}:not(:has({css_id(unless_present)}))"
    return selector


def _wrapper_for(content: str) -> str:
    match = _FIRST_TAG.match(content)
    return _WRAPPERS.get(match.group(1).lower(), "div") if match else "div"


def _headers(headers: dict[str, Any]) -> dict[str, str]:
    parsed = {}
    for name, value in headers.items():
        if value is None:
            continue  # htmx sends null for an element without an id or a name
        if isinstance(value, (dict, list)):
            raise HtmxMessageError(POLICY_VIOLATION, f"header {name!r} is not a string")
        parsed[name] = _as_form_string(value)
    return parsed


def _field_values(name: str, value: Any) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            if isinstance(item, list):
                raise HtmxMessageError(POLICY_VIOLATION, f"field {name!r} holds a list of lists")
            yield _as_form_string(item)
    else:
        yield _as_form_string(value)


def _as_form_string(value: Any) -> str:
    """Return ``value`` as htmx puts it in an HTTP form body (JavaScript's ``String()``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return encoding.dumps(value)  # an object from hx-vals: htmx sends it as JSON text


def _json_kind(value: Any) -> str:
    kinds: Mapping[type, str] = {list: "an array", str: "a string", bool: "a boolean",
                                 int: "a number", float: "a number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _truncate(reason: str) -> str:
    encoded = reason.encode()
    if len(encoded) <= _MAX_REASON:
        return reason
    return encoded[:_MAX_REASON - 3].decode(errors="ignore") + "..."
