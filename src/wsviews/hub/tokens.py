"""Connection and subscription JWTs, verified and minted as Centrifugo does (with PyJWT).

Verification (:class:`TokenVerifier`) follows Centrifugo's order: the
signature (HS256/384/512 with ``hmac_secret_key``, falling back to
``hmac_previous_secret_key`` during a rotation; RS256/384/512 with
``rsa_public_key``; ES256/384/512 with ``ecdsa_public_key``), then ``aud`` /
``iss`` when configured, then the claims' shapes, then ``exp`` / ``nbf``. A
failure raises :class:`InvalidToken` (the protocol answers it with disconnect
3500 for connection tokens, error 103 for subscription tokens) or
:class:`TokenExpired` (error 109, so the SDK fetches a new token).

Minting (:func:`connection_token`, :func:`subscription_token`) is for Django
views that hand tokens to the SDKs' ``getToken``: it signs with the
configuration's HMAC secret, or with the private key passed as ``key``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import jwt

from .config import HubConfig, TokenConfig

__all__ = [
    "ChannelOverride", "ConnectionToken", "InvalidToken", "SubscriptionToken", "TokenError",
    "TokenExpired", "TokenSubscription", "TokenVerifier", "connection_token", "subscription_token",
]

_HMAC = ("HS256", "HS384", "HS512")
_RSA = ("RS256", "RS384", "RS512")
_ECDSA = ("ES256", "ES384", "ES512")
_SHORT_KEY_WARNING = getattr(jwt, "InsecureKeyLengthWarning", None)


class TokenError(Exception):
    """A token was refused; the message says why (for logs, never sent to the client)."""


class InvalidToken(TokenError):
    """The token is forged, malformed, signed with a disabled algorithm, or for someone else."""


class TokenExpired(TokenError):
    """The token's ``exp`` has passed (or its ``nbf`` has not come yet)."""


@dataclass(frozen=True, slots=True)
class ChannelOverride:
    """Per-subscription overrides of namespace options (``override`` claim); None: not overridden."""

    presence: bool | None = None
    join_leave: bool | None = None
    force_push_join_leave: bool | None = None
    force_positioning: bool | None = None
    force_recovery: bool | None = None


@dataclass(frozen=True, slots=True)
class TokenSubscription:
    """One entry of a connection token's ``subs`` claim: a server-side subscription."""

    info: bytes | None = None
    data: bytes | None = None
    override: ChannelOverride = field(default_factory=ChannelOverride)


@dataclass(frozen=True, slots=True)
class ConnectionToken:
    """A verified connection token.

    ``expire_at`` is when the connection must be refreshed (Unix seconds, 0:
    never); it is ``expire_at`` when the token sets it, else ``exp``.
    ``subs`` holds the server-side subscriptions from ``subs``, or from
    ``channels`` (with no overrides) when ``subs`` is absent.
    """

    user: str
    expire_at: int = 0
    info: bytes | None = None
    subs: Mapping[str, TokenSubscription] = field(default_factory=dict)
    meta: bytes | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionToken:
    """A verified subscription token; ``expire_at`` as in :class:`ConnectionToken`."""

    user: str
    channel: str
    client: str = ""
    expire_at: int = 0
    info: bytes | None = None
    data: bytes | None = None
    override: ChannelOverride = field(default_factory=ChannelOverride)


class _UserLike(Protocol):
    @property
    def pk(self) -> Any: ...

    @property
    def is_authenticated(self) -> bool: ...


UserArg = _UserLike | str | int | None


# Verification ----------------------------------------------------------------

