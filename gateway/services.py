"""What the endpoints share for the app's lifetime, built in the lifespan and kept in ``app.state.services``."""

from __future__ import annotations

import dataclasses
from typing import cast

from starlette.requests import HTTPConnection

from gateway.auth import Authenticator
from gateway.labels import LabelRegistry
from gateway.settings import GatewaySettings
from gateway.upstream import TorchServeClient


@dataclasses.dataclass(frozen=True)
class DemoPage:
    """The demo page and the Content-Security-Policy that allows exactly its inline script and style."""

    html: str
    policy: str


@dataclasses.dataclass(frozen=True)
class Services:
    settings: GatewaySettings
    client: TorchServeClient
    auth: Authenticator
    labels: LabelRegistry
    page: DemoPage


def services_of(connection: HTTPConnection) -> Services:
    """The one place routes and the WebSocket read the app's state from (a Request or a WebSocket)."""
    return cast(Services, connection.app.state.services)
