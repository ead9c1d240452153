"""A real OpenID Connect provider for the tests: the npm package `oidc-provider`, run by Node.

`oidc_provider` (session scope) starts `tests/support/oidc_provider/server.mjs` on a free loopback port
with RSA keys generated here, so tests hold the provider's private key and can mint tokens the real
provider's JWKS vouches for (expired, not-yet-valid, wrong issuer, user tokens it cannot issue by
client credentials). Real tokens come from its token endpoint via the client-credentials grant.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

PROVIDER_DIR = Path(__file__).parent / "oidc_provider"
AUDIENCE = "https://api.talkative.test"
OTHER_AUDIENCE = "https://other.talkative.test"
SCOPES = "talkative:partner talkative:admin talkative:read"


@dataclass(frozen=True)
class OidcClient:
    """A client-credentials client registered with the provider; `claims` are added to its tokens."""

    client_id: str
    client_secret: str
    scope: str = ""
    ttl: int | None = None
    claims: dict[str, Any] | None = None


PARTNER = OidcClient("partner-client", "partner-secret", "talkative:partner talkative:read")
# Keycloak-style roles: a realm role plus a role on our API client.
ADMIN = OidcClient(
    "admin-client",
    "admin-secret",
    "talkative:read",
    claims={
        "realm_access": {"roles": ["talkative-admin", "offline_access"]},
        "resource_access": {AUDIENCE: {"roles": ["admin"]}},
    },
)
PLAIN = OidcClient("plain-client", "plain-secret")  # no scopes or roles: a machine client all the same
SHORT_LIVED = OidcClient("short-lived-client", "short-secret", ttl=1)  # tokens expire after one second
CLIENTS = (PARTNER, ADMIN, PLAIN, SHORT_LIVED)


def generate_key(kid: str | None = None) -> RSAKey:
    """A fresh RS256 signing key with a kid."""
    params = {"kid": kid or f"k-{uuid.uuid4().hex[:8]}", "use": "sig", "alg": "RS256"}
    return RSAKey.generate_key(2048, parameters=params)  # type: ignore[arg-type]


def ensure_installed() -> None:
    """`npm ci` from the committed lock file when node_modules is missing (locked against parallel runs)."""
    marker = PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json"
    if marker.exists():
        return
    with open(Path(tempfile.gettempdir()) / "talkative-oidc-npm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=PROVIDER_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"npm ci in {PROVIDER_DIR} failed:\n{done.stdout}\n{done.stderr}")


@dataclass
class OidcProvider:
    """One `oidc-provider` process. The first key signs; all are published at `jwks_uri`."""

    keys: list[RSAKey] = field(default_factory=lambda: [generate_key()])
    clients: tuple[OidcClient, ...] = CLIENTS
    port: int = 0
    audience: str = AUDIENCE
    issuer: str = ""
    _proc: subprocess.Popen[bytes] | None = None
    _logdir: Path | None = None

    @property
    def signing_key(self) -> RSAKey:
        return self.keys[0]

    @property
    def private_jwk(self) -> dict[str, Any]:
        return dict(self.signing_key.as_dict(private=True))

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    @property
    def log(self) -> str:
        """What the provider wrote to stderr (warnings, server errors)."""
        return (self._logdir / "stderr").read_text() if self._logdir else ""

    def start(self, timeout: float = 20.0) -> OidcProvider:
        config = {
            "port": self.port,
            "jwks": {"keys": [k.as_dict(private=True) for k in self.keys]},
            "resources": {self.audience: {"scope": SCOPES}, OTHER_AUDIENCE: {"scope": SCOPES}},
            "defaultResource": self.audience,
            "clients": [{k: v for k, v in vars(c).items() if v not in (None, "")} for c in self.clients],
        }
        self._logdir = Path(tempfile.mkdtemp(prefix="oidc-provider-"))
        out, err = self._logdir / "stdout", self._logdir / "stderr"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            self._proc = subprocess.Popen(
                ["node", "server.mjs"],
                cwd=PROVIDER_DIR,
                env={**os.environ, "OIDC_TEST_CONFIG": json.dumps(config)},
                stdout=stdout,
                stderr=stderr,
            )
        deadline = time.monotonic() + timeout
        while not self.issuer:
            line = out.read_text().partition("\n")
            if line[1]:
                self.issuer = json.loads(line[0])["issuer"]
                self.port = int(self.issuer.rsplit(":", 1)[1])
            elif self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"oidc-provider did not start:\n{err.read_text()}")
            else:
                time.sleep(0.05)
        self._wait_for_discovery(deadline)
        return self

    def _wait_for_discovery(self, deadline: float) -> None:
        url = f"{self.issuer}/.well-known/openid-configuration"
        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"oidc-provider discovery at {url} never answered:\n{self.log}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def restart(self, keys: list[RSAKey]) -> None:
        """Restart on the same port (so the same issuer) with other keys: a real key rotation."""
        self.stop()
        self.keys, self.issuer = keys, ""
        self.start()

    def _token_request(self, client_id: str, scope: str | None, resource: str | None) -> dict[str, Any]:
        client = next(c for c in self.clients if c.client_id == client_id)
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        if resource is not None:
            data["resource"] = resource
        return {
            "url": f"{self.issuer}/token",
            "data": data,
            "auth": (client.client_id, client.client_secret),
        }

    @staticmethod
    def _access_token(response: httpx.Response) -> str:
        if response.status_code != 200:
            raise AssertionError(f"token request failed: {response.status_code} {response.text}")
        return str(response.json()["access_token"])

    def token(self, client_id: str = PARTNER.client_id, scope: str | None = None, resource: str | None = None) -> str:
        """A real access token (JWT) from the client-credentials grant."""
        return self._access_token(httpx.post(**self._token_request(client_id, scope, resource), timeout=10))

    async def atoken(
        self, client_id: str = PARTNER.client_id, scope: str | None = None, resource: str | None = None
    ) -> str:
        async with httpx.AsyncClient(timeout=10) as http:
            return self._access_token(await http.post(**self._token_request(client_id, scope, resource)))

    def mint(
        self,
        claims: dict[str, Any] | None = None,
        *,
        key: RSAKey | None = None,
        header: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
    ) -> str:
        """A token signed with the provider's key (or `key`): defaults iss/aud/sub/iat/exp, overridden by `claims`."""
        now = int(time.time())
        key = key or self.signing_key
        body = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "crafted-user",
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            **(claims or {}),
        }
        for name in drop:
            body.pop(name, None)
        head = {"alg": "RS256", "typ": "at+jwt", "kid": key.kid, **(header or {})}
        return jwt.encode(head, body, key, algorithms=[head["alg"]])


def require_provider() -> None:
    """Skip without Node.js; install the npm package if needed."""
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed; it runs the OpenID Connect provider for these tests")
    ensure_installed()


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    """A running `oidc-provider` (issuer `http://127.0.0.1:PORT`), shared by the whole session."""
    require_provider()
    provider = OidcProvider().start()
    try:
        yield provider
    finally:
        provider.stop()
