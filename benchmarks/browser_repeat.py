"""The real-browser test, run N times in a row, each from a fresh clone (issue 17).

Run: ``python benchmarks/browser_repeat.py [--runs 20] [--keep-logs DIR]``. Each run clones
this repository's committed HEAD (as it was when the script started) into a temporary
folder (with ``../shared`` beside it, as CI has it), links the checkout's ``.venv`` into
it (the packages are the same; the code, data folder, caches of the app and Chromium's
profile are fresh) and runs ``pytest tests/web_app/test_browser.py`` with
``FACEATT_REQUIRE_BROWSER=1``. It prints one line
per run (passed or failed, seconds, whether the live stream dropped and the test started it
again) and the counts at the end; the output of a failed run, or of one with a drop, is
kept (``--keep-logs``) for whoever looks into it. Not part of CI: 20 runs take about an hour.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


#: The warning of a run in which the live stream dropped and the test started it again.
DROPPED = "the live stream dropped during a capture"


def one_run(index: int, logs: Path, commit: str) -> tuple[bool, bool, float]:
    work = Path(tempfile.mkdtemp(prefix=f"faceatt-browser-{index}-"))
    try:
        shared = REPO.parent / "shared"
        if shared.exists():
            (work / "shared").symlink_to(shared)
        clone = work / "main"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        subprocess.run(["git", "checkout", "-q", commit], cwd=clone, check=True)
        (clone / ".venv").symlink_to(REPO / ".venv")
        screens = logs / f"run-{index:02d}-screens"
        env = {**os.environ, "FACEATT_REQUIRE_BROWSER": "1", "FACEATT_BROWSER_OUT": str(screens)}
        env.pop("FACEATT_DATA_DIR", None)
        started = time.monotonic()
        done = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-m", "pytest", "-q",
                               "-p", "no:cacheprovider", "tests/web_app/test_browser.py"],
                              cwd=clone, env=env, capture_output=True, text=True)
        seconds = time.monotonic() - started
        passed = done.returncode == 0
        dropped = DROPPED in done.stdout + done.stderr
        if not passed or dropped:
            logs.mkdir(parents=True, exist_ok=True)
            (logs / f"run-{index:02d}.log").write_text(done.stdout + done.stderr)
        else:
            shutil.rmtree(screens, ignore_errors=True)  # screenshots of failures only
        return passed, dropped, seconds
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep-logs", type=Path, default=Path(tempfile.gettempdir()) /
                        "faceatt-browser-repeat")
    args = parser.parse_args()
    if not (REPO / ".venv" / "bin" / "python").exists():
        raise SystemExit("run `make test` once first: the runs share its .venv")
    # Every run tests the same commit, whatever lands meanwhile.
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.strip()
    print(f"testing {commit[:10]}", flush=True)
    results, drops = [], 0
    for index in range(1, args.runs + 1):
        passed, dropped, seconds = one_run(index, args.keep_logs, commit)
        results.append(passed)
        drops += dropped
        print(f"run {index:>2}: {'passed' if passed else 'FAILED'} in {seconds:.0f} s"
              + (" (the live stream dropped once and was started again)" if dropped else ""),
              flush=True)
    print(f"{sum(results)} of {len(results)} passed; the live stream dropped in {drops}"
          + ("" if all(results) and not drops else f" (logs in {args.keep_logs})"))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
