#!/usr/bin/env python3
"""Calibration profiles, judged: a person's own profile against the shipped library, on their neutral talk.

    tools/eval_calibration.py [EXPRESSIONS_DIR] [--people W009,W011] [--takes-mouth auto|warp|take] [--mouth]
                              [--json OUT] [--png OUT]

For each person with a neutral clip and emotion clips (MEAD naming: mead_W009_neutral.mp4, ...):
  - the neutral clip is cut in two halves by time: the first half calibrates, the second is edited
    (no frame that built the profile is judged: leave one take out);
  - profile   their calibration profile (``livemotion calibrate`` from the first half and their
              emotion clips), edits the second half;
  - lopo      a library built from the *other* people only (how the shipped library does on a
              stranger), edits the same frames;
  - real      the person's own emotion clip, judged the same way (the ceiling of this judge).
Per emotion: flip rate and target-probability gain (FER2013 mini-Xception), identity distance
(dlib) and articulation r, as in ``eval_quality.py``. Each cell is set beside the person's real
expression: does the profile's edit flip at least as often (``flip_at_real``), and does it move
dlib's embedding from their neutral frames no further than their real expression does
(``identity_within_real``: the unpaired distances; a real expression moves a face 0.25-0.58, so
no absolute bar is used). ``--mouth``: the profile's edits are drawn with the learned mouth
fine-tuned on the same takes the profile was made from (``calibrate --mouth``); the lopo column
keeps the warp's mouth. ``--takes-mouth``: where the profile's edits show the person's own mouth
from their takes, as ``run --mouth`` (default auto: what a run with the profile shows; take: in every
emotion; warp: in none). Needs the ``eval`` extra (./lm test).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from livemotion.expression.au import EMOTIONS
from livemotion.expression.library import LIBRARY_EMOTIONS, TAKES_MOUTH
from livemotion.expression.measure import labelled_clips, measure_people
from livemotion.expression.profiles import calibrate_from_clips
from livemotion.io.sinks import open_sink
from livemotion.io.sources import FileSource
from livemotion.training.mouth import fine_tune_mouth

sys.path.insert(0, str(Path(__file__).parent))
import eval_quality  # noqa: E402  (a sibling script)
from eval_quality import _cell, evaluate_source, save  # noqa: E402

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "media" / "expressions"
JUDGED = [e for e in EMOTIONS if e not in ("neutral", "contemptuous")]  # FER2013 has no contempt class


def split_clip(path: Path, folder: Path) -> tuple[Path, Path]:
    """The clip's first and second halves by time, as two files named like it (person kept)."""
    source = FileSource(str(path))
    frames = list(source)
    source.close()
    halves = []
    for part, chunk in (("a", frames[: len(frames) // 2]), ("b", frames[len(frames) // 2:])):
        out = folder / part / path.name
        out.parent.mkdir(exist_ok=True)
        sink = open_sink(str(out), (chunk[0].image.shape[1], chunk[0].image.shape[0]), source.fps)
        for frame in chunk:
            sink.write(frame)
        sink.close()
        halves.append(out)
    return halves[0], halves[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default=str(DEFAULT_DIR), help="labelled clips (default: shared media)")
    parser.add_argument("--people", help="comma-separated people to evaluate (default: all with a neutral clip)")
    # The edited half has ~30 frames after the onset: judge most of them, since with 8 one frame
    # moves a flip rate by 0.12 (the person's real clip is judged on as many).
    parser.add_argument("--samples", type=int, default=24, help="frames judged per clip (default 24)")
    parser.add_argument("--json", help="write the results as JSON here")
    parser.add_argument("--png", help="contact sheet: per person, input | profile edits, then lopo edits")
    parser.add_argument("--mouth", action="store_true",
                        help="the profile's edits with the learned mouth fine-tuned on the person's takes")
    parser.add_argument("--takes-mouth", choices=TAKES_MOUTH, default="auto",
                        help="where the profile's edits show the person's own mouth from their takes, as "
                             "run --mouth (default auto)")
    args = parser.parse_args(argv)
    eval_quality.TAKES_MOUTH = args.takes_mouth
    everyone = {p: c for p, c in labelled_clips(sorted(Path(args.folder).glob("mead_*.mp4"))).items() if "neutral" in c}
    people = everyone
    if args.people:  # person labels are case-folded (mead_w009), so W009 and w009 both name them
        wanted = args.people.casefold().split(",")
        people = {p: c for p, c in everyone.items() if p.split("_")[-1] in wanted or p in wanted}
    if not people:
        parser.error(f"no person with a neutral clip in {args.folder}")
    report: dict = {"people": {}}
    sheet = []
    with tempfile.TemporaryDirectory() as scratch:
        for person, clips in people.items():
            first, second = split_clip(Path(clips["neutral"]), Path(scratch))
            emotion_clips = {e: c for e, c in clips.items() if e in LIBRARY_EMOTIONS}
            profile = calibrate_from_clips(first, emotion_clips)
            others = {q: cs for q, cs in everyone.items() if q != person}
            if not others:
                parser.error("leave-one-person-out needs a second person")
            stranger = measure_people(others)
            shown = () if args.mouth else profile.takes_mouth_emotions(args.takes_mouth)
            print(f"\n=== {person}: profile from the first half of {Path(clips['neutral']).name} and "
                  f"{len(emotion_clips)} emotion clips; edited: the second half; the takes' mouth "
                  f"(--takes-mouth {args.takes_mouth}) in: {', '.join(shown) or 'none'} ===")
            entries = {}
            own_mouth = fine_tune_mouth([first, *emotion_clips.values()], Path(scratch) / "mouth.pt") \
                if args.mouth else None
            for name, library in (("profile", profile), ("lopo", stranger)):
                print(f"--- {name}")
                eval_quality.MOUTH_MODEL = str(own_mouth) if own_mouth and name == "profile" else None
                entry, (row, _) = evaluate_source(str(second), JUDGED, 1.0, library, None, args.samples,
                                             ceiling_of=str(clips["neutral"]))
                entries[name] = entry
                sheet.append(row)
            report["people"][person] = {**entries, "takes_mouth_in": list(shown)}
    print("\nsummary: flip profile / lopo / real, gain profile / lopo, identity profile / lopo, "
          "identity unpaired profile / real")
    for emotion in JUDGED:
        cells = []
        for entries in report["people"].values():
            mine, theirs = (next(r for r in entries[k]["emotions"] if r["emotion"] == emotion) for k in ("profile", "lopo"))
            real = mine.get("ceiling") or {}
            cells.append(f"{_cell(mine.get('flip_rate'), 5)}/{_cell(theirs.get('flip_rate'), 0)}/"
                         f"{_cell(real.get('flip_rate'), 0)} "
                         f"{_cell(mine.get('gain'), 6, '{:+.2f}')}/{_cell(theirs.get('gain'), 0, '{:+.2f}')} "
                         f"{_cell(mine.get('identity_distance'), 5)}/{_cell(theirs.get('identity_distance'), 0)} "
                         f"{_cell(mine.get('identity_unpaired'), 5)}/{_cell(real.get('identity_unpaired'), 0)}")
        print(f"{emotion:<11}" + "   ".join(cells))
    verdicts = []
    for person, entries in report["people"].items():
        for cell in entries["profile"]["emotions"]:
            real = cell.get("ceiling") or {}
            if cell["emotion"] not in JUDGED or real.get("flip_rate") is None:
                continue
            verdict = {"person": person, "emotion": cell["emotion"],
                       "flip_at_real": cell["flip_rate"] >= real["flip_rate"],
                       "identity_within_real": (cell.get("identity_unpaired") is not None
                                                and real.get("identity_unpaired") is not None
                                                and cell["identity_unpaired"] <= real["identity_unpaired"])}
            verdicts.append(verdict)
    report["against_real"] = verdicts
    for key, words in (("flip_at_real", "flips at least as often as the person's real expression"),
                       ("identity_within_real", "moves the face no further from its neutral than the real expression")):
        met = [f"{v['person']} {v['emotion']}" for v in verdicts if v[key]]
        print(f"profile {words}: {len(met)} of {len(verdicts)} cells ({', '.join(met) or 'none'})")
    save(report, sheet, args.json, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
