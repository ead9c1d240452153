"""Our JWTs: signing, verification, rejections, key rotation, JWKS, the embedded key."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, OKPKey, RSAKey

from services.errors import DomainError
from services.tokens import SigningKey, TokenService, ensure_embedded_key, load_signing_keys
from tests.foundation.tokens_util import bad_tokens, parts


def write_keys(path: Path, *pems: bytes) -> Path:
    path.write_bytes(b"\n".join(pems))
    return path


@pytest.fixture
def keys(tmp_path: Path):  # type: ignore[no-untyped-def]
    primary = ECKey.generate_key("P-256", private=True).as_pem(private=True)
    old = RSAKey.generate_key(2048, private=True).as_pem(private=True)
    return load_signing_keys(write_keys(tmp_path / "keys.pem", primary, old))


def service(keys, **kwargs) -> TokenService:  # type: ignore[no-untyped-def]
    return TokenService(keys, issuer="https://api.test", audience="talkative-api", **kwargs)


def test_round_trip_and_header(keys) -> None:  # type: ignore[no-untyped-def]
    tokens = service(keys)
    user_id, sid = uuid.uuid4(), uuid.uuid4()
    issued = tokens.issue_access_token(user_id=user_id, roles=["user", "admin"], session_id=sid)
    header, claims, _ = parts(issued.token)
    assert header == {"alg": "ES256", "kid": keys[0].kid, "typ": "at+jwt"}
    assert claims["iss"] == "https://api.test" and claims["aud"] == "talkative-api"
    assert claims["exp"] - claims["iat"] == 900 == issued.expires_in
    verified = tokens.verify_access_token(issued.token)
    assert (verified.user_id, verified.roles, verified.session_id) == (user_id, frozenset({"user", "admin"}), sid)


@pytest.mark.parametrize("case", [
    "tampered signature", "edited claims", "expired", "wrong audience", "wrong issuer", "alg none",
    "HS256 signed with the public key", "unknown key", "not a JWT",
])
def test_rejections(keys, case: str) -> None:  # type: ignore[no-untyped-def]
    stranger = ECKey.generate_key("P-256", private=True)
    cases = bad_tokens(service(keys), uuid.uuid4(), SigningKey(stranger.thumbprint(), "ES256", stranger, True))
    token, code = cases[case]
    with pytest.raises(DomainError) as err:
        service(keys).verify_access_token(token)
    assert err.value.code == code


def test_rotation_old_key_still_verifies(tmp_path: Path) -> None:
    old = RSAKey.generate_key(2048, private=True).as_pem(private=True)
    new = OKPKey.generate_key("Ed25519", private=True).as_pem(private=True)
    before = service(load_signing_keys(write_keys(tmp_path / "a.pem", old)))
    token = before.issue_access_token(user_id=uuid.uuid4(), roles=["user"]).token
    # New key first (it signs); the old key kept as its public half only.
    old_public = RSAKey.import_key(old).as_pem(private=False)
    after = service(load_signing_keys(write_keys(tmp_path / "b.pem", new, old_public)))
    assert after.verify_access_token(token).roles == {"user"}
    fresh = after.issue_access_token(user_id=uuid.uuid4(), roles=["user"]).token
    assert parts(fresh)[0]["alg"] == "Ed25519"
    jwks = after.jwks()
    assert [k["alg"] for k in jwks["keys"]] == ["Ed25519", "RS256"]
    assert all("d" not in k for k in jwks["keys"])  # never the private parts
    assert {k["kid"] for k in jwks["keys"]} == {k.kid for k in after.keys}


def test_bad_key_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_signing_keys(tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="no PEM key"):
        load_signing_keys(write_keys(tmp_path / "empty.pem", b"hello"))
    public_only = ECKey.generate_key("P-256", private=True).as_pem(private=False)
    with pytest.raises(ValueError, match="first key must be a private key"):
        load_signing_keys(write_keys(tmp_path / "pub.pem", public_only))
    with pytest.warns(UserWarning):
        weak = RSAKey.generate_key(1024, private=True, auto_kid=False).as_pem(private=True)
    with pytest.raises(ValueError, match="2048"):
        load_signing_keys(write_keys(tmp_path / "weak.pem", weak))


def test_embedded_key_is_generated_once_and_private(tmp_path: Path) -> None:
    path = ensure_embedded_key(tmp_path / "data")
    assert path.stat().st_mode & 0o777 == 0o600
    first = path.read_bytes()
    assert ensure_embedded_key(tmp_path / "data").read_bytes() == first
    [key] = load_signing_keys(path)
    assert key.alg == "ES256" and key.private
    assert json.dumps(service([key]).jwks())
