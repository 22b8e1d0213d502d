"""``python -m web_app [streamlit options]``: start loading the engine, then the app.

What ``make run`` starts. The engine (TensorFlow, MTCNN, the network; 7-10 s on two
cores) loads in a background thread, held until the first page has been drawn (or
``FIRST_PAGE_HOLD_S``) so that the two do not slow each other down: the page is usable
about 3 s after the server answers, the recognizer about 7 s later (``web_app.loading``).
Same as ``streamlit run web_app/app.py`` otherwise, with the options after
``python -m web_app`` passed on to it.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

#: The longest the engine's load waits for the first page view (``web_app.loading``).
FIRST_PAGE_HOLD_S = 5.0

APP = Path(__file__).resolve().parent / "app.py"
REPO_ROOT = APP.parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def main() -> None:
    # aiortc before TensorFlow, always (see web_app/live.py); streamlit-webrtc itself only
    # once the server runs (app.py imports it), or its component is "not found".
    with contextlib.suppress(ImportError):
        import aiortc  # noqa: F401
    # What every page imports (pandas, the register, the helpers: about 0.5 s), before
    # the server answers, so the first page view does not pay for it.
    import web_app.common  # noqa: F401
    from model.settings import get_settings
    from web_app.loading import start_loading

    start_loading(str(get_settings().data_dir), hold_s=FIRST_PAGE_HOLD_S)
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(APP), *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
