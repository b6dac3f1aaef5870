"""Connection and subscription JWTs verify and mint as Centrifugo's do."""

from __future__ import annotations

import base64
import hashlib
import hmac
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from wsviews.hub import config
from wsviews.hub.config import TokenConfig
from wsviews.hub.tokens import (
    ChannelOverride,
    ConnectionToken,
    InvalidToken,
    SubscriptionToken,
    TokenExpired,
    TokenSubscription,
    TokenVerifier,
    connection_token,
    subscription_token,
)

NOW = 1_700_000_000.0
SECRET = "tokens-test-secret-0123456789-abcdefgh"
HMAC = TokenConfig(hmac_secret_key=SECRET)


def _pem(private: Any) -> tuple[str, str]:
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    secret = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()).decode()
    return public, secret


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[str, str]:
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def ec_keys() -> tuple[str, str]:
    return _pem(ec.generate_private_key(ec.SECP256R1()))


@dataclass
class User:
    pk: int
    is_authenticated: bool = True


def test_hs256_connection_token_round_trip() -> None:
    """A minted connection token verifies back to its user, expiry, info, channels and meta."""
    token = connection_token(User(42), config=HMAC, info={"name": "Ann"}, channels=["news", "chat:1"],
                             meta={"plan": "pro"}, now=NOW)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert TokenVerifier(HMAC).verify_connection(token, NOW) == ConnectionToken(
        user="42", expire_at=int(NOW) + 3600, info=b'{"name":"Ann"}',
        subs={"news": TokenSubscription(), "chat:1": TokenSubscription()}, meta=b'{"plan":"pro"}')


def test_subs_claim_carries_per_channel_info_data_and_overrides() -> None:
    """``subs`` gives server-side subscriptions their own info, data and option overrides."""
    token = connection_token("7", config=HMAC, subs={"news": {
        "info": {"seat": 3}, "b64data": base64.b64encode(b'{"x":1}').decode(),
        "override": {"presence": {"value": True}, "force_recovery": {"value": False}}}}, now=NOW)
    claims = TokenVerifier(HMAC).verify_connection(token, NOW)
    assert claims.subs == {"news": TokenSubscription(
        info=b'{"seat":3}', data=b'{"x":1}',
        override=ChannelOverride(presence=True, force_recovery=False))}


def test_subscription_token_round_trip() -> None:
    """A minted subscription token verifies back to its channel, info, data and overrides."""
    token = subscription_token("42", "$chat:vip", config=HMAC, info={"role": "mod"}, data=[1],
                               override={"join_leave": False}, client="c1",
                               expires_in=timedelta(minutes=5), now=NOW)
    assert TokenVerifier(HMAC).verify_subscription(token, NOW) == SubscriptionToken(
        user="42", channel="$chat:vip", client="c1", expire_at=int(NOW) + 300,
        info=b'{"role":"mod"}', data=b"[1]", override=ChannelOverride(join_leave=False))


def test_rs256_and_es256_tokens_verify_with_public_keys(rsa_keys: tuple[str, str],
                                                        ec_keys: tuple[str, str]) -> None:
    """Tokens signed with a private key verify against the configured public key."""
    rsa_public, rsa_private = rsa_keys
    ec_public, ec_private = ec_keys
    keys = TokenConfig(rsa_public_key=rsa_public, ecdsa_public_key=ec_public)
    verifier = TokenVerifier(keys)
    for key, algorithm in ((rsa_private, "RS256"), (rsa_private, "RS512"), (ec_private, "ES256")):
        token = connection_token("42", config=keys, key=key, algorithm=algorithm, now=NOW)
        assert jwt.get_unverified_header(token)["alg"] == algorithm
        assert verifier.verify_connection(token, NOW).user == "42"


def test_algorithm_confusion_and_disabled_algorithms_are_invalid(rsa_keys: tuple[str, str]) -> None:
    """An HS token against RSA-only settings (even keyed with the public key) is refused, and vice versa."""
    rsa_public, rsa_private = rsa_keys
    rsa_only = TokenVerifier(TokenConfig(rsa_public_key=rsa_public))
    confused = _hs_with_raw_key(rsa_public)      # PyJWT itself refuses to sign this
    with pytest.raises(InvalidToken, match="algorithm 'HS256' is not enabled"):
        rsa_only.verify_connection(confused, NOW)
    token = connection_token("1", config=HMAC, key=rsa_private, algorithm="RS256", now=NOW)
    with pytest.raises(InvalidToken, match="algorithm 'RS256' is not enabled"):
        TokenVerifier(HMAC).verify_connection(token, NOW)
    unsigned = jwt.encode({"sub": "1"}, None, algorithm="none")
    with pytest.raises(InvalidToken, match="'none' is not enabled"):
        TokenVerifier(HMAC).verify_connection(unsigned, NOW)


