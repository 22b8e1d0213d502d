"""What a user gets from the live Check-in page in a real browser (app and browser on one machine).

Run: ``python benchmarks/bench_browser.py [--json] [--out DIR] [--check-ins N]``. It enrolls the
public-domain astronaut (``skimage.data.astronaut()``, "Eileen Collins") in a temporary data folder,
opens a class session, starts the app there as ``make run`` does (``python -m web_app``) with the
shipped network and drives headless Chromium (Playwright), whose fake camera loops a ``.y4m``
made here: an empty room, her face crossing the view, the room empty again. A 16x16 marker in
every frame's top-left corner is white while the face is in view and black otherwise; the server
writes each frame's marker and what happened to it to ``FACEATT_LIVE_TRACE`` (see web_app/live.py),
so the figures are measured where they happen. All times are ``time.monotonic()``: one clock for
every process on Linux.

Figures (medians): processed frames per second with one and three faces in view; the age of the
boxes drawn on the video and boxes left on an empty view; face enters -> checked in (a new session
after each check-in); page ready, cold (the browser waiting when the server comes up), warm, and
opened while the engine is still loading; the Enroll page's "Capture 8 frames"; CPU seconds
per second of the server (worker, frame callback, the rest) and of Chromium. Slips of the page
while check-ins are timed (a new session not followed, the stream stopping...) are counted and
handled as a teacher would (reload the page), so one slip does not lose the run.

A benchmark, never run by pytest. Needs Chromium and Playwright (``make bench-browser``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "web_app"))
from app_server import free_port
from test_browser import (  # the real-browser test's helpers
    CHROMIUM,
    CHROMIUM_ARGS,
    PERSON,
    REPO_ROOT,
    SERVER_START_S,
    VIDEO_FPS,
    VIDEO_H,
    VIDEO_W,
    start_stream,
)

from web_app.__main__ import FIRST_PAGE_HOLD_S

#: The fake camera's loop: seconds of empty room, of a face in view, of empty room again.
EMPTY_BEFORE_S, FACE_S, EMPTY_AFTER_S = 3.0, 5.0, 1.0
#: Her face in skimage's photo (x, y, width, height; MTCNN's box) and its height in the video.
ASTRONAUT_FACE = (182, 64, 83, 107)
FACE_HEIGHT = {1: 140, 3: 95}
#: Pixels the faces move per frame (one face crosses the view; three have little room).
FACE_SHIFT = {1: 3, 3: 1}
MARKER_PX, WHITE = 16, 128
#: A box drawn this long after the face left counts as stale.
STALE_AFTER_S = 0.3
THREE_FACES_S = 20.0
WARM_LOADS = 2
#: What went wrong on the Check-in page while timing check-ins (counted, then handled).
SLIPS = {"missed_new_session": "page did not follow a new session within 20 s (reloaded)",
         "reopened_old_session": "page opened the previous session again (new one made)",
         "stream_stopped": "no camera frames reached the server for 10 s (reloaded)",
         "stopped_checking_in": "face came twice, no check-in (reloaded)"}
CAPTURE_PERSON = "Capture Test"
WEBRTC = "iframe[title*='streamlit_webrtc']"
STEP_MS = 120_000
#: The Enroll page's last messages after a capture (older and newer wordings).
FINAL_MESSAGE = re.compile(r"Kept \d+ of|Saved \d+ face photo|frame\(s\) skipped|usable face|"
                           r"do not look like")

Event = dict[str, Any]
#: pid -> (parent pid, name, CPU seconds used so far).
CpuTable = dict[int, tuple[int, str, float]]


def write_video(path: Path, faces: int, seed: int = 0) -> Path:
    """The looping fake-camera video (YUV 4:2:0) with ``faces`` copies of her face and the marker."""
    import cv2
    from skimage import data

    x, y, w, h = ASTRONAUT_FACE
    crop = data.astronaut()[max(y - h // 2, 0):y + 3 * h // 2, x - w // 2:x + 3 * w // 2]
    scale = FACE_HEIGHT[faces] / h
    crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    crop_h, crop_w = crop.shape[:2]
    rows, cols = np.mgrid[0:VIDEO_H, 0:VIDEO_W]
    background = np.repeat((90 + 40 * rows / VIDEO_H + 20 * cols / VIDEO_W)[..., None], 3, axis=2)
    rng = np.random.default_rng(seed)
    before, during = round(EMPTY_BEFORE_S * VIDEO_FPS), round(FACE_S * VIDEO_FPS)
    total = before + during + round(EMPTY_AFTER_S * VIDEO_FPS)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{VIDEO_W} H{VIDEO_H} F{VIDEO_FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for index in range(total):
            # Mild noise, like a real camera (and so the encoder cannot skip the background).
            frame = np.clip(background + rng.normal(0, 3, background.shape), 0, 255).astype(np.uint8)
            step = index - before
            in_view = 0 <= step < during
            for copy in range(faces if in_view else 0):
                left = 40 + step * FACE_SHIFT[faces] + copy * (crop_w + 20)
                top = (VIDEO_H - crop_h) // 2
                frame[top:top + crop_h, left:left + crop_w] = crop
            frame[:MARKER_PX, :MARKER_PX] = 255 if in_view else 0
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def prepare_data(data_dir: Path) -> int:
    """Enroll her with the shipped network, make a class with her on its roster and open a
    session of it; returns the class id."""
    from skimage import data

    from model.api import FaceAttendance
    from model.core.runtime import import_tensorflow_quietly
    from model.settings import get_settings

    import_tensorflow_quietly()
    os.environ["FACEATT_DATA_DIR"] = str(data_dir)
    os.environ.pop("FACEATT_BASE_MODEL", None)  # the shipped network, never a test model
    engine = FaceAttendance.open(get_settings())
    report = engine.enroll_person(PERSON, [data.astronaut()], consent=True)
    if not report.saved:
        raise SystemExit(f"could not enroll the astronaut: {report.rejected}")
    # No head turn: this measures the recognition path (a still photo plays the camera);
    # the head-turn check is measured by bench_liveness.py.
    school_class = engine.book.create_class("Benchmark", head_turn=False)
    engine.book.add_to_roster(school_class.id, [PERSON])
    engine.book.start_session("Benchmark 1", class_id=school_class.id, open_it=True)
    return school_class.id


class Trace:
    """The server's event log (``FACEATT_LIVE_TRACE``), read as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.events: list[Event] = []
        self._offset = 0

    def of(self, kind: str, since: float = 0.0, until: float = float("inf")) -> list[Event]:
        """Events of one kind with ``since <= t < until``, oldest first (reads new lines)."""
        if self.path.exists():
            with self.path.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read()
            end = chunk.rfind(b"\n") + 1  # a line being written is read next time
            self._offset += end
            self.events += [json.loads(line) for line in chunk[:end].splitlines() if line]
        return sorted((e for e in self.events if e["ev"] == kind and since <= e["t"] < until),
                      key=lambda e: e["t"])

    def wait_for(self, kind: str, test: Callable[[Event], bool], since: float,
                 timeout_s: float) -> Event | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = [e for e in self.of(kind, since) if test(e)]
            if found:
                return found[0]
            time.sleep(0.1)
        return None


