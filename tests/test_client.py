"""`livemotion control`: a shell client of the JSON control API, against a real server on loopback."""

import asyncio
import importlib.util
from pathlib import Path

import pytest
from serving import free_port, serving

from livemotion.cli import main
from livemotion.server.app import ServerConfig
from livemotion.server.client import ControlClientError, control_url, send


def _in_thread(call):
    return asyncio.get_running_loop().run_in_executor(None, call)  # the client runs its own event loop


def test_the_shell_client_sets_toggles_and_reads_the_state(capsys):
    port = free_port()

    async def body(server, url):
        base = ["control", "--port", str(port)]
        codes = [await _in_thread(lambda: main(base[:1] + ["set", "--emotion", "sad", "--intensity", "0.5"] + base[1:])),
                 await _in_thread(lambda: main(base[:1] + ["bypass"] + base[1:]))]
        after_toggle = server.controls.state.bypass
        codes.append(await _in_thread(lambda: main(base[:1] + ["bypass", "off"] + base[1:])))
        codes.append(await _in_thread(lambda: main(base[:1] + ["off"] + base[1:])))
        codes.append(await _in_thread(lambda: main(base[:1] + ["reset-neutral"] + base[1:])))
        return codes, after_toggle, server.controls.state

    codes, after_toggle, state = asyncio.run(serving(ServerConfig(port=port), body))
    assert codes == [0, 0, 0, 0, 0]
    assert after_toggle is True and state.bypass is False
    assert state.emotion == "sad" and state.intensity == 0.5 and state.active is False
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("active=True emotion=sad intensity=0.5 bypass=False")


def test_no_instance_and_a_missing_token_each_give_one_clear_line(capsys):
    port = free_port()
    with pytest.raises(ControlClientError, match="no livemotion instance answers.*livemotion serve"):
        send({"type": "get"}, url=control_url(port=port))
    assert main(["control", "get", "--port", str(port)]) == 2
    assert "no livemotion instance" in capsys.readouterr().err

    async def body(server, url):
        def without_token():
            with pytest.raises(ControlClientError, match="needs its token"):
                send({"type": "get"}, url=control_url(port=port))
            return send({"type": "get"}, url=control_url(port=port), token=server.config.token)

        return await _in_thread(without_token)

    config = ServerConfig(host="127.0.0.1", port=port, token="s3cret")
    assert asyncio.run(serving(config, body))["type"] == "state"


def _obs_script():
    """The OBS hotkey script, loaded as OBS loads it (a file, not a package). Its OBS glue needs OBS's
    ``obspython`` and is not run here; its ``Remote``, which all hotkeys call, is run for real."""
    path = Path(__file__).resolve().parents[1] / "plugins" / "obs" / "livemotion_hotkeys.py"
    spec = importlib.util.spec_from_file_location("livemotion_hotkeys", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_obs_hotkeys_drive_a_running_server():
    script = _obs_script()
    port = free_port()
    assert script.Remote(port=port).emotion("happy") is None  # nothing running: no exception, a status

    async def body(server, url):
        def press_hotkeys():
            remote = script.Remote(port=port)
            remote.emotion("angry")
            remote.nudge_intensity(-script.INTENSITY_STEP)
            remote.toggle_bypass()
            bypassed = server.controls.state.bypass
            remote.toggle_bypass()
            remote.off()
            return remote.status, bypassed

        return await _in_thread(press_hotkeys), server.controls.state

    (status, bypassed), state = asyncio.run(serving(ServerConfig(port=port), body))
    assert bypassed is True and state.bypass is False
    assert state.emotion == "angry" and state.intensity == 0.9 and state.active is False
    assert status.startswith("connected: angry at 0.9") and status.endswith("(off)")