def _hs_with_raw_key(key: str) -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(b'{"sub":"1"}').rstrip(b"=")
    signature = base64.urlsafe_b64encode(hmac.new(key.encode(), header + b"." + body,
                                                  hashlib.sha256).digest()).rstrip(b"=")
    return (header + b"." + body + b"." + signature).decode()


def test_a_token_signed_with_another_key_is_invalid(rsa_keys: tuple[str, str]) -> None:
    """Wrong HMAC secret or another RSA key: invalid signature."""
    other = TokenConfig(hmac_secret_key="another-secret-0123456789-abcdefghij")
    with pytest.raises(InvalidToken, match="signature"):
        TokenVerifier(HMAC).verify_connection(connection_token("1", config=other, now=NOW), NOW)
    _, foreign_private = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    token = connection_token("1", config=HMAC, key=foreign_private, algorithm="RS256", now=NOW)
    with pytest.raises(InvalidToken, match="signature"):
        TokenVerifier(TokenConfig(rsa_public_key=rsa_keys[0])).verify_connection(token, NOW)


def test_a_tampered_payload_is_invalid() -> None:
    """Changing the claims of a signed token breaks its signature."""
    header, _, signature = connection_token("1", config=HMAC, now=NOW).split(".")
    forged = base64.urlsafe_b64encode(b'{"sub":"admin"}').rstrip(b"=").decode()
    with pytest.raises(InvalidToken):
        TokenVerifier(HMAC).verify_connection(f"{header}.{forged}.{signature}", NOW)


def test_expiry_and_not_before() -> None:
    """exp at or before now, or nbf after it, is TokenExpired (the SDK fetches a new token)."""
    verifier = TokenVerifier(HMAC)
    token = connection_token("1", config=HMAC, expires_in=60, now=NOW)
    assert verifier.verify_connection(token, NOW + 59).expire_at == int(NOW) + 60
    with pytest.raises(TokenExpired):
        verifier.verify_connection(token, NOW + 60)
    early = jwt.encode({"sub": "1", "nbf": NOW + 10}, SECRET, algorithm="HS256")
    with pytest.raises(TokenExpired):
        verifier.verify_connection(early, NOW)
    assert verifier.verify_connection(early, NOW + 10).user == "1"


def test_expire_at_overrides_exp_and_zero_means_never() -> None:
    """``expire_at`` sets the connection expiry apart from the token's own ``exp``; 0 disables it."""
    verifier = TokenVerifier(HMAC)
    assert verifier.verify_connection(connection_token("1", config=HMAC, expire_at=0, now=NOW),
                                      NOW).expire_at == 0
    assert verifier.verify_connection(connection_token("1", config=HMAC, expire_at=int(NOW) + 5,
                                                       now=NOW), NOW).expire_at == int(NOW) + 5
    assert verifier.verify_connection(connection_token("1", config=HMAC, expires_in=None, now=NOW),
                                      NOW).expire_at == 0


def test_audience_and_issuer_when_configured() -> None:
    """With audience/issuer configured tokens must carry them (minting adds them); regex forms match."""
    strict = TokenConfig(hmac_secret_key=SECRET, audience="site", issuer="auth")
    token = connection_token("1", config=strict, now=NOW)
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "site"
    assert TokenVerifier(strict).verify_connection(token, NOW).user == "1"
    for bad in ({"aud": "other", "iss": "auth"}, {"aud": "site"}, {"iss": "auth"}):
        with pytest.raises(InvalidToken):
            TokenVerifier(strict).verify_connection(
                jwt.encode({"sub": "1", **bad}, SECRET, algorithm="HS256"), NOW)
    pattern = TokenConfig(hmac_secret_key=SECRET, audience_regex=r"^site-\d+$",
                          issuer_regex=r"^auth\.")
    good = jwt.encode({"sub": "1", "aud": ["x", "site-7"], "iss": "auth.example"}, SECRET,
                      algorithm="HS256")
    assert TokenVerifier(pattern).verify_connection(good, NOW).user == "1"
    with pytest.raises(InvalidToken, match="audience not matched"):
        TokenVerifier(pattern).verify_connection(jwt.encode(
            {"aud": "site-x", "iss": "auth.example"}, SECRET, algorithm="HS256"), NOW)
    unconfigured = jwt.encode({"sub": "1", "aud": "whatever"}, SECRET, algorithm="HS256")
    assert TokenVerifier(HMAC).verify_connection(unconfigured, NOW).user == "1"


