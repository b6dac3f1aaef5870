"""{% load wsviews %}: ws_url, turbo_stream_from and dom_id."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.template import engines
from django.test import RequestFactory, override_settings

from wsviews import turbo

pytestmark = pytest.mark.usefixtures("testserver_host")


@pytest.fixture
def testserver_host() -> Any:
    """Let RequestFactory's host through ALLOWED_HOSTS."""
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        yield


def render(source: str, request: Any = None, **context: Any) -> str:
    template = engines["django"].from_string("{% load wsviews %}" + source)
    return str(template.render(context, request))


def test_ws_url_is_absolute_on_the_requests_host() -> None:
    """With a request the URL is ws://host/path, reversed from the route's name and arguments."""
    request = RequestFactory().get("/")
    assert render("{% ws_url 'chat' room='lobby' %}", request) == "ws://testserver/ws/chat/lobby/"
    assert render("{% ws_url 'chat' 'lobby' %}", request) == "ws://testserver/ws/chat/lobby/"


def test_ws_url_is_wss_when_the_request_is_secure() -> None:
    """An https request, or one a TLS proxy marks with SECURE_PROXY_SSL_HEADER, gets wss://."""
    assert render("{% ws_url 'chat' room='x' %}", RequestFactory().get("/", secure=True)) == (
        "wss://testserver/ws/chat/x/")
    proxied = RequestFactory().get("/", headers={"X-Forwarded-Proto": "https", "Host": "testserver"})
    assert render("{% ws_url 'chat' room='x' %}", proxied) == "ws://testserver/ws/chat/x/"
    with override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        assert render("{% ws_url 'chat' room='x' %}", proxied) == "wss://testserver/ws/chat/x/"


def test_ws_url_without_a_request_is_the_path() -> None:
    """Without a request in the context the path is rendered; htmx resolves it against the page."""
    assert render("{% ws_url 'chat' room='lobby' %}") == "/ws/chat/lobby/"
    assert render("{% ws_url 'chat' room=room as url %}[{{ url }}]", room="r") == "[/ws/chat/r/]"


def stream_source(html: str) -> tuple[str, dict[str, list[str]]]:
    match = re.search(r'<wsviews-stream-source src="([^"]+)"', html)
    assert match, html
    url = urlsplit(match.group(1).replace("&amp;", "&"))
    base = f"{url.scheme}://{url.netloc}{url.path}" if url.scheme else url.path
    return base, parse_qs(url.query)


def test_turbo_stream_from_renders_a_signed_reconnecting_source() -> None:
    """The element carries the signed name; its script is loaded with it; reload is passed on."""
    html = render('{% turbo_stream_from "items" reload="items-frame" %}', RequestFactory().get("/"))
    assert html.startswith('<script type="module" src="/static/wsviews/turbo-stream-source.js"></script>')
    assert 'reload="items-frame"></wsviews-stream-source>' in html
    base, query = stream_source(html)
    assert base == "ws://testserver/ws/turbo-streams/"
    assert turbo.verify_stream_name(query["stream"][0]) == "items"


def test_turbo_stream_from_joins_parts_and_escapes_attributes() -> None:
    """Several parts name one stream; the reload attribute is escaped."""
    from myapp.models import Item

    html = render('{% turbo_stream_from "chat" room item reload=frames %}', room="lobby", item=Item(pk=3),
                  frames='a" onmouseover="x')
    assert turbo.verify_stream_name(stream_source(html)[1]["stream"][0]) == "chat.lobby.myapp.item.3"
    assert 'reload="a&quot; onmouseover=&quot;x"' in html
    assert stream_source(html)[0] == "/ws/turbo-streams/"  # no request: the element resolves the path


@override_settings(ROOT_URLCONF="urls_http_only")
def test_turbo_stream_from_without_the_route_says_what_to_add() -> None:
    """If turbo_streams is not routed, the error gives the urls.py line to add."""
    with pytest.raises(ImproperlyConfigured, match=r"path\('ws/turbo-streams/', turbo_streams"):
        render('{% turbo_stream_from "items" %}')


def test_dom_id_names_an_instance() -> None:
    """dom_id is model-pk, optionally after a prefix; a proxy's instances share their model's ids."""
    from myapp.models import Item

    assert render("{% dom_id item %}", item=Item(pk=12)) == "item-12"
    assert render('{% dom_id item "edit" %}', item=Item(pk=12)) == "edit-item-12"
