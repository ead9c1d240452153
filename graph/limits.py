"""Document limits: tokens, depth, aliases and an estimated cost (fields times page sizes).

Rule classes are built once per schema: strawberry's ValidationCache keys on them, so building them per
request would make every request a cache miss.
"""

from __future__ import annotations

from collections.abc import Callable
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
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import IgnoreContext
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule

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


def limit_extensions(
    *, max_tokens: int, max_depth: int, max_aliases: int, max_cost: int, max_page_size: int
) -> list[Callable[[], SchemaExtension]]:
    """Extension factories enforcing the limits, plus parse/validation caches that pay for them."""
    rules: list[type[ASTValidationRule]] = [
        depth_rule(max_depth, _is_introspection, None),
        alias_rule(max_aliases),
        cost_rule(max_cost, max_page_size),
    ]
    return [
        lambda: MaxTokensLimiter(max_token_count=max_tokens),
        lambda: AddValidationRules(rules),
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
    ]
