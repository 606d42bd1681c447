#!/usr/bin/env python3
"""Where the judge reads a real expression: face regions swapped between a person's emotion clip and their neutral one.

    tools/eval_regions.py [EXPRESSIONS_DIR] [--people W009,W011] [--emotions sad,angry] [--samples 24]
                          [--profile-edit] [--json OUT]

For each judged frame of a person's emotion clip (MEAD naming: mead_W009_angry.mp4), the frame
of their neutral clip with the nearest mouth opening is aligned onto it (a similarity fitted on
points an expression does not move: the nose, the forehead, the sides of the face) and one
region is swapped, feathered at its edge:
  eyes    both eyes with their brows (the lids, the brows and the skin between them)
  lids    the eye openings only, widened by 0.06 IOD
  brows   eyes minus lids: the brows and the skin around them
  mouth   the lips and 0.12 IOD around them
  skin    the rest of the face
"take-R" is the expression with R taken from the neutral face (how much of the reading R
carries), "neutral+R" the neutral face with R from the expression (whether R alone reads).
Per variant: flip rate and probability of the target class (FER2013), and the classes read,
all on the take's own Haar box so that every variant is judged on the same crop. It says what
an edit has to render for this judge to read an emotion on this person.

``--profile-edit`` asks what an edit still lacks: the person's profile (calibrated from the first
half of their neutral clip and their takes, as ``eval_calibration.py`` does) edits the second
half, and each judged edited frame swaps regions with the frame of the real take whose mouth is
as open: "edit-R" is the edit with the take's R, "take+R" the take with the edit's R, judged on
the input frame's Haar box. Needs the ``eval`` extra (./lm test).
"""

from __future__ import annotations

import livemotion  # noqa: F401  (first: it sets the BLAS thread count before numpy loads OpenBLAS)

# isort: split
import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import cast

import cv2
import numpy as np

from livemotion.contrib.evaluation import FER_CLASS_OF, emotion_classifier, to_json
from livemotion.expression.controller import ExpressionRequest
from livemotion.expression.library import LIBRARY_EMOTIONS, ExpressionLibrary
from livemotion.expression.measure import labelled_clips
from livemotion.expression.profiles import calibrate_from_clips
from livemotion.face.masks import disc_kernel
from livemotion.face.mesh import FACE_OVAL, INNER_BROW, LOWER_INNER_LIP, OUTER_BROW, OUTER_LIP_CONTOUR, UPPER_INNER_LIP
from livemotion.face.tracking import FaceTracker
from livemotion.render.compositing import EYE_OPENINGS
from livemotion.runtime.pipeline import build_pipeline
from livemotion.types import FaceTrack

sys.path.insert(0, str(Path(__file__).parent))
from eval_calibration import split_clip  # noqa: E402  (sibling scripts)
from eval_quality import _SETTLE_S, load_frames  # noqa: E402

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "media" / "expressions"
REGIONS = ("eyes", "lids", "brows", "mouth", "skin")
# Mesh vertices an expression barely moves: nose bridge and tip, forehead, the face's sides.
_STEADY = (1, 4, 5, 6, 168, 197, 195, 10, 151, 234, 454, 93, 323)
_EYES_MARGIN, _LIDS_MARGIN, _MOUTH_MARGIN = 0.12, 0.06, 0.12  # IOD beyond each region's points


def _hulls(shape: tuple[int, ...], groups: list[np.ndarray], margin: float) -> np.ndarray:
    """(H, W) float32 0..1: the convex hull of each point group (P, 2), grown by ``margin`` pixels, feathered."""
    mask = np.zeros(shape[:2], np.uint8)
    for points in groups:
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 255)
    radius = max(1, int(round(margin)))
    grown = cv2.dilate(mask, disc_kernel(radius)).astype(np.float32) / 255.0
    return cv2.GaussianBlur(grown, (0, 0), radius / 3.0 + 1.0)


def region_masks(points: np.ndarray, shape: tuple[int, ...], interocular: float) -> dict[str, np.ndarray]:
    """{region: (H, W) float32 0..1} for a face's landmarks ``points`` (NUM_LANDMARKS, 2) pixels."""
    eyes = _hulls(shape, [points[[*EYE_OPENINGS[s], *INNER_BROW[s], *OUTER_BROW[s]]] for s in (0, 1)],
                  _EYES_MARGIN * interocular)
    lids = _hulls(shape, [points[list(EYE_OPENINGS[s])] for s in (0, 1)], _LIDS_MARGIN * interocular)
    mouth = _hulls(shape, [points[list(OUTER_LIP_CONTOUR)]], _MOUTH_MARGIN * interocular)
    face = _hulls(shape, [points[list(FACE_OVAL)]], 0.02 * interocular)
    return {"eyes": eyes, "lids": lids, "brows": np.clip(eyes - lids, 0.0, 1.0), "mouth": mouth,
            "skin": np.clip(face - eyes - mouth, 0.0, 1.0)}


