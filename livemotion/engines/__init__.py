"""Generator engines: the torch modules that turn a face's landmark motion into an edit, and the backends that run them.

This package is the engine *code*. The engines' build *recipes* (ONNX export settings, TensorRT
profiles) are the ``engines/*.toml`` files at the repository's top, installed inside this package
as ``livemotion.engines.recipes`` (see ``pyproject.toml``).

A new engine is one file: an ``nn.Module`` decorated with ``@register_engine("name")``
(``registry``), imported below. Flow engines (``warp``) take (B, N, 2) control points in crop
pixels and return (B, 2, G, G) a backward flow over the crop, and have a recipe
``engines/<name>.toml`` for the backends; the mouth generator (``mouth``) redraws the mouth crop.
"""

from __future__ import annotations

from . import mouth, warp  # noqa: F401  (registers the built-in engines)
from .registry import available_engines, create_engine, register_engine

__all__ = ["available_engines", "create_engine", "register_engine"]
