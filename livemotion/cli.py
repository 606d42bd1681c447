"""Command line: ``livemotion run``, ``serve`` and ``build-engine``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__
from .engines.backends import BACKENDS
from .engines.mouth import shipped_mouth_model
from .errors import InvalidRequest, LivemotionError
from .expression.au import EMOTION_AUS, EMOTIONS
from .expression.controller import MAX_OPENING, ExpressionRequest, Schedule
from .expression.library import LIBRARY_EMOTIONS, TAKES_MOUTH, WIDE_SPEECH
from .expression.pose import MAX_TURN, PoseEdit
from .expression.profiles import profile_mouth_path, resolve_library
from .expression.regions import DRIVEN, EXPRESSION_REGIONS, REGIONS, check_emotion_name, check_regions, parse_source

if TYPE_CHECKING:
    from tqdm import tqdm

    from .expression.drive import Driver
    from .io.sources import CameraOptions
    from .runtime.stats import PipelineStats

SOURCE_HELP = ("what to read: 'demo' (built-in clip, 640x480) or 'demo:WxH', 'webcam' or 'webcam:N' "
               "(camera index), a device path like /dev/video0, or a video file path")
LIBRARY_HELP = ("expression library to take the emotions from (default: the one shipped, built from MEAD clips; "
                "make your own with build-library)")
PROFILE_HELP = "your calibration profile (see `livemotion calibrate`); emotions it lacks come from the shipped library"
FRESH_HELP = ("start from the defaults instead of your last settings (live runs and serve restore the last emotion, "
              "intensity, AUs, library or profile and bypass)")
SINK_HELP = ("where to write: 'vcam' (virtual camera for Zoom/Meet/Teams/OBS) or 'vcam:/dev/videoN', a video file "
             "(.mp4/.mkv/.mov/.avi = H.264, .webm = VP9, .y4m = raw), or '-' for a y4m stream on stdout")


class _Parser(argparse.ArgumentParser):
    """Option errors as one line that says what is wrong, not the whole usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``livemotion`` command's parser: every command and option, with its help."""
    parser = _Parser(
        prog="livemotion",
        description="Real-time emotion filter for video calls: tracks the face in a video and "
                    "changes the emotion it shows, keeping identity, head motion and speech.",
    )
    parser.add_argument("--version", action="version", version=f"livemotion {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = sub.add_parser("run", help="process a source into a sink",
                         description="Read frames from a source, track and edit the face, write to a sink.")
    run.add_argument("--source", help=SOURCE_HELP + " (default: the webcam your last live run used, else demo)")
    run.add_argument("--sink", required=True, help=SINK_HELP)
    _camera_options(run)
    run.add_argument("--live", action=argparse.BooleanOptionalAction, default=None,
                     help="real-time mode: capture, processing and output run in parallel and stale frames are "
                          "dropped so delay never grows; file and demo sources are played at their own speed. "
                          "Default: on for webcams, off for files (every frame processed, as fast as possible)")
    run.add_argument("--overlay", action="store_true", help="draw the tracked mesh, face box and head pose")
    run.add_argument("--frames", type=_positive_int, metavar="N", help="stop after N frames (default: whole source)")
    run.add_argument("--preview", metavar="PNG", type=_image_path,
                     help="also write a side-by-side PNG (input | output) of a few frames")
    edit = run.add_argument_group("expression (without any of these the face passes through unchanged)")
    edit.add_argument("--emotion", type=_emotion, metavar="EMOTION",
                      help=f"the emotion to show: {', '.join(EMOTIONS)}, or a style's name (`livemotion style`)")
    edit.add_argument("--intensity", type=_unit_float, default=1.0, metavar="0..1",
                      help="strength of --emotion, 0 = the face's own neutral (default 1)")
    edit.add_argument("--au", type=_au_values, default={}, metavar="AU=V,...",
                      help="explicit Action Unit intensities 0..1, e.g. 12=0.6,6=0.4 or R12=0.8 for one side; "
                           f"combine with --emotion (these win). AUs: {', '.join(map(str, EMOTION_AUS))}")
    edit.add_argument("--schedule", type=_schedule, metavar="T:EMOTION[@I],...",
                      help="emotions over time in seconds, e.g. 0:neutral,2:happy@0.8,4:sad (overrides --emotion)")
    edit.add_argument("--drive", metavar="SOURCE",
                      help="mimic: another face (webcam:N or a video file) drives the expression, read against its "
                           "own neutral; the edited face keeps its speech (files loop). Alone, it drives the brows, "
                           "eyes, cheeks and mouth corners; --region chooses others")
    edit.add_argument("--drive-neutral", metavar="CLIP",
                      help="a clip of the driving face at rest, when the --drive clip does not start calm")
    edit.add_argument("--pose", type=_pose, metavar="YAW,PITCH[,ROLL]",
                      help=f"turn the head, degrees (yaw and pitch up to {MAX_TURN:g}; yaw > 0: nose to image right, "
                           "pitch > 0: up, roll > 0: clockwise). Alone, it keeps the live expression")
    edit.add_argument("--face-camera", type=_unit_float, metavar="0..1",
                      help="turn this share of the live head turn back towards the camera (1: face it)")
    edit.add_argument("--keep", type=_regions, metavar="REGION,...",
                      help=f"face regions that stay as the live face has them: {', '.join(REGIONS)}")
    edit.add_argument("--region", type=_region_sources, action="append", default=[], metavar="REGION=SOURCE,...",
                      help="what drives a region: edit (the emotion and AUs, default), live, drive (the --drive "
                           "face), manual (the AUs alone; --opening for mouth_opening), or an emotion[@I], "
                           "e.g. brows=angry,mouth_corners=happy@0.6")
    edit.add_argument("--opening", type=_opening, metavar="IOD",
                      help=f"open (> 0) or close (< 0) the mouth by this share of the eyes' distance, up to "
                           f"{MAX_OPENING:g} (sets mouth_opening=manual)")
    edit.add_argument("--library", metavar="FILE", help=LIBRARY_HELP)
    edit.add_argument("--profile", metavar="NAME", help=PROFILE_HELP)
    edit.add_argument("--preset", metavar="NAME", help="a named preset (emotion, intensity, AUs; see `presets`)")
    edit.add_argument("--fresh", action="store_true", help=FRESH_HELP)
    engine = run.add_argument_group("engine")
    engine.add_argument("--backend", choices=("auto", *BACKENDS), default="auto",
                        help="where the engine runs: auto (default: onnxruntime on a CPU, torch on a GPU), torch, "
                             "onnxruntime, or tensorrt (NVIDIA GPU)")
    engine.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N] for torch/onnxruntime/tensorrt")
    engine.add_argument("--fp16", action="store_true", help="half precision where the engine's spec allows (tensorrt)")
    engine.add_argument("--mouth", choices=("auto", "warp", "learned", "take"),
                        help="who draws the mouth: auto (the default; a live run without --fresh keeps your last "
                             "choice of auto, warp or take, as the app does): your own mouth, teeth and all, from "
                             f"your --profile's takes in the emotions you speak at least {WIDE_SPEECH:g}x as wide as "
                             "in neutral talk (a shout), the warp's elsewhere; warp (geometry, a dark cavity where "
                             "it opens); learned (a mouth generator: the one that ships, or --mouth-model); take "
                             "(your takes' mouth in every emotion: stronger emotions, less exact speech)")
    engine.add_argument("--mouth-model", metavar="FILE",
                        help="a mouth generator of your own for --mouth learned (`livemotion train-mouth`)")
    run.add_argument("--preview-count", type=_positive_int, default=4, metavar="N",
                     help="frames in the --preview sheet, spread over the run (default 4)")
    run.add_argument("--max-faces", type=_positive_int, default=2, metavar="N",
                     help="faces to look at when picking the largest (default 2; 1 is ~2-3 ms faster per frame)")
    run.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    demo = sub.add_parser("demo", help="the built-in talking face through each emotion: a video and a contact sheet",
                          description="Render the built-in demo face (the public-domain astronaut portrait, her grin "
                                      "closed by livemotion's own code, talking) "
                                      "through each emotion in turn. Writes the full-frame video and a contact sheet: "
                                      "the face enlarged, input above output, one column per emotion at its apex. "
                                      "Existing outputs are kept: new ones are numbered (demo-2.mp4) unless --force.")
    demo.add_argument("--emotion", action="append", choices=EMOTIONS, metavar="EMOTION",
                      help=f"an emotion to show; repeat for more (default: all: {', '.join(EMOTIONS)})")
    demo.add_argument("--seconds", type=_seconds, default=1.5, help="how long each emotion is shown (default 1.5)")
    demo.add_argument("--frames", type=_positive_int, metavar="N", help="stop after N frames (default: all emotions)")
    demo.add_argument("--out", default="out", metavar="DIR", help="folder for demo.mp4 and demo.png (default out)")
    demo.add_argument("--force", action="store_true", help="overwrite demo.mp4 and demo.png instead of numbering")
    demo.add_argument("--profile", metavar="NAME", help=PROFILE_HELP)
    demo.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors and the output paths")
    animate = sub.add_parser("animate", help="turn a photo into a short clip of an expression",
                             description="Animate a still photo: the face goes from neutral to the emotion's apex "
                                         "along a smooth curve (and back with --offset), with slight head motion "
                                         "and blinks, so it is not a still with a moving mouth.")
    animate.add_argument("photo", help="an image file with one face (.png, .jpg, ...)")
    animate.add_argument("--emotion", required=True, type=_emotion, metavar="EMOTION",
                         help=f"{', '.join(EMOTIONS)}, or a style's name")
    animate.add_argument("--intensity", type=_unit_float, default=1.0, metavar="0..1", help="at the apex (default 1)")
    animate.add_argument("--seconds", type=_seconds, default=2.0, help="clip length (default 2)")
    animate.add_argument("--offset", action="store_true", help="return to neutral at the end")
    animate.add_argument("--fps", type=_camera_fps, default=30.0, help="frames a second (default 30)")
    animate.add_argument("--out", required=True, metavar="FILE", help="the clip to write (.mp4, .webm, ...)")
    animate.add_argument("--force", action="store_true", help="replace --out if it exists")
    animate.add_argument("--profile", metavar="NAME", help=PROFILE_HELP)
    serve = sub.add_parser("serve", help="WebRTC server with the browser app, OBS pages and the control API",
                           description="Serve the livemotion app: filter a browser's camera over WebRTC, publish a "
                                       "local source to viewers, OBS browser-source and dock pages, and the JSON "
                                       "control API on /ws.")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1, this machine only); any other needs the token")
    serve.add_argument("--port", type=_port, default=8080, help="port (default 8080)")
    serve.add_argument("--token", help="access token, required off loopback (default: a random one, printed)")
    serve.add_argument("--source", help="also publish this source filtered to viewers and the OBS page "
                                        "(demo, webcam[:N], a file); without it, only browser cameras are filtered")
    _camera_options(serve)
    serve.add_argument("--stun", metavar="URL", help="STUN server for NAT traversal, e.g. stun:stun.example.org:3478 "
                                                     "(default: none, nothing outside is contacted)")
    serve.add_argument("--emotion", type=_emotion, metavar="EMOTION",
                       help="emotion (or style) to start with (default: none, pass-through)")
    serve.add_argument("--intensity", type=_unit_float, default=1.0, metavar="0..1", help="its strength (default 1)")
    serve.add_argument("--backend", choices=("auto", *BACKENDS), default="auto",
                       help="engine backend (default auto: onnxruntime on a CPU, torch on a GPU)")
    serve.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    serve.add_argument("--max-faces", type=_positive_int, default=2, metavar="N", help="as in run (default 2)")
    serve.add_argument("--batch-window", type=_batch_window, metavar="MS",
                       help="streams whose frames are ready within MS milliseconds share one engine call "
                            "(default: 4 on a GPU; 0, every stream calling the engine alone, on a CPU, where "
                            "waiting to batch measured slower)")
    serve.add_argument("--library", metavar="FILE", help=LIBRARY_HELP)
    serve.add_argument("--profile", metavar="NAME", help=PROFILE_HELP)
    serve.add_argument("--preset", metavar="NAME", help="start with this named preset")
    serve.add_argument("--fresh", action="store_true", help=FRESH_HELP)

    calibrate = sub.add_parser(
        "calibrate", help="build your own expression profile from your face (one minute, once)",
        description="Measure your own expressions into a personal profile: your neutral face while talking, then "
                    "each emotion. From recorded clips: --neutral CLIP --clip happy=CLIP ... (skip any emotion: "
                    "it falls back to the shipped library). The profile stays in your user data directory, "
                    "readable by you only; `run` and `serve` use it with --profile NAME.")
    calibrate.add_argument("--profile", required=True, metavar="NAME", help="name to store the profile under")
    how = calibrate.add_mutually_exclusive_group(required=True)
    how.add_argument("--source", help="guided, live: 'webcam' or 'webcam:N' (also demo or a file); opens the "
                                      "calibration page (/calibrate) in your browser as the preview window")
    how.add_argument("--neutral", metavar="CLIP", help="from recorded clips: one of you talking normally (about 10 s)")
    calibrate.add_argument("--clip", action="append", type=_emotion_clip, default=[], metavar="EMOTION=CLIP",
                           help="a clip of you showing EMOTION while talking (3 s or more); repeat per emotion")
    calibrate.add_argument("--force", action="store_true", help="replace a profile of the same name")
    calibrate.add_argument("--mouth", action="store_true",
                           help="also fine-tune the learned mouth on your takes (about 45 s more), for `run "
                                "--mouth learned` with this profile")
    calibrate.add_argument("--port", type=_port, default=8080, help="port of the calibration page (--source; default 8080)")
    calibrate.add_argument("--no-browser", action="store_true", help="print the page's address instead of opening it")
    profiles = sub.add_parser("profiles", help="list or delete your calibration profiles",
                              description="List the calibration profiles stored for you, or delete one.")
    profiles.add_argument("action", nargs="?", choices=("list", "delete"), default="list")
    profiles.add_argument("name", nargs="?", help="the profile to delete")

    style = sub.add_parser("style", help="take an emotion's style from a reference clip, under a name",
                           description="Measure how the face in CLIP shows its emotion (its motion, mouth posture and "
                                       "shading, the geometric median over 1 s windows) against the same person's "
                                       "neutral face (--neutral CLIP, else the clip's calmest second), and store it "
                                       "under NAME: `run --emotion NAME`, the control API and the web app then show it "
                                       "like any emotion. Stored in your user data directory, readable by you only.")
    style.add_argument("clip", help="a video of one face showing the emotion while talking (2 s or more)")
    style.add_argument("--name", required=True, help="the name to show it by (letters, digits, - and _)")
    style.add_argument("--neutral", metavar="CLIP", help="the same person talking calmly (better than the clip's own "
                                                        "calmest second, which a clip that never rests lacks)")
    style.add_argument("--force", action="store_true", help="replace a style of the same name")
    styles = sub.add_parser("styles", help="list or delete your reference styles",
                            description="List the reference styles stored for you (`livemotion style`), or delete one.")
    styles.add_argument("action", nargs="?", choices=("list", "delete"), default="list")
    styles.add_argument("name", nargs="?", help="the style to delete")

    control = sub.add_parser("control", help="drive a running `livemotion serve` from the shell (stream-deck buttons)",
                             description="Send one change to a running `livemotion serve` over its control API and "
                                         "print the resulting state: set an emotion, turn editing off, bypass, "
                                         "re-learn the neutral face, or just get the state.")
    control.add_argument("action", choices=("set", "get", "off", "bypass", "reset-neutral"),
                         help="set (with --emotion/--intensity/--profile), get, off (stop editing), bypass "
                              "[on|off|toggle], reset-neutral (re-learn the resting face)")
    control.add_argument("value", nargs="?", choices=("on", "off", "toggle"), help="for bypass (default toggle)")
    control.add_argument("--emotion", type=_emotion, metavar="EMOTION", help="an emotion or a style's name")
    control.add_argument("--intensity", type=_unit_float, metavar="0..1")
    control.add_argument("--profile", metavar="NAME", help="use this calibration profile")
    control.add_argument("--host", default="127.0.0.1", help="where the instance runs (default 127.0.0.1)")
    control.add_argument("--port", type=_port, default=8080, help="its port (default 8080)")
    control.add_argument("--token", default=os.environ.get("LIVEMOTION_TOKEN"),
                         help="its access token, when it runs off loopback (default: $LIVEMOTION_TOKEN)")

    presets = sub.add_parser("presets", help="list, save or delete named expression presets",
                             description="Named presets keep an emotion, its intensity and AU values (saved from the "
                                         "control API or the web app, also the region mix and head pose); `run "
                                         "--preset`, `serve --preset`, the control API and the web app recall them.")
    presets.add_argument("action", nargs="?", choices=("list", "save", "delete"), default="list")
    presets.add_argument("name", nargs="?", help="the preset's name")
    presets.add_argument("--emotion", type=_emotion, default="neutral", metavar="EMOTION",
                         help="for save (default neutral)")
    presets.add_argument("--intensity", type=_unit_float, default=1.0, metavar="0..1", help="for save (default 1)")
    presets.add_argument("--au", type=_au_values, default={}, metavar="AU=V,...", help="for save: explicit AUs")

    hints = sub.add_parser("hints", help="show or hide the advice to calibrate",
                           description="livemotion advises making a calibration profile (in the app, on live runs "
                                       "and after the demo) until one is in use. `hints off` hides that advice, "
                                       "`hints on` shows it again; the app's close button does the same.")
    hints.add_argument("action", choices=("on", "off"))

    mouth = sub.add_parser("train-mouth", help="train the mouth generator on clips of people talking (CPU is fine)",
                           description="Train the mouth generator (lips, teeth and mouth interior the warp cannot "
                                       "draw) by self-supervision: two frames of one clip, the first carried to the "
                                       "second's landmarks by livemotion's own warp, learn to look like the second. "
                                       "Whole clips are held out for the held-out loss. Writes MODEL, a checkpoint "
                                       "(MODEL.ckpt, for --resume), a CSV log (MODEL.csv) and a sample sheet per "
                                       "checkpoint (MODEL-samples/).")
    mouth.add_argument("--videos", nargs="+", required=True, metavar="CLIP", help="clips of one face talking each")
    mouth.add_argument("--out", required=True, metavar="MODEL", help="the model file to write (.pt)")
    mouth.add_argument("--steps", type=_positive_int, default=2000, metavar="N", help="training steps (default 2000)")
    mouth.add_argument("--resume", action="store_true", help="go on from MODEL.ckpt up to --steps")
    mouth.add_argument("--batch", type=_positive_int, default=16, metavar="N", help="pairs per step (default 16)")
    mouth.add_argument("--pairs-per-clip", type=_positive_int, default=200, metavar="N",
                       help="training pairs made from each clip (default 200)")
    mouth.add_argument("--pairs", metavar="NPZ", help="keep the prepared pairs here and reuse them next time")
    mouth.add_argument("--checkpoint-every", type=_positive_int, default=200, metavar="N",
                       help="steps between checkpoints, log rows and sample sheets (default 200)")
    mouth.add_argument("--critic", type=float, default=0.0, metavar="WEIGHT",
                       help="add a patch critic's loss at this weight (e.g. 0.05; default 0: L1 and gradients only)")
    mouth.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")

    library = sub.add_parser("build-library", help="derive an expression library from labelled clips of real people",
                             description="Track labelled clips and measure, per person against their own neutral clip, "
                                         "what each emotion does to the face (landmark motion with speech factored "
                                         "out, mouth posture, shading). The person and the emotion come from each "
                                         "file name (mead_W009_happy.mp4); every person needs a neutral clip and "
                                         "every emotion at least one person.")
    library.add_argument("clips", nargs="+", metavar="CLIP", help="labelled video files")
    library.add_argument("--out", required=True, metavar="FILE", help="library file to write (.npz)")

    build = sub.add_parser("build-engine", help="export an engine to ONNX and build it for a backend",
                           description="Export a generator engine to ONNX (dynamic batch) and, for tensorrt, build "
                                       "and cache a plan for this GPU. Files go to the user's cache directory "
                                       "($LIVEMOTION_CACHE_DIR, else ~/.cache/livemotion/engines on Linux).")
    build.add_argument("--engine", default="warp",
                       help="engine name: warp (default), warp-fine, or mouth (the learned mouth generator)")
    build.add_argument("--backend", choices=("onnxruntime", "tensorrt"), default="onnxruntime",
                       help="target backend (default onnxruntime)")
    build.add_argument("--size", type=int, choices=(256, 512), default=256, help="crop side in pixels (default 256)")
    build.add_argument("--fp16", action="store_true", help="allow half precision (tensorrt)")
    build.add_argument("--batch", type=_positive_int, default=1, metavar="N",
                       help="batch to check the built engine with, e.g. the number of streams served (default 1)")
    build.add_argument("--mouth-model", metavar="FILE",
                       help="with --engine mouth: the generator to build (default: the one that ships)")
    return parser


