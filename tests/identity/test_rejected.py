"""Bad tokens are refused with a typed error: TOKEN_EXPIRED for expiry, TOKEN_INVALID for the rest."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time

import pytest
from joserfc.jwk import RSAKey

from services.errors import DomainError, ErrorCode
from services.identity import OidcVerifier, peek_issuer
from tests.identity.conftest import RecordingClient
from tests.support.oidc import OTHER_AUDIENCE, SHORT_LIVED, OidcProvider, generate_key


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def with_header(token: str, header: dict[str, object], signature: bytes = b"") -> str:
    """The token's payload under another header, with the given (possibly empty) signature."""
    payload = token.split(".")[1]
    return f"{b64(json.dumps(header).encode())}.{payload}.{b64(signature)}"


async def rejected(verifier: OidcVerifier, token: str, code: ErrorCode = ErrorCode.TOKEN_INVALID) -> str:
    with pytest.raises(DomainError) as caught:
        await verifier.verify(token)
    assert caught.value.code == code, caught.value.message
    return caught.value.message


async def test_tampered_signature(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    head, payload, sig = oidc_provider.token().split(".")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]

    assert "signature" in await rejected(verifier, f"{head}.{payload}.{flipped}")


async def test_tampered_payload(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    head, payload, sig = oidc_provider.token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["realm_access"] = {"roles": ["talkative-admin"]}

    assert "signature" in await rejected(verifier, f"{head}.{b64(json.dumps(claims).encode())}.{sig}")


async def test_expired_crafted_token(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    now = int(time.time())
    token = oidc_provider.mint({"iat": now - 3600, "exp": now - 600})

    assert "expired" in await rejected(verifier, token, ErrorCode.TOKEN_EXPIRED)


async def test_expired_real_token(oidc_provider: OidcProvider, make_verifier) -> None:
    verifier = make_verifier(leeway_seconds=0)
    token = await oidc_provider.atoken(SHORT_LIVED.client_id)  # one-second lifetime
    exp = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["exp"]
    await asyncio.sleep(max(0.0, exp - time.time()) + 0.05)

    await rejected(verifier, token, ErrorCode.TOKEN_EXPIRED)


async def test_expiry_within_leeway_is_tolerated(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    now = int(time.time())
    token = oidc_provider.mint({"iat": now - 300, "exp": now - 5})  # default leeway is 30 s

    assert (await verifier.verify(token)).subject == "crafted-user"


async def test_wrong_audience_from_the_real_provider(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    token = await oidc_provider.atoken(resource=OTHER_AUDIENCE)

    assert OTHER_AUDIENCE in await rejected(verifier, token)


async def test_wrong_issuer(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    token = oidc_provider.mint({"iss": "https://evil.example"})

    assert "evil.example" in await rejected(verifier, token)


async def test_alg_none(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    real = oidc_provider.token()
    for alg in ("none", "None", "NONE"):
        token = with_header(real, {"alg": alg, "typ": "at+jwt", "kid": oidc_provider.signing_key.kid})
        assert "none" in (await rejected(verifier, token)).lower()


@pytest.mark.parametrize("secret_form", ["pem", "jwk"])
@pytest.mark.parametrize("alg", ["HS256", "HS512"])
async def test_hmac_signed_with_the_public_key(
    oidc_provider: OidcProvider, make_verifier, secret_form: str, alg: str
) -> None:
    public = oidc_provider.signing_key
    secret = public.as_pem(private=False) if secret_form == "pem" else json.dumps(public.as_dict()).encode()
    header = {"alg": alg, "typ": "at+jwt", "kid": public.kid}
    head = b64(json.dumps(header).encode())
    payload = oidc_provider.mint().split(".")[1]
    digest = hashlib.sha256 if alg == "HS256" else hashlib.sha512
    sig = hmac.new(secret, f"{head}.{payload}".encode(), digest).digest()

    assert "Symmetric" in await rejected(make_verifier(), f"{head}.{payload}.{b64(sig)}")


def test_symmetric_or_none_algorithms_cannot_be_configured(oidc_provider: OidcProvider) -> None:
    for algs in (["HS256"], ["none"], ["RS256", "HS512"], ["RSA-OAEP"]):
        with pytest.raises(ValueError):
            OidcVerifier(oidc_provider.issuer, oidc_provider.audience, algs)


async def test_alg_must_match_the_key(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    kid = oidc_provider.signing_key.kid
    # an EC algorithm naming the provider's RSA key
    assert "fits" in await rejected(verifier, with_header(oidc_provider.token(), {"alg": "ES256", "kid": kid}, b"x"))
    # PS256 really signed with the provider's RSA key, but its published JWK says alg RS256
    twin = RSAKey.import_key({k: v for k, v in oidc_provider.private_jwk.items() if k != "alg"})
    assert "fits" in await rejected(verifier, oidc_provider.mint(key=twin, header={"alg": "PS256"}))


async def test_alg_outside_the_allowed_list(oidc_provider: OidcProvider, make_verifier) -> None:
    verifier = make_verifier(algorithms=["ES256"])

    assert "not allowed" in await rejected(verifier, oidc_provider.token())


async def test_unknown_kid_refetches_once_then_fails(
    oidc_provider: OidcProvider, make_verifier, http: RecordingClient
) -> None:
    verifier = make_verifier(refetch_cooldown_seconds=0)
    await verifier.verify(oidc_provider.token())
    stranger = generate_key("stranger")

    assert "stranger" in await rejected(verifier, oidc_provider.mint(key=stranger))
    assert http.count("/jwks") == 2


async def test_unknown_kid_refetch_is_rate_limited(
    oidc_provider: OidcProvider, verifier: OidcVerifier, http: RecordingClient
) -> None:
    await verifier.verify(oidc_provider.token())
    stranger = generate_key("stranger")

    for _ in range(5):
        await rejected(verifier, oidc_provider.mint(key=stranger, claims={"jti": str(_)}))
    assert http.count("/jwks") == 1  # within the 30 s cooldown of the first fetch


async def test_not_yet_valid(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    token = oidc_provider.mint({"nbf": int(time.time()) + 600})

    assert "not valid yet" in await rejected(verifier, token)


async def test_issued_in_the_future(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    now = int(time.time())
    token = oidc_provider.mint({"iat": now + 600, "exp": now + 900})

    assert "future" in await rejected(verifier, token)


@pytest.mark.parametrize("claim", ["exp", "sub", "aud", "iss"])
async def test_required_claims(oidc_provider: OidcProvider, verifier: OidcVerifier, claim: str) -> None:
    assert claim in await rejected(verifier, oidc_provider.mint(drop=(claim,)))


async def test_not_an_access_token(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    # a Keycloak ID token, and a JWT of some other type
    await rejected(verifier, oidc_provider.mint({"typ": "ID"}))
    await rejected(verifier, oidc_provider.mint(header={"typ": "dpop+jwt"}))


NESTED = b64(b"[" * 5000)


@pytest.mark.parametrize(
    "token", ["", "garbage", "a.b.c", "a.b.c.d.e", "x" * 20000, "e30.e30.", f"{NESTED}.{NESTED}.x", "W10.e30.x"]
)
async def test_malformed(verifier: OidcVerifier, token: str) -> None:
    await rejected(verifier, token)
    assert peek_issuer(token) is None


async def test_unreachable_provider_is_unavailable(http: RecordingClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    verifier = OidcVerifier(f"http://127.0.0.1:{port}", "https://api.talkative.test", http=http)

    message = await rejected(verifier, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", ErrorCode.UNAVAILABLE)
    assert "unreachable" in message


async def test_discovery_for_another_issuer_is_unavailable(oidc_provider: OidcProvider, make_verifier) -> None:
    verifier = make_verifier(issuer=oidc_provider.issuer.replace("127.0.0.1", "localhost"))

    await rejected(verifier, oidc_provider.token(), ErrorCode.UNAVAILABLE)
