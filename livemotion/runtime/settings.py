"""What the user set last, and their named presets, kept between runs.

Both hold ``session.SessionState`` values, stored as JSON in the user's config directory
(``$LIVEMOTION_CONFIG_DIR``, else the platform's, e.g. ``~/.config/livemotion``), readable by the
user only: ``settings.json`` (the last emotion, intensity, AUs, library or profile, bypass,
whether editing was on, and the last webcam with its size, frame rate and mirroring) and
``presets.json`` (name -> emotion, intensity, AUs). Restoring one
sends it through the same schema as any control message, so a hand-edited or damaged file is
refused with a warning and changes nothing; it never stops livemotion from starting.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import platformdirs

from ..errors import InvalidRequest
from ..io.files import write_whole
from .session import EXPRESSION_KEYS, REMEMBERED_KEYS, SessionState

log = logging.getLogger(__name__)

_PRESET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _-]{0,39}$")


def config_dir() -> Path:
    """The user's livemotion config folder: ``$LIVEMOTION_CONFIG_DIR``, else the platform's."""
    return Path(os.environ.get("LIVEMOTION_CONFIG_DIR") or platformdirs.user_config_dir("livemotion", appauthor=False))


def _read(name: str) -> dict[str, Any]:
    path = config_dir() / name
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        log.warning("ignoring %s: it cannot be read (%s); it is rewritten at the next change", path, error)
        return {}
    if not isinstance(data, dict):
        log.warning("ignoring %s: it holds no settings", path)
        return {}
    return data


def _write(name: str, data: dict[str, Any]) -> None:
    """Whole or not at all, user-only; a settings file that cannot be written is a warning, not a failure."""
    folder = config_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_whole(folder / name, json.dumps(data, indent=1, sort_keys=True).encode(), private=True)
    except OSError as error:
        log.warning("cannot save %s in %s (%s): settings are not remembered", name, folder, error)


def last_settings() -> dict[str, Any]:
    """The last settings as a control ``set`` message (without ``type``); {} when none."""
    return {key: value for key, value in _read("settings.json").items() if key in REMEMBERED_KEYS}


def remember(state: SessionState) -> None:
    """Keep ``state``'s remembered keys (``session.REMEMBERED_KEYS``) for the next start."""
    _write("settings.json", {**_read("settings.json"), **state.values(REMEMBERED_KEYS)})


def last_camera() -> dict[str, Any]:
    """The last webcam a live run used: {"source": "webcam:1", "size": [w, h] | None, "fps": .., "mirror": ..}."""
    camera = _read("settings.json").get("camera")
    return camera if isinstance(camera, dict) and isinstance(camera.get("source"), str) else {}


def remember_camera(camera: dict[str, Any]) -> None:
    """Keep the webcam a live run used, with its size, frame rate and mirroring."""
    _write("settings.json", {**_read("settings.json"), "camera": camera})


def check_preset_name(name: str) -> str:
    """``name`` if a preset may be called so, else ``InvalidRequest`` saying what is allowed."""
    if not _PRESET_NAME.match(name):
        raise InvalidRequest(f"preset name {name!r} is not allowed: use 1-40 letters, digits, spaces, '-' or '_'")
    return name


def presets() -> dict[str, dict[str, Any]]:
    """The stored presets, {name: expression values}."""
    return {name: values for name, values in _read("presets.json").items() if isinstance(values, dict)}


def preset(name: str) -> dict[str, Any]:
    """The preset as a control ``set`` message (without ``type``)."""
    found = presets().get(name)
    if found is None:
        raise InvalidRequest(f"no preset {name!r} (presets: {', '.join(presets()) or 'none yet'}): save one with "
                             f"`livemotion presets save {name} --emotion ...`")
    return {key: value for key, value in found.items() if key in EXPRESSION_KEYS}


def save_preset(name: str, state: SessionState) -> None:
    """Keep ``state``'s expression (``session.EXPRESSION_KEYS``) under ``name``."""
    stored = presets()
    stored[check_preset_name(name)] = state.values(EXPRESSION_KEYS)
    _write("presets.json", stored)


def delete_preset(name: str) -> None:
    """Remove preset ``name``; ``InvalidRequest`` if there is none."""
    stored = presets()
    if stored.pop(name, None) is None:
        raise InvalidRequest(f"no preset {name!r}: `livemotion presets` lists them")
    _write("presets.json", stored)