def _camera_options(parser: argparse.ArgumentParser) -> None:
    camera = parser.add_argument_group("camera (webcam sources only)")
    camera.add_argument("--size", type=_frame_size, metavar="WxH", help="resolution to ask the camera for, e.g. 1280x720")
    camera.add_argument("--fps", type=_camera_fps, metavar="F", help="frame rate to ask the camera for, e.g. 30")
    camera.add_argument("--mirror", action="store_true", help="flip left-right, as a selfie preview shows you")


def _camera(args: argparse.Namespace, spec: str | None = None) -> CameraOptions:
    """The camera options given; for the webcam ``spec`` a live run used last, its remembered
    size, frame rate and mirroring fill in what is not given (unless --fresh)."""
    from .io.sources import CameraOptions
    from .runtime import settings

    saved = {} if args.fresh or spec is None else settings.last_camera()
    if saved.get("source") != spec:
        return CameraOptions(args.size, args.fps, args.mirror)
    size = args.size or (tuple(saved["size"]) if saved.get("size") else None)
    return CameraOptions(size, args.fps or saved.get("fps"), args.mirror or bool(saved.get("mirror")))


def _source_choice(args: argparse.Namespace) -> tuple[str, CameraOptions]:
    """What ``run`` reads: ``--source``, else the webcam the last live run used (unless --fresh),
    else the demo; with its camera options (``_camera``)."""
    from .runtime import settings

    spec = args.source or (None if args.fresh else settings.last_camera().get("source")) or "demo"
    return spec, _camera(args, spec)


