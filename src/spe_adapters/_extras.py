"""An adapter whose extra is not installed still registers, as a stand-in that says
which extra to install (instead of breaking every adapter's registration)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from spe_core.errors import ConfigError

__all__ = ["missing_extra"]


def missing_extra(crm: str, module: str | None) -> type[Any]:
    """A stand-in adapter class for ``crm`` whose ``from_config`` says that ``module``
    (a library of the ``crm`` extra) is not installed, and how to install it."""

    class MissingExtra:
        name = crm

        @classmethod
        def from_config(cls, options: Mapping[str, Any]) -> NoReturn:
            raise ConfigError(
                f"the {crm} adapter needs the Python package {module or 'its libraries'}, "
                "which is not installed.",
                f"pip install 'spe-sdk[{crm}]'",
            )

    MissingExtra.__qualname__ = f"MissingExtra[{crm}]"
    return MissingExtra
