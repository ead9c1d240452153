"""Verify bearer tokens issued by an external OpenID Connect provider (Keycloak or any compliant one).

`OidcVerifier.verify(token)` checks the JWS signature against the provider's published keys, then
`iss`, `aud`, `exp`, `nbf` (with a small leeway), and returns an `OidcIdentity`.
Discovery (`/.well-known/openid-configuration`) and the JWKS are fetched on first use and cached
for `jwks_ttl_seconds`; a token signed with an unknown `kid` triggers one refetch (key rotation),
at most once per `refetch_cooldown_seconds`, so a flood of forged kids cannot hammer the provider.
Only asymmetric algorithms are accepted: `none` and HS* are refused outright (an HS256 token
"signed" with the provider's public key is the classic confusion attack), and the token's `alg`
must match the type (and curve) of the key it names.
Keys come only from the discovered `jwks_uri`; `jku`, `x5u` and `jwk` headers in a token are ignored.

Role mapping (provider → ours):
- Raw role names are collected from Keycloak's `realm_access.roles`, from
  `resource_access.<role_client>.roles` (`role_client` defaults to the audience, i.e. our API
  client), and from the granted scopes (`scope` string or `scp` list/string).
- `role_map` (default `DEFAULT_ROLE_MAP`) turns raw names into ours: `talkative:admin` or
  `talkative-admin` → `admin`, `talkative:partner`/`talkative-partner` → `partner`,
  `talkative:user`/`talkative-user` → `user`. Realm roles and scopes are shared with other
  applications, hence the namespaced names; roles on our own client may also be bare
  (`admin`, `partner`, `user`).
- Client-credentials (machine) tokens always get `partner`. They are recognised by
  `sub` equal to `client_id`/`cid`/`azp` (RFC 9068 providers, Okta), `gty: client-credentials`
  (Auth0), `idtyp: app` (Entra ID) or a `service-account-` username (Keycloak). The mere absence of
  user claims is deliberately not a signal: a sparse user token would be promoted to a partner.
- Every other token is a person and always gets `user`.

Errors are `DomainError`: `TOKEN_EXPIRED` for an expired token, `TOKEN_INVALID` for anything else
wrong with the token, `UNAVAILABLE` when the provider cannot be reached or answers nonsense.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jws
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import ECKey, JWKRegistry, Key, OKPKey, RSAKey
from joserfc.jwt import JWTClaimsRegistry
from joserfc.util import urlsafe_b64decode

from services.errors import DomainError, ErrorCode
from services.principal import ROLE_ADMIN, ROLE_PARTNER, ROLE_USER

log = logging.getLogger(__name__)

DEFAULT_ALGORITHMS: tuple[str, ...] = (
    *(f"{family}{bits}" for family in ("RS", "PS", "ES") for bits in (256, 384, 512)),
    "EdDSA",
)
DEFAULT_ROLE_MAP: Mapping[str, str] = {
    f"talkative{sep}{role}": role for sep in (":", "-") for role in (ROLE_ADMIN, ROLE_PARTNER, ROLE_USER)
}
_CLIENT_ROLES = {ROLE_ADMIN: ROLE_ADMIN, ROLE_PARTNER: ROLE_PARTNER, ROLE_USER: ROLE_USER}
_KEY_CLASS: dict[str, type[Key]] = {"RS": RSAKey, "PS": RSAKey, "ES": ECKey, "Ed": OKPKey}
_CURVE = {
    "ES256": "P-256",
    "ES384": "P-384",
    "ES512": "P-521",
    "ES256K": "secp256k1",
    "Ed25519": "Ed25519",
    "Ed448": "Ed448",
}
_ACCESS_TOKEN_TYPES = {"jwt", "at+jwt", "application/at+jwt"}
_MAX_TOKEN_CHARS = 16 * 1024  # a real access token is a few KiB; larger ones are refused before parsing


@dataclass(frozen=True)
class OidcIdentity:
    """Who the provider says the caller is. `subject` is stable per issuer; map users by (issuer, subject)."""

    issuer: str
    subject: str
    roles: frozenset[str]
    email: str | None
    name: str | None
    client_credentials: bool
    scopes: frozenset[str]
    client_id: str | None = None


def _invalid(message: str) -> DomainError:
    return DomainError(ErrorCode.TOKEN_INVALID, message)


def _json_segment(segment: str) -> Any:
    try:
        return json.loads(urlsafe_b64decode(segment.encode()))
    except RecursionError:  # deeply nested JSON from an untrusted token
        raise ValueError("JSON nested too deeply") from None


def peek_issuer(token: str) -> str | None:
    """The unverified `iss` of a JWT, to choose which verifier to use; never trust it for anything else."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > _MAX_TOKEN_CHARS:
        return None
    try:
        claims = _json_segment(parts[1])
    except ValueError:
        return None
    iss = claims.get("iss") if isinstance(claims, dict) else None
    return iss if isinstance(iss, str) else None