def _frame_size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: write WIDTHxHEIGHT, e.g. 1280x720")
    return int(_number(width, int, 16, 7680, "16 to 7680 pixels")), int(_number(height, int, 16, 4320, "16 to 4320 pixels"))


def _camera_fps(text: str) -> float:
    return _number(text, float, 1.0, 240.0, "1 to 240 frames a second")


def _number(text: str, kind: type, low: float, high: float, limits: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole number' if kind is int else 'number'}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be {limits}, got {value}")
    return value


def _batch_window(text: str) -> float:
    return _number(text, float, 0.0, 100.0, "0 to 100 milliseconds")


def _positive_int(text: str) -> int:
    return int(_number(text, int, 1, float("inf"), "at least 1"))


def _unit_float(text: str) -> float:
    return _number(text, float, 0.0, 1.0, "between 0 and 1")


def _seconds(text: str) -> float:
    return _number(text, float, 0.6, 60.0, "between 0.6 and 60 seconds")


def _port(text: str) -> int:
    return int(_number(text, int, 1, 65535, "a port number from 1 to 65535"))


def _image_path(text: str) -> str:
    if not text.lower().endswith((".png", ".jpg", ".jpeg")):
        raise argparse.ArgumentTypeError(f"{text!r} is not an image file name: use a .png (or .jpg) path")
    return text


def _au_values(text: str) -> dict[str, float]:
    values = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{item!r} needs a value: write AU=INTENSITY, e.g. 12=0.6")
        values[key.strip().upper()] = _unit_float(value)
    try:
        ExpressionRequest(aus=values)  # the request's own checks: known emotion AUs, never speech
    except InvalidRequest as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return values


def _pose(text: str) -> dict[str, float]:
    parts = [part.strip() for part in text.split(",")]
    if not 2 <= len(parts) <= 3:
        raise argparse.ArgumentTypeError(f"{text!r}: write YAW,PITCH or YAW,PITCH,ROLL in degrees, e.g. 10,0")
    pose = dict(zip(("yaw", "pitch", "roll"), (_number(p, float, -180.0, 180.0, "in degrees") for p in parts)))
    try:
        PoseEdit(**pose)  # the edit's own limits
    except InvalidRequest as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return pose


def _regions(text: str) -> list[str]:
    try:
        return sorted(check_regions(filter(None, (part.strip() for part in text.split(",")))))
    except InvalidRequest as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _emotion(text: str) -> str:
    try:
        return check_emotion_name(text)
    except InvalidRequest as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _region_sources(text: str) -> dict[str, str]:
    mix = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        region, sep, source = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{item!r}: write REGION=SOURCE, e.g. brows=angry or mouth_opening=live")
        try:
            parse_source(region.strip(), source.strip())
        except InvalidRequest as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        mix[region.strip()] = source.strip()
    return mix


def _opening(text: str) -> float:
    return _number(text, float, -MAX_OPENING, MAX_OPENING, f"between -{MAX_OPENING:g} and {MAX_OPENING:g} interocular distances")


def _emotion_clip(text: str) -> tuple[str, str]:
    emotion, sep, clip = text.partition("=")
    if not sep or not clip:
        raise argparse.ArgumentTypeError(f"{text!r}: write EMOTION=CLIP, e.g. happy=me_happy.mp4")
    if emotion not in LIBRARY_EMOTIONS:
        raise argparse.ArgumentTypeError(f"unknown emotion {emotion!r}: use one of {', '.join(LIBRARY_EMOTIONS)}")
    return emotion, clip


def _schedule(text: str) -> Schedule:
    try:
        return Schedule(text)
    except InvalidRequest as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _run_settings(args: argparse.Namespace, live: bool) -> dict[str, Any]:
    """What ``run`` shows, as a control ``set`` message: the command line's choices, over a preset's,
    over (live runs only, unless --fresh) the user's last settings. File runs never depend on
    what happened before: without an emotion they pass the face through."""
    from .runtime import settings

    chosen: dict[str, Any] = {}
    if live and not args.fresh:
        chosen.update(settings.last_settings())
    if args.preset:
        chosen.update(settings.preset(args.preset), active=True)
    if args.emotion or args.au:
        chosen.update(emotion=args.emotion or "neutral", intensity=args.intensity, aus=args.au, active=True)
    turn = {**(args.pose or {}), **({"face_camera": args.face_camera} if args.face_camera is not None else {})}
    if turn:
        expression_chosen = args.emotion or args.au or args.preset
        kept = {} if expression_chosen else {"regions": dict.fromkeys(EXPRESSION_REGIONS, "live")}
        chosen.update(pose=turn, active=True, **kept)
    regions = {**dict.fromkeys(args.keep or (), "live"), **{k: v for mix in args.region for k, v in mix.items()}}
    if args.opening is not None:
        regions.setdefault("mouth_opening", "manual")
        chosen.update(opening=args.opening, active=True)
    if args.drive:  # mimic: the driving face's expression on the brows, eyes, cheeks and corners, unless told
        regions = {**DRIVEN, "mouth_opening": "live", **regions}
    if regions:
        chosen.update(regions=regions, active=True)
    if args.library or args.profile:
        chosen.update(library=args.library, profile=args.profile)
    if args.mouth in TAKES_MOUTH:
        chosen.update(mouth=args.mouth)
    return chosen


def _mouth_model(args: argparse.Namespace, profile: str | None) -> str | None:
    """The mouth generator's file for ``--mouth learned`` (None: the warp draws the mouth): the one
    named, else ``profile``'s own when its calibration fine-tuned one, else the shipped one."""
    if args.mouth != "learned":
        if args.mouth_model:
            raise InvalidRequest("--mouth-model goes with --mouth learned")
        return None
    if args.mouth_model:
        return str(args.mouth_model)
    personal = profile_mouth_path(profile) if profile else None
    return str(personal if personal is not None and personal.is_file() else shipped_mouth_model())


def _driver(args: argparse.Namespace) -> Driver | None:
    """The --drive face (mimic), or None."""
    if not args.drive:
        return None
    from .expression.drive import Driver
    from .io.sources import open_source

    if args.schedule:
        raise InvalidRequest("--drive and --schedule both set the expression over time: choose one")
    if (args.emotion or args.au or args.preset) and not args.region:
        raise InvalidRequest("--drive sets the expression from the driving face: to show an emotion too, say which "
                             "regions each drives with --region, e.g. --region mouth_corners=drive,brows=edit")
    return Driver(open_source(args.drive), neutral=open_source(args.drive_neutral) if args.drive_neutral else None)


CALIBRATE_HINT = ("livemotion: emotions show mildly until you calibrate: `livemotion calibrate --profile me --source "
                  "webcam` (about a minute, once), then add `--profile me` and they are your own expressions. "
                  "Hide this: `livemotion hints off`.")


def _advise_calibration(profile: str | None) -> None:
    """One line on stderr advising a profile, unless one is in use or the user dismissed the advice."""
    from .runtime import settings

    if profile is None and not settings.hint_dismissed("calibrate"):
        print(CALIBRATE_HINT, file=sys.stderr)


def _say(line: str) -> None:
    """One line for the user on stderr."""
    print(f"livemotion: {line}", file=sys.stderr)


def _progress(total: int | None, label: str, quiet: bool = False) -> tqdm:
    """A progress bar of frames (count, fps, time left) on stderr when it is a terminal; silent when
    stderr is a file or a pipe (tqdm's disable=None), or with --quiet."""
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc=label, file=sys.stderr, dynamic_ncols=True,
                disable=True if quiet else None, leave=False)


