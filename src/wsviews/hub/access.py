"""Who may do what on which channel: Centrifugo's namespace permission rules.

Pure functions of the namespace options, the configuration and the client
(user ``""`` is anonymous). They mirror Centrifugo's client handler so a
namespace configured for Centrifugo grants exactly the same here.
"""

from __future__ import annotations

from .config import ChannelOptions, HubConfig

__all__ = [
    "may_history", "may_presence", "may_publish", "may_subscribe", "valid_channel_name",
]


def valid_channel_name(options: ChannelOptions, channel: str, rest: str) -> bool:
    """Return whether a channel name is acceptable.

    With ``channel_regex`` the part after the namespace must match it;
    without, the whole name must be ASCII.
    """
    if options.compiled_channel_regex is not None:
        return options.compiled_channel_regex.search(rest) is not None
    return channel.isascii()


def may_subscribe(config: HubConfig, options: ChannelOptions, channel: str, user: str) -> bool:
    """Return whether a client may subscribe without a subscription token.

    User-limited channels (``allow_user_limited_channels`` and ``news#42,43``)
    admit exactly the listed users; other channels follow
    ``allow_subscribe_for_client`` / ``allow_subscribe_for_anonymous``;
    ``client.insecure`` admits everyone. Private channels (``$``) need a
    token and are refused before this.
    """
    channels = config.channel
    user_limited = options.allow_user_limited_channels and channels.is_user_limited(channel)
    if user_limited and user and channels.user_allowed(channel, user):
        return True
    if options.allow_subscribe_for_client and (user or options.allow_subscribe_for_anonymous) \
            and not user_limited:
        return True
    return config.client.insecure


def may_publish(config: HubConfig, options: ChannelOptions, user: str, subscribed: bool) -> bool:
    """Return whether a client may publish into a channel of this namespace."""
    allowed_user = bool(user) or options.allow_publish_for_anonymous
    if options.allow_publish_for_client and allowed_user:
        return True
    if options.allow_publish_for_subscriber and subscribed and allowed_user:
        return True
    return config.client.insecure


def may_presence(config: HubConfig, options: ChannelOptions, user: str, subscribed: bool) -> bool:
    """Return whether a client may read presence of a channel (and see joins and leaves)."""
    allowed_user = bool(user) or options.allow_presence_for_anonymous
    if options.allow_presence_for_client and allowed_user:
        return True
    if options.allow_presence_for_subscriber and subscribed and allowed_user:
        return True
    return config.client.insecure


def may_history(config: HubConfig, options: ChannelOptions, user: str, subscribed: bool) -> bool:
    """Return whether a client may read history of a channel (and ask for recovery)."""
    allowed_user = bool(user) or options.allow_history_for_anonymous
    if options.allow_history_for_client and allowed_user:
        return True
    if options.allow_history_for_subscriber and subscribed and allowed_user:
        return True
    return config.client.insecure
