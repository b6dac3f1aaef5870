# mysite/routing.py

from django.urls import path
from myapp.consumers import MyConsumer

websocket_urlpatterns = [
    path('ws/myapp/', MyConsumer.as_asgi()),
]