def _status_printer() -> Callable[[PipelineStats], None]:
    def show(stats: PipelineStats) -> None:
        print("\r" + stats.status_line()[:160].ljust(160), end="", file=sys.stderr, flush=True)

    return show


def _run(args: argparse.Namespace) -> int:
    from .io.preview import PreviewSheet
    from .io.sinks import open_sink, refuse_overwriting_source
    from .io.sources import WebcamSource, open_source
    from .runtime import settings
    from .runtime.live import LiveRunner
    from .runtime.pipeline import build_pipeline, run
    from .runtime.session import SessionState

    spec, camera = _source_choice(args)
    refuse_overwriting_source(args.sink, spec)  # before anything is opened
    source = open_source(spec, camera)
    live = args.live if args.live is not None else (isinstance(source, WebcamSource) or args.sink.startswith("vcam"))
    driver = None
    try:
        state = SessionState.from_values(_run_settings(args, live))
        total = min(filter(None, (source.frame_count, args.frames)), default=None)
        preview = PreviewSheet(args.preview, count=args.preview_count, total=total) if args.preview else None
        driver = _driver(args)
        library = resolve_library(state.library, state.profile)
        # the takes' mouth as asked now, or as last chosen where this library keeps them; not under the learned mouth
        takes_mouth = "warp" if args.mouth == "learned" or (args.mouth is None and not library.keeps_mouth_frames) \
            else state.mouth
        pipeline = build_pipeline(dataclasses.replace(state.request(), active=state.active and not state.bypass),
                                  library=library, backend=args.backend,
                                  device=args.device, fp16=args.fp16, max_faces=args.max_faces,
                                  schedule=args.schedule, driver=driver, overlay=args.overlay,
                                  mouth_model=_mouth_model(args, state.profile), takes_mouth=takes_mouth)
        sink = open_sink(args.sink, source.size, source.fps, live)  # last: nothing is created unless all else works
    except BaseException:
        source.close()
        if driver is not None:
            driver.close()
        raise
    try:
        if live:
            settings.remember(state)  # the next live run starts from here
            if isinstance(source, WebcamSource):
                settings.remember_camera({"source": spec, "size": camera.size, "fps": camera.fps,
                                          "mirror": camera.mirror})
            if isinstance(source, WebcamSource) and not args.quiet:
                _advise_calibration(state.profile)
            show = _status_printer() if not args.quiet and sys.stderr.isatty() else None
            stats = LiveRunner(source, pipeline, sink, pace=not isinstance(source, WebcamSource),
                               max_frames=args.frames, preview=preview).run(on_status=show)
            if show is not None:
                print(file=sys.stderr)
        else:
            with _progress(total, source.name[-30:], args.quiet) as bar:
                stats = run(source, pipeline, sink, max_frames=args.frames, preview=preview, on_frame=bar.update)
    finally:
        pipeline.close()
        if driver is not None:  # the --drive face's tracker and camera
            driver.close()
    if not args.quiet:
        print(f"livemotion: {source.name} -> {args.sink}", file=sys.stderr)
        print(stats.report(), file=sys.stderr)
    damage = getattr(source, "damage", None)
    if damage:  # the frames before the damage were processed and written; say so even with --quiet
        print(f"livemotion: warning: {damage}. The output holds the frames that could be read.", file=sys.stderr)
    return 0


