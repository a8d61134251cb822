"""The API's fixtures (an app on SQLite and PostgreSQL, keys, a flushed broker) for tests here that
check their module's work through the API."""

from tests.api.conftest import *  # noqa: F403  # fixtures are found by name in a conftest's namespace
