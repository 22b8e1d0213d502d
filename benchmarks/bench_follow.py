"""Does the live page's cheap face-following change who is recognised? (issue 10)

Run: ``python benchmarks/bench_follow.py [--shift F] [--model PATH] [--json]``
(``make bench-follow``; needs LFW).

Between full detections the Check-in page finds a known face again with O-Net alone
(``FaceDetector.follow``) and aligns the crop it embeds from *those* landmarks, not the
full cascade's. This runs the recognition figures of ``python -m model evaluate`` (LFW
pairsDevTest, identification 30x5 and 93x5 with strangers, clean and under the shifted
classroom camera) twice on the same DevTest photos:

- **cascade**: each photo aligned from the full MTCNN cascade (what every figure in
  MODEL_CARD.md uses);
- **follow**: the cascade's box moved by up to ``--shift`` of the face's size in x and y
  and scaled by up to the same share (a face that moved between frames), then found again
  by ``follow`` and aligned from its landmarks. A photo where ``follow`` loses the face
  keeps its cascade crop (the page runs a full detection then) and is counted.

The same shifts for every run (seeded). Figures that differ by more than the noise of one
DevTest run would mean the live path needs its own threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.core.runtime import import_tensorflow_quietly

SHIFT = 0.15  # of the face's size: more than a face moves in 1/15 s
SEED = 0


def align_both(root: Path, people: list[tuple[str, int]], shift: float,
               seed: int = SEED) -> tuple[Any, Any, dict[str, Any]]:
    """DevTest aligned twice from one detection per photo: (cascade, follow, counts)."""
    from model.core.alignment import align_face, crop_box
    from model.core.detection import load_detector
    from model.learning import lfw
    from model.learning.lfw import AlignedLfw
    from model.settings import FACE_CROP_SIZE, get_settings

    detector = load_detector(min_confidence=get_settings().min_detection_confidence)
    rng = np.random.default_rng(seed)
    entries = [(name, i) for name, count in people for i in range(1, count + 1)]
    cascade = np.zeros((len(entries), FACE_CROP_SIZE, FACE_CROP_SIZE, 3), np.uint8)
    follow = cascade.copy()
    found = np.zeros(len(entries), bool)
    boxes: list[tuple[float, float, float, float]] = []
    lost, eye_moved, blanks = 0, [], {}
    for row, (name, index) in enumerate(entries):
        image = lfw._read_rgb(lfw.image_path(root, name, index))
        h, w = image.shape[:2]
        faces = detector.detect(image)
        if not faces:
            blanks[row] = image
            continue
        # The face nearest the centre, as ``lfw.align_lfw`` picks it.
        face = min(faces, key=lambda f: (f.box[0] + f.box[2] / 2 - w / 2) ** 2
                   + (f.box[1] + f.box[3] / 2 - h / 2) ** 2)
        found[row] = True
        x, y, bw, bh = face.box
        boxes.append((x - w / 2, y - h / 2, bw, bh))
        cascade[row] = align_face(image, face, FACE_CROP_SIZE)
        dx, dy, ds = rng.uniform(-shift, shift, 3)
        scale = 1.0 + ds
        moved = (int(round(x + dx * bw - (scale - 1) * bw / 2)),
                 int(round(y + dy * bh - (scale - 1) * bh / 2)),
                 max(int(round(bw * scale)), 1), max(int(round(bh * scale)), 1))
        again = detector.follow(image, [moved])[0]
        if again is None:
            lost += 1
            follow[row] = cascade[row]
        else:
            follow[row] = align_face(image, again, FACE_CROP_SIZE)
            before = np.array([face.landmarks.left_eye, face.landmarks.right_eye])
            after = np.array([again.landmarks.left_eye, again.landmarks.right_eye])
            eye_moved.append(float(np.abs(before - after).max() / max(bw, 1)))
        if (row + 1) % 500 == 0:
            print(f"  {row + 1}/{len(entries)} photos", file=sys.stderr, flush=True)
    typical = np.median(np.array(boxes), axis=0)
    for row, image in blanks.items():  # no face: the centred crop ``align_lfw`` uses
        h, w = image.shape[:2]
        box = (int(typical[0] + w / 2), int(typical[1] + h / 2), int(typical[2]), int(typical[3]))
        cascade[row] = follow[row] = crop_box(image, box, FACE_CROP_SIZE)
    names = np.array([name for name, _ in entries])
    indices = np.array([i for _, i in entries], dtype=np.int32)
    counts = {"photos": len(entries), "no_face_in_cascade": len(blanks), "lost_by_follow": lost,
              "eye_shift_median_of_size": float(np.median(eye_moved)),
              "eye_shift_p95_of_size": float(np.percentile(eye_moved, 95))}
    return (AlignedLfw(cascade, names, indices, ~found), AlignedLfw(follow, names, indices, ~found),
            counts)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from model.core.recognizer import load_recognizer
    from model.learning import lfw
    from model.learning.evaluation import evaluate_recognizer
    from model.settings import get_settings

    root = lfw.lfw_dir()
    if not lfw.lfw_available(root):
        raise SystemExit(f"LFW not found at {root}; set FACEATT_LFW_DIR")
    recognizer = load_recognizer(args.model or get_settings().base_model_path)
    started = time.monotonic()
    cascade, follow, counts = align_both(root, lfw.people_dev_test(root), args.shift)
    counts["align_seconds"] = round(time.monotonic() - started, 1)
    figures: dict[str, Any] = {"shift": args.shift, "counts": counts}
    for label, data in (("cascade", cascade), ("follow", follow)):
        figures[label] = evaluate_recognizer(recognizer, lfw_root=root, aligned=data).as_dict()
    return figures


def report(f: dict[str, Any]) -> None:
    c = f["counts"]
    print(f"DevTest photos {c['photos']}: cascade found no face in {c['no_face_in_cascade']}, "
          f"follow lost {c['lost_by_follow']} after a move of up to {f['shift']:.0%} "
          f"(eyes within {c['eye_shift_median_of_size']:.3f} / p95 "
          f"{c['eye_shift_p95_of_size']:.3f} of the face's width of the cascade's)")
    print(f"{'condition':<10}{'crops':<10}{'pairs acc':>10}{'AUC':>8}"
          f"{'30x5 named':>12}{'strangers named':>17}{'93x5 named':>12}{'strangers':>11}")
    for condition in ("clean", "shifted"):
        for label in ("cascade", "follow"):
            c30 = f[label][condition]["identification_30x5"]
            c93 = f[label][condition]["identification_93x5"]
            pairs = f[label][condition]["pairs_devtest"]
            print(f"{condition:<10}{label:<10}{pairs['accuracy']:>10.3f}{pairs['auc']:>8.3f}"
                  f"{c30['named']:>12.3f}{c30['false_accept_rate']:>17.3f}"
                  f"{c93['named']:>12.3f}{c93['false_accept_rate']:>11.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, help="a saved model (default: the shipped one)")
    parser.add_argument("--shift", type=float, default=SHIFT,
                        help="largest move of the box, as a share of the face's size")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    import_tensorflow_quietly()
    figures = run(args)
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    else:
        report(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