def white_spans(frames: list[Event]) -> list[tuple[float, float]]:
    """(first white frame, first black frame after it) for each time the face was in view."""
    spans, entered = [], None
    for frame in frames:
        white = frame["marker"] > WHITE
        if white and entered is None:
            entered = frame["t"]
        elif not white and entered is not None:
            spans.append((entered, frame["t"]))
            entered = None
    return spans


def processed_fps(trace: Trace, since: float, until: float) -> float | None:
    """Median over face appearances of results with a face per second of the face in view."""
    results = [r for r in trace.of("result", since, until) if r["faces"] >= 1]
    rates = [sum(start <= r["frame_t"] < end for r in results) / (end - start)
             for start, end in white_spans(trace.of("frame", since, until))]
    return statistics.median(rates) if rates else None


def box_ages(frames: list[Event]) -> dict[str, float | None]:
    """Ages of the drawn boxes (s), and boxes drawn on the empty view after the face left."""
    ages = [f["age"] for f in frames if f["age"] is not None]
    late = boxed = 0
    lingers: list[float] = []
    left_at, was_white = None, False
    for frame in frames:
        white = frame["marker"] > WHITE
        if was_white and not white:
            left_at = frame["t"]
            lingers.append(0.0)
        if not white and left_at is not None:
            if frame["age"] is not None:
                lingers[-1] = frame["t"] - left_at
            if frame["t"] - left_at > STALE_AFTER_S:
                late += 1
                boxed += frame["age"] is not None
        was_white = white
    return {"age_median_s": statistics.median(ages) if ages else None,
            "age_p95_s": float(np.percentile(ages, 95)) if ages else None,
            "age_max_s": max(ages, default=None),
            "stale_box_share": boxed / late if late else None,
            "box_lingers_s": statistics.median(lingers) if lingers else None}