def aligned(image: np.ndarray, track: FaceTrack, onto: FaceTrack) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (its face ``track``) moved by the similarity that best lays its steady points on
    ``onto``'s, and its landmarks moved the same way (NUM_LANDMARKS, 2)."""
    steady = list(_STEADY)
    matrix, _ = cv2.estimateAffinePartial2D(track.landmarks[steady, :2].astype(np.float32),
                                            onto.landmarks[steady, :2].astype(np.float32))
    moved = cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    return moved, track.landmarks[:, :2] @ matrix[:, :2].T + matrix[:, 2]


def swapped(base: np.ndarray, other: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``base`` with ``other`` (both (H, W, 3) uint8) laid over it where ``mask`` (H, W) 0..1 says."""
    weight = mask[..., None]
    return np.clip(np.rint(base * (1.0 - weight) + other * weight), 0, 255).astype(np.uint8)


def _mouth_opening(track: FaceTrack) -> float:
    """The lips' distance on the midline, in interocular distances, as tracked (the head's roll included)."""
    upper, lower = track.landmarks[UPPER_INNER_LIP, :2], track.landmarks[LOWER_INNER_LIP, :2]
    return float(np.linalg.norm(upper - lower) / track.interocular)


def _tracked(path: Path) -> tuple[list[np.ndarray], list[FaceTrack], float]:
    frames, fps = load_frames(str(path), 150)
    with FaceTracker() as tracker:
        tracks = [tracker.track(f.image) for f in frames]
    kept = [(f.image, t) for f, t in zip(frames, tracks) if isinstance(t, FaceTrack)]
    return [image for image, _ in kept], [t for _, t in kept], fps


def judge_swaps(base: tuple[list[np.ndarray], list[FaceTrack]], other: tuple[list[np.ndarray], list[FaceTrack]],
                emotion: str, samples: int, names: tuple[str, str], first: int,
                boxes_from: list[np.ndarray] | None = None) -> dict[str, dict]:
    """{variant: {flip_rate, probability, read}}: each judged frame of ``base`` (images, tracks), the
    frame of ``other`` with the nearest mouth opening aligned onto it, and each region swapped both
    ways. ``names`` (base, other) name the variants: "base-R" is base with R from other, "other+R"
    other with R from base. Judged from frame ``first`` on, on the Haar box of the frame itself or
    of ``boxes_from`` (the frames an edit was made from), so that every variant has the same crop."""
    classifier, fer_class = emotion_classifier(), FER_CLASS_OF[emotion]
    (images, tracks), (other_images, other_tracks) = base, other
    openings = np.array([_mouth_opening(t) for t in other_tracks])
    first = min(first, len(images) - 1)
    judged: dict[str, list[dict[str, float]]] = {}
    for i in sorted(set(np.linspace(first, len(images) - 1, samples).round().astype(int))):
        image, track = images[i], tracks[i]
        box = classifier.face_box(image if boxes_from is None else boxes_from[i], near=track.box)
        if box is None:
            continue
        nearest = int(np.argmin(np.abs(openings - _mouth_opening(track))))
        laid, laid_points = aligned(other_images[nearest], other_tracks[nearest], track)
        masks = region_masks(track.landmarks[:, :2], image.shape, track.interocular)
        laid_masks = region_masks(laid_points, image.shape, track.interocular)
        variants = {names[0]: image, names[1]: laid}
        for region in REGIONS:
            # both faces' region, so that neither shows through the other's (the rest: what both leave)
            union = region not in ("skin", "brows")
            mask = np.maximum(masks[region], laid_masks[region]) if union else np.minimum(masks[region], laid_masks[region])
            variants[f"{names[0]}-{region}"] = swapped(image, laid, mask)
            variants[f"{names[1]}+{region}"] = swapped(laid, image, mask)
        for name, variant in variants.items():
            judged.setdefault(name, []).append(classifier.probabilities(variant, box))
    report = {}
    for name, probabilities in judged.items():
        tops = [max(p, key=p.__getitem__) for p in probabilities]
        report[name] = {"flip_rate": float(np.mean([top == fer_class for top in tops])),
                        "probability": float(np.mean([p[fer_class] for p in probabilities])),
                        "read": dict(Counter(tops).most_common())}
    return report


def judge_regions(take: Path, neutral: Path, emotion: str, samples: int) -> dict[str, dict]:
    """{variant: {flip_rate, probability, read}} for one emotion clip and the same person's neutral clip."""
    take_images, take_tracks, fps = _tracked(take)
    neutral_images, neutral_tracks, _ = _tracked(neutral)
    return judge_swaps((take_images, take_tracks), (neutral_images, neutral_tracks), emotion, samples,
                       ("take", "neutral"), int(_SETTLE_S * fps))


