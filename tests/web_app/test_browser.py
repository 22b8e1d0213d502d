"""One walk through the main flow in a real browser (headless Chromium via Playwright).

Chromium's fake camera plays a ``.y4m`` made at test time from the public-domain
astronaut photo. The walk: enroll her from the camera (a snapshot, then "Capture 8
frames" from the live stream), make two classes with rosters from CSVs (one expects a
student who never comes), start a session of one class, check her in with the live camera
(streamlit-webrtc), and read its register: her present, the other student absent. A screenshot of
each step goes to the test's output folder (``FACEATT_BROWSER_OUT`` or pytest's
tmp folder).

The network is a tiny "accept everyone" model made here (the head's bias is large),
so the walk tests the app, not the quality of a trained network: with one person
enrolled, any face is recognised as her.

Skips without Chromium or Playwright, unless ``FACEATT_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("FACEATT_CHROMIUM", "/usr/bin/chromium")
ENV_REQUIRE_BROWSER = "FACEATT_REQUIRE_BROWSER"
PERSON = "Eileen Collins"
#: Fake-camera video: size, frame rate and length (Chromium loops it).
VIDEO_W, VIDEO_H, VIDEO_FPS, VIDEO_FRAMES = 640, 480, 15, 30
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    # Offer real 127.0.0.1 candidates: aiortc cannot resolve Chromium's mDNS host names.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
#: Seconds allowed for the server to start (imports TensorFlow) and for each step.
SERVER_START_S = 120
STEP_S = 90


def _require_browser() -> bool:
    return os.environ.get(ENV_REQUIRE_BROWSER, "") not in ("", "0")


def _skip_or_fail(reason: str) -> None:
    if _require_browser():
        pytest.fail(f"{reason} ({ENV_REQUIRE_BROWSER}=1 makes this a failure)")
    pytest.skip(reason)



def enroll_from_snapshot(page, person: str, tries: int = 5) -> None:  # type: ignore[no-untyped-def]
    """On the Enroll page: type the name, give consent, take camera snapshots until one
    face photo is saved (the fake camera's first frames can be blank: try again)."""
    from playwright.sync_api import expect

    page.get_by_label("Name").fill(person)
    page.get_by_label("Name").press("Enter")
    page.get_by_text("This person (or their parent").click()
    saved = page.get_by_text(f"Saved 1 face photo of {person}")
    for _ in range(tries):
        page.wait_for_timeout(2000)
        page.get_by_role("button", name="Take Photo").click()
        try:
            expect(saved).to_be_visible(timeout=30_000)
            break
        except AssertionError:
            page.get_by_role("button", name="Clear photo").click()
    expect(saved).to_be_visible()


def start_stream(video, ready, check: str, tries: int = 3) -> None:  # type: ignore[no-untyped-def]
    """Press START and wait for ``ready``; on a busy machine the WebRTC connection can
    stall before it plays, so STOP and START again (a user would do the same)."""
    from playwright.sync_api import expect

    for attempt in range(tries):
        video.get_by_role("button", name="START").click()
        try:
            getattr(expect(ready), check)(timeout=60_000)
            return
        except AssertionError:
            if attempt == tries - 1:
                raise
            video.get_by_role("button", name="STOP").click()

def settle(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until the app's script has finished its run (what Streamlit's own browser tests
    do before the next action): a click sent while a run is still drawing the page can be
    lost on a busy machine."""
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for()


def choose(page, label: str, option: str) -> None:  # type: ignore[no-untyped-def]
    """Pick ``option`` in the Streamlit selectbox called ``label``."""
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option, exact=True).click()


def make_class(page, name: str, roster: str) -> None:  # type: ignore[no-untyped-def]
    """On the Classes page: make a class, then read its roster from a CSV."""
    from playwright.sync_api import expect

    expander = page.get_by_text("Make a new class")
    expect(expander).to_be_visible()
    settle(page)
    page.wait_for_timeout(500)  # the expander finishes opening or closing
    if not page.get_by_label("Class name").is_visible():
        expander.click()
    page.get_by_label("Class name").fill(name)
    settle(page)
    page.get_by_role("button", name="Make class").click()
    made = page.get_by_text(f"Made the class {name}.")
    try:
        expect(made).to_be_visible(timeout=30_000)
    except AssertionError:
        # Once in CI the click was lost (the name still in the field, no class made). A
        # teacher would click again; say so in the test report rather than hide it.
        if page.get_by_label("Class name").input_value() != name:
            raise
        warnings.warn(f"'Make class' ({name}) did nothing for 30 s; clicked it again",
                      stacklevel=1)
        settle(page)
        page.get_by_role("button", name="Make class").click()
    expect(made).to_be_visible()
    expect(page.get_by_role("combobox", name="Class", exact=True)).to_have_value(name)
    settle(page)
    page.locator("input[type='file']").first.set_input_files(
        files=[{"name": "roster.csv", "mimeType": "text/csv", "buffer": roster.encode()}])
    settle(page)
    page.get_by_role("button", name="Read the roster").click()
    expect(page.get_by_text(f"to {name}.")).to_be_visible()


def write_y4m(path: Path, image: np.ndarray) -> Path:
    """A looping fake-camera video: ``image`` letterboxed into 640 x 480 (YUV 4:2:0)."""
    import cv2

    side = VIDEO_H
    face = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    canvas = np.full((VIDEO_H, VIDEO_W, 3), 128, np.uint8)
    left = (VIDEO_W - side) // 2
    canvas[:, left:left + side] = face
    yuv = cv2.cvtColor(canvas, cv2.COLOR_RGB2YUV_I420).tobytes()
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{VIDEO_W} H{VIDEO_H} F{VIDEO_FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(VIDEO_FRAMES):
            out.write(b"FRAME\n")
            out.write(yuv)
    return path


def write_accept_all_model(path: Path) -> Path:
    """A small student model whose open-set rule names the closest person whatever the score."""
    code = (
        "import sys, keras\n"
        "from model.network import build_compact_backbone, build_cosine_siamese, build_student_embedding\n"
        "from model.recognizer import save_recognizer\n"
        "keras.utils.set_random_seed(0)\n"
        "siamese = build_cosine_siamese(build_student_embedding(build_compact_backbone(64, 32, 16)))\n"
        "rule = {'name_threshold': -1e9, 'margin': -1e9, 'pair_threshold': -1e9, 'min_cosine': -2.0,\n"
        "        'adapt_to_gallery': False}\n"
        "save_recognizer(siamese, sys.argv[1], {'architecture': 'student', 'trained': True,\n"
        "                'kind': 'base', 'match_rule': rule, 'figures': {}})\n")
    # In a child process: this test process must not load TensorFlow (see web_app/live.py).
    subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO_ROOT, check=True,
                   capture_output=True, timeout=SERVER_START_S)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def out_dir(tmp_path) -> Path:
    chosen = os.environ.get("FACEATT_BROWSER_OUT")
    path = Path(chosen) if chosen else tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture()
def app_url(tmp_path):
    """Start the app as ``make run`` does (``python -m web_app``) on a free port with a
    fresh data folder."""
    import urllib.request

    model = write_accept_all_model(tmp_path / "accept-all.keras")
    port = free_port()
    env = {**os.environ, "FACEATT_DATA_DIR": str(tmp_path / "data"),
           "FACEATT_BASE_MODEL": str(model), "FACEATT_ADMIN_PASSCODE": ""}
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "web_app", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the app did not start:\n"
                            + (tmp_path / "server.log").read_text(errors="replace")[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture()
def playwright_api():
    """Playwright's ``(sync_playwright, expect)``; skips (or fails in CI) without a browser."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _skip_or_fail("playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        _skip_or_fail(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    return sync_playwright, expect


def test_enroll_check_in_and_attendance_in_a_real_browser(playwright_api, app_url, tmp_path,
                                                          out_dir):
    from skimage import data

    sync_playwright, expect = playwright_api
    expect.set_options(timeout=STEP_S * 1000)
    video = write_y4m(tmp_path / "astronaut.y4m", np.ascontiguousarray(data.astronaut()))
    url = app_url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={video}"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(STEP_S * 1000)

            # 1. Enroll from the camera (snapshot).
            page.goto(f"{url}/enroll")
            enroll_from_snapshot(page, PERSON)
            expect(page.get_by_text(f"Saved photos of {PERSON} (1)")).to_be_visible()
            assert len(list((tmp_path / "data" / "gallery" / PERSON).glob("*.jpg"))) == 1
            page.screenshot(path=str(out_dir / "1-enroll.png"), full_page=True)

            # 1b. More photos from the live camera ("Capture N frames").
            page.get_by_text("Live camera").click()
            enroll_video = page.frame_locator("iframe[title*='streamlit_webrtc']").first
            start_stream(enroll_video, page.get_by_role("button", name="Capture 8 frames"),
                         "to_be_enabled")
            page.wait_for_timeout(3000)  # let the worker assess a few frames
            page.get_by_role("button", name="Capture 8 frames").click()
            # The fake camera plays a still photo: the capture keeps no repeated view (of
            # the snapshot saved above, or of its own first frame) and says so.
            expect(page.get_by_text(re.compile(r"\d frame\(s\) skipped: Same as "))
                   ).to_be_visible()
            expect(page.get_by_text(re.compile(r"^Kept [01] of 8 frames"))).to_be_visible()
            page.screenshot(path=str(out_dir / "1b-enroll-live.png"), full_page=True)
            enroll_video.get_by_role("button", name="STOP").click()

            # 2. Two classes, each with a roster read from a CSV; Maths 7B also expects
            #    Grace Hopper, who has no photos and never comes.
            page.goto(f"{url}/classes")
            for name, roster in (("Art club", f"{PERSON}\n"),
                                 ("Maths 7B", f"{PERSON}\nGrace Hopper\n")):
                make_class(page, name, roster)
            expect(page.get_by_text("1 on the roster still need photos: Grace Hopper.")
                   ).to_be_visible()
            page.screenshot(path=str(out_dir / "2a-classes.png"), full_page=True)

            # 3. Start a session of Maths 7B and check in with the live camera.
            page.goto(f"{url}/checkin")
            choose(page, "Class", "Maths 7B")
            page.get_by_label("Session name (optional)").fill("Monday")
            settle(page)
            page.get_by_role("button", name="Start session").click()
            expect(page.get_by_role("combobox", name="Class session")).to_be_visible()
            expect(page.get_by_text("Class session: Monday (Maths 7B)")).to_be_visible()
            expect(page.get_by_text("Checked in (0)")).to_be_visible()
            webrtc = page.frame_locator("iframe[title*='streamlit_webrtc']").first
            start_stream(webrtc, page.get_by_text("Checked in (1)"), "to_be_visible")
            page.wait_for_timeout(1500)  # let the video show the label
            page.screenshot(path=str(out_dir / "2-checkin-live.png"), full_page=True)
            webrtc.get_by_role("button", name="STOP").click()

            expect(page.get_by_text("1 of 2 here")).to_be_visible()
            expect(page.get_by_text("Still missing: Grace Hopper")).to_be_visible()

            # 4. The register of Maths 7B's session: she is present, Grace Hopper absent.
            page.goto(f"{url}/attendance")
            expect(page.get_by_text("Register: Monday")).to_be_visible()
            expect(page.get_by_text("Download this register (CSV)")).to_be_visible()
            for label, value in (("On the roster", "2"), ("Present", "1"), ("Absent", "1")):
                metric = page.get_by_test_id("stMetric").filter(has_text=label)
                expect(metric.get_by_test_id("stMetricValue")).to_have_text(value)
            table = page.locator("[data-testid='stDataFrame']").first
            expect(table).to_be_visible()
            page.wait_for_timeout(1000)
            page.screenshot(path=str(out_dir / "3-attendance.png"), full_page=True)
        except Exception:
            # For whoever reads the CI output: the page as it was, and what the server said.
            with contextlib.suppress(Exception):
                page.screenshot(path=str(out_dir / "FAILED.png"), full_page=True)
            log = tmp_path / "server.log"
            print("server.log (end):\n" + (log.read_text(errors="replace")[-4000:]
                                           if log.exists() else "(none)"))
            raise
        finally:
            browser.close()
    from model.school.attendance import AttendanceBook

    book = AttendanceBook(tmp_path / "data" / "attendance.sqlite3")
    rows = book.checkins()
    assert [(r.person, r.how) for r in rows] == [(PERSON, "live")]
    [session] = book.sessions()
    register = book.register(session.id)
    assert register.class_name == "Maths 7B"
    assert [(r.person, r.status) for r in register.rows] == [(PERSON, "present"),
                                                             ("Grace Hopper", "absent")]
    art = book.find_class("Art club")
    assert art is not None and book.sessions(art.id) == []
    # The snapshot, and at most one frame of the still camera's capture: no repeated views.
    assert 1 <= len(list((tmp_path / "data" / "gallery" / PERSON).glob("*.jpg"))) <= 2
    for shot in ("1-enroll.png", "1b-enroll-live.png", "2a-classes.png", "2-checkin-live.png",
                 "3-attendance.png"):
        assert (out_dir / shot).stat().st_size > 0
