"""Generator engines: torch modules that edit an aligned face crop.

A new engine is one file: define an ``nn.Module`` with the ``forward(crop, source, target)``
signature of ``WarpEngine`` and decorate it with ``@register_engine("name")``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

_ENGINES: dict[str, Callable[..., torch.nn.Module]] = {}


def register_engine(name: str) -> Callable[[type[torch.nn.Module]], type[torch.nn.Module]]:
    def add(cls: type[torch.nn.Module]) -> type[torch.nn.Module]:
        _ENGINES[name] = cls
        return cls

    return add


def create_engine(name: str, **options) -> torch.nn.Module:
    if name not in _ENGINES:
        raise ValueError(f"unknown engine {name!r}: available are {', '.join(sorted(_ENGINES))}")
    return _ENGINES[name](**options).eval()


def available_engines() -> list[str]:
    return sorted(_ENGINES)


from . import warp  # noqa: E402,F401  (registers the built-in engines)
