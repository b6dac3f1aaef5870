"""Live pages built from Django templates: an htmx chat and a Turbo list. No hand-written JavaScript.

* /htmx-chat/<room>/: htmx's websocket extension submits the form over the
  ``htmx_chat`` socket; a valid message is saved, and the Message model's
  @broadcasts appends it to every page in the room. A form error goes back to
  the sender only, rendered for that socket.
* /items/: the Item list, updated with Turbo Streams whenever an item is
  created, edited or deleted (in the admin, the shell, anywhere).

After a socket (re)opens, each page re-fetches its list over HTTP, so what
happened while it was disconnected shows up (docs/html.md, "Reconnects").
The sockets join their groups before accepting, so that re-fetch cannot miss
a change made between the two.
"""

from django import forms
from django.shortcuts import render

from wsviews import websocket

from .models import Item, Message, chat_group
from .sockets import MAX_TEXT, username

RECENT_MESSAGES = 50


class MessageForm(forms.Form):
    text = forms.CharField(max_length=MAX_TEXT, error_messages={"required": "Type a message first."})


def recent_messages(room):
    """Return the room's latest messages, oldest first."""
    latest = Message.objects.filter(room=room).order_by("-created", "-id")[:RECENT_MESSAGES]
    return list(reversed(latest))


def htmx_chat_room(request, room):
    """Render the htmx chat page of ``room``."""
    return render(request, "myapp/live/chat.html", {
        "room": room, "messages": recent_messages(room), "form": MessageForm(),
    })


def htmx_chat_messages(request, room):
    """Render the room's message list alone: the page re-fetches it each time its socket opens."""
    return render(request, "myapp/live/messages.html", {"messages": recent_messages(room)})


@websocket
async def htmx_chat(socket, room):
    """Save each valid message sent from the page's form; answer the sender with a fresh form.

    The group is joined before the handshake completes, so the page's
    re-fetch (sent once the socket is open) cannot miss a message.
    """
    await socket.join(chat_group(room))
    await socket.accept()
    while True:  # receive_htmx() raises WebSocketDisconnect when the page leaves
        message = await socket.receive_htmx()
        form = MessageForm(message.data)
        if form.is_valid():
            await Message.objects.acreate(room=room, author=username(socket.user),
                                          text=form.cleaned_data["text"])
            form = MessageForm()
        await socket.send_html("myapp/live/message_form.html", {"form": form})


def item_list(request):
    """Render the live item list; a Turbo frame reload gets the frame alone."""
    template = "myapp/live/items.html"
    if request.headers.get("Turbo-Frame") == "items-frame":
        template = "myapp/live/items_frame.html"
    return render(request, template, {"items": Item.objects.all()})
