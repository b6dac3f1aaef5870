"""htmx over websockets: what ws-send submits becomes a QueryDict; fragments for oob swaps.

Parsing and building are tested in process; closing a socket for a bad
message on a real server. The fragments are applied by real htmx in
test_live_pages.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from django import forms
from django.test import override_settings
from django.utils.safestring import mark_safe

from servers import Server
from wsclient import ConnectionClosed, connect, recv
from wsviews import htmx
from wsviews.htmx import HtmxMessageError, parse_htmx_message

pytest_plugins = ["html_pages"]

HEADERS = {
    "HX-Request": "true", "HX-Trigger": "message-form", "HX-Trigger-Name": None,
    "HX-Target": "message-form", "HX-Current-URL": "http://127.0.0.1:8000/htmx-chat/lobby/",
}


def message(**fields: object) -> str:
    return json.dumps({**fields, "HEADERS": HEADERS})


# Parsing


def test_form_fields_and_headers_as_htmx_sends_them() -> None:
    """Fields become a QueryDict; headers are attributes, null ones absent, names case-insensitive."""
    parsed = parse_htmx_message(message(text="hi", tags=["a", "b"], empty=""))
    assert parsed.data.getlist("tags") == ["a", "b"]
    assert parsed.data["text"] == "hi"
    assert parsed.data["empty"] == ""
    assert "HEADERS" not in parsed.data
    assert parsed.request is True
    assert parsed.trigger == "message-form"
    assert parsed.trigger_name is None
    assert parsed.target == "message-form"
    assert parsed.current_url == "http://127.0.0.1:8000/htmx-chat/lobby/"
    assert parsed.prompt is None and parsed.boosted is False
    assert parsed.headers["hx-trigger"] == "message-form"
    with pytest.raises(AttributeError):
        parsed.data["text"] = "changed"  # type: ignore[index]  # a QueryDict from a request is immutable


def test_a_django_form_validates_multi_valued_fields() -> None:
    """A MultipleChoiceField sees every value of a field htmx sent as a list."""

    class Pick(forms.Form):
        colours = forms.MultipleChoiceField(choices=[("red", "Red"), ("blue", "Blue"), ("green", "Green")])
        name = forms.CharField(max_length=5)

    form = Pick(parse_htmx_message(message(colours=["red", "green"], name="ada")).data)
    assert form.is_valid(), form.errors
    assert form.cleaned_data == {"colours": ["red", "green"], "name": "ada"}
    bad = Pick(parse_htmx_message(message(colours=["purple"], name="too long")).data)
    assert set(bad.errors) == {"colours", "name"}


def test_values_become_strings_as_in_an_http_form() -> None:
    """hx-vals numbers, booleans, null and objects are sent as htmx would send them over HTTP."""
    parsed = parse_htmx_message(message(n=3, x=1.5, yes=True, no=False, nothing=None, obj={"a": 1},
                                        mixed=[1, "two", False]))
    assert {name: parsed.data.getlist(name) for name in parsed.data} == {
        "n": ["3"], "x": ["1.5"], "yes": ["true"], "no": ["false"], "nothing": ["null"],
        "obj": ['{"a":1}'], "mixed": ["1", "two", "false"],
    }


def test_custom_hx_headers_are_kept() -> None:
    """Headers from hx-headers come through, numbers as strings."""
    parsed = parse_htmx_message(json.dumps({"HEADERS": {**HEADERS, "X-Page": 2, "HX-Prompt": "yes"}}))
    assert parsed.headers["x-page"] == "2"
    assert parsed.prompt == "yes"


@pytest.mark.parametrize(("data", "code", "reason"), [
    (b'{"HEADERS": {}}', 1003, "expected a text frame"),
    ("{not json", 1007, "invalid JSON"),
    ("[1, 2]", 1008, "got an array"),
    ('"text"', 1008, "got a string"),
    ('{"text": "hi"}', 1008, 'no "HEADERS" object'),
    ('{"text": "hi", "HEADERS": "HX-Request"}', 1008, 'no "HEADERS" object'),
    ('{"text": "hi", "HEADERS": {"HX-Trigger": "x"}}', 1008, "HX-Request"),
    ('{"text": "hi", "HEADERS": {"HX-Request": "false"}}', 1008, "HX-Request"),
    ('{"HEADERS": {"HX-Request": "true", "X": {"a": 1}}}', 1008, "header 'X' is not a string"),
    ('{"f": [[1]], "HEADERS": {"HX-Request": "true"}}', 1008, "list of lists"),
])
def test_messages_that_are_not_htmx_forms_are_refused(data: str | bytes, code: int, reason: str) -> None:
    """Each kind of bad message gets its close code and a reason saying what is wrong."""
    with pytest.raises(HtmxMessageError) as info:
        parse_htmx_message(data)
    assert info.value.code == code
    assert reason in info.value.reason


@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=3)
def test_more_fields_than_django_allows_are_refused() -> None:
    """DATA_UPLOAD_MAX_NUMBER_FIELDS counts every value, as for an HTTP form."""
    assert len(parse_htmx_message(message(a="1", b=["2", "3"])).data) == 2
    with pytest.raises(HtmxMessageError) as info:
        parse_htmx_message(message(a="1", b=["2", "3", "4"]))
    assert info.value.code == 1008
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in info.value.reason


# Fragments


def test_css_id_escapes_what_a_selector_cannot_hold() -> None:
    """Ids become selectors that match them exactly, as CSS.escape() writes them."""
    assert htmx.css_id("item-3") == "#item-3"
    assert htmx.css_id("3rd") == "#\\33 rd"
    assert htmx.css_id("-3") == "#-\\33 "
    assert htmx.css_id("a.b:c") == "#a\\.b\\:c"
    assert htmx.css_id("é") == "#é"
    with pytest.raises(ValueError, match="empty"):
        htmx.css_id("")


def test_inserting_fragments_wrap_the_html_with_the_swap() -> None:
    """append/prepend/before/after/update wrap the HTML in an element naming the swap and target."""
    row = mark_safe('<li id="item-1">one</li>')
    assert htmx.append(row, target="items") == (
        '<ul hx-swap-oob="beforeend:#items"><li id="item-1">one</li></ul>')
    assert htmx.prepend(row, targets=".lists") == (
        '<ul hx-swap-oob="afterbegin:.lists"><li id="item-1">one</li></ul>')
    assert htmx.before(row, target="item-2").startswith('<ul hx-swap-oob="beforebegin:#item-2">')
    assert htmx.after(row, target="item-2").startswith('<ul hx-swap-oob="afterend:#item-2">')
    assert htmx.update(mark_safe("<b>x</b>"), target="box") == (
        '<div hx-swap-oob="innerHTML:#box"><b>x</b></div>')


def test_append_unless_present_skips_a_target_that_has_the_element() -> None:
    """unless_present narrows the selector to targets without that id (idempotent appends)."""
    fragment = htmx.append(mark_safe('<li id="item-1">one</li>'), target="items", unless_present="item-1")
    assert 'hx-swap-oob="beforeend:#items:not(:has(#item-1))"' in fragment
    with pytest.raises(ValueError, match="single selector"):
        htmx.append(mark_safe("<li></li>"), targets=".a, .b", unless_present="x")


def test_the_wrapper_is_one_the_parser_keeps_the_content_in() -> None:
    """Table rows go in a <tbody>, cells in a <tr>, options in a <select>; comments are skipped."""
    assert htmx.append(mark_safe("<!-- row -->\n<tr><td>1</td></tr>"), target="t").startswith("<tbody ")
    assert htmx.append(mark_safe("<td>1</td>"), target="r").startswith("<tr ")
    assert htmx.append(mark_safe("<option>1</option>"), target="s").startswith("<select ")
    assert htmx.append(mark_safe("<p>1</p>"), target="d").startswith("<div ")


def test_html_not_marked_safe_is_escaped() -> None:
    """A plain str is text, as everywhere in Django: it cannot inject markup."""
    fragment = htmx.append("<script>alert(1)</script>", target="items")
    assert "<script>" not in fragment
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in fragment
    assert htmx.remove(targets='a[title="x"]') == '<div hx-swap-oob="delete:a[title=&quot;x&quot;]"></div>'


def test_replace_marks_the_first_element() -> None:
    """replace() adds hx-swap-oob to the HTML's own first element, which takes the target's place."""
    assert htmx.replace(mark_safe('<li id="item-1" class="a">one</li>')) == (
        '<li hx-swap-oob="true" id="item-1" class="a">one</li>')
    assert htmx.replace(mark_safe('\n <li>one</li>'), target="item-1") == (
        '\n <li hx-swap-oob="outerHTML:#item-1">one</li>')
    with pytest.raises(ValueError, match="starts with an element"):
        htmx.replace("just text", target="x")
    with pytest.raises(ValueError, match="already has hx-swap-oob"):
        htmx.replace(mark_safe('<li hx-swap-oob="true">x</li>'))


def test_remove_and_refresh() -> None:
    """remove() deletes its target; refresh() re-renders the body from the page's URL."""
    assert htmx.remove(target="item-1") == '<div hx-swap-oob="delete:#item-1"></div>'
    refresh = htmx.refresh()
    assert refresh.startswith('<div hx-swap-oob="beforeend:body">')
    assert 'hx-get="" hx-trigger="load" hx-target="body" hx-swap="innerHTML"' in refresh