def _build_engine(args: argparse.Namespace) -> int:
    import numpy as np

    from .engines.backends import NUM_POINTS, create_backend, export_onnx

    if args.engine == "mouth":
        return _build_mouth(args)
    onnx_path = export_onnx(args.engine, args.size)
    _say_exported(onnx_path)
    device = "cuda" if args.backend == "tensorrt" else "cpu"
    backend = create_backend(args.backend, args.engine, args.size, device, args.fp16)
    rng = np.random.default_rng(0)
    points = rng.uniform(0.2, 0.8, (args.batch, NUM_POINTS, 2)).astype(np.float32) * args.size
    flow = backend(points, points)  # points that stay put: the flow must be zero everywhere
    error = float(np.abs(flow).max())
    where = getattr(backend, "plan_path", onnx_path)
    print(f"livemotion: {args.backend} engine ready: {where}; identity check at batch {args.batch}: "
          f"max flow {error:.4f} px", file=sys.stderr)
    return 0 if error <= 0.05 else 1


def _say_exported(onnx_path: Path) -> None:
    from .engines.backends import unsupported_tensorrt_ops

    missing = unsupported_tensorrt_ops(onnx_path)
    print(f"livemotion: exported {onnx_path}" + (f" (operators TensorRT lacks: {sorted(missing)})" if missing else
                                                 " (every operator is supported by TensorRT 10)"), file=sys.stderr)


