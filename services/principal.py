"""Who is calling: the result of authenticating a bearer token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

ROLE_USER = "user"
ROLE_ADMIN = "admin"
ROLE_PARTNER = "partner"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `user_id` is our users-table id (OIDC subjects are mapped on first sight)."""

    user_id: uuid.UUID
    roles: frozenset[str] = field(default_factory=lambda: frozenset({ROLE_USER}))
    source: str = "local"  # "local" for our JWTs, "oidc" for the external provider

    @property
    def is_admin(self) -> bool:
        return ROLE_ADMIN in self.roles

    def can_access(self, owner_id: uuid.UUID) -> bool:
        """Owners and admins may read a resource."""
        return self.is_admin or owner_id == self.user_id
