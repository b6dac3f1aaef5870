"""Run Channels' own tests with their websocket consumers served by wsviews' loop.

Loaded into a run of a django/channels checkout's ``tests/`` by
``scripts/peer-suite-channels`` (``pytest -p channels_plugin``). Every
consumer a test connects over a websocket scope is served through
``wsviews.consumers.serve_consumer`` instead of ``AsyncConsumer.__call__``:

* ``Consumer.as_asgi(**initkwargs)`` apps, wherever they sit (given to a
  communicator, inside middleware or a ``URLRouter``), with their class and
  initkwargs, as wsviews' router serves them;
* consumer instances used as applications (``WebsocketCommunicator(Consumer(), ...)``,
  Channels' older style), as ``type(instance).as_asgi()`` would be: a fresh
  instance per connection.

HTTP and other scope types, and the non-consumer applications of the tests,
stay on Channels. ``serve_consumer`` itself hands sync consumers (and those
overriding ``__call__``) back to Channels' loop after wsviews' handshake pass.

Tests whose failure is a documented difference between Channels and wsviews
are marked ``xfail(strict=True)`` with the difference as the reason (see
``DIFFERENCES``), so that the run stays red only for something new, and says
so if a difference disappears. The summary at the end lists every test that
ran a consumer on wsviews, the differences, and the failures.
"""

from __future__ import annotations

import contextvars
import functools
from dataclasses import dataclass, field
from typing import Any

import pytest
from _pytest.terminal import TerminalReporter
from channels.consumer import AsyncConsumer

from wsviews.consumers import is_lean, serve_consumer
from wsviews.types import Receive, Scope, Send

# Documented differences (docs/consumers.md), by test id relative to the checkout: the reason
# is shown in the summary, and the test must fail (strict xfail) for the run to pass.
_HANDLER_ERROR = (
    "an exception in a handler closes the socket with 1011 and is logged with its traceback, "
    "instead of propagating out of the application (the communicator gets websocket.close, "
    "not the {error})"
)
DIFFERENCES: dict[str, str] = {
    "tests/test_generic_websocket.py::test_async_json_websocket_consumer": (
        "a binary frame to a JSON consumer is the client's mistake: the socket is closed with 1003 "
        "and one INFO line, instead of the ValueError propagating out of the application"
    ),
    "tests/test_generic_websocket.py::test_block_underscored_type_function_call":
        _HANDLER_ERROR.format(error="ValueError for a message type with a leading underscore"),
    "tests/test_generic_websocket.py::test_block_leading_dot_type_function_call":
        _HANDLER_ERROR.format(error="ValueError for a message type with a leading dot"),
}

# Set while serve_consumer runs a connection, so that a sync consumer it hands back to
# Channels (consumer(scope, receive, send)) is not routed to wsviews a second time.
_serving: contextvars.ContextVar[bool] = contextvars.ContextVar("wsviews_serving", default=False)


@dataclass
class _Served:
    """What the current test's connections went through."""

    lean: list[str] = field(default_factory=list)  # consumers run on wsviews' loop
    handed_back: list[str] = field(default_factory=list)  # admitted by wsviews, run on Channels' loop

    def note(self, consumer_class: type) -> None:
        names = self.lean if is_lean(consumer_class) else self.handed_back
        if consumer_class.__qualname__ not in names:
            names.append(consumer_class.__qualname__)


_current = _Served()
_results: dict[str, tuple[str, _Served, str]] = {}  # nodeid -> (outcome, served, short cause)


async def _serve(consumer_class: type[AsyncConsumer], initkwargs: dict[str, Any], scope: Scope,
                 receive: Receive, send: Send) -> None:
    _current.note(consumer_class)
    token = _serving.set(True)
    try:
        await serve_consumer(consumer_class, initkwargs, scope, receive, send)
    finally:
        _serving.reset(token)


_original_as_asgi = AsyncConsumer.__dict__["as_asgi"]
_original_call = AsyncConsumer.__call__


def _as_asgi(cls: type[AsyncConsumer], /, **initkwargs: Any) -> Any:
    """Return Channels' ``as_asgi()`` app, with websocket connections served by wsviews."""
    channels_app = _original_as_asgi.__func__(cls, **initkwargs)  # keeps Channels' checks

    @functools.wraps(channels_app)
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and not _serving.get():
            await _serve(cls, initkwargs, scope, receive, send)
        else:
            await channels_app(scope, receive, send)

    return app


async def _call(self: AsyncConsumer, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve a consumer instance used as an application as its class's ``as_asgi()`` app."""
    if scope["type"] == "websocket" and not _serving.get():
        await _serve(type(self), {}, scope, receive, send)
    else:
        await _original_call(self, scope, receive, send)


def pytest_configure(config: pytest.Config) -> None:
    AsyncConsumer.as_asgi = classmethod(_as_asgi)
    AsyncConsumer.__call__ = _call


def pytest_unconfigure(config: pytest.Config) -> None:
    AsyncConsumer.as_asgi = _original_as_asgi
    AsyncConsumer.__call__ = _original_call


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        reason = DIFFERENCES.get(item.nodeid)
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=f"documented difference: {reason}", strict=True))


def pytest_runtest_setup(item: pytest.Item) -> None:
    global _current
    _current = _Served()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report: pytest.TestReport = yield
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome = "xfail" if report.skipped and hasattr(report, "wasxfail") else report.outcome
        _results[item.nodeid] = (outcome, _current, _cause(call))
    return report


def _cause(call: pytest.CallInfo[None]) -> str:
    """Return the exception's type and first line; "" if the test raised nothing (a strict xpass)."""
    if call.excinfo is None:
        return ""
    first = (str(call.excinfo.value).strip().splitlines() or [""])[0][:200]
    return f"{call.excinfo.typename}: {first}" if first else call.excinfo.typename


def pytest_terminal_summary(
    terminalreporter: TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    write = terminalreporter.write_line
    terminalreporter.section("Channels' tests with consumers served by wsviews")
    on_wsviews = {nodeid: served for nodeid, (_, served, _) in _results.items() if served.lean}
    handed_back = {nodeid: served for nodeid, (_, served, _) in _results.items()
                   if served.handed_back and not served.lean}
    counts: dict[str, int] = {}
    for outcome, _, _ in _results.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    write(f"{len(_results)} tests: " + ", ".join(f"{n} {o}" for o, n in sorted(counts.items())))
    write(f"{len(on_wsviews)} ran a consumer on wsviews' loop; {len(handed_back)} more were admitted "
          "by wsviews and handed to Channels' loop (sync consumers); the rest use no consumer over a "
          "websocket scope")
    for nodeid, served in sorted(on_wsviews.items()):
        outcome = _results[nodeid][0]
        write(f"  {outcome:7} {nodeid}  [{', '.join(served.lean)}]")
    differences = [(n, DIFFERENCES[n]) for n, (o, _, _) in _results.items()
                   if o == "xfail" and n in DIFFERENCES]
    if differences:
        write("Documented differences (fail as expected):")
        for nodeid, reason in differences:
            write(f"  {nodeid}: {reason}")
    failed = [(n, cause) for n, (o, _, cause) in _results.items() if o == "failed"]
    if failed:
        write("Failures (not documented differences: a bug of ours, or a difference to document):")
        for nodeid, cause in failed:
            write(f"  {nodeid}: {cause or 'passed, but listed as a difference: remove it from DIFFERENCES'}")
    else:
        write("No failures other than the documented differences.")
