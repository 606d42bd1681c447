#!/usr/bin/env python3
"""Quality of the emotion edit, judged by models the project did not train.

    tools/eval_quality.py SOURCE [--emotions happy,sad] [--frames N] [--json OUT] [--png OUT]

SOURCE is a video file, ``demo``, or ``astronaut`` (the still portrait). For each target emotion
the clip runs through the pipeline; per emotion and overall it reports:
  ECS        probability of the target class from the FER2013 mini-Xception (input -> output)
  identity   dlib face-embedding distance, input vs output (same person < 0.6)
  speech     Pearson correlation of dlib's inner-lip gap, input vs output, over the clip
  jitter     output / input landmark jitter (dlib 68 points)
  self       self-translation error: target = the face's current expression, mean |diff| on the face
Needs the ``eval`` extra (./lm test installs it).
"""

from __future__ import annotations

import livemotion  # noqa: F401  (first: it sets the BLAS thread count before numpy loads OpenBLAS)

# isort: split
import argparse
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from livemotion.contrib.evaluation import (
    FER_CLASS_OF,
    dlib_face,
    emotion_classifier,
    inner_lip_gap,
    landmark_jitter,
    to_json,
)
from livemotion.engines.backends import create_backend
from livemotion.expression.au import EMOTIONS
from livemotion.expression.controller import ExpressionController, ExpressionRequest
from livemotion.face.tracking import FaceTracker
from livemotion.io.demo import portrait
from livemotion.io.sources import open_source
from livemotion.render.editor import ExpressionEditor
from livemotion.runtime.pipeline import Pipeline
from livemotion.types import Box, FaceTrack, Frame


class CurrentExpression(ExpressionController):
    """Self-translation: asks for exactly the expression the face already shows."""

    def wanted(self, current: np.ndarray, target: np.ndarray | None) -> np.ndarray:
        return current


@dataclass
class InputMeasures:
    """Everything measured on the unedited clip, shared by all emotions."""

    frames: list[Frame]
    boxes: list[Box | None]  # MediaPipe face box per frame (dlib's landmarks are placed in it)
    fer_boxes: dict[int, tuple[int, int, int, int]]  # Haar box per sampled frame (the FER preprocessing)
    gaps: list[float] = field(default_factory=list)
    points: list[np.ndarray] = field(default_factory=list)
    probabilities: dict[int, dict[str, float]] = field(default_factory=dict)
    embeddings: dict[int, np.ndarray] = field(default_factory=dict)
    interocular: float = 1.0


def load_frames(source: str, limit: int | None) -> list[Frame]:
    if source == "astronaut":
        return [Frame(portrait(), 0, Fraction(0), 0.0)]
    opened = open_source(source)
    try:
        frames = []
        for frame in opened:
            if limit is not None and len(frames) >= limit:
                break
            frames.append(frame)
        return frames
    finally:
        opened.close()


def measure_input(frames: list[Frame], samples: list[int]) -> InputMeasures:
    classifier, dlib = emotion_classifier(), dlib_face()
    with FaceTracker(static_images=len(frames) == 1) as tracker:
        tracks = [tracker.track(f.image) for f in frames]
    boxes = [t.box if isinstance(t, FaceTrack) else None for t in tracks]
    fer_boxes = {}
    for i in samples:
        haar = classifier.face_box(frames[i].image, near=boxes[i])
        if haar is None and boxes[i] is not None:  # Haar missed: fall back to the MediaPipe box
            b = boxes[i]
            haar = (int(b.x0), int(b.y0), int(b.x1 - b.x0), int(b.y1 - b.y0))
        if haar is not None:
            fer_boxes[i] = haar
    measures = InputMeasures(frames, boxes, fer_boxes)
    iods = [t.interocular for t in tracks if isinstance(t, FaceTrack)]
    measures.interocular = float(np.median(iods)) if iods else 1.0
    for frame, box in zip(frames, boxes, strict=True):
        points = dlib.landmarks68(frame.image, box) if box else np.full((68, 2), np.nan)
        measures.points.append(points)
        measures.gaps.append(inner_lip_gap(points))
    for i, box in fer_boxes.items():
        measures.probabilities[i] = classifier.probabilities(frames[i].image, box)
        if boxes[i] is not None:
            measures.embeddings[i] = dlib.embedding(frames[i].image, boxes[i])
    return measures


def run_edit(frames: list[Frame], controller: ExpressionController) -> list[np.ndarray]:
    editor = ExpressionEditor(create_backend("torch"), controller)
    with FaceTracker(static_images=len(frames) == 1) as tracker:
        pipeline = Pipeline(tracker, editor)
        return [pipeline.process(frame).output.image for frame in frames]


