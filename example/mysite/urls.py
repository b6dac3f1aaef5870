from django.contrib import admin
from django.urls import path

from myapp import views

# mysite/urls.py

from django.urls import include
from mysite.routing import websocket_urlpatterns

urlpatterns = [
    path('admin/', admin.site.urls),
    path('websocket/', include(websocket_urlpatterns)),
    path('', views.index, name='index'),
]
