"""Strawberry output and input types, one module per area. Map rows with `from_model`; never expose ORM objects."""