def judge_profile_edit(take: Path, edited: Path, profile: ExpressionLibrary, emotion: str,
                       samples: int) -> dict[str, dict]:
    """{variant: ...} for a profile's edit of ``edited`` (the person's held-out neutral talk) against
    their real ``take``: "edit-R" is the edit with R from the take, "take+R" the take with the edit's R."""
    frames, fps = load_frames(str(edited), None)
    with build_pipeline(ExpressionRequest(emotion, 1.0, active=True), library=profile, backend="torch",
                        fade_step=0.25, transition=0.5) as pipeline:
        edits = [pipeline.process(frame).output.image for frame in frames]
    with FaceTracker() as tracker:
        tracks = [tracker.track(image) for image in edits]
    kept = [i for i, track in enumerate(tracks) if isinstance(track, FaceTrack)]
    take_images, take_tracks, _ = _tracked(take)
    return judge_swaps(([edits[i] for i in kept], [cast(FaceTrack, tracks[i]) for i in kept]),
                       (take_images, take_tracks), emotion, samples, ("edit", "take"), int(_SETTLE_S * fps),
                       boxes_from=[frames[i].image for i in kept])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default=str(DEFAULT_DIR), help="labelled clips (default: shared media)")
    parser.add_argument("--people", help="comma-separated people (default: all with a neutral clip)")
    parser.add_argument("--emotions", default="happy,sad,angry,surprised,fearful,disgusted",
                        help="comma-separated emotions the judge knows (default: all six)")
    parser.add_argument("--samples", type=int, default=24, help="frames judged per clip (default 24)")
    parser.add_argument("--json", help="write the results as JSON here")
    parser.add_argument("--profile-edit", action="store_true",
                        help="swap regions between the person's real take and their profile's edit of held-out "
                             "neutral talk (calibrated as in eval_calibration.py) instead of their neutral clip")
    args = parser.parse_args(argv)
    emotions = args.emotions.split(",")
    unknown = [e for e in emotions if e not in FER_CLASS_OF or e == "neutral"]
    if unknown:
        parser.error(f"the judge has no class for {', '.join(unknown)}")
    people = {p: c for p, c in labelled_clips(sorted(Path(args.folder).glob("mead_*.mp4"))).items() if "neutral" in c}
    if args.people:
        wanted = args.people.casefold().split(",")
        people = {p: c for p, c in people.items() if p.split("_")[-1] in wanted or p in wanted}
    if not people:
        parser.error(f"no person with a neutral clip in {args.folder}")
    report: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        for person, clips in people.items():
            if args.profile_edit:
                first_half, second_half = split_clip(Path(clips["neutral"]), Path(scratch))
                profile = calibrate_from_clips(first_half, {e: c for e, c in clips.items() if e in LIBRARY_EMOTIONS})
            for emotion in [e for e in emotions if e in clips]:
                if args.profile_edit:
                    result = judge_profile_edit(Path(clips[emotion]), second_half, profile, emotion, args.samples)
                else:
                    result = judge_regions(Path(clips[emotion]), Path(clips["neutral"]), emotion, args.samples)
                report.setdefault(person, {})[emotion] = result
                _print(person, emotion, result)
    if args.json:
        Path(args.json).write_text(to_json(report))
    return 0


def _print(person: str, emotion: str, result: dict[str, dict]) -> None:
    print(f"\n{person} {emotion}: flip / P({FER_CLASS_OF[emotion]}) / what the judge reads")
    for name, row in result.items():
        read = ", ".join(f"{label} {count}" for label, count in row["read"].items())
        print(f"  {name:<15}{row['flip_rate']:5.2f} {row['probability']:5.2f}   {read}")


if __name__ == "__main__":
    sys.exit(main())
