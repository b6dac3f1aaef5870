"""@broadcasts: model changes reach their groups as HTML, after the commit only.

In process, on the in-memory layer, with the example's Item (Turbo) and
Message (htmx) models. The pages that apply these messages are in
test_live_pages.py.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.contrib.admin.models import LogEntry
from django.db import DEFAULT_DB_ALIAS, models, transaction
from django.db.models.deletion import Collector

from myapp.models import Item, Message
from wsviews import model_broadcasts
from wsviews.model_broadcasts import broadcast_change, broadcast_refresh, broadcasts, dom_id


class ProxyItem(Item):
    class Meta:
        proxy = True
        app_label = "myapp"


async def listen(group: str) -> str:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def next_message(channel: str, timeout: float = 2) -> str:
    event = await asyncio.wait_for(get_channel_layer().receive(channel), timeout)
    return str(event["message"])


async def nothing_for(channel: str, wait: float = 0.3) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(get_channel_layer().receive(channel), wait)


def orm(func: Callable[..., Any]) -> Callable[..., Any]:
    return sync_to_async(func)


@pytest.fixture
async def items() -> Any:
    """A listener on the Item group ("items"), and no items left behind."""
    channel = await listen("items")
    yield channel
    await orm(Item.objects.all().delete)()


async def test_create_update_delete_become_turbo_stream_actions(items: str) -> None:
    """A create appends the rendered row to #items, an update replaces it, a delete removes it."""
    item = await orm(Item.objects.create)(name="milk & honey")
    element = dom_id(item)
    assert await next_message(items) == (
        f'<turbo-stream action="append" target="items"><template><li id="{element}">'
        '<span class="text">milk &amp; honey</span></li>\n</template></turbo-stream>')
    item.done = True
    await orm(item.save)()
    assert await next_message(items) == (
        f'<turbo-stream action="replace" target="{element}"><template><li id="{element}" class="done">'
        '<span class="text">milk &amp; honey</span></li>\n</template></turbo-stream>')
    await orm(item.delete)()
    assert await next_message(items) == f'<turbo-stream action="remove" target="{element}"></turbo-stream>'
    await nothing_for(items)


async def test_nothing_is_sent_before_the_commit_nor_after_a_rollback(items: str) -> None:
    """Inside a transaction the change waits for the commit; a rollback drops it."""
    committed = asyncio.Event()

    def rolled_back() -> None:
        with transaction.atomic():
            Item.objects.create(name="never")
            transaction.set_rollback(True)

    def held() -> None:
        with transaction.atomic():
            Item.objects.create(name="later")
            asyncio.run_coroutine_threadsafe(nothing_for(items), loop).result()  # still in the transaction
        committed.set()

    loop = asyncio.get_running_loop()
    await orm(rolled_back)()
    await nothing_for(items)
    await sync_to_async(held, thread_sensitive=False)()
    assert committed.is_set()
    message = await next_message(items)
    assert 'action="append"' in message and "later" in message
    await nothing_for(items)


async def test_the_html_is_rendered_at_commit_time(items: str) -> None:
    """A change made after save() but before the commit is in the HTML: it shows what was committed."""

    def save_then_change() -> None:
        with transaction.atomic():
            item = Item.objects.create(name="draft")
            item.name = "final"
            item.save()

    await orm(save_then_change)()
    first, second = await next_message(items), await next_message(items)
    assert "final" in first and 'action="append"' in first
    assert "final" in second and 'action="replace"' in second
    assert "draft" not in first + second


async def test_htmx_format_appends_once_and_replaces_and_removes() -> None:
    """Message broadcasts are oob swaps: a guarded append into #messages, a replace, a delete."""
    room = "r" + uuid.uuid4().hex[:8]
    channel = await listen(f"htmx-chat-{room}")
    message = await orm(Message.objects.create)(room=room, author="ada", text="hi <there>")
    element = dom_id(message)
    assert await next_message(channel) == (
        f'<ul hx-swap-oob="beforeend:#messages:not(:has(#{element}))"><li id="{element}" class="in">'
        '<span class="text"><span class="who">ada:</span> hi &lt;there&gt;</span></li>\n</ul>')
    message.text = "edited"
    await orm(message.save)()
    assert await next_message(channel) == (
        f'<li hx-swap-oob="outerHTML:#{element}" id="{element}" class="in"><span class="text">'
        '<span class="who">ada:</span> edited</span></li>\n')
    await orm(message.delete)()
    assert await next_message(channel) == f'<div hx-swap-oob="delete:#{element}"></div>'


async def test_groups_come_from_the_instance() -> None:
    """Each room's messages go to that room's group only."""
    rooms = ["a" + uuid.uuid4().hex[:8], "b" + uuid.uuid4().hex[:8]]
    channels = [await listen(f"htmx-chat-{room}") for room in rooms]
    await orm(Message.objects.create)(room=rooms[0], author="ada", text="for a")
    assert "for a" in await next_message(channels[0])
    await nothing_for(channels[1])