def test_previous_hmac_secret_is_accepted_during_rotation() -> None:
    """Tokens signed with hmac_previous_secret_key verify until its valid_until."""
    old = "old-secret-0123456789-abcdefghijklmnop"
    rotating = TokenConfig(hmac_secret_key=SECRET, hmac_previous_secret_key=old,
                           hmac_previous_secret_key_valid_until=int(NOW) + 100)
    token = connection_token("1", config=TokenConfig(hmac_secret_key=old), now=NOW)
    assert TokenVerifier(rotating).verify_connection(token, NOW + 100).user == "1"
    with pytest.raises(InvalidToken, match="signature"):
        TokenVerifier(rotating).verify_connection(token, NOW + 101)


def test_user_id_claim_and_anonymous_users() -> None:
    """user_id_claim picks the user from another claim; anonymous users mint ``sub: ""``."""
    custom = TokenConfig(hmac_secret_key=SECRET, user_id_claim="uid")
    token = jwt.encode({"uid": 99, "sub": "ignored"}, SECRET, algorithm="HS256")
    assert TokenVerifier(custom).verify_connection(token, NOW).user == "99"
    for anonymous in (None, User(5, is_authenticated=False)):
        minted = connection_token(anonymous, config=HMAC, now=NOW)
        assert jwt.decode(minted, options={"verify_signature": False})["sub"] == ""
    with pytest.raises(TypeError, match="user must be"):
        connection_token(object(), config=HMAC)  # type: ignore[arg-type]


@pytest.mark.parametrize("claims", [
    {"sub": 1.5}, {"sub": "1", "channels": "news"}, {"sub": "1", "channels": [1]},
    {"sub": "1", "subs": ["news"]}, {"sub": "1", "b64info": "***"}, {"sub": "1", "exp": "soon"},
    {"sub": "1", "expire_at": "never"}, {"sub": "1", "channel": "news"},
    {"sub": "1", "subs": {"news": {"override": {"presence": True}}}},
])
def test_malformed_connection_claims_are_invalid(claims: dict[str, Any]) -> None:
    """Claims of the wrong shape make the token invalid rather than half-used."""
    with pytest.raises(InvalidToken):
        TokenVerifier(HMAC).verify_connection(jwt.encode(claims, SECRET, algorithm="HS256"), NOW)


@pytest.mark.parametrize("claims", [{"sub": "1"}, {"sub": "1", "channel": 5},
                                    {"sub": "1", "channel": "x", "client": 3}])
def test_subscription_tokens_need_a_channel(claims: dict[str, Any]) -> None:
    """A subscription token without a string channel claim is invalid."""
    with pytest.raises(InvalidToken):
        TokenVerifier(HMAC).verify_subscription(jwt.encode(claims, SECRET, algorithm="HS256"), NOW)


def test_b64info_is_decoded() -> None:
    """``b64info`` carries info as base64 bytes."""
    token = jwt.encode({"sub": "1", "b64info": base64.b64encode(b'{"a":1}').decode()}, SECRET,
                       algorithm="HS256")
    assert TokenVerifier(HMAC).verify_connection(token, NOW).info == b'{"a":1}'


def test_signature_checks_can_be_skipped_for_development() -> None:
    """insecure_skip_token_signature_verify accepts any signature (never in production)."""
    forged = connection_token("1", config=TokenConfig(hmac_secret_key="x" * 40), now=NOW)
    assert TokenVerifier(HMAC, skip_signature=True).verify_connection(forged, NOW).user == "1"


def test_minting_needs_a_key() -> None:
    """Without an HMAC secret minting asks for key= and algorithm=; a key alone asks for the algorithm."""
    with pytest.raises(ValueError, match="set client.token.hmac_secret_key"):
        connection_token("1", config=TokenConfig())
    with pytest.raises(ValueError, match="pass algorithm="):
        connection_token("1", config=TokenConfig(), key="k")


def test_subscription_tokens_use_the_subscription_token_settings() -> None:
    """With client.subscription_token enabled, subscription tokens are signed with its secret."""
    hub = config.parse({"client": {"token": {"hmac_secret_key": SECRET},
                                   "subscription_token": {"enabled": True,
                                                          "hmac_secret_key": "s" * 40}}})
    token = subscription_token("1", "news", config=hub, now=NOW)
    assert TokenVerifier(hub.client.subscription_token_config).verify_subscription(token, NOW).channel \
        == "news"
    with pytest.raises(InvalidToken):
        TokenVerifier(hub.client.token).verify_subscription(token, NOW)


def test_short_hmac_secrets_do_not_warn_per_token() -> None:
    """Centrifugo-style short secrets work without a PyJWT warning on every token (the check warns once)."""
    short = TokenConfig(hmac_secret_key="secret")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        token = connection_token("1", config=short, now=NOW)
        assert TokenVerifier(short).verify_connection(token, NOW).user == "1"
