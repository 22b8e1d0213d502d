"""Enrolling a class from group photos in a real browser (headless Chromium, issue 19).

The teacher makes a class, uploads three group photos on the Classes page, has the faces
grouped, types a name for each of the two groups, consents once and enrolls them: both are
then on the class roster. The group photos are the public-domain astronaut twice side by
side, differently lit (two faces of one photo are never one person, so each photo gives one
face to each group); the network is the shipped one. A screenshot of the named groups and
of the roster goes to the test's output folder (``FACEATT_BROWSER_OUT`` or pytest's tmp).

Skips without Chromium or Playwright, unless ``FACEATT_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

from functools import partial

import pytest
import test_browser as walk
from test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    STEP_S,
    click_and_rerun,
    rerun_after,
    settle,
    unfold,
)
from test_group_photos import group_photos

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The main walk's fixtures: the app started as ``make run`` starts it with the shipped
# network, Playwright (or a skip), the screenshot folder.
app_url, playwright_api, out_dir = walk.app_url, walk.playwright_api, walk.out_dir

CLASS = "Art club"
NAMES = ("Eileen Collins", "Robin Example")


def test_a_class_enrolled_from_three_group_photos(playwright_api, app_url, out_dir):
    sync_playwright, expect = playwright_api
    expect.set_options(timeout=STEP_S * 1000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1800})
            page.goto(f"{app_url}/classes")
            unfold(page, "Make a new class")
            page.get_by_label("Class name").fill(CLASS)
            settle(page)
            page.get_by_role("button", name="Make class").click()
            expect(page.get_by_text(f"Made the class {CLASS}.")).to_be_visible()
            settle(page)

            uploader = page.get_by_test_id("stFileUploader").filter(has_text="Group photos")
            uploader.locator("input[type='file']").set_input_files(files=[
                {"name": name, "mimeType": mime, "buffer": data}
                for name, data, mime in group_photos()])
            settle(page)
            page.get_by_role("button", name="Find and group the faces").click()
            expect(page.get_by_text("6 faces in 3 photos: 2 groups, 0 not sure.")).to_be_visible()
            settle(page)
            names = page.get_by_label("Name", exact=True)
            for i, name in enumerate(NAMES):  # the groups' name boxes come first on the page
                names.nth(i).fill(name)
                # Each name is kept by its own run; the next one is typed once it is over.
                rerun_after(page, partial(names.nth(i).press, "Enter"))
            click_and_rerun(page, page.get_by_text("Everyone named here (or their parent"))
            enroll = page.get_by_role("button", name=f"Enroll 2 named people into {CLASS}")
            expect(enroll).to_be_enabled()
            page.screenshot(path=str(out_dir / "group-photos-named.png"), full_page=True)
            enroll.click()
            expect(page.get_by_text(f"Enrolled 2 of 2 people (6 photos) into {CLASS}.")).to_be_visible()
            expect(page.get_by_text(f"Roster of {CLASS} (2)")).to_be_visible()
            roster = page.get_by_test_id("stDataFrame").nth(1)
            for name in NAMES:
                expect(roster.get_by_text(name, exact=True).first).to_be_attached()
            page.screenshot(path=str(out_dir / "group-photos-roster.png"), full_page=True)
        finally:
            browser.close()

