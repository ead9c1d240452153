"""Relay-style connections: `Connection[T]` with edges, cursors and `PageInfo`, and a page-size check.

A service returns a page (rows plus whether more follow); the resolver maps it with `Connection.build`.
Cursors are opaque to clients: `encode_cursor(*values)` / `decode_cursor(cursor, *types)` carry the
keyset values (e.g. created_at and id) as base64url JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

import strawberry

from services.errors import DomainError, ErrorCode

NodeT = TypeVar("NodeT")
RowT = TypeVar("RowT")


@strawberry.type(description="Where a page sits in the whole list.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo

    @strawberry.field(description="The nodes of this page, without cursors.")
    def nodes(self) -> list[NodeT]:
        return [edge.node for edge in self.edges]

    @classmethod
    def build(
        cls, rows: Sequence[RowT], *, has_next: bool, cursor: Callable[[RowT], str],
        node: Callable[[RowT], NodeT], has_previous: bool = False,
    ) -> Connection[NodeT]:
        edges = [Edge(cursor=cursor(row), node=node(row)) for row in rows]
        return cls(edges=edges, page_info=PageInfo(
            has_next_page=has_next, has_previous_page=has_previous,
            start_cursor=edges[0].cursor if edges else None, end_cursor=edges[-1].cursor if edges else None,
        ))


def check_first(first: int, max_page_size: int) -> int:
    """`first` within 1..max_page_size, else VALIDATION."""
    if not 1 <= first <= max_page_size:
        raise DomainError(ErrorCode.VALIDATION, f"first must be between 1 and {max_page_size}", field="first")
    return first


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([_plain(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple[Any, ...]:
    """Decode a cursor into values of `types` (datetime, uuid.UUID, int, str); VALIDATION when malformed."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(types):
            raise ValueError("wrong arity")
        return tuple(
            datetime.fromisoformat(v) if t is datetime else t(v) for t, v in zip(types, raw, strict=True)
        )
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise DomainError(ErrorCode.VALIDATION, "after is not a valid cursor", field="after") from exc
