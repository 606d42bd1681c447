"""What the user set last, and their named presets, kept between runs.

Both hold ``session.SessionState`` values, stored as JSON in the user's config directory
(``$LIVEMOTION_CONFIG_DIR``, else the platform's, e.g. ``~/.config/livemotion``; the folder 0700,
the files 0600): ``settings.json`` (the last emotion, intensity, AUs, library or profile, bypass,
whether editing was on, and the last webcam with its size, frame rate and mirroring) and
``presets.json`` (name -> an expression).

- A hand-edited or damaged ``settings.json`` never stops livemotion: each value is checked on
  its own by the session's validator, and what is wrong (a type, a range, a deleted profile, a
  file that is not JSON) is left out with one warning naming the file and the key.
- A damaged preset is refused when it is used, with the file and the reason.
- Every change is a read-modify-write under a lock file, so two processes saving at once both
  keep their change. Settings that cannot be saved are a warning; presets that cannot be saved
  are an error (the user asked for exactly that).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock
import platformdirs

from ..errors import InvalidRequest
from ..expression.profiles import check_name, profile_path
from ..io.files import private_folder, write_whole
from .session import EXPRESSION_KEYS, REMEMBERED_KEYS, SessionState

log = logging.getLogger(__name__)

_PRESET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _-]{0,39}$")
_LOCK_SECONDS = 10.0  # longest wait for another livemotion's save; saves take milliseconds
_warned: set[tuple[str, str]] = set()  # (file, key) warned about in this process: once is enough


def config_dir() -> Path:
    """The user's livemotion config folder: ``$LIVEMOTION_CONFIG_DIR``, else the platform's."""
    return Path(os.environ.get("LIVEMOTION_CONFIG_DIR") or platformdirs.user_config_dir("livemotion", appauthor=False))


def _warn_once(path: Path, key: str, reason: str) -> None:
    if (str(path), key) not in _warned:
        _warned.add((str(path), key))
        log.warning("ignoring %s in %s: %s; livemotion starts without it", key, path, reason)


def _read(name: str) -> dict[str, Any]:
    path = config_dir() / name
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        _warn_once(path, "everything", f"it cannot be read ({reason}); it is rewritten at the next change")
        return {}
    if not isinstance(data, dict):
        _warn_once(path, "everything", "it holds no settings")
        return {}
    return data


@contextmanager
def _locked() -> Iterator[Path]:
    """The config folder (made user-only), held against other livemotion processes' changes."""
    folder = private_folder(config_dir())
    try:
        with filelock.FileLock(str(folder / ".lock"), timeout=_LOCK_SECONDS):
            yield folder
    except filelock.Timeout:
        raise OSError(f"another livemotion held {folder / '.lock'} for {_LOCK_SECONDS:g} s") from None


