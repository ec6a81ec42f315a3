"""A real Airflow 3.3 api-server and a headless Chromium for the browser test (``make test-browser``).

The server runs from a throw-away ``AIRFLOW_HOME`` with SQLite and the simple auth manager, every
user an admin, so the browser lands in the UI without a login page. This process reads the same
metadata database afterwards, so ``AIRFLOW_HOME`` is set here, before anything imports Airflow.

Chromium and chromedriver are the Debian packages (``apt-get install -y chromium chromium-driver``);
``CHROMIUM`` and ``CHROMEDRIVER`` point elsewhere. A missing browser fails the test, never skips it.
Screenshots and the server's log land in ``artifacts/browser/``, which is emptied at each run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

_HOME = tempfile.mkdtemp(prefix="cronofy-browser-airflow-home-")
SERVER_ENV = {
    "AIRFLOW_HOME": _HOME,
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
    "AIRFLOW__CORE__DAGS_FOLDER": os.path.join(_HOME, "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    # One key for the server and this process, which decrypts the stored row to check it.
    "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
    "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
}
os.environ.update(SERVER_ENV)
os.makedirs(SERVER_ENV["AIRFLOW__CORE__DAGS_FOLDER"])

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
SERVER_START_TIMEOUT = 120.0
# Without the background-networking flags Chromium keeps calling Google's services, which fail
# loudly on a closed network; QUIC off keeps it to plain TCP on the loopback interface.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1600",
)


def _free_port() -> int:
    # The port is free when asked; the server binds it a moment later (a race we accept).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    # No proxy: a proxy variable in the environment must not route a loopback check elsewhere.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(server: subprocess.Popen[bytes]) -> None:
    # api-server forks uvicorn workers: signal the whole process group, not just the parent, and
    # SIGKILL whatever is left once the parent is gone (or after 20 s of not going).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``artifacts/browser/``, emptied: where screenshots and the server log go."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def airflow_url(artifacts: Path) -> Iterator[str]:
    """Migrate a fresh SQLite database, start ``airflow api-server`` on a free port, yield its URL."""
    migrate = subprocess.run(
        [AIRFLOW, "db", "migrate"], env=os.environ.copy(), capture_output=True, text=True, timeout=300
    )
    if migrate.returncode != 0:
        pytest.fail(f"airflow db migrate failed ({migrate.returncode}):\n{migrate.stderr[-3000:]}")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = artifacts / "api-server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=os.environ.copy(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not _healthy(f"{url}/api/v2/monitor/health"):
            if server.poll() is not None:
                pytest.fail(
                    f"airflow api-server exited with {server.returncode} before it was healthy; "
                    f"its log ({log_path}) ends:\n{log_path.read_text(errors='replace')[-3000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"airflow api-server not healthy after {SERVER_START_TIMEOUT:.0f} s; see {log_path}"
                )
            time.sleep(0.5)
        yield url
    finally:
        _stop(server)


@pytest.fixture
def browser(artifacts: Path) -> Iterator[WebDriver]:
    """A headless Chromium driven by chromedriver, with a fresh profile; quit afterwards."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: the browser test needs Chromium and chromedriver "
            "(Debian: apt-get install -y chromium chromium-driver; or set CHROMIUM / CHROMEDRIVER)."
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    profile = tempfile.mkdtemp(prefix="cronofy-browser-profile-")
    options.add_argument(f"--user-data-dir={profile}")
    service = Service(CHROMEDRIVER, log_output=str(artifacts / "chromedriver.log"))
    try:
        driver = webdriver.Chrome(service=service, options=options)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
