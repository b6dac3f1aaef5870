"""Models of the live pages: items for the Turbo list, messages for the htmx chat.

Each declares with @broadcasts which groups its changes go to and which
template renders one row; wsviews sends creates, updates and deletes to the
pages once the transaction has committed.
"""

from django.db import models

from wsviews.model_broadcasts import broadcasts


@broadcasts(to="items", template="myapp/live/item.html", target="items")
class Item(models.Model):
    """A row of the live list at /items/ (Turbo), edited in the admin."""

    name = models.CharField(max_length=100)
    done = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self):
        return self.name


def chat_group(room):
    """Return the group of the htmx chat room ``room``."""
    return f"htmx-chat-{room}"


@broadcasts(to=lambda message: chat_group(message.room), template="myapp/live/message.html",
            target="messages", format="htmx")
class Message(models.Model):
    """A message of the htmx chat at /htmx-chat/<room>/."""

    room = models.SlugField(max_length=50)
    author = models.CharField(max_length=150)
    text = models.CharField(max_length=500)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]
        indexes = [models.Index(fields=["room", "created"])]

    def __str__(self):
        return f"{self.author} in #{self.room}: {self.text[:40]}"
