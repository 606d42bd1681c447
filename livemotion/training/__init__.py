"""Training the project's own models on these CPUs: the mouth generator (``mouth``), from
self-supervised pairs of frames of the same person talking, split by person."""