def _build_mouth(args: argparse.Namespace) -> int:
    """The learned mouth exported (and for tensorrt built), then checked against torch on one crop."""
    import numpy as np

    from .engines.mouth import export_mouth_onnx, load_mouth_model, shipped_mouth_model
    from .render.mouth import LearnedMouth

    model = load_mouth_model(args.mouth_model or shipped_mouth_model())[0]
    exported = export_mouth_onnx(model)
    _say_exported(exported)
    built = LearnedMouth(model, args.backend, exported)  # from the same file: the export takes ~0.5 s
    rng = np.random.default_rng(0)
    size = model.size
    crop: list[np.ndarray] = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
                              rng.uniform(0, 1, (2, size, size)).astype(np.float32),
                              rng.integers(0, 256, (size, size, 3), dtype=np.uint8)]
    error = max(float(np.abs(mine - theirs).max())
                for mine, theirs in zip(built.draw(*crop), LearnedMouth(model, "torch").draw(*crop)))
    where = built.plan.plan_path if built.plan is not None else "ONNX Runtime, in memory"
    print(f"livemotion: {args.backend} mouth ready: {where}; against torch on one crop: max difference "
          f"{error * 255:.3f}/255 (within 1/255 needed)", file=sys.stderr)
    return 0 if error <= 1 / 255 else 1


def _build_library(args: argparse.Namespace) -> int:
    from .expression.measure import build_library

    out = Path(args.out)
    if out.suffix != ".npz":
        raise InvalidRequest(f"--out {out}: a library file ends in .npz")
    if not out.parent.is_dir():
        raise InvalidRequest(f"--out {out}: the folder {out.parent} does not exist")
    missing = [c for c in args.clips if not Path(c).is_file()]
    if missing:
        raise InvalidRequest(f"no such clip: {', '.join(missing)}")
    library = build_library(args.clips, progress=_say)
    library.save(out)
    print(f"livemotion: wrote {out} ({out.stat().st_size / 1e3:.0f} kB) from {len(library.sources)} clips",
          file=sys.stderr)
    return 0


def _train_mouth(args: argparse.Namespace) -> int:
    import torch

    from .engines.backends import check_device
    from .training.mouth import MouthPairs, prepare_pairs, train_mouth

    out = Path(args.out)
    if not out.parent.is_dir():
        raise InvalidRequest(f"--out {out}: the folder {out.parent} does not exist")
    if check_device(args.device) != "cpu" and not torch.cuda.is_available():
        raise InvalidRequest(f"--device {args.device}: this machine has no NVIDIA GPU; use cpu")
    missing = [v for v in args.videos if not Path(v).is_file()]
    if missing:
        raise InvalidRequest(f"no such clip: {', '.join(missing)}")
    report = _say
    if args.pairs and Path(args.pairs).is_file():
        pairs = MouthPairs.load(args.pairs)
        report(f"{len(pairs.target)} pairs from {args.pairs}")
    else:
        pairs = prepare_pairs(args.videos, args.pairs_per_clip, progress=report)
        if args.pairs:
            pairs.save(args.pairs)
    with _progress(args.steps, "train-mouth") as bar:
        def shown(step: int, loss: float) -> None:
            bar.n = step
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            bar.refresh()

        log = train_mouth(pairs, out, args.steps, resume=args.resume, batch=args.batch, device=args.device,
                          checkpoint_every=args.checkpoint_every, on_step=shown, critic=args.critic)
    if not log:
        report(f"nothing to do: {out} is already at --steps")
        return 0
    best = min(log, key=lambda row: row["held_out_loss"])
    report(f"{out}: the model of step {best['step']:.0f}, the best on the held-out people (loss {best['held_out_loss']:.4f}; "
           f"the warp alone {best['warp_only_loss']:.4f}); step {log[-1]['step']:.0f} reached, "
           f"{log[-1]['samples_per_second']:.0f} pairs/s")
    return 0


def _free_outputs(folder: Path, stem: str, suffixes: tuple[str, ...], overwrite: bool) -> list[Path]:
    """``folder/stem.suffix`` for each suffix, or the first numbered set (stem-2, stem-3, ...) none of
    whose files exists: earlier outputs are never overwritten unless ``overwrite``."""
    for number in range(1, 10_000):
        name = stem if number == 1 else f"{stem}-{number}"
        paths = [folder / f"{name}{suffix}" for suffix in suffixes]
        if overwrite or not any(path.exists() for path in paths):
            return paths
    raise InvalidRequest(f"{folder} holds 9,999 numbered demos: delete some, or use --force")


