"""Pages and scripts served by ``livemotion serve``, installed as ``livemotion.plugins``: data, no code."""
