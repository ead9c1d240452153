"""Signed, expiring tokens for links that work without logging in (downloads, unsubscribe, uploads)."""

from __future__ import annotations

from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from services.errors import DomainError, ErrorCode


class LinkSigner:
    """One serializer per purpose (salt), so a token for one purpose is useless for another."""

    def __init__(self, secret: str, purpose: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=f"talkative.{purpose}")

    def sign(self, payload: dict[str, Any]) -> str:
        return self._serializer.dumps(payload)

    def verify(self, token: str, *, max_age: int | None) -> dict[str, Any]:
        """Return the payload; TOKEN_EXPIRED or TOKEN_INVALID otherwise."""
        try:
            data = self._serializer.loads(token, max_age=max_age)
        except SignatureExpired as exc:
            raise DomainError(ErrorCode.TOKEN_EXPIRED, "this link has expired") from exc
        except BadSignature as exc:
            raise DomainError(ErrorCode.TOKEN_INVALID, "this link is not valid") from exc
        if not isinstance(data, dict):
            raise DomainError(ErrorCode.TOKEN_INVALID, "this link is not valid")
        return data
