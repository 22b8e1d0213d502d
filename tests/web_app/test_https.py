"""The app served over HTTPS with a school's certificate (Streamlit's own ``sslCertFile`` and
``sslKeyFile`` settings, which ``make run CERT=... KEY=...`` passes on).

Browsers give a page the camera only on ``localhost`` or over HTTPS, so a classroom laptop
that opens the app on the school's server needs it served over HTTPS. Here a throw-away
certificate for 127.0.0.1 stands in for the school's: the health check must answer over
HTTPS against that certificate (verified, not ignored), plain HTTP must not be served on
that port, and in headless Chromium (when there is one) the Check-in page must load and
draw over HTTPS, with its websocket, in a secure context (what the camera needs).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import urllib.request
from pathlib import Path

import pytest
from app_server import serve_app

pytestmark = [pytest.mark.slow]

CHROMIUM = os.environ.get("FACEATT_CHROMIUM", "/usr/bin/chromium")


def write_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate and its key for 127.0.0.1 and localhost (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test school")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "school.crt", folder / "school.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_the_app_is_served_over_https_with_the_schools_certificate(tmp_path):
    cert, key = write_certificate(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    env = {"FACEATT_DATA_DIR": str(tmp_path / "data"), "FACEATT_ADMIN_PASSCODE": ""}
    options = ("--server.sslCertFile", str(cert), "--server.sslKeyFile", str(key))
    with serve_app(tmp_path, env, options=options, scheme="https", trust=trust) as url:
        with urllib.request.urlopen(f"{url}/checkin", timeout=10, context=trust) as answer:
            assert answer.status == 200
            assert b"<html" in answer.read().lower()
        with pytest.raises(OSError):  # the port speaks TLS only
            urllib.request.urlopen(url.replace("https://", "http://") + "/_stcore/health",
                                   timeout=10).read()
        seen = open_in_chromium(url)
    if seen is None:
        if os.environ.get("FACEATT_REQUIRE_BROWSER", "") not in ("", "0"):
            pytest.fail("Chromium or Playwright is missing (FACEATT_REQUIRE_BROWSER=1 makes "
                        "this a failure)")
        pytest.skip("the page in a browser: Chromium or Playwright is missing (the server "
                    "part passed)")
    else:
        assert seen == {"protocol": "https:", "secure": True, "camera_api": True,
                        "title": "Check-in"}, seen


def open_in_chromium(url: str) -> dict[str, object] | None:
    """Load the Check-in page over HTTPS in headless Chromium (the throw-away certificate's
    error ignored, as a school's trusted one would not raise it); what the page says of
    itself, or None without Chromium and Playwright."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        return None
    if not Path(CHROMIUM).exists():
        return None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_context(ignore_https_errors=True).new_page()
            page.goto(f"{url}/checkin")
            heading = page.get_by_role("heading", name="Check-in").first
            expect(heading).to_be_visible(timeout=120_000)  # drawn through the websocket
            return {"protocol": page.evaluate("location.protocol"),
                    "secure": page.evaluate("window.isSecureContext"),
                    "camera_api": page.evaluate("!!(navigator.mediaDevices && "
                                                "navigator.mediaDevices.getUserMedia)"),
                    "title": heading.inner_text().strip()}
        finally:
            browser.close()
