"""Face attendance: the Streamlit app's one entry point (``streamlit run web_app/app.py``).

Pages are listed here with ``st.navigation``; each page file is a thin script
over ``model``. Home, Check-in and Verify are open (a kiosk) but show the register
(who is enrolled, who checked in, sessions) only to a browser that typed the admin
passcode; the teacher pages ask for it. See ``web_app.common.is_admin``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# ``streamlit run`` puts only this folder on the path; the pages import ``model`` and ``web_app``.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# aiortc (under streamlit-webrtc) must be imported before TensorFlow: the other
# order crashes the process (two OpenSSL builds; a segmentation fault in pylibsrtp).
import streamlit as st  # noqa: E402

import web_app.live  # noqa: E402,F401  (imports streamlit_webrtc first, see there)
from web_app.common import keep_keras_state, lock_button  # noqa: E402
from web_app.loading import page_drawn  # noqa: E402

keep_keras_state()

PAGES_DIR = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="Face attendance", page_icon="🧑‍🏫", layout="wide")

pages = {
    "": [
        st.Page(PAGES_DIR / "home.py", title="Home", icon="🏠", default=True, url_path="home"),
        st.Page(PAGES_DIR / "checkin.py", title="Check-in", icon="✅", url_path="checkin"),
        st.Page(PAGES_DIR / "verify.py", title="Verify", icon="🔍", url_path="verify"),
    ],
    "Teacher": [
        st.Page(PAGES_DIR / "enroll.py", title="Enroll", icon="📸", url_path="enroll"),
        st.Page(PAGES_DIR / "people.py", title="People", icon="👥", url_path="people"),
        st.Page(PAGES_DIR / "classes.py", title="Classes", icon="🏫", url_path="classes"),
        st.Page(PAGES_DIR / "train.py", title="Train", icon="🏋️", url_path="train"),
        st.Page(PAGES_DIR / "attendance.py", title="Attendance", icon="📋",
                url_path="attendance"),
    ],
}

page = st.navigation(pages)
lock_button()
try:
    page.run()
finally:  # also after st.stop() or st.rerun(): the page is drawn either way
    page_drawn()
