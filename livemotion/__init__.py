"""livemotion: a real-time emotion filter for video calls."""

__version__ = "0.1.0"
