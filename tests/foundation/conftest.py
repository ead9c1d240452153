"""Foundation tests: fixtures come from tests.foundation.fixtures, registered in tests/conftest.py."""
