"""What the endpoints share for the app's lifetime, built in the lifespan and kept in ``app.state.services``."""

from __future__ import annotations

import dataclasses

from gateway.auth import Authenticator
from gateway.labels import LabelRegistry
from gateway.settings import GatewaySettings
from gateway.upstream import TorchServeClient


@dataclasses.dataclass(frozen=True)
class Services:
    settings: GatewaySettings
    client: TorchServeClient
    auth: Authenticator
    labels: LabelRegistry
