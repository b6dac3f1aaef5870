"""The hub at Centrifugo's default paths, as the SDKs' suites expect it."""

from django.urls import include, path

urlpatterns = [path("", include("wsviews.hub.urls"))]