def test_a_target_is_required_and_only_one() -> None:
    """Neither target= nor targets=, or both, is a mistake named in the error."""
    with pytest.raises(ValueError, match="target= .* or targets="):
        htmx.remove()
    with pytest.raises(ValueError, match="not both"):
        htmx.append(mark_safe("<li></li>"), target="a", targets=".a")


# On a real server


async def closed_with(ws: object) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as info:
        await recv(ws)
    return info.value.rcvd.code, info.value.rcvd.reason


async def test_receive_htmx_gives_the_view_the_form(html_server: Server) -> None:
    """What htmx sends arrives in the view as data and header attributes."""
    async with connect(html_server.ws + "/ws/html/htmx/") as ws:
        await ws.send(message(text="hi", tags=["a", "b"]))
        got = json.loads(await recv(ws))
    assert got == {"data": {"text": ["hi"], "tags": ["a", "b"]}, "request": True,
                   "trigger": "message-form", "trigger_name": None, "target": "message-form",
                   "current_url": HEADERS["HX-Current-URL"], "prompt": None, "boosted": False}


@pytest.mark.parametrize(("send", "code", "reason"), [
    (b"\x00binary", 1003, "expected a text frame from htmx's ws-send, got binary"),
    ("{not json", 1007, "invalid JSON"),
    ('{"text": "no headers"}', 1008, 'no "HEADERS" object'),
])
async def test_a_bad_message_closes_that_socket_only(
    html_server: Server, send: str | bytes, code: int, reason: str
) -> None:
    """The sender is closed with the code and a reason, one warning is logged, other sockets carry on."""
    before = len(html_server.log())
    async with connect(html_server.ws + "/ws/html/htmx/") as bystander:
        async with connect(html_server.ws + "/ws/html/htmx/") as ws:
            await ws.send(send)
            got_code, got_reason = await closed_with(ws)
        assert got_code == code
        assert reason in got_reason
        await bystander.send(message(text="still here"))
        assert json.loads(await recv(bystander))["data"] == {"text": ["still here"]}
    await asyncio.sleep(0.2)
    log = html_server.log()[before:]
    lines = [line for line in log.splitlines() if f"with {code}: " in line]
    assert len(lines) == 1 and reason in lines[0] and "/ws/html/htmx/" in lines[0]
    assert "Traceback" not in log
