from django.shortcuts import render


def index(request):
    """Render the echo page: it opens /websocket/ws/myapp/ and shows both directions."""
    return render(request, 'myapp/index.html')
