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

# wsviews: live Django templates over websockets, for htmx and Turbo.
from myapp import live
from wsviews.turbo import turbo_streams

urlpatterns += [
    path('ws/turbo-streams/', turbo_streams, name='turbo_streams'),
    path('items/', live.item_list, name='item_list'),
    path('htmx-chat/<slug:room>/', live.htmx_chat_room, name='htmx_chat_room'),
    path('htmx-chat/<slug:room>/messages/', live.htmx_chat_messages, name='htmx_chat_messages'),
    path('ws/htmx-chat/<slug:room>/', live.htmx_chat, name='htmx_chat'),
]

# wsviews: a staff-only live page of the open sockets, in the admin's look. It goes first: the
# admin answers 404 for any path under admin/ it does not know. And Prometheus metrics (loopback only
# unless WSVIEWS_METRICS_ALLOWED_IPS or WSVIEWS_METRICS_TOKEN say otherwise).
urlpatterns.insert(0, path('admin/wsviews/live/', include('wsviews.admin')))
urlpatterns += [path('metrics/', include('wsviews.metrics'))]
