"""Permission classes for fields whose type has no `Error` member; failures are top-level errors with a code.

Fields returning a result union should call `info.context.require_principal()` / `require_role()` in the
resolver instead, so the failure arrives as a typed `Error`.
"""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from graph.context import Info
from services.errors import ErrorCode
from services.principal import ROLE_ADMIN, ROLE_PARTNER


class IsAuthenticated(BasePermission):
    message = "sign in first"
    error_extensions = {"code": ErrorCode.UNAUTHENTICATED.value}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        # Raising the refusal reason (TOKEN_EXPIRED, ...) tells the client whether refreshing helps.
        info.context.require_principal()
        return True


class _HasRole(BasePermission):
    roles: tuple[str, ...] = ()
    error_extensions = {"code": ErrorCode.FORBIDDEN.value}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return bool(info.context.require_principal().roles.intersection(self.roles))


class IsAdmin(_HasRole):
    message = "requires role admin"
    roles = (ROLE_ADMIN,)


class IsPartner(_HasRole):
    message = "requires role partner or admin"
    roles = (ROLE_PARTNER, ROLE_ADMIN)
