"""``spe serve``: SPE as an HTTP service beside the CRM.

:func:`spe_serve.app.create_app` builds the ASGI application (Starlette) over an
:class:`~spe_core.engine.Engine`; :func:`spe_serve.app.app_from_config` builds it
from a ``spe.toml``. The JSON API lives under ``/api/v1`` and is described at
``/openapi.json`` (OpenAPI 3.0.3). Callers authenticate with bearer tokens made by
``spe token create`` (:class:`Tokens`). The application needs
``pip install 'spe-sdk[serve]'``; the tokens do not (``spe token`` works without it).
"""

from __future__ import annotations

from spe_serve.tokens import TokenInfo, TokenKind, Tokens

__all__ = ["TokenInfo", "TokenKind", "Tokens"]
