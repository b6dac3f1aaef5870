"""The chat of /hub-chat/<room>/ on the realtime hub: its pages, its token and its hooks.

The page talks to the hub with centrifuge-js. Each room is the hub channel
``room:<room>`` (history, recovery, presence: see ``WSVIEWS_HUB`` in
``mysite/settings.py``) plus ``typing:<room>`` for the typing indicator.

Who is who comes from Django: the page's view signs a connection token for
the session's user (or for an anonymous guest, under a name kept in the
session), with the name in the token's ``info``. The hub shows that info to
the other clients in presence, join/leave and on every publication, so a
client cannot sign its messages with someone else's name.
"""

import secrets

from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from wsviews import hub

from .sockets import MAX_TEXT

#: Seconds a connection token lives; the page asks /hub-chat/token/ for a new one.
TOKEN_LIFETIME = 600
#: The rooms the page links to (any slug is a room).
ROOMS = ('lobby', 'random', 'django')


def display_name(request):
    """Return the session user's name, or this browser's guest name (kept in the session)."""
    if request.user.is_authenticated:
        return request.user.get_username()
    if 'hub_guest' not in request.session:
        request.session['hub_guest'] = f'guest-{secrets.token_hex(2)}'
    return request.session['hub_guest']


def connection_token(request):
    """Return a connection token for this request's user, naming them in its ``info``."""
    user = request.user if request.user.is_authenticated else None
    return hub.connection_token(user, expires_in=TOKEN_LIFETIME, info={'name': display_name(request)})


def hub_chat_room(request, room):
    """Render the hub chat page of ``room``."""
    rooms = [other for other in ROOMS if other != room]
    return render(request, 'myapp/hub/chat.html', {
        'room': room, 'rooms': rooms, 'max_text': MAX_TEXT, 'me': display_name(request),
        'token': connection_token(request),
    })


def token(request):
    """Answer ``{"token": ...}``: centrifuge-js's ``getToken`` calls this when its token expires."""
    return JsonResponse({'token': connection_token(request)})


@require_POST
def announce(request, room):
    """Publish the form's ``text`` into the room from Django (kept in history like any message)."""
    text = request.POST.get('text', '').strip()[:MAX_TEXT]
    if not text:
        return HttpResponseBadRequest('An announcement needs some text.')
    hub.publish(f'room:{room}', {'text': text, 'announcement': True})
    if request.headers.get('X-Requested-With') == 'fetch':
        return HttpResponse(status=204)
    return redirect('hub_chat_room', room=room)


@hub.allow_publish('room')
def chat_message(user, channel, data):
    """Accept ``{"text": ...}`` with 1 to MAX_TEXT characters; store it stripped, nothing else."""
    text = data.get('text') if isinstance(data, dict) else None
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise hub.HubError(400, f'a chat message is {{"text": ...}} with 1 to {MAX_TEXT} characters')
    return {'text': text.strip()}


@hub.allow_publish('typing')
def typing_signal(user, channel, data):
    """Accept only ``{"typing": true}``: the indicator's signal carries nothing else."""
    return data == {'typing': True}


@hub.rpc('rooms')
async def room_counts(user, data):
    """Answer ``{room: clients in it}`` for ROOMS: the page shows the counts by its links."""
    return {room: (await hub.apresence_stats(f'room:{room}'))['num_clients'] for room in ROOMS}