def evaluate_emotion(emotion: str, intensity: float, measures: InputMeasures, samples: list[int]) -> dict:
    classifier, dlib = emotion_classifier(), dlib_face()
    still = len(measures.frames) == 1  # a still is edited at full strength, without a fade-in
    controller = ExpressionController(ExpressionRequest(emotion, intensity, active=True), fade_step=1.0 if still else 0.25)
    outputs = run_edit(measures.frames, controller)
    gaps, points = [], []
    for image, box in zip(outputs, measures.boxes, strict=True):
        p = dlib.landmarks68(image, box) if box else np.full((68, 2), np.nan)
        points.append(p)
        gaps.append(inner_lip_gap(p))
    result: dict = {"emotion": emotion}
    fer_class = FER_CLASS_OF.get(emotion)
    if fer_class is not None and measures.fer_boxes:
        before = [measures.probabilities[i][fer_class] for i in measures.fer_boxes]
        after = [classifier.probabilities(outputs[i], box)[fer_class] for i, box in measures.fer_boxes.items()]
        result.update(ecs_input=float(np.mean(before)), ecs_output=float(np.mean(after)),
                      ecs_gain=float(np.mean(after) - np.mean(before)))
    distances = [float(np.linalg.norm(dlib.embedding(outputs[i], measures.boxes[i]) - emb))
                 for i, emb in measures.embeddings.items()]
    result["identity_distance"] = float(np.mean(distances)) if distances else None
    valid = np.isfinite(gaps) & np.isfinite(measures.gaps)
    if valid.sum() > 2 and np.std(np.asarray(measures.gaps)[valid]) > 1e-6:
        result["speech_correlation"] = float(np.corrcoef(np.asarray(measures.gaps)[valid], np.asarray(gaps)[valid])[0, 1])
    if len(points) >= 3:
        jitter_in = landmark_jitter(np.asarray(measures.points), measures.interocular)
        jitter_out = landmark_jitter(np.asarray(points), measures.interocular)
        result["jitter_ratio"] = float(jitter_out / jitter_in) if jitter_in > 0 else None
    result["_sheet"] = [outputs[i] for i in samples]
    return result


def self_translation_error(measures: InputMeasures, samples: list[int]) -> float:
    outputs = run_edit(measures.frames, CurrentExpression(fade_step=1.0, transition=0.0))
    errors = []
    for i in samples:
        box = measures.boxes[i]
        if box is None:
            continue
        y0, y1, x0, x1 = int(box.y0), int(box.y1), int(box.x0), int(box.x1)
        diff = np.abs(outputs[i][y0:y1, x0:x1].astype(float) - measures.frames[i].image[y0:y1, x0:x1].astype(float))
        errors.append(diff.mean())
    return float(np.mean(errors)) if errors else float("nan")


def contact_sheet(measures: InputMeasures, samples: list[int], rows: dict[str, list[np.ndarray]]) -> np.ndarray:
    boxes = [measures.boxes[i] for i in samples]

    def face(image: np.ndarray, box: Box | None) -> np.ndarray:
        if box is None:
            return cv2.resize(image, (160, 160))
        margin = 0.25 * (box.x1 - box.x0)
        y0, y1 = int(max(box.y0 - margin, 0)), int(box.y1 + margin)
        x0, x1 = int(max(box.x0 - margin, 0)), int(box.x1 + margin)
        return cv2.resize(image[y0:y1, x0:x1], (160, 160), interpolation=cv2.INTER_AREA)

    lines = []
    for name, images in {"input": [measures.frames[i].image for i in samples], **rows}.items():
        label = np.full((160, 120, 3), 255, np.uint8)
        cv2.putText(label, name[:12], (4, 84), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        lines.append(np.hstack([label] + [face(img, b) for img, b in zip(images, boxes, strict=True)]))
    return np.vstack(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="video file, 'demo' or 'astronaut'")
    parser.add_argument("--emotions", default=",".join(EMOTIONS), help="comma-separated (default: all eight)")
    parser.add_argument("--intensity", type=float, default=1.0, help="emotion intensity 0..1 (default 1)")
    parser.add_argument("--frames", type=int, help="use at most N frames of the source")
    parser.add_argument("--samples", type=int, default=6, help="frames sampled for ECS/identity/sheet (default 6)")
    parser.add_argument("--json", help="write the results as JSON here")
    parser.add_argument("--png", help="write the contact sheet (rows = emotions, columns = sampled frames) here")
    args = parser.parse_args(argv)
    emotions = [e.strip() for e in args.emotions.split(",") if e.strip()]
    unknown = [e for e in emotions if e not in EMOTIONS]
    if unknown:
        parser.error(f"unknown emotion(s) {', '.join(unknown)}: use {', '.join(EMOTIONS)}")

    frames = load_frames(args.source, args.frames)
    samples = sorted(set(np.linspace(0, len(frames) - 1, min(args.samples, len(frames))).round().astype(int).tolist()))
    measures = measure_input(frames, samples)
    results = [evaluate_emotion(e, args.intensity, measures, samples) for e in emotions]
    sheet_rows = {r["emotion"]: r.pop("_sheet") for r in results}
    summary = {
        "source": args.source, "frames": len(frames), "intensity": args.intensity,
        "self_translation_error": self_translation_error(measures, samples),
        "emotions": results,
    }
    for key in ("ecs_gain", "identity_distance", "speech_correlation", "jitter_ratio"):
        values = [r[key] for r in results if r.get(key) is not None]
        summary[f"mean_{key}"] = float(np.mean(values)) if values else None

    print(f"{'emotion':<13}{'ECS in':>8}{'ECS out':>9}{'gain':>7}{'identity':>10}{'speech r':>10}{'jitter':>8}")
    def cell(r: dict, key: str, width: int, fmt: str = "{:.2f}") -> str:
        return (fmt.format(r[key]) if r.get(key) is not None else "-").rjust(width)

    for r in results:
        print(f"{r['emotion']:<13}{cell(r, 'ecs_input', 8)}{cell(r, 'ecs_output', 9)}{cell(r, 'ecs_gain', 7, '{:+.2f}')}"
              f"{cell(r, 'identity_distance', 10)}{cell(r, 'speech_correlation', 10, '{:.3f}')}"
              f"{cell(r, 'jitter_ratio', 8)}")
    print(f"self-translation error: {summary['self_translation_error']:.3f} (0-255 scale, face box)")
    if args.json:
        Path(args.json).write_text(to_json(summary))
    if args.png:
        cv2.imwrite(args.png, cv2.cvtColor(contact_sheet(measures, samples, sheet_rows), cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    sys.exit(main())
