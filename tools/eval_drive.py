#!/usr/bin/env python3
"""Animate and mimic, judged: does the FER2013 judge read the emotion on their outputs?

    tools/eval_drive.py [EXPRESSIONS_DIR] [--json OUT] [--png OUT]

- animate  ``livemotion animate`` on the astronaut portrait, 2 s per emotion; judged on 8 frames
           of the apex (the last half of the clip). Beside it: the same judge on the first frame.
- mimic    ``run --drive``: each MEAD emotion clip of one person drives the other person's
           neutral clip (the driver's neutral learned from its own neutral clip); judged on 8
           frames after 0.8 s, beside the driving clip itself (what the driver shows).
Flip = share of judged frames whose top class is the target; P = the judge's target probability.
Needs the ``eval`` extra (./lm test installs it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from livemotion.contrib.evaluation import FER_CLASS_OF, emotion_classifier
from livemotion.expression.controller import ExpressionRequest
from livemotion.expression.drive import Driver
from livemotion.expression.measure import labelled_clips
from livemotion.expression.regions import DRIVEN
from livemotion.io.demo import portrait
from livemotion.io.preview import face_tile
from livemotion.io.sources import FileSource
from livemotion.runtime.animate import animate_photo
from livemotion.runtime.pipeline import build_pipeline
from livemotion.types import Box

sys.path.insert(0, str(Path(__file__).parent))
from eval_quality import save  # noqa: E402  (a sibling script)

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "media" / "expressions"
JUDGED = ("happy", "sad", "angry", "surprised", "fearful", "disgusted")


def judged(images: list[np.ndarray], emotion: str) -> tuple[float, float] | None:
    """(flip rate, mean target probability) over ``images``; None when no face box is found."""
    classifier, target = emotion_classifier(), FER_CLASS_OF[emotion]
    flips, probabilities = [], []
    for image in images:
        box = classifier.face_box(image)
        if box is None:
            continue
        p = classifier.probabilities(image, box)
        flips.append(max(p, key=p.__getitem__) == target)
        probabilities.append(p[target])
    return (float(np.mean(flips)), float(np.mean(probabilities))) if flips else None


def face_box(image: np.ndarray) -> Box | None:
    found = emotion_classifier().face_box(image)
    return None if found is None else Box(found[0], found[1], found[0] + found[2], found[1] + found[3])


def spread(images: list[np.ndarray], start: int, count: int = 8) -> list[np.ndarray]:
    picks = np.linspace(start, len(images) - 1, min(count, len(images) - start)).round().astype(int)
    return [images[i] for i in sorted(set(picks))]


def mimic(source: Path, driver: Path, neutral: Path) -> list[np.ndarray]:
    """``run --drive``: the driver's expression on the brows, eyes, cheeks and corners; the speech kept."""
    driving = Driver(FileSource(str(driver)), neutral=FileSource(str(neutral)))
    request = ExpressionRequest(regions={**DRIVEN, "mouth_opening": "live"}, active=True)
    frames = FileSource(str(source))
    with build_pipeline(request, max_faces=1, driver=driving) as pipeline:
        outputs = [pipeline.process(frame).output.image for frame in frames]
    driving.close()
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default=str(DEFAULT_DIR), help="MEAD clips (default: shared media)")
    parser.add_argument("--json", help="write the results as JSON here")
    parser.add_argument("--png", help="contact sheet: animate apexes, then mimic outputs per driver")
    args = parser.parse_args(argv)
    report, sheet = evaluate_drive(Path(args.folder))
    save(report, sheet, args.json, args.png)
    return 0


def evaluate_drive(folder: Path) -> tuple[dict, list[np.ndarray]]:
    """Animate on the astronaut and mimic between the MEAD people in ``folder``, judged and printed:
    the report and the contact-sheet rows."""
    report: dict = {"animate": {}, "mimic": {}}
    sheet = []
    print("animate (astronaut, 2 s): flip / P at the apex, P on the first frame")
    row = []
    for emotion in JUDGED:
        images = [frame.image for frame, _ in animate_photo(portrait(), emotion, seconds=2.0)]
        apex, start = judged(spread(images, len(images) // 2), emotion), judged(images[:1], emotion)
        report["animate"][emotion] = {"flip": apex and apex[0], "p": apex and apex[1], "p_first": start and start[1]}
        print(f"  {emotion:<10} {apex[0] if apex else float('nan'):.2f} / {apex[1] if apex else float('nan'):.2f}"
              f"   first {start[1] if start else float('nan'):.2f}")
        row.append(face_tile(images[-1], face_box(images[-1]), emotion))
    sheet.append(np.hstack(row))
    people = {p: c for p, c in labelled_clips(sorted(folder.glob("mead_*.mp4"))).items() if "neutral" in c}
    for person, clips in people.items():
        for other, theirs in people.items():
            if other == person:
                continue
            print(f"mimic: {other} drives {Path(clips['neutral']).name}: flip / P of the output, then the driver's")
            row = []
            for emotion in JUDGED:
                if emotion not in theirs:
                    continue
                outputs = mimic(Path(clips["neutral"]), Path(theirs[emotion]), Path(theirs["neutral"]))
                source = FileSource(str(theirs[emotion]))
                driving = [frame.image for frame in source]
                source.close()
                settle = 20  # 0.8 s at 25 fps: the driver's reading settles
                out, real = judged(spread(outputs, settle), emotion), judged(spread(driving, settle), emotion)
                report["mimic"].setdefault(f"{other}->{person}", {})[emotion] = {
                    "flip": out and out[0], "p": out and out[1], "driver_flip": real and real[0], "driver_p": real and real[1]}
                print(f"  {emotion:<10} {out[0] if out else float('nan'):.2f} / {out[1] if out else float('nan'):.2f}"
                      f"   driver {real[0] if real else float('nan'):.2f} / {real[1] if real else float('nan'):.2f}")
                shown = outputs[len(outputs) * 2 // 3]
                row.append(face_tile(shown, face_box(shown), f"{emotion} <- {other[-4:]}"))
            sheet.append(np.hstack(row))
    return report, sheet


if __name__ == "__main__":
    sys.exit(main())
