"""The realtime hub: the Centrifugal client protocol (JSON) served from Django.

The official SDKs (centrifuge-js, centrifuge-python) connect to it unchanged.
Its parts, each importable alone (importing this package loads nothing):

* :mod:`~wsviews.hub.protocol` - the sans-I/O per-connection core;
* :mod:`~wsviews.hub.events` - what the core asks of its shell and gets back;
* :mod:`~wsviews.hub.commands` - the JSON codec of commands, replies, pushes;
* :mod:`~wsviews.hub.config` - ``WSVIEWS_HUB`` in Centrifugo's option names;
* :mod:`~wsviews.hub.tokens` - connection and subscription JWTs;
* :mod:`~wsviews.hub.access`, :mod:`~wsviews.hub.recovery` - permission rules
  and stream-position arithmetic;
* :mod:`~wsviews.hub.codes`, :mod:`~wsviews.hub.records` - protocol codes and
  the values shared with engines.
"""
