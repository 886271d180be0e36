import pytest


@pytest.fixture(scope="session")
def live_server(django_db_setup, live_server):
    """The live server, started after (so stopped before) the test database, whose
    teardown would otherwise find the server thread still connected to it."""
    return live_server
