"""Document limits: tokens, depth, aliases and an estimated cost (fields times page sizes).

Rule classes are built once per schema: strawberry's ValidationCache keys on them, so building them per
request would make every request a cache miss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
)
from graphql import parse as graphql_parse
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import IgnoreContext
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.schema import validate_document

from services.errors import ErrorCode

PAGE_ARGUMENTS = ("first", "last")


def _is_introspection(ctx: IgnoreContext) -> bool:
    # GraphiQL's introspection query is deeper than any real query; the token limit still bounds it.
    return ctx.field_name.startswith("__")


def selection_cost(
    selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode], default_page: int,
    seen: frozenset[str] = frozenset(),
) -> int:
    """1 per field, children multiplied by the field's `first`/`last` (a variable counts as a full page)."""
    if selection_set is None:
        return 0
    total = 0
    for node in selection_set.selections:
        if isinstance(node, FieldNode):
            multiplier = 1
            for arg in node.arguments or ():
                if arg.name.value in PAGE_ARGUMENTS:
                    value = arg.value
                    multiplier = max(1, int(value.value)) if isinstance(value, IntValueNode) else default_page
            total += 1 + multiplier * selection_cost(node.selection_set, fragments, default_page, seen)
        elif isinstance(node, InlineFragmentNode):
            total += selection_cost(node.selection_set, fragments, default_page, seen)
        elif isinstance(node, FragmentSpreadNode):
            name = node.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:  # cycles are reported by another rule
                total += selection_cost(fragment.selection_set, fragments, default_page, seen | {name})
    return total


def cost_rule(max_cost: int, default_page: int) -> type[ValidationRule]:
    class CostLimit(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            fragments = {
                d.name.value: d for d in self.context.document.definitions if isinstance(d, FragmentDefinitionNode)
            }
            cost = selection_cost(node.selection_set, fragments, default_page)
            if cost > max_cost:
                self.report_error(GraphQLError(
                    f"Query cost {cost} exceeds the limit of {max_cost}; ask for fewer fields or smaller pages.",
                    node, extensions={"code": ErrorCode.QUERY_TOO_COMPLEX.value},
                ))

    return CostLimit


# Shared by every request (and schema): the key includes the schema and the rule classes.
_cached_parse = lru_cache(maxsize=512)(graphql_parse)
_cached_validate = lru_cache(maxsize=512)(validate_document)


class DocumentLimits(SchemaExtension):
    """Token limit, extra validation rules, and cached parsing and validation, in one extension.

    One extension rather than strawberry's four (MaxTokensLimiter, AddValidationRules, ParserCache,
    ValidationCache): each extension costs hook calls on every request.
    """

    def __init__(self, *, max_tokens: int, rules: Sequence[type[ASTValidationRule]]) -> None:
        super().__init__()
        self.max_tokens = max_tokens
        self.rules = tuple(rules)

    def on_operation(self) -> Iterator[None]:
        ec = self.execution_context
        ec.parse_options["max_tokens"] = self.max_tokens
        ec.validation_rules = ec.validation_rules + self.rules
        yield

    def on_parse(self) -> Iterator[None]:
        ec = self.execution_context
        ec.graphql_document = _cached_parse(ec.query, **ec.parse_options)
        yield

    def on_validate(self) -> Iterator[None]:
        ec = self.execution_context
        ec.pre_execution_errors = _cached_validate(ec.schema._schema, ec.graphql_document, ec.validation_rules)
        yield


def limit_extensions(
    *, max_tokens: int, max_depth: int, max_aliases: int, max_cost: int, max_page_size: int
) -> list[Callable[[], SchemaExtension]]:
    """The extension factory enforcing the document limits (rule classes built once, for the cache)."""
    rules: list[type[ASTValidationRule]] = [
        depth_rule(max_depth, _is_introspection, None),
        alias_rule(max_aliases),
        cost_rule(max_cost, max_page_size),
    ]
    return [lambda: DocumentLimits(max_tokens=max_tokens, rules=rules)]
