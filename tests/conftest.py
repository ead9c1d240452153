"""Shared fixtures: real servers (SeaweedFS S3, aiosmtpd) live in tests.support.servers."""

pytest_plugins = ["tests.foundation.fixtures", "tests.support.servers", "tests.support.oidc"]
