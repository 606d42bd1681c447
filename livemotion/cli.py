"""Command line: ``livemotion run`` (and, as the stages land, more subcommands)."""

from __future__ import annotations

import argparse
import logging
import sys

from .errors import LivemotionError

SOURCE_HELP = ("what to read: 'demo' (built-in clip, 640x480) or 'demo:WxH', 'webcam' or 'webcam:N' "
               "(camera index), a device path like /dev/video0, or a video file path")
SINK_HELP = ("where to write: a video file (.mp4/.mkv/.mov/.avi = H.264, .webm = VP9, .y4m = raw), "
             "or '-' for a y4m stream on stdout (pipe it to ffmpeg or ffplay)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livemotion",
        description="Real-time emotion filter for video calls: tracks the face in a video and "
                    "changes the emotion it shows, keeping identity, head motion and speech.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = sub.add_parser("run", help="process a source into a sink",
                         description="Read frames from a source, track and edit the face, write to a sink.")
    run.add_argument("--source", default="demo", help=SOURCE_HELP + " (default: demo)")
    run.add_argument("--sink", required=True, help=SINK_HELP)
    run.add_argument("--overlay", action="store_true", help="draw the tracked mesh, face box and head pose")
    run.add_argument("--frames", type=_positive_int, metavar="N", help="stop after N frames (default: whole source)")
    run.add_argument("--preview", metavar="PNG", help="also write a side-by-side PNG (input | output) of a few frames")
    run.add_argument("--max-faces", type=_positive_int, default=2, metavar="N",
                     help="faces to look at when picking the largest (default 2; 1 is ~2-3 ms faster per frame)")
    run.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _run(args: argparse.Namespace) -> int:
    from .pipeline import Pipeline, run
    from .preview import PreviewSheet
    from .sinks import open_sink
    from .sources import open_source
    from .tracking import FaceTracker

    source = open_source(args.source)
    try:
        total = min(filter(None, (source.frame_count, args.frames)), default=None)
        preview = PreviewSheet(args.preview, total=total) if args.preview else None
        sink = open_sink(args.sink, source.size, source.fps)
    except BaseException:
        source.close()
        raise
    pipeline = Pipeline(FaceTracker(max_faces=args.max_faces), editor=None, overlay=args.overlay)
    stats = run(source, pipeline, sink, max_frames=args.frames, preview=preview)
    if not args.quiet:
        print(f"livemotion: {source.name} -> {args.sink}", file=sys.stderr)
        print(stats.report(), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="livemotion: %(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return {"run": _run}[args.command](args)
    except LivemotionError as error:
        print(f"livemotion: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("livemotion: stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
