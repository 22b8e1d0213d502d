"""Screenshots of every page for docs/screenshots/ (``python tests/web_app/make_screenshots.py``).

Only the public-domain astronaut photo (``skimage.data.astronaut()``) appears, as the
fake camera and as uploads. Uses the shipped base model when there is one, else the
test's "accept everyone" model. Needs Chromium and Playwright, like test_browser.py.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_server import free_port
from test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PERSON,
    REPO_ROOT,
    choose,
    enroll_from_snapshot,
    make_class,
    write_accept_all_model,
    write_y4m,
)

OUT = REPO_ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 1000}
STEP_MS = 90_000


def main() -> None:
    from playwright.sync_api import expect, sync_playwright
    from skimage import data

    expect.set_options(timeout=STEP_MS)
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="faceatt-shots-"))
    astronaut = np.ascontiguousarray(data.astronaut())
    photo = work / "astronaut.jpg"
    buffer = io.BytesIO()
    Image.fromarray(astronaut).save(buffer, format="JPEG", quality=92)
    photo.write_bytes(buffer.getvalue())
    video = write_y4m(work / "astronaut.y4m", astronaut)
    base = REPO_ROOT / "model" / "weights" / "base.keras"
    model = base if base.exists() else write_accept_all_model(work / "accept-all.keras")
    port = free_port()
    env = {**os.environ, "FACEATT_DATA_DIR": str(work / "data"), "FACEATT_BASE_MODEL": str(model),
           "FACEATT_ADMIN_PASSCODE": ""}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "web_app/app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={video}"])
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.set_default_timeout(STEP_MS)

            def shot(name: str) -> None:
                page.wait_for_timeout(1500)
                page.screenshot(path=str(OUT / f"{name}.png"))
                print("wrote", OUT / f"{name}.png")

            page.goto(f"{url}/enroll")
            enroll_from_snapshot(page, PERSON)
            page.mouse.wheel(0, 700)
            shot("enroll")

            page.goto(f"{url}/classes")
            make_class(page, "Art club", f"{PERSON}\n")
            make_class(page, "Maths 7B", f"{PERSON}\nGrace Hopper\nAlan Turing\n")
            expect(page.get_by_text("still need photos")).to_be_visible()
            page.mouse.wheel(0, 450)
            shot("classes")

            page.goto(f"{url}/checkin")
            choose(page, "Class", "Maths 7B")
            page.get_by_label("Session name (optional)").fill("Monday")
            page.get_by_role("button", name="Start session").click()
            expect(page.get_by_text("Checked in (0)")).to_be_visible()
            webrtc = page.frame_locator("iframe[title*='streamlit_webrtc']").first
            webrtc.get_by_role("button", name="START").click()
            expect(page.get_by_text("Checked in (1)")).to_be_visible()
            expect(page.get_by_text("1 of 3 here")).to_be_visible()
            # The first frames include tracing the detector for the stream's size; the
            # caption then shows the steady speed.
            page.wait_for_timeout(5000)
            page.mouse.wheel(0, 250)
            shot("checkin")
            webrtc.get_by_role("button", name="STOP").click()

            page.goto(f"{url}/verify")
            inputs = page.locator("input[type='file']")
            expect(inputs.first).to_be_attached()
            inputs.nth(0).set_input_files(str(photo))
            inputs.nth(1).set_input_files(str(photo))
            expect(page.get_by_text("threshold").first).to_be_visible()
            shot("verify")

            for name in ("people", "train", "attendance", "home"):
                page.goto(f"{url}/{name}" if name != "home" else url)
                expect(page.locator("h1").first).to_be_visible()
                if name == "attendance":
                    expect(page.get_by_text("Register: Monday")).to_be_visible()
                    page.mouse.wheel(0, 300)
                shot(name)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
