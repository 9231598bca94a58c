"""Fixtures of the container tier: both images built once per session into a podman store of the session's own."""

from __future__ import annotations

import pytest

from tests.support.podman import BuiltImages, session_images


@pytest.fixture(scope="session")
def images(request: pytest.FixtureRequest) -> BuiltImages:
    return session_images(request)
