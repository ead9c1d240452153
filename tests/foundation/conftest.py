"""Foundation tests: the fixtures live in tests.foundation.fixtures so other packages can reuse them."""

from tests.foundation.fixtures import *  # noqa: F403
