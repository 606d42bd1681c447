"""Engine build recipes (``*.toml``), installed as ``livemotion.engines.recipes``: data, no code.

The engine code is ``livemotion/engines/``; see ``README.md`` beside this file.
"""
