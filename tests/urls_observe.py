"""The test routes, with the metrics URL, the live admin page and a logout URL in front."""

from django.contrib.auth import logout
from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from urls_views import urlpatterns as view_urlpatterns


@csrf_exempt
def log_out(request):
    logout(request)
    return HttpResponse("logged out")


urlpatterns = [
    path("admin/wsviews/live/", include("wsviews.admin")),
    path("metrics/", include("wsviews.metrics")),
    path("observe/logout/", log_out),
    *view_urlpatterns,
]
