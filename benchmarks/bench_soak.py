"""The live Check-in page left open: does the server's memory stay flat, and the page quick?

Run: ``python benchmarks/bench_soak.py [--minutes 30] [--kiosks 1]`` (``make bench-soak``;
needs Chromium, Playwright and LFW).

It enrolls the public-domain astronaut and one LFW DevTest person in a temporary data folder,
opens a session of a class with both on its roster (no head turn: the camera plays photos),
starts the app as ``make run`` does and opens the live Check-in page in headless Chromium
(``--kiosks`` pages on one server), whose fake camera loops: the astronaut, an empty room, the
LFW person, an empty room, a never-enrolled LFW DevTest stranger, an empty room. Every minute it
prints the server's resident memory (its process and children) and the processed frames per
second the server's live trace shows. It fails (exit 1) when the memory at the end is more than
``GROWTH_LIMIT`` above the memory at ``WARM_MINUTES`` (the first minutes load the models and
warm the caches). The LFW photos are read at run time and never written anywhere but the
temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "web_app"))
from bench_browser import Trace, open_live_page, start_app
from test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PERSON,
    VIDEO_FPS,
    VIDEO_H,
    VIDEO_W,
    write_frames_y4m,
)

#: The second enrolled person and the stranger: LFW DevTest people, one photo each.
SECOND, SECOND_PHOTO, STRANGER, STRANGER_PHOTO = "Tony_Blair", 1, "Kofi_Annan", 1
#: Seconds each face is in view, and of empty room after it.
FACE_S, EMPTY_S = 8.0, 2.0
WARM_MINUTES = 5
GROWTH_LIMIT = 0.10


def _rss_mb(root: int) -> float:
    """Resident memory (MB) of ``root`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def write_video(path: Path, faces: list[np.ndarray]) -> Path:
    """The looping fake camera: each face (letterboxed, 300 px tall) for ``FACE_S``, then an
    empty room for ``EMPTY_S``."""
    import cv2

    rows, cols = np.mgrid[0:VIDEO_H, 0:VIDEO_W]
    room = np.repeat((90 + 40 * rows / VIDEO_H + 20 * cols / VIDEO_W)[..., None], 3, axis=2)
    rng = np.random.default_rng(0)

    def frames():  # type: ignore[no-untyped-def]
        for face in faces:
            shown = cv2.resize(face, (300, 300), interpolation=cv2.INTER_AREA)
            for index in range(round((FACE_S + EMPTY_S) * VIDEO_FPS)):
                frame = room + rng.normal(0, 3, room.shape)
                if index < FACE_S * VIDEO_FPS:
                    top, left = (VIDEO_H - 300) // 2, 170 + int(20 * np.sin(index / 15))
                    frame[top:top + 300, left:left + 300] = shown
                yield np.clip(frame, 0, 255).astype(np.uint8)

    return write_frames_y4m(path, frames())


def prepare(data_dir: Path, lfw: Path) -> list[np.ndarray]:
    """Enroll the astronaut and SECOND, open a session of their class; returns the faces the
    camera shows (astronaut, SECOND's other photo... , the stranger)."""
    from skimage import data

    from model.api import FaceAttendance
    from model.core.images import load_image
    from model.learning.lfw import image_path
    from model.settings import get_settings

    os.environ["FACEATT_DATA_DIR"] = str(data_dir)
    os.environ.pop("FACEATT_BASE_MODEL", None)
    engine = FaceAttendance.open(get_settings())
    second = load_image(image_path(lfw, SECOND, SECOND_PHOTO).read_bytes())
    stranger = load_image(image_path(lfw, STRANGER, STRANGER_PHOTO).read_bytes())
    name = SECOND.replace("_", " ")
    for person, photo in ((PERSON, data.astronaut()), (name, second)):
        if not engine.enroll_person(person, [photo], consent=True).saved:
            raise SystemExit(f"could not enroll {person}")
    school_class = engine.book.create_class("Soak", head_turn=False)
    engine.book.add_to_roster(school_class.id, [PERSON, name])
    engine.book.start_session("Soak 1", class_id=school_class.id, open_it=True)
    return [data.astronaut(), second, stranger]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--kiosks", type=int, default=1, help="live pages open on one server")
    args = parser.parse_args()
    from model.learning.lfw import lfw_available, lfw_dir

    if not lfw_available(lfw_dir()):
        raise SystemExit(f"needs LFW at {lfw_dir()}")
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="faceatt-soak-"))
    try:
        faces = prepare(work / "data", lfw_dir())
        video = write_video(work / "camera.y4m", faces)
        trace = Trace(work / "trace.jsonl")
        server, url, _ = start_app(work, trace)
        rows: list[tuple[float, float, float]] = []
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM,
                    args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={video}"])
                started = time.monotonic()
                pages = [open_live_page(browser, url, trace, started)[0] for _ in range(args.kiosks)]
                print(f"{args.kiosks} live page(s) open; minute, server memory (MB), processed "
                      "frames/s over the minute (all pages)", flush=True)
                minute = 0
                while (minute := minute + 1) <= args.minutes:
                    until = started + 60 * minute
                    while time.monotonic() < until:
                        pages[0].wait_for_timeout(1000)
                    results = trace.of("result", until - 60, until)
                    rss = _rss_mb(server.pid)
                    rows.append((minute, rss, len(results) / 60))
                    print(f"{minute:>4} {rss:>8.0f} {len(results) / 60:>7.1f}", flush=True)
                browser.close()
        finally:
            server.terminate()
            server.wait(30)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    warm = next((r for r in rows if r[0] == WARM_MINUTES), rows[0])
    end = rows[-1]
    growth = end[1] / warm[1] - 1
    print(f"memory at {warm[0]:.0f} min {warm[1]:.0f} MB, at {end[0]:.0f} min {end[1]:.0f} MB "
          f"({100 * growth:+.1f}%); frames/s at {warm[0]:.0f} min {warm[2]:.1f}, at "
          f"{end[0]:.0f} min {end[2]:.1f}")
    if growth > GROWTH_LIMIT:
        print(f"FAIL: memory grew more than {100 * GROWTH_LIMIT:.0f}% after the first "
              f"{WARM_MINUTES} minutes")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