async def test_queryset_delete_removes_each_row(items: str) -> None:
    """QuerySet.delete() sends post_delete per row (the receiver turns fast deletes off): one remove each."""
    created = [await orm(Item.objects.create)(name=f"bulk {i}") for i in range(3)]
    for _ in created:
        await next_message(items)
    await orm(Item.objects.filter(name__startswith="bulk").delete)()
    removes = sorted([await next_message(items) for _ in created])
    assert removes == sorted(f'<turbo-stream action="remove" target="{dom_id(item)}"></turbo-stream>'
                             for item in created)


async def test_bulk_operations_send_nothing_until_told(items: str) -> None:
    """update() and bulk_create() bypass the signals; broadcast_change/broadcast_refresh say what they did."""
    made = await orm(Item.objects.bulk_create)([Item(name="one"), Item(name="two")])
    await orm(Item.objects.update)(done=True)
    await nothing_for(items)
    for item in made:
        await orm(broadcast_change)(item, "create")
    first, second = await next_message(items), await next_message(items)
    assert 'action="append"' in first and "one" in first and "two" in second
    await orm(broadcast_refresh)("items")
    assert await next_message(items) == '<turbo-stream action="refresh"></turbo-stream>'
    await orm(broadcast_refresh)("items", format="htmx")
    assert 'hx-get="" hx-trigger="load"' in await next_message(items)


async def test_broadcast_change_can_wait_for_the_commit(items: str) -> None:
    """broadcast_change(on_commit=True) in a rolled-back transaction sends nothing."""
    item = await orm(Item.objects.create)(name="kept")
    await next_message(items)

    def rolled_back() -> None:
        with transaction.atomic():
            broadcast_change(item, "update", on_commit=True)
            transaction.set_rollback(True)

    await orm(rolled_back)()
    await nothing_for(items)
    await orm(broadcast_change)(item, "delete")
    assert 'action="remove"' in await next_message(items)


async def test_a_proxy_broadcasts_as_its_model(items: str) -> None:
    """Saving through a proxy sends the model's broadcast, with the model's element id."""
    item = await orm(ProxyItem.objects.create)(name="via proxy")
    assert dom_id(item) == f"item-{item.pk}"
    assert f'<li id="item-{item.pk}">' in await next_message(items)


async def test_loaddata_saves_are_not_broadcast(items: str) -> None:
    """raw saves (fixtures) are not news."""

    from django.utils import timezone

    item = Item(name="fixture", created=timezone.now())
    await orm(item.save_base)(raw=True)  # what loaddata does: sends post_save with raw=True
    await nothing_for(items)


async def test_a_failing_broadcast_is_logged_and_the_save_stands(
    items: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the commit the data is saved: a broadcast error is logged with its traceback, not raised."""
    (declaration,) = model_broadcasts.declarations(Item)
    broken = model_broadcasts.ModelBroadcast(**{**declaration.__dict__, "template": "missing.html"})
    monkeypatch.setitem(model_broadcasts._registry, Item, [broken])
    with caplog.at_level(logging.ERROR, logger="wsviews"):
        item = await orm(Item.objects.create)(name="saved anyway")
    assert await orm(Item.objects.filter(pk=item.pk).exists)()
    assert "Could not broadcast the create of Item" in caplog.text
    assert caplog.records[-1].exc_info is not None
    await nothing_for(items)


def test_other_models_keep_fast_deletes() -> None:
    """Receivers are connected per model: deleting admin log entries in bulk still skips loading them.

    (Session rows are not fast-deleted once revocation listens for their deletion: docs/revocation.md.)
    """
    collector = Collector(using=DEFAULT_DB_ALIAS)
    assert collector.can_fast_delete(LogEntry.objects.all())
    assert not collector.can_fast_delete(Item.objects.all())


def test_declaring_mistakes_are_refused() -> None:
    """Unknown formats and actions, abstract models and non-models are refused with the fix."""
    with pytest.raises(ValueError, match="'turbo' or 'htmx'"):
        broadcasts(to="g", template="t.html", format="json")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'append' or 'prepend'"):
        broadcasts(to="g", template="t.html", on_create="replace")

    class Abstract(models.Model):
        class Meta:
            abstract = True
            app_label = "myapp"

    with pytest.raises(TypeError, match="concrete models"):
        broadcasts(to="g", template="t.html")(Abstract)
    with pytest.raises(TypeError, match="model class"):
        broadcasts(to="g", template="t.html")(object)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="no @broadcasts"):
        broadcast_change(LogEntry(pk=1), "update")
    with pytest.raises(ValueError, match="unsaved"):
        dom_id(Item())