class OidcVerifier:
    """Verifies access tokens of one OpenID Connect issuer for one audience. Share one per process."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        algorithms: list[str] | None = None,
        http: httpx.AsyncClient | None = None,
        *,
        jwks_ttl_seconds: float = 3600,
        leeway_seconds: int = 30,
        refetch_cooldown_seconds: float = 30,
        role_client: str | None = None,
        role_map: Mapping[str, str] | None = None,
    ) -> None:
        if not issuer or not audience:
            raise ValueError("OidcVerifier needs an issuer and an audience")
        algs = tuple(algorithms or DEFAULT_ALGORITHMS)
        for alg in algs:
            if alg[:2] not in _KEY_CLASS or alg not in jws.JWSRegistry.algorithms:
                raise ValueError(f"algorithm {alg!r} is not an accepted asymmetric JWS algorithm")
        self.issuer = issuer
        self.audience = audience
        self.algorithms = algs
        self.jwks_ttl_seconds = jwks_ttl_seconds
        self.leeway_seconds = leeway_seconds
        self.refetch_cooldown_seconds = refetch_cooldown_seconds
        self.role_client = role_client or audience
        self.role_map = dict(DEFAULT_ROLE_MAP if role_map is None else role_map)
        self._http = http
        self._owns_http = http is None
        self._jwks_uri: str | None = None
        self._keys: list[Key] | None = None
        # time.monotonic() of the last good JWKS fetch (TTL) and of the last attempt (rate limit)
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._last_error: DomainError | None = None
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> OidcVerifier:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def verify(self, token: str) -> OidcIdentity:
        """Verify `token` and map its claims; raises DomainError (TOKEN_INVALID/TOKEN_EXPIRED/UNAVAILABLE)."""
        header = self._parse(token)
        alg = header["alg"]
        key = await self._key_for(header.get("kid"), alg)
        try:
            obj = jws.extract_compact(token.encode())
            if not jws.validate_compact(obj, key, algorithms=[alg]):
                raise BadSignatureError()
            claims = json.loads(obj.payload or b"")
        except BadSignatureError:
            raise _invalid("The token's signature does not verify.") from None
        except (JoseError, ValueError, RecursionError) as exc:
            raise _invalid(f"The token could not be verified: {type(exc).__name__}.") from None
        if not isinstance(claims, dict):
            raise _invalid("The token's payload is not a JSON object.")
        self._check_claims(claims)
        return self._identity(claims)

    # -- parsing and claims ---------------------------------------------------------------------

    def _parse(self, token: str) -> dict[str, Any]:
        if not isinstance(token, str) or not token:
            raise _invalid("No bearer token was given.")
        if len(token) > _MAX_TOKEN_CHARS:
            raise _invalid("The token is too large.")
        parts = token.split(".")
        if len(parts) == 5:
            raise _invalid("Encrypted (JWE) tokens are not accepted.")
        if len(parts) != 3:
            raise _invalid("The token is not a JWT.")
        try:
            header = _json_segment(parts[0])
        except ValueError:
            raise _invalid("The token's header is not valid JSON.") from None
        if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
            raise _invalid("The token's header names no algorithm.")
        alg = header["alg"]
        if alg.lower() == "none":
            raise _invalid("Unsigned tokens (alg 'none') are not accepted.")
        if alg.upper().startswith("HS"):
            raise _invalid(f"Symmetric algorithm {alg} is not accepted; the provider signs with a key pair.")
        if alg not in self.algorithms:
            raise _invalid(f"Algorithm {alg} is not allowed (allowed: {', '.join(self.algorithms)}).")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES):
            raise _invalid(f"A token of type {typ!r} is not an access token.")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _invalid("The token's key id (kid) is not a string.")
        return header

    def _check_claims(self, claims: dict[str, Any]) -> None:
        registry = JWTClaimsRegistry(
            now=lambda: int(time.time()),
            leeway=self.leeway_seconds,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            sub={"essential": True},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise DomainError(ErrorCode.TOKEN_EXPIRED, "The token has expired; get a new one.") from None
        except MissingClaimError as exc:
            raise _invalid(f"The token lacks required claim(s): {exc.claim}.") from None
        except InvalidClaimError as exc:
            raise _invalid(self._claim_message(exc.claim, claims)) from None
        # Keycloak marks its ID and refresh tokens with a `typ` claim; only its access tokens say Bearer.
        typ = claims.get("typ")
        if typ is not None and typ != "Bearer":
            raise _invalid(f"A token of type {typ!r} is not an access token.")

    def _claim_message(self, claim: str, claims: dict[str, Any]) -> str:
        if claim == "iss":
            return f"The token was issued by {claims.get('iss')!r}, not by {self.issuer!r}."
        if claim == "aud":
            return f"The token is meant for {claims.get('aud')!r}, not for {self.audience!r}."
        if claim == "nbf":
            return "The token is not valid yet (nbf is in the future)."
        if claim == "iat":
            return "The token claims to be issued in the future."
        return f"The token's {claim!r} claim is invalid."

    def _identity(self, claims: dict[str, Any]) -> OidcIdentity:
        scopes = _scopes(claims)
        raw: set[str] = set(scopes)
        raw.update(_strings(_get(claims, "realm_access", "roles")))
        client_roles = set(_strings(_get(claims, "resource_access", self.role_client, "roles")))
        roles = {self.role_map[r] for r in raw | client_roles if r in self.role_map}
        roles.update(_CLIENT_ROLES[r] for r in client_roles if r in _CLIENT_ROLES)
        machine = _is_client_credentials(claims)
        roles.add(ROLE_PARTNER if machine else ROLE_USER)
        email = claims.get("email")
        # An unverified address must not be used to link accounts, so it is dropped.
        if not isinstance(email, str) or claims.get("email_verified") is False:
            email = None
        name = claims.get("name") or (None if machine else claims.get("preferred_username"))
        client_id = next((v for k in ("client_id", "azp", "cid") if isinstance(v := claims.get(k), str)), None)
        return OidcIdentity(
            issuer=self.issuer,
            subject=str(claims["sub"]),
            roles=frozenset(roles),
            email=email,
            name=name if isinstance(name, str) else None,
            client_credentials=machine,
            scopes=frozenset(scopes),
            client_id=client_id,
        )

    # -- keys -------------------------------------------------------------------------------------

    async def _key_for(self, kid: str | None, alg: str) -> Key:
        if self._keys is None or time.monotonic() - self._fetched_at >= self.jwks_ttl_seconds:
            # Without keys, concurrent callers share one attempt; with stale ones, retry per cooldown.
            await self._refresh(min_interval=1.0 if self._keys is None else self.refetch_cooldown_seconds)
        known = self._keys or []
        if kid is not None and not any(k.kid == kid for k in known):
            log.info("unknown kid %r from %s; refetching its JWKS (rate-limited)", kid, self.issuer)
            await self._refresh(min_interval=self.refetch_cooldown_seconds, strict=True)
            known = self._keys or []
            if not any(k.kid == kid for k in known):
                raise _invalid(f"The token is signed with key {kid!r}, which the provider does not publish.")
        usable = [k for k in known if (kid is None or k.kid == kid) and _fits(k, alg)]
        if not usable:
            raise _invalid(f"No published key of the provider fits algorithm {alg}.")
        if kid is None and len(usable) > 1:
            raise _invalid("The token names no key id (kid) and the provider publishes several keys.")
        return usable[0]

    async def _refresh(self, *, min_interval: float, strict: bool = False) -> None:
        """Fetch discovery (once) and the JWKS, unless an attempt was made within `min_interval` seconds.

        A failure raises when there are no cached keys or `strict` is set; otherwise stale keys stay in use.
        """
        async with self._lock:
            if time.monotonic() - self._attempted_at < min_interval:
                if self._keys is None and self._last_error is not None:
                    raise self._last_error
                return
            self._attempted_at = time.monotonic()
            try:
                if self._jwks_uri is None:
                    self._jwks_uri = await self._discover()
                self._keys = _parse_jwks(await self._get_json(self._jwks_uri, "JWKS"))
                self._fetched_at = time.monotonic()
                self._last_error = None
            except DomainError as exc:
                self._last_error = exc
                if self._keys is None or strict:
                    raise
                log.warning("keeping the cached JWKS of %s: %s", self.issuer, exc.message)

    async def _discover(self) -> str:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = await self._get_json(url, "discovery document")
        if doc.get("issuer") != self.issuer:
            raise DomainError(
                ErrorCode.UNAVAILABLE,
                f"The identity provider reports issuer {doc.get('issuer')!r}, not {self.issuer!r}.",
            )
        jwks_uri = doc.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise DomainError(ErrorCode.UNAVAILABLE, "The identity provider's discovery document has no jwks_uri.")
        return jwks_uri

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(5.0))
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise DomainError(
                ErrorCode.UNAVAILABLE,
                f"The identity provider is unreachable ({type(exc).__name__} fetching its {what}).",
            ) from exc
        if response.status_code != 200:
            raise DomainError(
                ErrorCode.UNAVAILABLE,
                f"The identity provider answered HTTP {response.status_code} for its {what}.",
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise DomainError(ErrorCode.UNAVAILABLE, f"The identity provider's {what} is not a JSON object.")
        return body


def _parse_jwks(jwks: dict[str, Any]) -> list[Key]:
    keys: list[Key] = []
    for item in jwks.get("keys") or []:
        # Symmetric (oct) or encryption keys in a JWKS are never signature keys for us.
        if not isinstance(item, dict) or item.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        if item.get("use", "sig") != "sig":
            continue
        try:
            keys.append(JWKRegistry.import_key(item))
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("ignoring unusable JWK %r: %s", item.get("kid"), exc)
    if not keys:
        raise DomainError(ErrorCode.UNAVAILABLE, "The identity provider publishes no usable signing keys.")
    return keys


def _fits(key: Key, alg: str) -> bool:
    """Whether `key` may verify `alg`: right key type and curve, and its own `alg` (if any) agrees."""
    if not isinstance(key, _KEY_CLASS[alg[:2]]):
        return False
    if alg in _CURVE and key.get("crv") != _CURVE[alg]:
        return False
    if alg == "EdDSA" and key.get("crv") not in ("Ed25519", "Ed448"):
        return False
    return key.get("alg") in (None, alg)


def _get(claims: dict[str, Any], *path: str) -> Any:
    value: Any = claims
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _scopes(claims: dict[str, Any]) -> list[str]:
    return _strings(claims.get("scope")) or _strings(claims.get("scp"))


def _is_client_credentials(claims: dict[str, Any]) -> bool:
    sub = claims.get("sub")
    if claims.get("gty") == "client-credentials" or claims.get("idtyp") == "app":
        return True
    username = claims.get("preferred_username")
    if isinstance(username, str) and username.startswith("service-account-"):
        return True
    return isinstance(sub, str) and any(claims.get(k) == sub for k in ("client_id", "cid", "azp"))
