"""Turbo Streams: actions built with escaping, signed stream names, the stream source view.

Real Turbo applies these actions in test_live_pages.py.
"""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import quote

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.core import signing
from django.test import override_settings
from django.utils.safestring import mark_safe

from servers import Server
from wsclient import connect, handshake_status, http, recv
from wsviews import turbo

pytest_plugins = ["html_pages"]


# Building actions


@pytest.mark.parametrize("action", ["append", "prepend", "replace", "update", "before", "after"])
def test_content_actions_wrap_the_html_in_a_template(action: str) -> None:
    """Each action that inserts content puts it in the <template> of a <turbo-stream>."""
    element = getattr(turbo, action)(mark_safe('<li id="item-1">one</li>'), target="items")
    assert element == (f'<turbo-stream action="{action}" target="items">'
                       '<template><li id="item-1">one</li></template></turbo-stream>')


def test_targets_is_a_css_selector_and_attributes_are_escaped() -> None:
    """targets= becomes the targets attribute; quotes and ampersands in it are escaped."""
    element = turbo.remove(targets='li[data-tag="a&b"]')
    assert element == ('<turbo-stream action="remove" targets="li[data-tag=&quot;a&amp;b&quot;]">'
                       '</turbo-stream>')


def test_html_not_marked_safe_is_escaped_as_text() -> None:
    """A plain str cannot inject markup, nor close the <template> early."""
    element = turbo.append("</template><script>alert(1)</script>", target="items")
    assert "<script>" not in element and element.count("</template>") == 1
    assert "&lt;/template&gt;&lt;script&gt;" in element


def test_morph_request_id_and_refresh() -> None:
    """Extra attributes are written with dashes; refresh takes no target and no content."""
    assert turbo.replace(mark_safe("<p id=x></p>"), target="x", method="morph").startswith(
        '<turbo-stream action="replace" target="x" method="morph">')
    assert turbo.refresh() == '<turbo-stream action="refresh"></turbo-stream>'
    assert turbo.refresh(request_id="abc", method="morph", scroll="preserve") == (
        '<turbo-stream action="refresh" request-id="abc" method="morph" scroll="preserve"></turbo-stream>')


@pytest.mark.parametrize(("call", "message"), [
    (lambda: turbo.stream("explode", "x", target="a"), "Unknown Turbo Stream action 'explode'"),
    (lambda: turbo.stream("append", "x"), "Pass target="),
    (lambda: turbo.stream("append", "x", target="a", targets=".a"), "not both"),
    (lambda: turbo.stream("append", target="a"), "needs content"),
    (lambda: turbo.stream("remove", "x", target="a"), "takes no content"),
    (lambda: turbo.stream("refresh", target="a"), "has no target"),
    (lambda: turbo.stream("append", "x", target="a", **{"on click": "x"}), "cannot be a turbo-stream"),
])
def test_mistakes_say_what_to_do(call: object, message: str) -> None:
    """Each misuse raises ValueError naming the fix."""
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_render_stream_renders_a_template() -> None:
    """render_stream() renders the template with the context into the action."""
    from myapp.models import Message

    element = turbo.render_stream("append", "myapp/live/message.html",
                                  {"message": Message(pk=7, author="ada", text="<hi>")}, target="messages")
    assert element.startswith('<turbo-stream action="append" target="messages"><template><li id="message-7"')
    assert "&lt;hi&gt;" in element


# Stream names and signatures


def test_stream_names_join_parts_and_name_model_instances() -> None:
    """Parts are joined with dots; a model instance is app_label.model.pk."""
    from myapp.models import Item

    assert turbo.stream_name("items") == "items"
    assert turbo.stream_name("chat", "lobby", 3) == "chat.lobby.3"
    assert turbo.stream_name(Item(pk=5), "comments") == "myapp.item.5.comments"
    with pytest.raises(ValueError, match="slugify"):
        turbo.stream_name("a room")
    with pytest.raises(ValueError, match="unsaved"):
        turbo.stream_name(Item())
    with pytest.raises(ValueError, match="over 99"):
        turbo.stream_name("x" * 100)


