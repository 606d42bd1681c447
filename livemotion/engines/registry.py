"""The engine registry: ``@register_engine("name")`` on an ``nn.Module`` makes it available by name."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import InvalidRequest

_ENGINES: dict[str, Callable[..., torch.nn.Module]] = {}


def register_engine(name: str) -> Callable[[type[torch.nn.Module]], type[torch.nn.Module]]:
    """Class decorator: make the engine available as ``name`` to ``create_engine`` and the backends."""
    def add(cls: type[torch.nn.Module]) -> type[torch.nn.Module]:
        _ENGINES[name] = cls
        return cls

    return add


def create_engine(name: str, **options: object) -> torch.nn.Module:
    """A new instance of the engine registered as ``name``, in eval mode."""
    if name not in _ENGINES:
        raise InvalidRequest(f"unknown engine {name!r}: available are {', '.join(sorted(_ENGINES))}")
    return _ENGINES[name](**options).eval()


def available_engines() -> list[str]:
    """Names of the registered engines."""
    return sorted(_ENGINES)
