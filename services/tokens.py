"""Our access tokens: asymmetric JWTs with a `kid`, signed by the first configured key, verified by any.

Keys come from `SIGNING_KEY_FILE`: one file with one or more PEM blocks. The first must be a private key
and signs; every key (private or public) verifies, so a key can be rotated out gracefully: put the new
private key first and keep the old one (or its public half) below it until its tokens have expired.
Refresh tokens are opaque random strings; only their SHA-256 is stored.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from joserfc.jwt import JWTClaimsRegistry

from services.errors import DomainError, ErrorCode

# RFC 9068 header `typ`, so an ID token or another JWT is never taken for ours.
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
EMBEDDED_KEY_NAME = "signing-key.pem"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)
_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_MAX_TOKEN_CHARS = 8192


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    key: Key
    private: bool


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says."""

    user_id: uuid.UUID
    roles: frozenset[str]
    session_id: uuid.UUID | None
    expires_at: int


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int


def _invalid(message: str) -> DomainError:
    return DomainError(ErrorCode.TOKEN_INVALID, message)


def _key_from_pem(block: bytes) -> SigningKey:
    private = b"PRIVATE KEY" in block.split(b"\n", 1)[0]
    raw: Any = load_pem_private_key(block, password=None) if private else load_pem_public_key(block)
    key: Key
    if isinstance(raw, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if raw.key_size < 2048:
            raise ValueError("RSA signing keys must have at least 2048 bits")
        key, alg = RSAKey.import_key(block), "RS256"
    elif isinstance(raw, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if raw.curve.name not in _EC_ALGS:
            raise ValueError(f"unsupported EC curve {raw.curve.name}")
        key, alg = ECKey.import_key(block), _EC_ALGS[raw.curve.name]
    elif isinstance(raw, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        key, alg = OKPKey.import_key(block), "Ed25519"  # RFC 9864 fully-specified name (not "EdDSA")
    else:
        raise ValueError(f"unsupported key type {type(raw).__name__}")
    return SigningKey(kid=key.thumbprint(), alg=alg, key=key, private=private)


def load_signing_keys(path: Path) -> list[SigningKey]:
    """Read every PEM block in `path`; the first must be a private key. Raises ValueError with a reason."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror or exc})") from exc
    blocks = [m.group(0) for m in _PEM_BLOCK.finditer(data)]
    if not blocks:
        raise ValueError(f"{path} holds no PEM key")
    try:
        keys = [_key_from_pem(block) for block in blocks]
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    if not keys[0].private:
        raise ValueError(f"{path}: the first key must be a private key (it signs)")
    return keys


def ensure_embedded_key(data_dir: Path) -> Path:
    """The embedded-mode key under `data_dir`, generated (EC P-256) on first start and kept 0600."""
    path = data_dir / EMBEDDED_KEY_NAME
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        pem = ECKey.generate_key("P-256", private=True).as_pem(private=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        os.replace(tmp, path)  # atomic: two processes starting together end up with one key
    return path


def new_refresh_token() -> tuple[str, str]:
    """A fresh opaque refresh token and the hash we store."""
    token = "rt_" + secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _segment(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def peek_header_and_issuer(token: str) -> tuple[dict[str, Any], str | None]:
    """Unverified header and `iss`, to route a token to the right verifier. Never trust them otherwise."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > _MAX_TOKEN_CHARS:
        raise _invalid("not a JWT")
    try:
        header, claims = _segment(parts[0]), _segment(parts[1])
    except ValueError as exc:
        raise _invalid("not a JWT") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _invalid("not a JWT")
    iss = claims.get("iss")
    return header, iss if isinstance(iss, str) else None


class TokenService:
    """Issues and verifies our access tokens. One per process; verification results are cached per token."""

    def __init__(
        self, keys: list[SigningKey], *, issuer: str, audience: str, ttl_seconds: int = 900,
        leeway_seconds: int = 30, cache_size: int = 10_000,
    ) -> None:
        if not keys or not keys[0].private:
            raise ValueError("TokenService needs a private signing key first")
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self._by_kid = {k.kid: k for k in keys}
        self._claims = JWTClaimsRegistry(
            leeway=leeway_seconds,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            sub={"essential": True},
            exp={"essential": True},
        )
        # Verifying a signature costs ~50-150 µs; a token is presented many times in its 15 minutes.
        self._cache: OrderedDict[str, AccessClaims] = OrderedDict()
        self._cache_size = cache_size

    @property
    def signing_key(self) -> SigningKey:
        return self.keys[0]

    def issue_access_token(
        self, *, user_id: uuid.UUID, roles: frozenset[str] | list[str], session_id: uuid.UUID | None = None
    ) -> IssuedToken:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": self.audience, "sub": str(user_id), "iat": now, "nbf": now,
            "exp": now + self.ttl_seconds, "jti": uuid.uuid4().hex, "roles": sorted(roles),
        }
        if session_id is not None:
            claims["sid"] = str(session_id)
        key = self.signing_key
        header = {"alg": key.alg, "kid": key.kid, "typ": ACCESS_TOKEN_TYPE}
        return IssuedToken(token=jwt.encode(header, claims, key.key, algorithms=[key.alg]),
                           expires_in=self.ttl_seconds)

    def is_ours(self, token: str) -> bool:
        """Whether to verify `token` here rather than with the external provider (by `kid` or `iss`)."""
        header, iss = peek_header_and_issuer(token)
        return header.get("kid") in self._by_kid or iss == self.issuer

    def verify_access_token(self, token: str) -> AccessClaims:
        """Check signature, `alg`, `kid`, `typ`, `iss`, `aud`, `exp`, `nbf`; raise TOKEN_INVALID/TOKEN_EXPIRED."""
        cached = self._cache.get(token)
        if cached is not None and cached.expires_at > time.time():
            return cached
        claims = self._verify(token)
        self._cache[token] = claims
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return claims

    def _verify(self, token: str) -> AccessClaims:
        header, _ = peek_header_and_issuer(token)
        key = self._by_kid.get(header.get("kid"))  # type: ignore[arg-type]
        if key is None:
            raise _invalid("token signed by an unknown key")
        # The algorithm is pinned by the key, never taken from the token (no `none`, no HS256-with-public-key).
        if header.get("alg") != key.alg:
            raise _invalid("token algorithm does not match its key")
        if header.get("typ") != ACCESS_TOKEN_TYPE:
            raise _invalid("not an access token")
        try:
            decoded = jwt.decode(token, key.key, algorithms=[key.alg])
            self._claims.validate(decoded.claims)
        except ExpiredTokenError as exc:
            raise DomainError(ErrorCode.TOKEN_EXPIRED, "access token expired") from exc
        except (InvalidClaimError, MissingClaimError) as exc:
            raise _invalid(f"token claim rejected: {exc.description}") from exc
        except (JoseError, ValueError) as exc:
            raise _invalid("token signature is invalid") from exc
        try:
            sid = decoded.claims.get("sid")
            roles = decoded.claims.get("roles") or []
            return AccessClaims(
                user_id=uuid.UUID(decoded.claims["sub"]),
                roles=frozenset(str(r) for r in roles),
                session_id=uuid.UUID(sid) if sid else None,
                expires_at=int(decoded.claims["exp"]),
            )
        except (ValueError, TypeError) as exc:
            raise _invalid("token claims are malformed") from exc

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set, for `/.well-known/jwks.json`."""
        keys = []
        for k in self.keys:
            jwk = k.key.as_dict(private=False)
            jwk.update({"kid": k.kid, "alg": k.alg, "use": "sig"})
            keys.append(jwk)
        return {"keys": keys}