class TokenVerifier:
    """Verify tokens against one ``TokenConfig``; build once (keys are parsed here), use often."""

    def __init__(self, config: TokenConfig, *, skip_signature: bool = False) -> None:
        self._config = config
        self._skip_signature = skip_signature
        self._hmac = config.hmac_secret_key.encode() if config.hmac_secret_key else None
        self._hmac_previous = (config.hmac_previous_secret_key.encode()
                               if config.hmac_previous_secret_key else None)
        self._rsa = _load_public_key(config.rsa_public_key) if config.rsa_public_key else None
        self._ecdsa = _load_public_key(config.ecdsa_public_key) if config.ecdsa_public_key else None
        self._audience_re = re.compile(config.audience_regex) if config.audience_regex else None
        self._issuer_re = re.compile(config.issuer_regex) if config.issuer_regex else None

    def verify_connection(self, token: str, now: float) -> ConnectionToken:
        """Return the claims of a connection token, or raise InvalidToken / TokenExpired."""
        claims = self._decode(token, now)
        if claims.get("channel"):
            raise InvalidToken("a connection token must not have a channel claim "
                               "(that is a subscription token)")
        subs: dict[str, TokenSubscription] = {}
        raw_subs = claims.get("subs")
        if raw_subs:
            if not isinstance(raw_subs, dict):
                raise InvalidToken("subs claim must be an object of channel: options")
            for channel, options in raw_subs.items():
                subs[channel] = _token_subscription(options, channel)
        else:
            for channel in _str_list(claims.get("channels"), "channels"):
                subs[channel] = TokenSubscription()
        return ConnectionToken(
            user=self._user(claims), expire_at=_expire_at(claims),
            info=_info(claims, "info", "b64info"), subs=subs, meta=_json_bytes(claims.get("meta")))

    def verify_subscription(self, token: str, now: float) -> SubscriptionToken:
        """Return the claims of a subscription token, or raise InvalidToken / TokenExpired."""
        claims = self._decode(token, now)
        channel = claims.get("channel")
        if not channel or not isinstance(channel, str):
            raise InvalidToken("a subscription token needs a channel claim")
        client = claims.get("client") or ""
        if not isinstance(client, str):
            raise InvalidToken("client claim must be a string")
        return SubscriptionToken(
            user=self._user(claims), channel=channel, client=client, expire_at=_expire_at(claims),
            info=_info(claims, "info", "b64info"), data=_info(claims, "data", "b64data"),
            override=_override(claims.get("override")))

    def _decode(self, token: str, now: float) -> dict[str, Any]:
        if not isinstance(token, str) or not token:
            raise InvalidToken("empty token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed token: {exc}") from None
        algorithm = header.get("alg")
        claims = self._verified_claims(token, algorithm, now)
        if not isinstance(claims, dict):
            raise InvalidToken("claims must be a JSON object")
        self._check_regexes(claims)
        for name in ("exp", "nbf", "expire_at"):
            value = claims.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise InvalidToken(f"{name} claim must be a number")
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if (exp is not None and exp <= now) or (nbf is not None and nbf > now):
            raise TokenExpired("token expired" if exp is not None and exp <= now
                               else "token not valid yet (nbf)")
        return claims

    def _verified_claims(self, token: str, algorithm: Any, now: float) -> Any:
        options: dict[str, Any] = {
            "verify_exp": False, "verify_nbf": False, "verify_iat": False,
            "verify_aud": bool(self._config.audience), "verify_iss": bool(self._config.issuer),
            "verify_sub": False, "verify_jti": False, "require": [],
        }
        audience = self._config.audience or None
        issuer = self._config.issuer or None
        if self._skip_signature:
            options["verify_signature"] = False
            return self._jwt_decode(token, None, [str(algorithm)], options, audience, issuer)
        for key in self._keys_for(algorithm, now):
            try:
                return self._jwt_decode(token, key, [algorithm], options, audience, issuer)
            except jwt.InvalidSignatureError:
                continue
        raise InvalidToken("signature does not match")

    def _jwt_decode(self, token: str, key: Any, algorithms: list[str], options: dict[str, Any],
                    audience: str | None, issuer: str | None) -> Any:
        try:
            with self._quiet_short_keys():
                return jwt.decode(token, key, algorithms=algorithms, options=options,  # type: ignore[arg-type]
                                  audience=audience, issuer=issuer)
        except jwt.InvalidSignatureError:
            raise
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc) or type(exc).__name__) from None

    @contextlib.contextmanager
    def _quiet_short_keys(self) -> Iterator[None]:
        # A short HMAC secret is reported once by the configuration check; PyJWT
        # would warn again on every token.
        if _SHORT_KEY_WARNING is None or self._hmac is None or len(self._hmac) >= 64:
            yield
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", _SHORT_KEY_WARNING)
            yield

    def _keys_for(self, algorithm: Any, now: float) -> list[Any]:
        """Return the keys to try for the token's algorithm, current first."""
        if algorithm in _HMAC and self._hmac is not None:
            until = self._config.hmac_previous_secret_key_valid_until
            if self._hmac_previous is not None and (not until or now <= until):
                return [self._hmac, self._hmac_previous]
            return [self._hmac]
        if algorithm in _RSA and self._rsa is not None:
            return [self._rsa]
        if algorithm in _ECDSA and self._ecdsa is not None:
            return [self._ecdsa]
        raise InvalidToken(f"algorithm {algorithm!r} is not enabled: configure its key "
                           "(hmac_secret_key, rsa_public_key or ecdsa_public_key)")

    def _check_regexes(self, claims: Mapping[str, Any]) -> None:
        if self._issuer_re is not None:
            issuer = claims.get("iss")
            if not isinstance(issuer, str) or not self._issuer_re.search(issuer):
                raise InvalidToken("issuer not matched")
        if self._audience_re is not None:
            audience = claims.get("aud")
            audiences = [audience] if isinstance(audience, str) else audience
            if not isinstance(audiences, list) or not any(
                    isinstance(a, str) and self._audience_re.search(a) for a in audiences):
                raise InvalidToken("audience not matched")

    def _user(self, claims: Mapping[str, Any]) -> str:
        name = self._config.user_id_claim or "sub"
        user = claims.get(name, "")
        if user is None:
            return ""
        if isinstance(user, bool) or not isinstance(user, (str, int)):
            raise InvalidToken(f"{name} claim must be a string")
        return str(user)


