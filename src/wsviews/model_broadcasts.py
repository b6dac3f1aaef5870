"""Models that broadcast their own changes as HTML: ``@broadcasts(to=..., template=...)``.

After a transaction commits, a created instance is appended to (or prepended
to) its list on every page listening to its groups, an updated one replaces
its element, a deleted one is removed, as htmx out-of-band swaps or as Turbo
Stream actions. Changes that send no ``post_save``/``post_delete`` signal
(``QuerySet.update()``, ``bulk_create()``, ``bulk_update()``, raw SQL) are not
seen: call ``broadcast_change()`` or ``broadcast_refresh()`` after them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from django.db import transaction
from django.db.models import Model
from django.db.models.signals import class_prepared, post_delete, post_save
from django.utils.safestring import SafeString
from django.utils.text import slugify

from . import broadcast, htmx, turbo
from .rendering import TemplateName, render_html

logger = logging.getLogger("wsviews")

Format = Literal["turbo", "htmx"]
Change = Literal["create", "update", "delete"]
Groups = str | Callable[[Any], str | Iterable[str]]
M = TypeVar("M", bound=type[Model])

FORMATS: tuple[Format, ...] = ("turbo", "htmx")
_CREATE_ACTIONS = ("append", "prepend")
# Declarations by model, looked up along an instance's class hierarchy: proxies
# and child models broadcast as the model that was decorated.
_registry: dict[type[Model], list[ModelBroadcast]] = {}


def dom_id(instance: Model, prefix: str | None = None) -> str:
    """Return the HTML id of ``instance``'s element: ``<model_name>-<pk>``, after ``<prefix>-``.

    The model name is that of the concrete model (a proxy's rows are its rows).

    The element a model's broadcast template renders must carry this id: it
    is what updates replace and deletes remove.
    """
    if instance.pk is None:
        raise ValueError(f"An unsaved {type(instance).__name__} has no dom_id yet: save it first.")
    # The concrete model's name: a proxy's instances are the same rows.
    base = f"{instance._meta.concrete_model._meta.model_name}-{instance.pk}"
    return f"{prefix}-{base}" if prefix else base


@dataclass(frozen=True)
class ModelBroadcast:
    """What ``@broadcasts`` declared for one model: where its changes go and how they look."""

    model: type[Model]
    to: Groups
    template: TemplateName
    target: str
    format: Format
    on_create: str
    element_id: Callable[[Model], str]

    def groups(self, instance: Model) -> list[str]:
        """Return the groups ``instance``'s changes are sent to."""
        groups = self.to(instance) if callable(self.to) else self.to
        return [groups] if isinstance(groups, str) else list(groups)

    def render(self, instance: Model) -> SafeString:
        """Render the template for ``instance``: as ``object``, as its model name, and ``dom_id``."""
        context = {"object": instance, self.model._meta.model_name: instance,
                   "dom_id": self.element_id(instance)}
        return render_html(self.template, context)

    def message(self, change: Change, instance: Model, element: str | None = None) -> str:
        """Return the HTML that applies ``change`` to a page (``element``: the id, for deletes)."""
        if change == "delete":
            element = element or self.element_id(instance)
            if self.format == "turbo":
                return str(turbo.remove(target=element))
            return str(htmx.remove(target=element))
        html = self.render(instance)
        element = self.element_id(instance)
        if self.format == "turbo":
            if change == "create":
                return str(turbo.stream(self.on_create, html, target=self.target))
            return str(turbo.replace(html, target=element))
        if change == "create":
            insert = htmx.append if self.on_create == "append" else htmx.prepend
            return str(insert(html, target=self.target, unless_present=element))
        return str(htmx.replace(html, target=element))

    def send(self, change: Change, instance: Model, groups: list[str] | None = None,
             element: str | None = None) -> None:
        """Render ``change`` once and send it to each of ``instance``'s groups."""
        text = self.message(change, instance, element)
        for group in groups if groups is not None else self.groups(instance):
            broadcast(group, text)


def broadcasts(*, to: Groups, template: TemplateName, target: str | None = None,
               format: Format = "turbo", on_create: str = "append",
               dom_id: Callable[[Any], str] | None = None) -> Callable[[M], M]:
    """Make a model broadcast its changes, once each transaction has committed.

    * ``to``: a group name, or a function of the instance returning one or
      several (``lambda message: f"chat-{message.room}"``);
    * ``template``: renders one instance, given as ``object``, as the model's
      name (``item``) and with ``dom_id``; its root element must have
      ``id="{{ dom_id }}"``;
    * ``target``: the id of the element new instances go into (default: the
      model's plural name, slugified: ``items``);
    * ``format``: ``"turbo"`` (Turbo Stream actions) or ``"htmx"`` (oob swaps);
    * ``on_create``: ``"append"`` or ``"prepend"``;
    * ``dom_id``: a function of the instance giving its element id (default
      ``wsviews.model_broadcasts.dom_id``).

    Stack the decorator to send the same changes in both formats, or to
    different groups.
    """
    if format not in FORMATS:
        raise ValueError(f"format={format!r}: use 'turbo' or 'htmx'.")
    if on_create not in _CREATE_ACTIONS:
        raise ValueError(f"on_create={on_create!r}: use 'append' or 'prepend'.")

    def declare(model: M) -> M:
        if not (isinstance(model, type) and issubclass(model, Model)):
            raise TypeError("@broadcasts decorates a model class.")
        if model._meta.abstract:
            raise TypeError(f"@broadcasts cannot decorate the abstract model {model.__name__}: "
                            f"decorate the concrete models.")
        declaration = ModelBroadcast(
            model=model, to=to, template=template,
            target=target or slugify(str(model._meta.verbose_name_plural)),
            format=format, on_create=on_create, element_id=dom_id or _default_dom_id,
        )
        _registry.setdefault(model, []).append(declaration)
        _connect(model)
        return model

    return declare


def declarations(instance_or_model: Model | type[Model]) -> list[ModelBroadcast]:
    """Return the broadcasts declared for a model (or an instance's model) and its parents."""
    model = instance_or_model if isinstance(instance_or_model, type) else type(instance_or_model)
    return [declaration for klass in model.__mro__ for declaration in _registry.get(klass, ())]


def broadcast_change(instance: Model, change: Change, *, on_commit: bool = False,
                     using: str | None = None) -> None:
    """Send ``change`` (``"create"``, ``"update"`` or ``"delete"``) of ``instance`` as declared.

    For what the ORM's signals do not report, e.g. after ``bulk_create()``
    (whose instances have their pks on PostgreSQL, SQLite and MariaDB)::

        for item in Item.objects.bulk_create(items):
            broadcast_change(item, "create")

    A model without ``@broadcasts`` raises ``ValueError``.
    """
    found = declarations(instance)
    if not found:
        raise ValueError(f"{type(instance).__name__} has no @broadcasts declaration.")
    if change not in ("create", "update", "delete"):
        raise ValueError(f"change={change!r}: use 'create', 'update' or 'delete'.")
    for declaration in found:
        groups, element = declaration.groups(instance), declaration.element_id(instance)
        send = functools.partial(_send_logged, declaration, change, instance, groups, element)
        if on_commit:
            transaction.on_commit(send, using=using)
        else:
            declaration.send(change, instance, groups, element)


def broadcast_refresh(group: str, *, format: Format = "turbo", on_commit: bool = False,
                      using: str | None = None) -> None:
    """Make every page listening to ``group`` reload its content from the server.

    For Turbo, a ``refresh`` action (the page is reloaded, morphed if the
    page asks for it); for htmx, a fragment that re-renders the page's body.
    Use it after bulk changes (``QuerySet.update()``...): one message instead
    of one per row. Every page then makes one HTTP request at once.
    """
    if format not in FORMATS:
        raise ValueError(f"format={format!r}: use 'turbo' or 'htmx'.")
    message = turbo.refresh() if format == "turbo" else htmx.refresh()
    broadcast(group, str(message), on_commit=on_commit, using=using)


def _default_dom_id(instance: Any) -> str:
    return dom_id(instance)


def _send_logged(declaration: ModelBroadcast, change: Change, instance: Model,
                 groups: list[str] | None = None, element: str | None = None) -> None:
    # Runs after the commit: raising would fail a request whose data is saved.
    try:
        declaration.send(change, instance, groups, element)
    except Exception:
        logger.exception("Could not broadcast the %s of %s %r", change,
                         type(instance).__name__, instance.pk)


def _saved(sender: type[Model], instance: Model, created: bool = False, raw: bool = False,
           using: str | None = None, **kwargs: Any) -> None:
    if raw:
        return  # loaddata: fixtures are not news
    for declaration in declarations(sender):
        # Rendered at commit, so the HTML shows what was committed; groups too.
        send = functools.partial(_send_logged, declaration, "create" if created else "update", instance)
        transaction.on_commit(send, using=using)


def _deleted(sender: type[Model], instance: Model, using: str | None = None, **kwargs: Any) -> None:
    for declaration in declarations(sender):
        # Taken now: Django sets the instance's pk to None once it is deleted.
        groups, element = declaration.groups(instance), declaration.element_id(instance)
        send = functools.partial(_send_logged, declaration, "delete", instance, groups, element)
        transaction.on_commit(send, using=using)


def _connect(model: type[Model]) -> None:
    # Per model, never for every sender: a post_delete receiver for all models
    # would stop Django's fast deletes (QuerySet.delete() without loading rows)
    # everywhere in the project.
    label = f"{model.__module__}.{model.__qualname__}"
    post_save.connect(_saved, sender=model, weak=False, dispatch_uid=f"wsviews.saved.{label}")
    post_delete.connect(_deleted, sender=model, weak=False, dispatch_uid=f"wsviews.deleted.{label}")


def _prepared(sender: type[Model], **kwargs: Any) -> None:
    # Proxies and child models send signals as themselves, not as the model
    # that was decorated.
    if any(klass in _registry for klass in sender.__mro__[1:]):
        _connect(sender)


class_prepared.connect(_prepared, weak=False, dispatch_uid="wsviews.model_broadcasts.prepared")
