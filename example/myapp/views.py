from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from wsviews import broadcast

from .sockets import MAX_TEXT


def index(request):
    """Render the echo page: it opens /websocket/ws/myapp/ and shows both directions."""
    return render(request, 'myapp/index.html')


def chat_room(request, room):
    """Render the chat page of ``room``: it talks to the ``chat`` websocket view."""
    rooms = [other for other in ('lobby', 'random', 'django') if other != room]
    return render(request, 'myapp/chat.html', {'room': room, 'rooms': rooms, 'max_text': MAX_TEXT})


@require_POST
def announce(request, room):
    """Broadcast the form's ``text`` to ``room`` from sync code, as any Django view can.

    Answer 204 to the page's fetch() (sent with ``X-Requested-With: fetch``),
    else redirect back to the room, as a plain form post expects.
    """
    text = request.POST.get('text', '').strip()[:MAX_TEXT]
    from_fetch = request.headers.get('X-Requested-With') == 'fetch'
    if not text:
        if from_fetch:
            return HttpResponseBadRequest('An announcement needs some text.')
        return redirect('chat_room', room=room)
    broadcast(f'chat-{room}', {'type': 'announcement', 'room': room, 'text': text})
    if from_fetch:
        return HttpResponse(status=204)
    return redirect('chat_room', room=room)