def test_a_signed_name_verifies_and_a_tampered_one_does_not() -> None:
    """Only names signed with this project's key and salt are accepted."""
    signed = turbo.sign_stream_name("items")
    assert signed.startswith("items:")
    assert turbo.verify_stream_name(signed) == "items"
    with pytest.raises(signing.BadSignature):
        turbo.verify_stream_name(signed.replace("items:", "admins:"))
    with pytest.raises(signing.BadSignature):
        turbo.verify_stream_name(signing.Signer().sign("items"))  # no salt: another use of the key
    with pytest.raises(signing.BadSignature):
        turbo.verify_stream_name("items")


def test_names_signed_with_a_rotated_key_still_verify() -> None:
    """After a SECRET_KEY rotation, names signed with a key in SECRET_KEY_FALLBACKS verify."""
    with override_settings(SECRET_KEY="old-key-" + "x" * 50):
        signed = turbo.sign_stream_name("items")
    with override_settings(SECRET_KEY="new-key-" + "y" * 50, SECRET_KEY_FALLBACKS=["old-key-" + "x" * 50]):
        assert turbo.verify_stream_name(signed) == "items"
    with override_settings(SECRET_KEY="new-key-" + "y" * 50), pytest.raises(signing.BadSignature):
        turbo.verify_stream_name(signed)


# Broadcasting, in process


async def test_broadcast_turbo_stream_renders_once_and_reaches_the_group() -> None:
    """Every member receives the same action, rendered from the template and context."""
    from myapp.models import Item

    layer = get_channel_layer()
    group = "turbo-" + uuid.uuid4().hex[:8]
    channels = [await layer.new_channel() for _ in range(3)]
    for channel in channels:
        await layer.group_add(group, channel)
    sent = await sync_to_async(turbo.broadcast_turbo_stream)(
        group, "append", "items", template="myapp/live/item.html",
        context={"item": Item(pk=4, name="four & more")})
    events = [await asyncio.wait_for(layer.receive(channel), 2) for channel in channels]
    assert {event["message"] for event in events} == {str(sent)}
    assert events[0]["type"] == "wsviews.broadcast"
    assert sent.startswith('<turbo-stream action="append" target="items"><template><li id="item-4">')
    assert "four &amp; more" in sent
    also = await turbo.abroadcast_turbo_stream(group, "remove", "item-4")
    assert (await asyncio.wait_for(layer.receive(channels[0]), 2))["message"] == str(also)


# The stream source view, on a real server


def source_url(server: Server, signed: str) -> str:
    return f"{server.ws}/ws/turbo-streams/?stream={quote(signed)}"


async def test_a_signed_stream_receives_its_group_broadcasts(html_server: Server) -> None:
    """A source with a valid signature joins the group and gets the actions sent to it."""
    group = "notes-" + uuid.uuid4().hex[:8]
    async with connect(source_url(html_server, turbo.sign_stream_name(group))) as ws:
        status, _ = await asyncio.to_thread(
            http, f"{html_server.http}/html/send/{group}/?kind=turbo&n=5", b"text=hello",
            {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 204
        assert await recv(ws) == ('<turbo-stream action="append" target="notes"><template>'
                                  '<p id="note-5">hello</p>\n</template></turbo-stream>')


@pytest.mark.parametrize(("query", "reason"), [
    ("", "no ?stream="),
    ("?stream=" + quote("items:forged"), "bad stream signature"),
])
async def test_a_missing_or_forged_name_is_refused(html_server: Server, query: str, reason: str) -> None:
    """The handshake is refused with 403 and one warning line, without a traceback."""
    before = len(html_server.log())
    assert await handshake_status(f"{html_server.ws}/ws/turbo-streams/{query}") == 403
    await asyncio.sleep(0.2)
    log = html_server.log()[before:]
    lines = [line for line in log.splitlines() if "Forbidden (turbo stream)" in line]
    assert len(lines) == 1
    assert lines[0].startswith(f"Forbidden (turbo stream): /ws/turbo-streams/: {reason}")
    assert "Traceback" not in log
