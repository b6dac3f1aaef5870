"""
ASGI config for mysite project: HTTP and websockets in one application.

Serve it with ``uvicorn mysite.asgi:application`` (see the README).
"""
import os

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')

from wsviews.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
