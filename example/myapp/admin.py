from django.contrib import admin

from .models import Item, Message


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["name", "done", "created"]
    list_editable = ["done"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["room", "author", "text", "created"]
    list_filter = ["room"]
