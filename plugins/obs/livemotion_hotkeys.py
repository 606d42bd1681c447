"""livemotion hotkeys for OBS (Tools -> Scripts -> +, this file).

Registers OBS hotkeys (Settings -> Hotkeys, "livemotion: ...") for each emotion, off, bypass and
intensity up/down, and shows whether a `livemotion serve` answers. It is a client of livemotion's
JSON control API over a WebSocket, built on the `websockets` library: OBS's Python needs it
(`python3 -m pip install websockets` for the Python that OBS uses, set in Tools -> Scripts ->
Python Settings). Nothing else of livemotion is imported, so OBS needs no livemotion install.

The part that talks to livemotion (``Remote``) is plain Python and tested against a real server
(tests/test_client.py); the OBS glue below it (``script_*`` functions, ``obspython``) runs only
inside OBS and is not exercised by the test suite.
"""

from __future__ import annotations

import json
import threading
from typing import Any

EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised", "fearful", "disgusted", "contemptuous")
INTENSITY_STEP = 0.1


class Remote:
    """One livemotion instance's control API: each call sends one message and returns the reply."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, token: str = "", timeout: float = 2.0):
        self.url, self.token, self.timeout = f"ws://{host}:{port}/ws", token, timeout
        self.status = "not connected yet"

    def send(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """The reply, or None when livemotion cannot be reached (``status`` then says why)."""
        from websockets.sync.client import connect

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        try:
            with connect(self.url, additional_headers=headers, open_timeout=self.timeout) as socket:
                socket.send(json.dumps(message))
                reply = json.loads(socket.recv(timeout=self.timeout))
        except Exception as error:  # OBS must never see a hotkey raise: say it in the status instead
            self.status = f"livemotion not reachable at {self.url}: {error}"
            return None
        if reply.get("type") == "error":
            self.status = f"livemotion refused it: {reply['error']}"
            return None
        self.status = (f"connected: {reply.get('emotion')} at {reply.get('intensity')}"
                       f"{' (bypass)' if reply.get('bypass') else ''}{'' if reply.get('active') else ' (off)'}")
        return reply

    def emotion(self, name: str) -> dict[str, Any] | None:
        return self.send({"type": "set", "emotion": name})

    def off(self) -> dict[str, Any] | None:
        return self.send({"type": "set", "active": False})

    def toggle_bypass(self) -> dict[str, Any] | None:
        state = self.send({"type": "get"})
        return None if state is None else self.send({"type": "set", "bypass": not state["bypass"]})

    def nudge_intensity(self, step: float) -> dict[str, Any] | None:
        state = self.send({"type": "get"})
        if state is None:
            return None
        return self.send({"type": "set", "intensity": round(min(1.0, max(0.0, state["intensity"] + step)), 2)})


# ---- OBS glue (runs inside OBS only) -------------------------------------------------------------
_remote = Remote()
_hotkeys: dict[str, Any] = {}


def _actions() -> dict[str, tuple[str, Any]]:
    actions = {f"livemotion_{e}": (f"livemotion: {e}", lambda e=e: _remote.emotion(e)) for e in EMOTIONS}
    actions["livemotion_off"] = ("livemotion: off (no edit)", _remote.off)
    actions["livemotion_bypass"] = ("livemotion: bypass on/off", _remote.toggle_bypass)
    actions["livemotion_stronger"] = ("livemotion: intensity up", lambda: _remote.nudge_intensity(INTENSITY_STEP))
    actions["livemotion_weaker"] = ("livemotion: intensity down", lambda: _remote.nudge_intensity(-INTENSITY_STEP))
    return actions


def script_description() -> str:
    return ("<b>livemotion hotkeys</b><br>Emotions, off, bypass and intensity as OBS hotkeys "
            "(Settings → Hotkeys). Needs <code>livemotion serve</code> running and the <code>websockets</code> "
            "package in OBS's Python.<br>Status: " + _remote.status)


def script_properties() -> Any:
    import obspython as obs

    props = obs.obs_properties_create()
    obs.obs_properties_add_text(props, "host", "livemotion host", obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_int(props, "port", "port", 1, 65535, 1)
    obs.obs_properties_add_text(props, "token", "token (only off loopback)", obs.OBS_TEXT_PASSWORD)
    obs.obs_properties_add_button(props, "check", "Check connection",
                                  lambda *_: bool(_remote.send({"type": "get"})) or True)
    return props


def script_defaults(settings: Any) -> None:
    import obspython as obs

    obs.obs_data_set_default_string(settings, "host", "127.0.0.1")
    obs.obs_data_set_default_int(settings, "port", 8080)


def script_update(settings: Any) -> None:
    import obspython as obs

    global _remote
    _remote = Remote(obs.obs_data_get_string(settings, "host"), obs.obs_data_get_int(settings, "port"),
                     obs.obs_data_get_string(settings, "token"))


def _poll() -> None:  # the connection state, refreshed every 5 s off OBS's UI thread
    threading.Thread(target=lambda: _remote.send({"type": "get"}), daemon=True).start()


def script_load(settings: Any) -> None:
    import obspython as obs

    obs.timer_add(_poll, 5000)
    for name, (description, action) in _actions().items():
        def pressed(is_down: bool, action: Any = action) -> None:
            if is_down:  # off the UI thread: a slow or absent server must not stall OBS
                threading.Thread(target=action, daemon=True).start()

        _hotkeys[name] = obs.obs_hotkey_register_frontend(name, description, pressed)
        saved = obs.obs_data_get_array(settings, name)
        obs.obs_hotkey_load(_hotkeys[name], saved)
        obs.obs_data_array_release(saved)


def script_unload() -> None:
    import obspython as obs

    obs.timer_remove(_poll)


def script_save(settings: Any) -> None:
    import obspython as obs

    for name, hotkey in _hotkeys.items():
        saved = obs.obs_hotkey_save(hotkey)
        obs.obs_data_set_array(settings, name, saved)
        obs.obs_data_array_release(saved)