def _demo(args: argparse.Namespace) -> int:
    from .io.demo import quietest_frame
    from .io.preview import EmotionSheet
    from .io.sinks import open_sink
    from .io.sources import DemoSource
    from .runtime.pipeline import build_pipeline, run

    folder = Path(args.out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidRequest(f"--out {folder}: cannot make that folder ({error.strerror or error}); "
                             "give a folder you can write to (the default is out)") from None
    if not os.access(folder, os.W_OK):
        raise InvalidRequest(f"--out {folder}: the folder is not writable; give one you can write to")
    video, sheet_path = _free_outputs(folder, "demo", (".mp4", ".png"), args.force)
    emotions = list(dict.fromkeys(args.emotion or EMOTIONS))
    fps = 30.0
    schedule = Schedule(",".join(f"{i * args.seconds:g}:{emotion}" for i, emotion in enumerate(emotions)))
    # each emotion's apex: after its 0.5 s onset, before the next one starts, between two syllables
    apexes = {quietest_frame(round((i + 0.6) * args.seconds * fps), round((i + 0.95) * args.seconds * fps), fps):
              emotion for i, emotion in enumerate(emotions)}
    total = round(len(emotions) * args.seconds * fps)
    if args.frames:
        total = min(total, args.frames)
    source = DemoSource(fps=fps, frames=total, neutral=True)
    sheet = EmotionSheet(str(sheet_path), {i: e for i, e in apexes.items() if i < total})
    with build_pipeline(library=resolve_library(None, args.profile), max_faces=1, schedule=schedule) as pipeline, \
            _progress(total, "demo", args.quiet) as bar:
        sink = open_sink(str(video), source.size, source.fps)
        stats = run(source, pipeline, sink, preview=sheet, on_frame=bar.update)
    if not args.quiet:
        print(stats.report(), file=sys.stderr)
    shown = [e for i, e in apexes.items() if i < total]
    print(f"livemotion: wrote {video} (the full frames) and {sheet_path} (the face at each emotion's apex: "
          f"{', '.join(shown) or 'none, the run was too short'})", file=sys.stderr)
    if not args.quiet:
        _advise_calibration(args.profile)
    return 0


def _animate(args: argparse.Namespace) -> int:
    from .runtime.animate import read_photo, write_clip

    out = Path(args.out)
    if out.exists() and not args.force:
        raise InvalidRequest(f"{out} exists: choose another --out, or replace it with --force")
    try:
        data = Path(args.photo).read_bytes()
    except OSError as error:
        raise InvalidRequest(f"cannot read {args.photo}: {error.strerror}") from None
    photo = read_photo(data, args.photo)
    with _progress(round(args.seconds * args.fps), "animate") as bar:
        write_clip(photo, out, args.emotion, args.seconds, args.fps, args.intensity, args.offset,
                   resolve_library(None, args.profile), on_frame=bar.update)
    print(f"livemotion: wrote {out}: {args.seconds:g} s of {args.emotion}", file=sys.stderr)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from .expression.profiles import calibrate_from_clips, check_name, profile_path, profiles_dir, save_profile
    from .io.files import writable_folder
    from .training.mouth import fine_tune_mouth

    check_name(args.profile)
    if profile_path(args.profile).exists() and not args.force:  # before a minute of measuring
        raise InvalidRequest(f"profile {args.profile!r} exists: choose another name, or replace it with --force")
    writable_folder(profiles_dir())  # and where it will be saved
    if args.source:
        if args.clip:
            raise InvalidRequest("--clip goes with --neutral (recorded clips); with --source the takes are live")
        return _calibrate_live(args)
    clips = dict(args.clip)
    if len(clips) < len(args.clip):
        raise InvalidRequest("each emotion takes one --clip")
    missing = [c for c in (args.neutral, *clips.values()) if not Path(c).is_file()]
    if missing:
        raise InvalidRequest(f"no such clip: {', '.join(missing)}")
    library = calibrate_from_clips(args.neutral, clips,
                                   progress=lambda line: _say(f"measuring {line}"))
    path = save_profile(args.profile, library, overwrite=args.force)
    skipped = [e for e in LIBRARY_EMOTIONS if e not in clips]
    print(f"livemotion: profile {args.profile!r} saved to {path} ({path.stat().st_size / 1e3:.0f} kB, readable by you "
          f"only): {', '.join(clips)}" + (f"; from the shipped library: {', '.join(skipped)}" if skipped else ""),
          file=sys.stderr)
    own_mouth = library.takes_mouth_emotions()
    if own_mouth:
        print(f"livemotion: you speak {', '.join(own_mouth)} at least {WIDE_SPEECH:g}x as wide as in neutral "
              "talk: there your own mouth from the takes shows, teeth and all (--mouth auto, the default; --mouth "
              "take: in every emotion, --mouth warp: in none)", file=sys.stderr)
    if args.mouth:
        _say("fine-tuning the learned mouth on your takes (about 45 s)")
        mouth = fine_tune_mouth([args.neutral, *clips.values()], profile_mouth_path(args.profile))
        _say(f"your learned mouth: {mouth} (`livemotion run --profile {args.profile} --mouth learned` uses it)")
    from .runtime import settings

    settings.remember_profile(args.profile)
    print(f"livemotion: live runs and `serve` now start with it (or name it: `livemotion run --profile "
          f"{args.profile} ...`)", file=sys.stderr)
    return 0


def _calibrate_live(args: argparse.Namespace) -> int:
    """Serve the calibration page on loopback with ``--source`` as its camera; end when the profile is saved."""
    import asyncio
    import webbrowser
    from urllib.parse import urlencode

    from aiohttp import web

    from .expression.profiles import profile_path
    from .io.sources import open_source
    from .server.app import LivemotionServer, ServerConfig

    open_source(args.source).close()  # fail now, with the usual message, if the camera cannot be opened
    server = LivemotionServer(ServerConfig(port=args.port, remember=True), source=args.source)  # keeps the profile
    server.controls.calibration_progress = lambda step: _say(f"building your profile: {step}")
    server.controls.calibration_mouth = args.mouth
    query = {"mode": "view", "profile": args.profile, "autostart": "1", **({"force": "1"} if args.force else {})}
    url = f"http://127.0.0.1:{args.port}/calibrate?{urlencode(query)}"

    async def serve_until_saved() -> str:
        runner = web.AppRunner(server.app())
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", args.port).start()
        except OSError as error:
            raise LivemotionError(f"cannot listen on 127.0.0.1:{args.port}: {error.strerror}. Pick another --port.") from None
        print(f"livemotion: calibration page: {url}", file=sys.stderr)
        if not args.no_browser:
            webbrowser.open(url)
        try:
            while server.controls.state.profile != args.profile:  # set when the session's profile is saved
                await asyncio.sleep(0.5)
            await asyncio.sleep(1.0)  # let the page show where it was saved
            return str(profile_path(args.profile))
        finally:
            await runner.cleanup()

    saved = asyncio.run(serve_until_saved())
    print(f"livemotion: profile {args.profile!r} saved to {saved} (readable by you only); live runs and `serve` now "
          f"start with it", file=sys.stderr)
    return 0


def _profiles(args: argparse.Namespace) -> int:
    from .expression.profiles import delete_profile, list_profiles, profiles_dir

    return _list_or_delete(args, "profile", delete_profile, lambda: [
        f"{info.name:<20} {info.size_bytes / 1e3:6.0f} kB  own: {', '.join(info.emotions)}"
        f"{'; own mouth: ' + ', '.join(info.own_mouth) if info.own_mouth else ''}" for info in list_profiles()],
        f"no profiles in {profiles_dir()}: make one with `livemotion calibrate --profile NAME ...`")


def _list_or_delete(args: argparse.Namespace, noun: str, delete: Callable[[str], Path],
                    lines: Callable[[], list[str]], none_yet: str) -> int:
    """``profiles`` and ``styles``: print one line per stored one, or delete one by name."""
    if args.action == "delete":
        if not args.name:
            raise InvalidRequest(f"say which {noun} to delete: `livemotion {noun}s delete NAME`")
        print(f"livemotion: deleted {delete(args.name)}", file=sys.stderr)
        return 0
    if args.name:
        raise InvalidRequest(f"`{noun}s list` takes no name (did you mean `{noun}s delete {args.name}`?)")
    print("\n".join(lines()) or none_yet)
    return 0


def _style(args: argparse.Namespace) -> int:
    from .expression.styles import extract_style, free_style_path, save_style, styles_dir
    from .io.files import writable_folder

    free_style_path(args.name, args.force)  # before the slow part
    writable_folder(styles_dir())
    style = extract_style(args.clip, args.name, args.neutral,
                          progress=_say)
    path = save_style(style, overwrite=args.force)
    print(f"livemotion: stored style {style.name!r} ({style.windows} windows of {style.source}) in {path}; "
          f"show it with `livemotion run --emotion {style.name} ...`", file=sys.stderr)
    return 0


def _styles(args: argparse.Namespace) -> int:
    from .expression.styles import delete_style, list_styles, styles_dir

    return _list_or_delete(args, "style", delete_style, lambda: [
        f"{style.name:<20} from {style.source} ({style.windows} windows)" for style in list_styles()],
        f"no styles in {styles_dir()}: make one with `livemotion style CLIP --name NAME`")


def _control(args: argparse.Namespace) -> int:
    from .server.client import control_url, send

    if args.value and args.action != "bypass":
        raise InvalidRequest(f"{args.value!r} goes with bypass only")
    setting = {key: value for key, value in (("emotion", args.emotion), ("intensity", args.intensity),
                                              ("profile", args.profile)) if value is not None}
    if setting and args.action != "set":
        raise InvalidRequest("--emotion, --intensity and --profile go with `control set`")
    url = control_url(args.host, args.port)
    if args.action == "set":
        if not setting:
            raise InvalidRequest("say what to set: --emotion, --intensity or --profile")
        messages = [{"type": "set", **setting}]
    elif args.action == "off":
        messages = [{"type": "set", "active": False}]
    elif args.action == "reset-neutral":
        messages = [{"type": "reset_neutral"}]
    elif args.action == "bypass":
        if args.value in (None, "toggle"):
            bypass = not send({"type": "get"}, url=url, token=args.token)["bypass"]
        else:
            bypass = args.value == "on"
        messages = [{"type": "set", "bypass": bypass}]
    else:
        messages = [{"type": "get"}]
    state = send(*messages, url=url, token=args.token)
    shown = ("active", "emotion", "intensity", "bypass", "profile", "library")
    print(" ".join(f"{key}={state.get(key)}" for key in shown) + (f" aus={state['aus']}" if state.get("aus") else ""))
    return 0


def _presets(args: argparse.Namespace) -> int:
    from .runtime import settings
    from .runtime.session import SessionState

    if args.action in ("save", "delete") and not args.name:
        raise InvalidRequest(f"say which preset: `livemotion presets {args.action} NAME`")
    if args.action == "save":
        settings.save_preset(args.name, SessionState.from_values({"emotion": args.emotion, "intensity": args.intensity,
                                                                  "aus": args.au}))
        print(f"livemotion: saved preset {args.name!r}: {args.emotion} at {args.intensity}", file=sys.stderr)
    elif args.action == "delete":
        settings.delete_preset(args.name)
        print(f"livemotion: deleted preset {args.name!r}", file=sys.stderr)
    else:
        stored = settings.presets()
        if not stored:
            print("no presets yet: `livemotion presets save NAME --emotion happy --intensity 0.6`")
        for name, values in sorted(stored.items()):
            aus = f" aus={values['aus']}" if values.get("aus") else ""
            print(f"{name:<20} {values.get('emotion')} at {values.get('intensity')}{aus}")
    return 0


def _hints(args: argparse.Namespace) -> int:
    from .runtime import settings

    settings.dismiss_hint("calibrate", dismissed=args.action == "off")
    print(f"livemotion: the advice to calibrate is {'hidden' if args.action == 'off' else 'shown'}", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from .server.app import LivemotionServer, ServerConfig

    resolve_library(args.library, args.profile)  # fail now, with one line, on a bad library or profile
    camera = _camera(args, args.source)
    if args.source:  # fail now, with the usual message, if the source cannot be opened
        from .io.sources import open_source

        open_source(args.source, camera).close()
    elif not camera.is_default:
        raise InvalidRequest("--size, --fps and --mirror are for a webcam --source (a browser's camera is set in the app)")

    config = ServerConfig(host=args.host, port=args.port, token=args.token, stun=args.stun, backend=args.backend,
                          device=args.device, max_faces=args.max_faces, library=args.library,
                          profile=args.profile, remember=True, camera=camera,
                          batch_window=None if args.batch_window is None else args.batch_window / 1e3)
    server = LivemotionServer(config, source=args.source)
    overridden = ({"library", "profile"} if args.library or args.profile else set()) | (
        {"emotion", "intensity", "aus", "active"} if args.emotion or args.preset else set())
    if not args.fresh:
        server.controls.restore(skip=overridden)
    if args.preset:
        server.controls.apply({"type": "set", "preset": args.preset})
    if args.emotion:
        server.controls.apply({"type": "set", "emotion": args.emotion, "intensity": args.intensity})
    print(f"livemotion: serving on {server.url()}  (OBS source: /obs, OBS dock: /dock, control: /ws)",
          file=sys.stderr)
    try:
        web.run_app(server.app(), host=args.host, port=args.port, print=None)
    except OSError as error:
        raise LivemotionError(f"cannot listen on {args.host}:{args.port}: {error.strerror}. "
                              "Pick another --port or stop the program using it.") from None
    return 0


@contextlib.contextmanager
def _signals_end_the_run() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP end a run the way Ctrl-C does: the runners close the sink (a
    playable file) and the source on their way out. Only the first signal interrupts: more of
    them while livemotion is closing up would break the file it is finishing, so they are ignored
    from then on (the command is ending). Without a signal the handlers it found are put back."""
    if threading.current_thread() is not threading.main_thread():
        yield  # main() called from a worker thread (a host program): signals are the host's business
        return
    received: list[int] = []

    def interrupt(signum: int, _frame: object) -> None:
        received.append(signum)
        if len(received) == 1:
            raise KeyboardInterrupt(signal.Signals(signum).name)

    names = [name for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]
    before = {name: signal.signal(getattr(signal, name), interrupt) for name in names}
    try:
        yield
    finally:
        for name, handler in before.items():
            signal.signal(getattr(signal, name), signal.SIG_IGN if received else handler)


def main(argv: list[str] | None = None) -> int:
    """Run the ``livemotion`` command; the exit status (0 ok, 2 bad input or a refusal in one line, 130 interrupted)."""
    logging.basicConfig(level=logging.WARNING, format="livemotion: %(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    commands = {"run": _run, "demo": _demo, "animate": _animate, "serve": _serve, "control": _control,
                "build-engine": _build_engine, "build-library": _build_library, "calibrate": _calibrate,
                "profiles": _profiles, "presets": _presets, "style": _style, "styles": _styles, "hints": _hints,
                "train-mouth": _train_mouth}
    try:
        with _signals_end_the_run():
            return commands[args.command](args)
    except LivemotionError as error:
        print(f"livemotion: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("livemotion: stopped", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of `--sink -` went away (`| head`, a closed player): end quietly, as Unix tools do.
        # Python would complain once more when it flushes stdout at exit, so point stdout at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