def worker_timing(results: list[Event]) -> dict[str, Any]:
    """Averages of the worker's optional per-step keys (``detect_ms``, ``embed_ms``...)."""
    keys = {k for r in results for k in r} - {"ev", "t", "frame_t", "ms", "cpu_ms", "faces"}
    timing: dict[str, Any] = {}
    for key in sorted(keys):
        values = [r[key] for r in results if key in r]
        numbers = [v for v in values if isinstance(v, int | float)]
        timing[key] = (statistics.mean(numbers) if len(numbers) == len(values)
                       else {str(v): values.count(v) for v in set(map(str, values))})
    return timing


def cpu_table() -> CpuTable:
    """Every process's parent, name and CPU seconds (user + system) so far."""
    try:
        import psutil
    except ImportError:
        return _proc_cpu_table()
    table = {}
    for proc in psutil.process_iter(["ppid", "name", "cpu_times"]):
        if proc.info["cpu_times"] is not None:
            used = proc.info["cpu_times"].user + proc.info["cpu_times"].system
            table[proc.pid] = (proc.info["ppid"], proc.info["name"] or "", used)
    return table


def _proc_cpu_table() -> CpuTable:
    """``cpu_table`` without psutil: utime + stime from ``/proc/<pid>/stat``."""
    table, tick = {}, os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:  # it exited meanwhile
            continue
        if stat:
            fields = stat[stat.rindex(")") + 2:].split()
            table[int(entry.name)] = (int(fields[1]), stat[stat.index("(") + 1:stat.rindex(")")],
                                      (int(fields[11]) + int(fields[12])) / tick)
    return table


def descendants(table: CpuTable, root: int) -> set[int]:
    found, todo = {root}, [root]
    while todo:
        parent = todo.pop()
        children = {pid for pid, (ppid, _, _) in table.items() if ppid == parent} - found
        found |= children
        todo += children
    return found


def cpu_per_second(before: CpuTable, after: CpuTable, pids: set[int], wall_s: float) -> float:
    return sum(after[p][2] - before.get(p, (0, "", 0.0))[2] for p in pids if p in after) / wall_s


