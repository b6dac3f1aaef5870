"""uvicorn's configuration from wsviews' settings, and the one-line-per-burst log."""

from __future__ import annotations

import asyncio
import logging

import pytest
from django.test import override_settings

from wsviews import serving
from wsviews.burstlog import BurstLog
from wsviews.protocols import HttpToolsProtocol, WebSocketProtocol
from wsviews.serving import build_config, describe, fd_budget, message_size_ceiling


async def app(scope, receive, send) -> None: ...


def test_the_config_carries_every_serving_setting():
    with override_settings(WSVIEWS_HANDSHAKE_TIMEOUT=3, WSVIEWS_WRITE_TIMEOUT=4, WSVIEWS_DRAIN_TIMEOUT=6,
                           WSVIEWS_PING_INTERVAL=7, WSVIEWS_PING_TIMEOUT=0, WSVIEWS_MAX_CONNECTIONS=50,
                           WSVIEWS_BACKLOG=128, WSVIEWS_MAX_MESSAGE_SIZE=2048):
        config = build_config(app)
    limits = config.limits
    assert (limits.handshake_timeout, limits.write_timeout, limits.drain_timeout) == (3, 4, 6)
    assert (config.ws_ping_interval, config.ws_ping_timeout) == (7, None)  # 0: wait forever
    assert (config.limit_concurrency, config.backlog) == (50, 128)
    assert config.ws_max_size == 2048
    assert config.ws is WebSocketProtocol and config.http is HttpToolsProtocol
    assert config.loop == "uvloop" and config.lifespan == "auto"  # a bare app: not wsviews'
    assert "uvloop + httptools (websockets-sansio): messages up to 2048 bytes" in describe(config)
    assert config.ws_per_message_deflate is False  # WSVIEWS_COMPRESSION's default
    with override_settings(WSVIEWS_COMPRESSION=True):
        assert build_config(app).ws_per_message_deflate is True


def test_the_stack_falls_back_to_asyncio_and_h11_where_the_fast_one_is_missing(monkeypatch):
    monkeypatch.setattr(serving.importlib.util, "find_spec", lambda name: None)
    assert (serving.loop_name(), serving.http_name()) == ("asyncio", "h11")
    config = build_config(app)
    assert (config.loop, config.http.parser_name) == ("asyncio", "h11")


def test_the_message_size_ceiling_is_the_largest_route_limit():
    assert message_size_ceiling() == 1024 * 1024  # urls_views' ws/small/ asks for 16: less
    with override_settings(WSVIEWS_MAX_MESSAGE_SIZE=8):
        assert message_size_ceiling() == 16  # ws/small/'s own limit is then the largest


def test_the_connection_limit_never_exceeds_the_fd_budget(monkeypatch):
    monkeypatch.setattr(serving, "raise_fd_limit", lambda: 1024)
    assert build_config(app).limit_concurrency == fd_budget(1024) == 960
    with override_settings(WSVIEWS_MAX_CONNECTIONS=100):
        assert build_config(app).limit_concurrency == 100
    with override_settings(WSVIEWS_MAX_CONNECTIONS=5000):
        assert build_config(app).limit_concurrency == 960
    assert fd_budget(None) is None and fd_budget(100) == 68


def test_the_soft_fd_limit_is_raised_to_the_hard_one():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        assert serving.raise_fd_limit() == (None if hard == resource.RLIM_INFINITY else hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_serving_mark_is_what_the_foreign_server_warning_reads():
    from wsviews.server import WSViewsServer

    before = serving.applied()
    try:
        serving._applied = False
        assert not serving.applied()
        WSViewsServer(build_config(app))
        assert serving.applied()
    finally:
        serving._applied = before


async def test_a_burst_is_one_line_with_its_count(caplog: pytest.LogCaptureFixture):
    log = BurstLog(logging.getLogger("tests.burst"), logging.INFO, "closed %d thing(s) after %gs", window=0.3)
    loop = asyncio.get_running_loop()
    with caplog.at_level(logging.INFO, "tests.burst"):
        log.hit(loop, 2.0)
        await asyncio.sleep(0.05)
        for _ in range(500):
            log.hit(loop, 2.0)
        await asyncio.sleep(0.5)
    assert [r.getMessage() for r in caplog.records] == [
        "closed 1 thing(s) after 2s", "closed 500 thing(s) after 2s"]
