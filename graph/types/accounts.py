"""Account types."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

import strawberry

from db.models import User as UserRow
from graph.errors import Error
from services.accounts import Session


@strawberry.enum(description="What a caller may do: user (people), admin, partner (integrating machine clients).")
class Role(enum.Enum):
    USER = "user"
    ADMIN = "admin"
    PARTNER = "partner"


_ROLE_ORDER = list(Role)


def roles_of(values: Iterable[str]) -> list[Role]:
    """Our role names as Role values, in a stable order (user, admin, partner); unknown names dropped."""
    present = set(values)
    return [r for r in _ROLE_ORDER if r.value in present]


@strawberry.type(description="An account. Only its owner and admins can read it.")
class User:
    id: strawberry.ID
    email: str | None
    display_name: str
    roles: list[Role]
    created_at: datetime

    @classmethod
    def from_model(cls, row: UserRow) -> User:
        return cls(id=strawberry.ID(str(row.id)), email=row.email, display_name=row.display_name,
                   roles=roles_of(row.roles), created_at=row.created_at)


@strawberry.type(description="A signed-in session: a short-lived access token and a single-use refresh token.")
class AuthPayload:
    access_token: str = strawberry.field(description="Send as `Authorization: Bearer <accessToken>`.")
    token_type: str
    expires_in: int = strawberry.field(description="Seconds until the access token expires.")
    refresh_token: str = strawberry.field(description="Opaque; exchange once with `refreshToken`.")
    user: User

    @classmethod
    def from_session(cls, session: Session) -> AuthPayload:
        return cls(access_token=session.access_token, token_type="Bearer", expires_in=session.expires_in,  # noqa: S106
                   refresh_token=session.refresh_token, user=User.from_model(session.user))


@strawberry.type
class LogoutPayload:
    ok: bool


MeResult = Annotated[User | Error, strawberry.union("MeResult")]
UserResult = Annotated[User | Error, strawberry.union("UserResult")]
AuthResult = Annotated[AuthPayload | Error, strawberry.union("AuthResult")]
LogoutResult = Annotated[LogoutPayload | Error, strawberry.union("LogoutResult")]
