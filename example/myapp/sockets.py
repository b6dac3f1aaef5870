"""Websocket views of the example: a chat room, routed in mysite/urls.py like any view."""

from wsviews import abroadcast, websocket

MAX_TEXT = 500


def username(user):
    """Return the name a message is signed with: the login, or "anonymous"."""
    if user is not None and user.is_authenticated:
        return user.get_username()
    return "anonymous"


@websocket
async def chat(socket, room):
    """Relay each ``{"text": ...}`` the client sends to everyone in ``room``.

    A message that is not such an object, or whose text is empty or longer
    than MAX_TEXT, breaks the room's rules: the socket is closed with 1008
    (policy violation), which the JS client does not retry. Invalid JSON is
    closed with 1007 by ``receive_json()``.
    """
    group = f"chat-{room}"
    await socket.accept()
    await socket.join(group)
    name = username(socket.user)
    while True:  # receive_json() raises WebSocketDisconnect when the client leaves
        message = await socket.receive_json()
        text = message.get("text") if isinstance(message, dict) else None
        if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT:
            await socket.close(1008, f'send {{"text": "..."}} with 1 to {MAX_TEXT} characters')
            return
        await abroadcast(group, {"type": "message", "room": room, "user": name, "text": text})
