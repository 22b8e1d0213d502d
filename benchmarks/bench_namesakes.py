"""How well "these photos do not look like the person enrolled under this name" works
(issue 9: enrolling a second Anna Smith must not merge two students).

Run: ``python benchmarks/bench_namesakes.py [--people 60] [--seed 0]``. For LFW people with 5+
photos (a random sample), 3 photos are enrolled under their name; then one more photo of the
same person (genuine) and one photo of the next sampled person (a namesake) are offered under
that name through ``FaceAttendance.matches_person``, the check ``enroll_person`` makes before
storing. Prints how often each is taken as the enrolled person. Needs LFW
(``FACEATT_LFW_DIR``, default ``../shared/datasets/lfw``).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def main() -> int:
    from model.api import FaceAttendance
    from model.errors import FaceAttendanceError
    from model.settings import get_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = get_settings()
    lfw = settings.lfw_dir
    root = next((p for p in (lfw / "lfw-deepfunneled", lfw) if any(p.glob("*/*.jpg"))), None)
    if root is None:
        print(f"LFW not found under {lfw} (set FACEATT_LFW_DIR)")
        return 2
    people = sorted(p for p in root.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 5)
    random.Random(args.seed).shuffle(people)
    with tempfile.TemporaryDirectory() as work:
        engine = FaceAttendance.open(settings.with_gallery(Path(work) / "gallery"))
        crops = {}
        for person in people[:args.people]:
            found = []
            for photo in sorted(person.glob("*.jpg"))[:5]:
                with contextlib.suppress(FaceAttendanceError):  # LFW photos with two faces
                    found.append(engine.aligned_face(photo))
            if len(found) >= 4:
                crops[person.name.replace("_", " ")] = found
        names = list(crops)
        for name in names:
            engine.gallery.add_crops(name, crops[name][:3], consent=True)
        genuine = sum(engine.matches_person(name, [crops[name][3]])[0] for name in names)
        namesake = sum(engine.matches_person(name, [crops[names[(i + 1) % len(names)]][3]])[0]
                       for i, name in enumerate(names))
    print(f"model: {engine.recognizer.label}; {len(names)} LFW people, 3 photos enrolled each")
    print(f"a 4th photo of the same person taken as them:   {genuine}/{len(names)} "
          f"({100 * genuine / len(names):.0f}%)")
    print(f"another person's photo taken as them (merged):  {namesake}/{len(names)} "
          f"({100 * namesake / len(names):.0f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
