"""Queries by area, as plain async functions over an AsyncSession. Services compose them."""