def start_app(work: Path, trace: Trace) -> tuple[subprocess.Popen[bytes], str, float]:
    """The app as ``make run`` starts it, on the prepared data folder; returns the server, its
    URL and when ``/_stcore/health`` first answered 200."""
    port = free_port()
    env = {**os.environ, "FACEATT_DATA_DIR": str(work / "data"), "FACEATT_ADMIN_PASSCODE": "",
           "FACEATT_LIVE_TRACE": str(trace.path)}
    env.pop("FACEATT_BASE_MODEL", None)  # the shipped network, never a test model
    server = subprocess.Popen(
        [sys.executable, "-m", "web_app", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=REPO_ROOT, env=env, stdout=(work / "server.log").open("wb"), stderr=subprocess.STDOUT)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return server, url, time.monotonic()
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the app did not start:\n" + (work / "server.log").read_text()[-3000:])


def open_live_page(browser: Any, url: str, trace: Trace, since: float) -> tuple[Any, float, float]:
    """Load Check-in, press START; seconds from ``since`` to the START button and the first result."""
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    page.set_default_timeout(STEP_MS)
    page.goto(f"{url}/checkin")
    webrtc = page.frame_locator(WEBRTC).first
    webrtc.get_by_role("button", name="START").wait_for(state="visible")
    button_at = time.monotonic()
    for _ in range(3):  # a stalled WebRTC connection: STOP and START again, as a user would
        start_stream(webrtc, webrtc.get_by_role("button", name="STOP"), "to_be_visible")
        first = trace.wait_for("result", lambda r: r["frame_t"] > button_at, button_at, 40)
        if first is not None:
            break
        webrtc.get_by_role("button", name="STOP").click()
    else:
        raise SystemExit("no frame was processed after START")
    return page, button_at - since, first["t"] - since


def page_during_load(browser: Any, work: Path, trace: Trace) -> list[float]:
    """A fresh server whose first page is opened only after its engine's load began (the
    load waits for a first page at most ``FIRST_PAGE_HOLD_S``): open -> START / first result."""
    server, url, healthy_at = start_app(work, trace)
    try:
        time.sleep(max(0.0, healthy_at + FIRST_PAGE_HOLD_S + 1.0 - time.monotonic()))
        _, *ready = open_live_page(browser, url, trace, time.monotonic())
        return ready
    finally:
        browser.close()
        server.terminate()
        server.wait(timeout=30)


def screenshot_with_box(page: Any, trace: Trace, path: Path) -> None:
    """The page, scrolled to the video, while the server draws boxes on it (the video lags a
    little behind the server)."""
    page.locator(WEBRTC).first.scroll_into_view_if_needed()
    if trace.wait_for("frame", lambda f: f["age"] is not None, time.monotonic(), 10):
        page.wait_for_timeout(200)
    page.screenshot(path=str(path))


def check_ins(page: Any, trace: Trace, data_dir: Path, class_id: int, count: int,
              out: Path | None) -> dict[str, Any]:
    """Seconds from the face's first frame to its check-in, a new open session after each;
    how many times the face came and went without a check-in, and the page's slips (each
    handled as a teacher would: reload the page, or open a new session again)."""
    from playwright.sync_api import expect

    from model.school.attendance import AttendanceBook

    book = AttendanceBook(data_dir / "attendance.sqlite3")
    waits: list[float] = []
    figures: dict[str, Any] = {"check_in_s": waits, "entries_missed": 0, "follow_session_s": [],
                               **dict.fromkeys(SLIPS, 0)}

    def reload(slip: str) -> float:
        figures[slip] += 1
        page.reload()
        webrtc = page.frame_locator(WEBRTC).first
        start_stream(webrtc, webrtc.get_by_role("button", name="STOP"), "to_be_visible")
        return time.monotonic()

    def new_session() -> tuple[int, float]:
        """One check-in per person per session: open a new one; when the page took it up."""
        name = f"Benchmark {len(book.sessions()) + 1}"
        session, opened = book.start_session(name, class_id=class_id, open_it=True), time.monotonic()
        try:
            expect(page.get_by_text(f"Class session: {name} (Benchmark)")).to_be_visible(timeout=20_000)
        except AssertionError:
            if book.open_session_id() == session.id:
                return session.id, reload("missed_new_session")
        figures["follow_session_s"].append(time.monotonic() - opened)
        return session.id, time.monotonic()

    def entries(since: float, until: float) -> list[tuple[float, float]]:
        """The face's entries after ``since`` (not one already in view then), the last one
        ending at ``until`` if it is still in view."""
        frames = trace.of("frame", since, until)
        spans = white_spans([*frames, {"t": until, "marker": 0}])
        return spans[1:] if frames and frames[0]["marker"] > WHITE else spans

    session_id, ready_at = (new_session() if trace.of("checkin")
                            else (book.open_session_id() or 0, time.monotonic()))
    deadline = ready_at + 20 * count + 40
    while len(waits) < count and time.monotonic() < deadline:
        checkin = trace.wait_for("checkin", lambda e: True, ready_at, 1.0)
        now = time.monotonic()
        if checkin is None:
            gone_by = [e for e in entries(ready_at, now) if e[1] < now]
            if book.open_session_id() != session_id:
                figures["entries_missed"] += len(gone_by)
                figures["reopened_old_session"] += 1
                session_id, ready_at = new_session()
            elif now - ready_at > 10 and not trace.of("frame", now - 10):
                ready_at = reload("stream_stopped")
            elif len(gone_by) >= 2:
                figures["entries_missed"] += len(gone_by)
                ready_at = reload("stopped_checking_in")
            continue
        came = entries(ready_at, checkin["t"])
        figures["entries_missed"] += max(len(came) - 1, 0)
        if came:
            waits.append(checkin["t"] - came[-1][0])
        if out is not None and len(waits) == 1:
            screenshot_with_box(page, trace, out / "checkin-live.png")
        if trace.wait_for("frame", lambda f: f["marker"] <= WHITE, checkin["t"], 30) is None:
            break
        session_id, ready_at = new_session()
    return figures


def enrollment_capture(page: Any, url: str, out: Path | None) -> tuple[float | None, str]:
    """"Capture 8 frames" on the Enroll page: seconds to the final message, and its text."""
    from playwright.sync_api import Error, expect

    try:
        page.goto(f"{url}/enroll")
        page.get_by_label("Name").fill(CAPTURE_PERSON)
        page.get_by_label("Name").press("Enter")
        page.get_by_text("This person (or their parent").click()
        page.get_by_text("Live camera").click()
        button = page.get_by_role("button", name="Capture 8 frames")
        start_stream(page.frame_locator(WEBRTC).first, button, "to_be_enabled")
        page.wait_for_timeout(3000)  # the worker assesses a few frames first
        clicked = time.monotonic()
        button.click()
        alerts = page.locator("[data-testid='stAlert']")
        expect(alerts.filter(has_text=FINAL_MESSAGE).first).to_be_visible()
        seconds = time.monotonic() - clicked
        page.wait_for_timeout(1000)  # the run's later messages
        if out is not None:
            page.screenshot(path=str(out / "enroll-capture.png"), full_page=True)
        texts = alerts.filter(has_text=FINAL_MESSAGE).all_inner_texts()
        return seconds, " | ".join(" ".join(text.split()) for text in texts)
    except (Error, AssertionError) as error:
        return None, f"n/a ({type(error).__name__}: {str(error).splitlines()[0]})"


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    return {"cores": os.cpu_count(), "cpu": model.group(1) if model else "?",
            "load_average": os.getloadavg()}


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    figures: dict[str, Any] = {"machine": machine()}
    videos = {n: write_video(work / f"faces-{n}.y4m", n) for n in (1, 3)}
    class_id = prepare_data(work / "data")
    trace = Trace(work / "trace.jsonl")
    with sync_playwright() as playwright:
        def launch(faces: int) -> Any:
            return playwright.chromium.launch(executable_path=CHROMIUM, args=[
                *CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={videos[faces]}"])

        # The browser is already open when the server comes up, as a teacher's would be:
        # "cold" is then the app's own time from its health check to the page.
        browser = launch(1)
        server, url, healthy_at = start_app(work, trace)
        try:
            page, *cold = open_live_page(browser, url, trace, healthy_at)
            figures["page_ready_cold_s"] = cold
            before, started = cpu_table(), time.monotonic()
            figures.update(check_ins(page, trace, work / "data", class_id, args.check_ins, args.out))
            after, ended = cpu_table(), time.monotonic()
            figures["fps_one_face"] = processed_fps(trace, started, ended)
            frames, results = trace.of("frame", started, ended), trace.of("result", started, ended)
            wall = ended - started
            figures["camera_fps_at_server"] = len(frames) / wall
            figures.update(box_ages(trace.of("frame", started, ended)))
            server_pids = descendants(after, server.pid)
            chromium = {p for p in descendants(after, os.getpid()) - server_pids
                        if "chrom" in after[p][1].lower()}
            figures["cpu_per_s"] = {
                "server": cpu_per_second(before, after, server_pids, wall),
                "worker": sum(r["cpu_ms"] for r in results) / 1000 / wall,
                "callback": sum(f["ms"] for f in frames) / 1000 / wall,
                "chromium": cpu_per_second(before, after, chromium, wall)}
            figures["worker_timing"] = worker_timing([r for r in results if r["faces"] >= 1])
            page.frame_locator(WEBRTC).first.get_by_role("button", name="STOP").click()
            figures["capture_s"], figures["capture_message"] = enrollment_capture(page, url, args.out)
            browser.close()

            browser, warm = launch(3), []
            for _ in range(WARM_LOADS):
                page, *ready = open_live_page(browser, url, trace, time.monotonic())
                warm.append(ready)
                if len(warm) < WARM_LOADS:
                    page.context.close()
            figures["page_ready_warm_s"] = [statistics.median(w) for w in zip(*warm, strict=True)]
            started = time.monotonic()
            page.wait_for_timeout(THREE_FACES_S * 1000)
            if args.out is not None:
                screenshot_with_box(page, trace, args.out / "checkin-three-faces.png")
            figures["fps_three_faces"] = processed_fps(trace, started, time.monotonic())
            browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
            if args.out is not None:  # for a closer look
                for name in ("trace.jsonl", "server.log"):
                    if (work / name).exists():
                        shutil.copyfile(work / name, args.out / name)
        figures["page_ready_during_load_s"] = page_during_load(launch(1), work, trace)
    figures["trace_events"] = {k: len([e for e in trace.events if e["ev"] == k])
                               for k in ("frame", "result", "checkin")}
    return figures


def _s(value: float | None, unit: str = " s", digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def report(f: dict[str, Any]) -> None:
    m = f["machine"]
    print(f"machine: {m['cores']} cores, {m['cpu']}, load average at start "
          f"{m['load_average'][0]:.2f}")
    if m["load_average"][0] > 0.5:
        print("WARNING: the machine was busy at start (load average > 0.5): figures are noisy")
    waits, follow = f["check_in_s"], f["follow_session_s"]
    cpu = f["cpu_per_s"]
    rest = cpu["server"] - cpu["worker"] - cpu["callback"]
    rows = [
        (f"camera frames reaching the server (camera {VIDEO_FPS} fps)",
         _s(f["camera_fps_at_server"], " fps", 1)),
        ("processed frames/s, one face in view", _s(f["fps_one_face"], " fps", 1)),
        ("processed frames/s, three faces in view", _s(f["fps_three_faces"], " fps", 1)),
        ("result age on a frame with boxes: median", _s(f["age_median_s"])),
        ("  95th percentile / max", f"{_s(f['age_p95_s'])} / {_s(f['age_max_s'])}"),
        (f"empty view: frames with a box > {STALE_AFTER_S} s after the face left",
         _s(None if f["stale_box_share"] is None else 100 * f["stale_box_share"], " %", 0)),
        ("  box stays after the face left (median)", _s(f["box_lingers_s"])),
        (f"face enters -> checked in (median of {len(waits)})",
         _s(statistics.median(waits) if waits else None)
         + (f"  (min {min(waits):.2f}, max {max(waits):.2f})" if waits else "")),
        ("  times the face came and went without a check-in", str(f["entries_missed"])),
        *((f"  {text}", str(f[slip])) for slip, text in SLIPS.items()),
        (f"  page follows a session opened elsewhere (median of {len(follow)} / max)",
         f"{_s(statistics.median(follow) if follow else None)} / {_s(max(follow, default=None))}"),
        ("page ready, cold: health 200 -> START shown / first result",
         f"{_s(f['page_ready_cold_s'][0])} / {_s(f['page_ready_cold_s'][1])}"),
        (f"page ready, warm (median of {WARM_LOADS}): load -> START / first result",
         f"{_s(f['page_ready_warm_s'][0])} / {_s(f['page_ready_warm_s'][1])}"),
        (f"page first opened {FIRST_PAGE_HOLD_S + 1:.0f} s after health (engine loading): "
         "open -> START / first result",
         f"{_s(f['page_ready_during_load_s'][0])} / {_s(f['page_ready_during_load_s'][1])}"),
        ("enroll 'Capture 8 frames': click -> final message", _s(f["capture_s"])),
        ("  message", f["capture_message"]),
        ("CPU s per s, one face streaming: server", _s(cpu["server"], "", 2)),
        ("  of which worker (result cpu_ms)", _s(cpu["worker"], "", 2)),
        ("  of which frame callback (frame ms)", _s(cpu["callback"], "", 2)),
        ("  remainder (WebRTC decode/encode, Streamlit)", _s(rest, "", 2)),
        ("CPU s per s, Chromium (all its processes)", _s(cpu["chromium"], "", 2)),
    ]
    rows += [(f"worker {k} (mean, faces >= 1)", v if isinstance(v, dict) else f"{v:.1f}")
             for k, v in f["worker_timing"].items()]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print(f"trace events: {f['trace_events']}; {f['wall_s']:.0f} s in all")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--check-ins", type=int, default=5, help="check-ins timed (median)")
    parser.add_argument("--out", type=Path, help="folder for screenshots of the pages")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"Chromium not found at {CHROMIUM} (make browser)")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    begun = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="faceatt-bench-browser-") as tmp:
        figures = run(args, Path(tmp))
    figures["wall_s"] = time.monotonic() - begun
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        report(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