def _update(name: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Read ``name``, apply ``change``, write it back whole, all under the lock; ``OSError`` if not."""
    with _locked() as folder:
        data = change(_read(name))
        write_whole(folder / name, json.dumps(data, indent=1, sort_keys=True).encode(), private=True)


def _save_settings(change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    try:
        _update("settings.json", change)
    except OSError as error:
        log.warning("cannot save settings.json in %s (%s): settings are not remembered", config_dir(), error)


def _usable_library(values: dict[str, Any]) -> str | None:
    """Why the remembered library or profile cannot be used now (None: it can)."""
    if values.get("profile"):
        try:
            if not profile_path(check_name(values["profile"])).is_file():
                return f"profile {values['profile']!r} no longer exists"
        except InvalidRequest as error:
            return str(error)
    if values.get("library") and not Path(values["library"]).is_file():
        return f"library {values['library']!r} no longer exists"
    return None


def last_settings() -> dict[str, Any]:
    """The last settings that are still valid, as session values; {} when none. Each key is
    checked on its own, so one bad value costs only itself (with a warning naming it)."""
    path = config_dir() / "settings.json"
    valid: dict[str, Any] = {}
    for key, value in _read("settings.json").items():
        if key not in REMEMBERED_KEYS:
            continue
        try:
            SessionState.from_values({key: value})
        except (InvalidRequest, RecursionError) as error:
            _warn_once(path, key, str(error) if isinstance(error, InvalidRequest) else "nested too deeply")
            continue
        valid[key] = value
    gone = _usable_library(valid)
    if gone:
        _warn_once(path, "library" if valid.get("library") else "profile", gone)
        valid.pop("library", None)
        valid.pop("profile", None)
    return valid


def remember(state: SessionState) -> None:
    """Keep ``state``'s remembered keys (``session.REMEMBERED_KEYS``) for the next start."""
    _save_settings(lambda data: {**data, **state.values(REMEMBERED_KEYS)})


def remember_profile(name: str) -> None:
    """Start the next live run and ``serve`` with profile ``name`` (a calibration just made it), its
    mouth drawn as a new profile's is by default (the choice is about that profile's takes)."""
    _save_settings(lambda data: {**data, "profile": name, "library": None, "mouth": SessionState().mouth})


def hint_dismissed(hint: str) -> bool:
    """True when the user dismissed ``hint`` (e.g. "calibrate": the advice to make a profile)."""
    dismissed = _read("settings.json").get("dismissed_hints")
    return isinstance(dismissed, list) and hint in dismissed


def dismiss_hint(hint: str, dismissed: bool = True) -> None:
    """Stop (or, ``dismissed`` False, start again) showing ``hint``, in the app and on the command line."""
    def change(data: dict[str, Any]) -> dict[str, Any]:
        before = data.get("dismissed_hints")
        hints = {h for h in before if isinstance(h, str)} if isinstance(before, list) else set()
        return {**data, "dismissed_hints": sorted(hints | {hint} if dismissed else hints - {hint})}

    _save_settings(change)


def last_camera() -> dict[str, Any]:
    """The last webcam a live run used: {"source": "webcam:1", "size": [w, h] | None, "fps": .., "mirror": ..};
    {} when none, or when what is stored is not one (with a warning)."""
    camera = _read("settings.json").get("camera")
    if camera is None:
        return {}
    size, fps = camera.get("size") if isinstance(camera, dict) else None, camera.get("fps") if isinstance(camera, dict) else None
    valid = (isinstance(camera, dict) and isinstance(camera.get("source"), str)
             and (size is None or (isinstance(size, list) and len(size) == 2
                                   and all(isinstance(v, int) and 16 <= v <= 7680 for v in size)))
             and (fps is None or (isinstance(fps, (int, float)) and 1 <= fps <= 240))
             and isinstance(camera.get("mirror", False), bool))
    if not valid:
        _warn_once(config_dir() / "settings.json", "camera", "it is not a webcam with a size, frame rate and mirroring")
        return {}
    return camera


def remember_camera(camera: dict[str, Any]) -> None:
    """Keep the webcam a live run used, with its size, frame rate and mirroring."""
    _save_settings(lambda data: {**data, "camera": camera})


def check_preset_name(name: str) -> str:
    """``name`` if a preset may be called so, else ``InvalidRequest`` saying what is allowed."""
    if not _PRESET_NAME.match(name):
        raise InvalidRequest(f"preset name {name!r} is not allowed: use 1-40 letters, digits, spaces, '-' or '_'")
    return name


def presets() -> dict[str, dict[str, Any]]:
    """The stored presets, {name: expression values} (entries that are not even a mapping left out)."""
    return {name: values for name, values in _read("presets.json").items() if isinstance(values, dict)}


def preset(name: str) -> dict[str, Any]:
    """The preset as session values; ``InvalidRequest`` for a missing or damaged one."""
    stored = _read("presets.json")
    found = stored.get(name)
    if found is None:
        raise InvalidRequest(f"no preset {name!r} (presets: {', '.join(presets()) or 'none yet'}): save one with "
                             f"`livemotion presets save {name} --emotion ...`")
    values = {key: value for key, value in found.items() if key in EXPRESSION_KEYS} if isinstance(found, dict) else None
    try:
        if values is None:
            raise InvalidRequest("it is not a set of expression values")
        SessionState.from_values(values)
    except (InvalidRequest, RecursionError) as error:
        raise InvalidRequest(f"preset {name!r} in {config_dir() / 'presets.json'} is damaged ({error}): save it "
                             f"again with `livemotion presets save {name} ...` or delete it") from None
    return values


def _change_presets(change: Callable[[dict[str, Any]], dict[str, Any]], doing: str) -> None:
    try:
        _update("presets.json", change)
    except OSError as error:
        raise InvalidRequest(f"cannot {doing} in {config_dir()}: {getattr(error, 'strerror', None) or error}. "
                             "Check that the folder is yours and writable.") from None


def save_preset(name: str, state: SessionState) -> None:
    """Keep ``state``'s expression (``session.EXPRESSION_KEYS``) under ``name``; ``InvalidRequest`` if it cannot be saved."""
    check_preset_name(name)
    _change_presets(lambda stored: {**stored, name: state.values(EXPRESSION_KEYS)}, f"save preset {name!r}")


def delete_preset(name: str) -> None:
    """Remove preset ``name``; ``InvalidRequest`` if there is none or it cannot be removed."""
    if name not in _read("presets.json"):
        raise InvalidRequest(f"no preset {name!r}: `livemotion presets` lists them")
    _change_presets(lambda stored: {key: value for key, value in stored.items() if key != name},
                    f"delete preset {name!r}")
