"""Calibration profiles: a person's own expression library, kept in their user data directory.

A profile is an ``ExpressionLibrary`` measured on one person only (``measure_people`` with
``mouths``): their neutral face as the template, each emotion's motion, shading, mouth interior
and face (the exemplar the editor blends in on the skin) from their own frames.
It lives in ``profiles_dir()`` (``$LIVEMOTION_DATA_DIR/profiles``, else the platform's user data
directory, e.g. ``~/.local/share/livemotion/profiles``), readable by the user only, and is never
sent anywhere. Emotions the person skipped are filled from the shipped library when the profile
is loaded, so a better shipped library improves them later.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidRequest
from ..io.files import FolderIndex, data_dir, private_folder
from .library import LIBRARY_EMOTIONS, ExpressionLibrary, load_library
from .measure import measure_people
from .styles import attach_styles

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
NAME_RULE = "1-40 letters, digits, '-' or '_', starting with a letter or digit"
CALIBRATION_FRAMES = 300  # frames of each calibration clip measured (10 s of neutral talk at 30 fps)


@dataclass(frozen=True)
class ProfileInfo:
    """A stored profile as the lists show it: name, file, the emotions measured on the person, size."""

    name: str
    path: Path
    emotions: tuple[str, ...]  # measured on the person (the others come from the shipped library)
    size_bytes: int
    own_mouth: tuple[str, ...] = ()  # where ``--mouth auto`` shows the person's takes' mouth (``takes_mouth_emotions``)


def profiles_dir() -> Path:
    """Where profiles live: ``$LIVEMOTION_DATA_DIR/profiles``, else the user data directory's."""
    return data_dir("profiles")


def libraries_dir() -> Path:
    """Where the control API takes expression library files from: ``$LIVEMOTION_DATA_DIR/libraries``,
    else the user data directory's (a server never opens a library elsewhere on a client's word)."""
    return data_dir("libraries")


def check_name(name: str) -> str:
    """``name`` if a profile may be called so, else ``InvalidRequest`` saying what is allowed."""
    if not _NAME.match(name):
        raise InvalidRequest(f"profile name {name!r} is not allowed: use {NAME_RULE}")
    return name


def profile_path(name: str) -> Path:
    """Where profile ``name`` is stored."""
    return profiles_dir() / f"{check_name(name)}.npz"


def profile_mouth_path(name: str) -> Path:
    """Where profile ``name``'s own mouth generator is kept when its calibration fine-tuned one
    (``calibrate --mouth``); ``run --mouth learned`` with the profile uses it."""
    return profiles_dir() / f"{check_name(name)}.mouth.pt"


def _profile_info(path: Path) -> ProfileInfo | None:
    try:
        library = load_library(path)
    except InvalidRequest:
        return None
    if not library.personal:
        return None
    emotions = tuple(e for e, own in zip(LIBRARY_EMOTIONS, library.measured) if own)
    return ProfileInfo(path.stem, path, emotions, path.stat().st_size, library.takes_mouth_emotions())


_PROFILES = FolderIndex(_profile_info)


def list_profiles() -> list[ProfileInfo]:
    """The profiles stored for this user, by name; files that are not profiles are left out.
    Each file is read once, and again only when it changes (``FolderIndex``)."""
    return _PROFILES(profiles_dir())


def load_profile(name: str) -> ExpressionLibrary:
    """The profile ``name``, its missing emotions filled from the shipped library."""
    path = profile_path(name)
    if not path.exists():
        known = ", ".join(info.name for info in list_profiles()) or "none yet"
        raise InvalidRequest(f"no profile {name!r} (profiles: {known}): make it with "
                             f"`livemotion calibrate --profile {name} --source webcam`")
    try:
        library = load_library(path)
    except InvalidRequest as error:
        raise InvalidRequest(f"profile {name!r} cannot be read ({error}); make it anew with `livemotion calibrate "
                             f"--profile {name} --force ...` or remove it with `livemotion profiles delete {name}`") from None
    if not library.personal:
        raise InvalidRequest(f"{path} is not a calibration profile (it describes no single person): "
                             f"make it anew with `livemotion calibrate --profile {name}`")
    return library.with_fallback(load_library())


def save_profile(name: str, library: ExpressionLibrary, overwrite: bool = False) -> Path:
    """Store ``library`` as profile ``name``: user-only permissions, written whole or not at all."""
    path = profile_path(name)
    if not library.personal:
        raise InvalidRequest("a profile is one person's library: build it with `livemotion calibrate`")
    if path.exists() and not overwrite:
        raise InvalidRequest(f"profile {name!r} exists: choose another name, or replace it with --force")
    private_folder(path.parent)
    library.save(path, private=True)
    profile_mouth_path(name).unlink(missing_ok=True)  # fine-tuned on the takes it replaces
    return path


def delete_profile(name: str) -> Path:
    """Remove profile ``name``; its path, or ``InvalidRequest`` if there is none."""
    path = profile_path(name)
    if not path.exists():
        raise InvalidRequest(f"no profile {name!r}: `livemotion profiles` lists them")
    path.unlink()
    profile_mouth_path(name).unlink(missing_ok=True)
    return path


def calibrate_from_clips(neutral: str | Path, clips: Mapping[str, str | Path],
                         progress: Callable[[str], None] | None = None) -> ExpressionLibrary:
    """A personal library from one person's clips: ``neutral`` (talking calmly) and {emotion: clip}."""
    unknown = [e for e in clips if e not in LIBRARY_EMOTIONS]
    if unknown:
        raise InvalidRequest(f"unknown emotion(s) {', '.join(unknown)}: use {', '.join(LIBRARY_EMOTIONS)}")
    if not clips:
        raise InvalidRequest("a profile needs at least one emotion clip besides the neutral one")
    return measure_people({"you": {"neutral": neutral, **clips}}, max_frames=CALIBRATION_FRAMES, mouths=True,
                          progress=progress)


def resolve_library(library: str | None = None, profile: str | None = None) -> ExpressionLibrary:
    """The library a run uses: a profile, a library file, or the shipped one; with the stored
    reference styles (``styles``) as extra emotions."""
    if library and profile:
        raise InvalidRequest("choose a library file or a profile, not both")
    return attach_styles(load_profile(profile) if profile else load_library(library))
