"""Errors in the schema: typed `Error` results for expected failures, masking for everything else.

- A resolver whose return type is a union containing `Error` may raise `DomainError`; the schema's
  `DomainErrorHandler` turns it into an `Error { code message field retryAfterSeconds }` value.
- A `DomainError` escaping a field without `Error` in its type becomes a top-level GraphQL error with
  `extensions.code`, message kept.
- Any other exception is logged with a stack trace and the request id, and the client sees only
  "Internal error" with `extensions { code: INTERNAL, requestId }`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionContext

from services.errors import DomainError, ErrorCode

log = logging.getLogger("talkative.graphql")

ErrorCodeType = strawberry.enum(
    ErrorCode, name="ErrorCode", description="Stable error codes. Never renamed; new ones may be added."
)


@strawberry.type(name="Error", description="An expected failure the client can act on.")
class Error:
    code: ErrorCode
    message: str
    field: str | None = strawberry.field(default=None, description="The input field at fault, if any.")
    retry_after_seconds: int | None = strawberry.field(
        default=None, description="For RATE_LIMITED: seconds to wait before trying again."
    )

    @classmethod
    def from_domain(cls, exc: DomainError) -> Error:
        return cls(code=exc.code, message=exc.message, field=exc.field, retry_after_seconds=exc.retry_after)


class DomainErrorHandler(strawberry.ExceptionHandler[DomainError, Error]):
    """Converts DomainError into the `Error` member of a field's result union."""

    def handle(self, exception: DomainError, *, field: Any, info: Any) -> Error:
        return Error.from_domain(exception)


def _request_id(execution_context: ExecutionContext) -> str:
    return str(getattr(execution_context.context, "request_id", "") or "-")


def is_expected(error: GraphQLError) -> bool:
    """Syntax/validation errors, permission errors and DomainErrors are shown as they are."""
    original = error.original_error
    return original is None or isinstance(original, DomainError | GraphQLError)


class ErrorPolicy(SchemaExtension):
    """Masks unexpected errors (with the request id) and adds `extensions.code` to expected ones."""

    def on_operation(self) -> Iterator[None]:
        self._streamed = False
        yield
        if not self._streamed:  # streamed results (websocket operations) were handled one by one
            self._process_result(self.execution_context.result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        """Each result sent over a websocket, before it leaves."""
        self._streamed = True
        self._process_result(result)
        yield

    def _process_result(self, result: Any) -> None:
        errors = getattr(result, "errors", None)
        if result is not None and errors:
            result.errors = [self._process(e) for e in errors]

    def _process(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, DomainError):
            error.extensions = {**(error.extensions or {}), "code": original.code.value}
            return error
        if is_expected(error):
            return error
        request_id = _request_id(self.execution_context)
        return GraphQLError(
            f"Internal error (request id {request_id})", nodes=error.nodes, source=error.source,
            positions=error.positions, path=error.path,
            extensions={"code": ErrorCode.INTERNAL.value, "requestId": request_id},
        )


def log_errors(errors: list[GraphQLError], execution_context: ExecutionContext | None) -> None:
    """Expected errors are a client's business: debug level. Unexpected ones: error level with the trace."""
    request_id = _request_id(execution_context) if execution_context else "-"
    for error in errors:
        if is_expected(error):
            log.debug("graphql error: %s", error.message, extra={"request_id": request_id})
            continue
        original = error.original_error
        log.error(
            "unexpected error in %s: %s", ".".join(str(p) for p in error.path or ()) or "operation", original,
            exc_info=(type(original), original, original.__traceback__) if original else None,
            extra={"request_id": request_id},
        )