def _load_public_key(pem: str) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return load_pem_public_key(pem.encode())


def _expire_at(claims: Mapping[str, Any]) -> int:
    if claims.get("expire_at") is not None:
        return max(int(claims["expire_at"]), 0)
    exp = claims.get("exp")
    return int(exp) if exp is not None else 0


def _json_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:             # a lone surrogate from a \ud800 escape
        return json.dumps(value, separators=(",", ":")).encode()


def _info(claims: Mapping[str, Any], name: str, b64_name: str) -> bytes | None:
    encoded = claims.get(b64_name)
    if encoded:
        if not isinstance(encoded, str):
            raise InvalidToken(f"{b64_name} claim must be a base64 string")
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidToken(f"{b64_name} claim is not valid base64") from None
    return _json_bytes(claims.get(name))


def _str_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidToken(f"{name} claim must be a list of strings")
    return value


def _override(value: Any) -> ChannelOverride:
    if value is None:
        return ChannelOverride()
    if not isinstance(value, dict):
        raise InvalidToken("override claim must be an object")
    flags: dict[str, bool | None] = {}
    for name in ("presence", "join_leave", "force_push_join_leave", "force_positioning",
                 "force_recovery"):
        entry = value.get(name)
        if entry is None:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("value", False), bool):
            raise InvalidToken(f'override.{name} must be {{"value": true|false}}')
        flags[name] = bool(entry.get("value", False))
    return ChannelOverride(**flags)


def _token_subscription(options: Any, channel: str) -> TokenSubscription:
    if not isinstance(options, dict):
        raise InvalidToken(f"subs[{channel!r}] must be an object")
    return TokenSubscription(info=_info(options, "info", "b64info"),
                             data=_info(options, "data", "b64data"),
                             override=_override(options.get("override")))


# Minting ---------------------------------------------------------------------

def _user_id(user: UserArg) -> str:
    if user is None:
        return ""
    if isinstance(user, str):
        return user
    if isinstance(user, int) and not isinstance(user, bool):
        return str(user)
    if hasattr(user, "is_authenticated") and hasattr(user, "pk"):
        return str(user.pk) if user.is_authenticated else ""
    raise TypeError(f"user must be a Django user, a user id or None, not {type(user).__name__}")


def _token_config(config: HubConfig | TokenConfig, subscription: bool) -> TokenConfig:
    if isinstance(config, TokenConfig):
        return config
    return config.client.subscription_token_config if subscription else config.client.token


