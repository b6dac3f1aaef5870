"""ASGI applications and settings the echo benchmark serves (see ``bench/echo.py``)."""
