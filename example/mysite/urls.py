from django.contrib import admin
from django.urls import path

from myapp import views

# mysite/urls.py

from django.urls import include
from mysite.routing import websocket_urlpatterns

# wsviews: a websocket view is routed like any other view.
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from myapp.sockets import chat

urlpatterns = [
    path('admin/', admin.site.urls),
    path('websocket/', include(websocket_urlpatterns)),
    path('', views.index, name='index'),
]

urlpatterns += [
    path('ws/chat/<slug:room>/', chat, name='chat'),
    path('chat/<slug:room>/', views.chat_room, name='chat_room'),
    path('chat/<slug:room>/announce/', views.announce, name='announce'),
]

# Serve static files (the JS client) under uvicorn too, as runserver does when DEBUG is on.
urlpatterns += staticfiles_urlpatterns()
