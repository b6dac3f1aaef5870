"""Routes for the backpressure tests: the serving tests' routes, plus what the server counted."""

import json

from django.http import HttpResponse
from django.urls import path

from urls_serving import urlpatterns as serving_urlpatterns
from wsviews import backpressure


def backpressure_stats(request):
    """Return the slow-socket counters and the layer's local group sizes, as JSON."""
    from channels.layers import get_channel_layer

    sizes = get_channel_layer().group_sizes()
    return HttpResponse(json.dumps({**backpressure.stats, "groups": sizes}), content_type="application/json")


urlpatterns = [*serving_urlpatterns, path("backpressure/", backpressure_stats)]
