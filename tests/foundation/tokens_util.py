"""Crafting bad tokens for rejection tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from services.tokens import SigningKey, TokenService


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    head, body, sig = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(head))), json.loads(base64.urlsafe_b64decode(pad(body))), sig


def tampered(token: str) -> str:
    """Same header and claims, one signature byte changed."""
    head, body, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{body}.{b64(bytes(raw))}"


def with_claims(token: str, **changes: Any) -> str:
    """The claims edited, the original signature kept (so it no longer matches)."""
    head, _, sig = token.split(".")
    _, claims, _ = parts(token)
    claims.update(changes)
    return f"{head}.{b64(json.dumps(claims).encode())}.{sig}"


def alg_none(token: str) -> str:
    header, claims, _ = parts(token)
    header["alg"] = "none"
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."


def hs256_with_public_key(token: str, key: SigningKey) -> str:
    """The classic confusion attack: HMAC-SHA256 keyed with the public key's PEM."""
    header, claims, _ = parts(token)
    header["alg"] = "HS256"
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    public_pem = key.key.as_pem(private=False)
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def bad_tokens(service: TokenService, user_id: Any, other_key: SigningKey) -> dict[str, tuple[str, str]]:
    """name -> (token, expected error code)."""
    good = service.issue_access_token(user_id=user_id, roles=["user"]).token
    same_key = [service.signing_key]

    def issued_by(**kwargs: Any) -> str:
        options = {"issuer": service.issuer, "audience": service.audience, "ttl_seconds": 900, **kwargs}
        keys = options.pop("keys", same_key)
        return TokenService(keys, **options).issue_access_token(user_id=user_id, roles=["user"]).token

    return {
        "tampered signature": (tampered(good), "TOKEN_INVALID"),
        "edited claims": (with_claims(good, roles=["user", "admin"]), "TOKEN_INVALID"),
        "expired": (issued_by(ttl_seconds=-120), "TOKEN_EXPIRED"),
        "wrong audience": (issued_by(audience="someone-else"), "TOKEN_INVALID"),
        "wrong issuer": (issued_by(issuer="https://evil.example"), "TOKEN_INVALID"),
        "alg none": (alg_none(good), "TOKEN_INVALID"),
        "HS256 signed with the public key": (hs256_with_public_key(good, service.signing_key), "TOKEN_INVALID"),
        "unknown key": (issued_by(keys=[other_key]), "TOKEN_INVALID"),
        "not a JWT": ("garbage", "TOKEN_INVALID"),
    }
