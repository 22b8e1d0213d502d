"""The app started as ``make run`` starts it (``python -m web_app``), for the tests that need
a real server: the real-browser walk and the HTTPS check."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Seconds allowed for the server to start (it imports TensorFlow).
SERVER_START_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_app(work: Path, env: dict[str, str], *, options: tuple[str, ...] = (),
              scheme: str = "http", trust: ssl.SSLContext | None = None) -> Iterator[str]:
    """Run the app on a free port of 127.0.0.1 with ``env`` on top of this process's
    environment and ``options`` passed on to Streamlit; yields its URL once
    ``/_stcore/health`` answers 200 (over ``scheme``, trusting ``trust``'s certificates).
    The server's output goes to ``work/server.log``; it is stopped on the way out.
    Raises ``RuntimeError`` with the end of that log when it does not start."""
    port = free_port()
    url = f"{scheme}://127.0.0.1:{port}"
    log_path = work / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "web_app", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false", *options],
            cwd=REPO_ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + SERVER_START_S
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2,
                                                context=trust) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the app did not start:\n"
                                       + log_path.read_text(errors="replace")[-3000:])
                time.sleep(0.5)  # poll the health check until it answers
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
