"""Schema assembly: one area module per part of the API, merged into Query, Mutation and Subscription.

Adding an area (narrations, for example):
1. `graph/types/narrations.py`: strawberry types with a `from_model(row)` classmethod, and result unions
   that include `graph.errors.Error` (`NarrationResult = Annotated[Narration | Error, strawberry.union(...)]`).
2. `resolvers/narrations.py`: `@strawberry.type class Query`, `Mutation` and/or `Subscription`, each
   resolver taking `info: graph.context.Info`. Resolvers are thin: parse input, call one service
   function with a session from `info.context.session()` / `.transaction()`, map the result. Raise
   `DomainError` for expected failures (it becomes the `Error` member); use `info.context.require_principal()`
   (or `graph.permissions` classes on fields without an Error member), `info.context.loaders`
   for batched lookups (add loaders in `graph/loaders.py`) and `graph.pagination.Connection` for lists.
3. Add the module to `AREAS` below.
4. Run `talkative export-schema --output schema.graphql`; a test fails until the file matches the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.tools import merge_types
from strawberry.types.execution import ExecutionContext

from graph.errors import DomainErrorHandler, ErrorPolicy, log_errors
from graph.limits import limit_extensions
from resolvers import accounts, narrations

AREAS: tuple[ModuleType, ...] = (accounts, narrations)


@dataclass(frozen=True, slots=True)
class SchemaLimits:
    max_tokens: int = 2000
    max_depth: int = 12
    max_aliases: int = 30
    max_cost: int = 20_000
    max_page_size: int = 100


class TalkativeSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        log_errors(errors, execution_context)


def _merge(name: str) -> Any:
    parts = tuple(getattr(area, name) for area in AREAS if hasattr(area, name))
    return merge_types(name, parts) if parts else None


def build_schema(limits: SchemaLimits | None = None, *, extra_extensions: tuple[Any, ...] = ()) -> TalkativeSchema:
    """The API schema with error policy and document limits."""
    lim = limits or SchemaLimits()
    extensions: list[type[SchemaExtension] | Any] = [
        ErrorPolicy,
        *limit_extensions(max_tokens=lim.max_tokens, max_depth=lim.max_depth, max_aliases=lim.max_aliases,
                          max_cost=lim.max_cost, max_page_size=lim.max_page_size),
        *extra_extensions,
    ]
    return TalkativeSchema(
        query=_merge("Query"), mutation=_merge("Mutation"), subscription=_merge("Subscription"),
        extensions=extensions, exception_handlers=[DomainErrorHandler()],
    )


def schema_sdl() -> str:
    """The SDL that `talkative export-schema` writes to schema.graphql."""
    return build_schema().as_str() + "\n"