def _seconds(expires_in: float | timedelta | None) -> float | None:
    if isinstance(expires_in, timedelta):
        return expires_in.total_seconds()
    return expires_in


def _sign(claims: dict[str, Any], tokens: TokenConfig, key: Any, algorithm: str | None,
          where: str) -> str:
    if key is None:
        if not tokens.hmac_secret_key:
            raise ValueError(f"no key to sign with: set {where}.hmac_secret_key, or pass key= "
                             "(an RSA or EC private key) and algorithm= (e.g. 'RS256')")
        key, algorithm = tokens.hmac_secret_key, algorithm or "HS256"
    elif algorithm is None:
        raise ValueError("pass algorithm= (e.g. 'RS256' or 'ES256') together with key=")
    if tokens.audience and "aud" not in claims:
        claims["aud"] = tokens.audience
    if tokens.issuer and "iss" not in claims:
        claims["iss"] = tokens.issuer
    with warnings.catch_warnings():
        if _SHORT_KEY_WARNING is not None:
            warnings.simplefilter("ignore", _SHORT_KEY_WARNING)
        return jwt.encode(claims, key, algorithm=algorithm)


def _base_claims(user: UserArg, expires_in: float | timedelta | None, now: float | None,
                 info: Any, expire_at: int | None) -> dict[str, Any]:
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": _user_id(user), "iat": issued}
    seconds = _seconds(expires_in)
    if seconds is not None:
        claims["exp"] = issued + int(seconds)
    if info is not None:
        claims["info"] = info
    if expire_at is not None:
        claims["expire_at"] = expire_at
    return claims


def connection_token(user: UserArg, *, config: HubConfig | TokenConfig,
                     expires_in: float | timedelta | None = 3600, info: Any = None,
                     channels: Sequence[str] | None = None,
                     subs: Mapping[str, Mapping[str, Any]] | None = None, meta: Any = None,
                     expire_at: int | None = None, key: Any = None, algorithm: str | None = None,
                     now: float | None = None) -> str:
    """Return a connection JWT for ``user`` (a Django user, a user id, or None for anonymous).

    ``expires_in`` seconds (None: no ``exp``) after ``now``; ``info`` is any
    JSON value shown to other clients in presence and join/leave; ``channels``
    or ``subs`` (channel: ``{"info": ..., "data": ..., "override": ...}``)
    subscribe the connection server-side; ``meta`` stays on the server. Signed
    with ``client.token.hmac_secret_key`` unless ``key`` and ``algorithm`` are
    given.
    """
    claims = _base_claims(user, expires_in, now, info, expire_at)
    if channels:
        claims["channels"] = list(channels)
    if subs:
        claims["subs"] = {channel: dict(options) for channel, options in subs.items()}
    if meta is not None:
        claims["meta"] = meta
    return _sign(claims, _token_config(config, False), key, algorithm, "client.token")


def subscription_token(user: UserArg, channel: str, *, config: HubConfig | TokenConfig,
                       expires_in: float | timedelta | None = 3600, info: Any = None,
                       data: Any = None, override: Mapping[str, bool] | None = None,
                       client: str | None = None, expire_at: int | None = None, key: Any = None,
                       algorithm: str | None = None, now: float | None = None) -> str:
    """Return a subscription JWT letting ``user`` subscribe to ``channel``.

    ``info`` becomes the subscriber's channel info (in presence and
    join/leave), ``data`` is sent back in the subscribe reply, ``override``
    maps ``presence``/``join_leave``/``force_push_join_leave``/
    ``force_positioning``/``force_recovery`` to booleans. Signed with
    ``client.subscription_token`` when it is enabled, else ``client.token``.
    """
    claims = _base_claims(user, expires_in, now, info, expire_at)
    claims["channel"] = channel
    if data is not None:
        claims["data"] = data
    if override:
        claims["override"] = {name: {"value": bool(value)} for name, value in override.items()}
    if client:
        claims["client"] = client
    config_for = _token_config(config, True)
    where = ("client.subscription_token" if isinstance(config, HubConfig)
             and config.client.subscription_token_enabled else "client.token")
    return _sign(claims, config_for, key, algorithm, where)
