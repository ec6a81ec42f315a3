"""The ``cronofy`` connection form in Airflow 3.3's UI, driven in headless Chromium like a user would.

Admin -> Connections -> Add Connection -> type "Cronofy": the labels, descriptions and placeholders
of ``get_provider_info``, the data-center choice and the masked token fields; the form is filled in
(one optional field left empty) and saved; the stored row is read back from the metadata database
and handed to ``CronofyHook``. Then the connection is edited to point at the emulator (the edit
form shows no secret, and saving it keeps them), and the hook's ``test_connection`` proves over
HTTP that the token typed in the form works. Each step leaves a screenshot in ``artifacts/browser/``.

The UI's own Test button is not pressed: on Airflow 3.3.2 it answers 400 for every connection
without a port (apache/airflow#73298, fixed upstream).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from airflow_provider_cronofy.get_provider_info import CONN_FIELDS, DATA_CENTERS, UI_FIELD_BEHAVIOUR
from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from airflow_provider_cronofy.hooks.settings import CronofySettings
from airflow_provider_cronofy.testing import running_emulator

CONN_ID = "cronofy_from_the_form"
API_KEY = "form-api-key-3c9d71"
ACCESS_TOKEN = "form-access-token-58e2a0"
REFRESH_TOKEN = "form-refresh-token-b41f6e"
SECRETS = (API_KEY, ACCESS_TOKEN, REFRESH_TOKEN)
DATA_CENTER = "de"  # not the default, so the choice visibly reaches the stored connection
TYPED_NUMBERS = {
    "timeout": "12.5",
    "max_retries": "3",
    "rate_limit_per_second": "7",
    "rate_limit_per_minute": "120",
}
LEFT_EMPTY = "client_id"
TOKEN_FIELDS = ("access_token", "refresh_token")
DIALOG = "//*[@role='dialog']"
ROW = f"//tr[.//*[normalize-space(text())='{CONN_ID}']]"
STEP_TIMEOUT = 30.0

EXPECTED_EXTRA = {
    "data_center": DATA_CENTER,
    "access_token": ACCESS_TOKEN,
    "refresh_token": REFRESH_TOKEN,
    "timeout": 12.5,
    "max_retries": 3,
    "rate_limit_per_second": 7,
    "rate_limit_per_minute": 120,
    # Airflow 3.3's form stores every field it shows: one left empty is JSON null, not "".
    LEFT_EMPTY: None,
    "max_concurrency": None,  # not touched: null, and the hook's default (20) applies
    "batch_rate_cost": "request",  # not touched: the choice comes preselected with its default
}
EXPECTED_TYPES = {
    "data_center": str,
    "access_token": str,
    "refresh_token": str,
    "timeout": float,
    "max_retries": int,
    "rate_limit_per_second": int,
    "rate_limit_per_minute": int,
    LEFT_EMPTY: type(None),
    "max_concurrency": type(None),
    "batch_rate_cost": str,
}


class FormDriver:
    """Waits, clicks and screenshots on the Airflow UI; every wait names what it waited for."""

    def __init__(self, driver: WebDriver, screenshots: Path) -> None:
        self.driver = driver
        self.screenshots = screenshots
        self.step = 0

    def shot(self, name: str) -> None:
        self.step += 1
        self.driver.save_screenshot(str(self.screenshots / f"{self.step:02d}-{name}.png"))

    def wait_for(self, xpath: str, what: str, *, clickable: bool = False) -> WebElement:
        condition = ec.element_to_be_clickable if clickable else ec.visibility_of_element_located
        try:
            element: WebElement = WebDriverWait(self.driver, STEP_TIMEOUT).until(condition((By.XPATH, xpath)))
        except TimeoutException:
            self.shot("timeout-" + what.replace(" ", "-"))
            raise AssertionError(
                f"{what} did not show up within {STEP_TIMEOUT:.0f} s (xpath {xpath})"
            ) from None
        return element

    def wait_gone(self, xpath: str, what: str) -> None:
        try:
            WebDriverWait(self.driver, STEP_TIMEOUT).until(
                ec.invisibility_of_element_located((By.XPATH, xpath))
            )
        except TimeoutException:
            self.shot("timeout-" + what.replace(" ", "-"))
            raise AssertionError(f"{what} still there after {STEP_TIMEOUT:.0f} s (xpath {xpath})") from None

    def click(self, xpath: str, what: str) -> None:
        self.wait_for(xpath, what, clickable=True).click()

    def field(self, name: str) -> WebElement:
        """The input of extra field ``name`` (the form names every one ``element_<name>``)."""
        return self.wait_for(f"//*[@name='element_{name}']", f"extra field {name}")

    def field_root(self, name: str) -> WebElement:
        """The extra field's row: its label, input and description (helper text)."""
        return self.driver.find_element(
            By.XPATH, f"//*[@name='element_{name}']/ancestor::*[@data-scope='field' and @data-part='root'][1]"
        )

    def accordion(self, title: str) -> None:
        self.click(f"//button[@data-part='item-trigger'][normalize-space(.)='{title}']", f"section {title}")


def _stored(conn_id: str) -> dict[str, Any]:
    """The connection's row in the metadata database; ``extra`` is the JSON text as stored."""
    from airflow.models import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(Connection).filter_by(conn_id=conn_id).one()
        return {"conn_type": row.conn_type, "host": row.host, "password": row.password, "extra": row.extra}


@contextmanager
def _as_env_connection(stored: dict[str, Any]) -> Iterator[None]:
    """Offer the stored row as ``AIRFLOW_CONN_<ID>``, the extra as its stored JSON text.

    Outside a task, Airflow 3's hooks do not read the metadata database; a worker gets the row
    from the api-server, extra text and all, which is what this hands over.
    """
    env_var = f"AIRFLOW_CONN_{CONN_ID.upper()}"
    os.environ[env_var] = json.dumps(stored)
    try:
        yield
    finally:
        del os.environ[env_var]


def _label_text(root: WebElement) -> str:
    # The label of a required field ends with a "*" marker; the label itself is the rest.
    return root.find_element(By.TAG_NAME, "label").text.replace("*", "").strip()


def _open_add_connection(ui: FormDriver, airflow_url: str) -> None:
    ui.driver.get(airflow_url + "/")
    ui.click("//button[@aria-label='Admin']", "the Admin menu")
    connections = "//a[@role='menuitem'][normalize-space(.)='Connections']"
    ui.wait_for(connections, "the Connections menu item")
    ui.shot("admin-menu")
    ui.click(connections, "the Connections menu item")
    ui.wait_for("//button[normalize-space(.)='Add Connection']", "the Add Connection button")
    ui.shot("connections-list")
    ui.click("//button[normalize-space(.)='Add Connection']", "the Add Connection button")
    ui.wait_for(f"{DIALOG}//input[@name='connection_id']", "the Add Connection dialog")


def _pick_cronofy_and_fill_standard_fields(ui: FormDriver) -> None:
    """The type is offered; host and password are relabelled, with placeholders; login etc. hidden."""
    ui.wait_for(f"{DIALOG}//input[@role='combobox']", "the connection type picker").send_keys("Cronofy")
    option = "//*[@role='option'][normalize-space(.)='Cronofy']"
    ui.wait_for(option, "the Cronofy connection type")
    ui.shot("connection-type-cronofy-offered")
    ui.click(option, "the Cronofy connection type")
    host = ui.wait_for(f"{DIALOG}//input[@name='host']", "the host field")
    password = ui.driver.find_element(By.XPATH, f"{DIALOG}//input[@name='password']")
    ui.shot("cronofy-standard-fields")

    relabel, placeholders = UI_FIELD_BEHAVIOUR["relabeling"], UI_FIELD_BEHAVIOUR["placeholders"]
    for name, element in (("host", host), ("password", password)):
        label = ui.driver.find_element(By.XPATH, f"//label[@for='{element.get_attribute('id')}']")
        assert label.text.strip() == relabel[name], f"label of {name}"
        assert element.get_attribute("placeholder") == placeholders[name], f"placeholder of {name}"
    assert password.get_attribute("type") == "password", "the API key is shown in clear"
    for hidden in UI_FIELD_BEHAVIOUR["hidden-fields"]:
        if hidden != "extra":  # Airflow 3.3 always offers the raw "Extra Fields JSON" editor
            assert not ui.driver.find_elements(By.XPATH, f"{DIALOG}//*[@name='{hidden}']"), hidden

    ui.driver.find_element(By.XPATH, f"{DIALOG}//input[@name='connection_id']").send_keys(CONN_ID)
    password.send_keys(API_KEY)
    # The host (Base URL override) stays empty: the data center picks the base URL.
    ui.shot("standard-fields-filled")


def _check_and_fill_extra_fields(ui: FormDriver) -> None:
    """Every field of CONN_FIELDS with its label and description; tokens masked; the data centers."""
    ui.accordion("Extra Fields")
    ui.field("access_token")
    ui.shot("extra-fields")
    shown = {
        element.get_attribute("name")
        for element in ui.driver.find_elements(By.XPATH, "//*[starts-with(@name, 'element_')]")
    }
    assert shown == {f"element_{name}" for name in CONN_FIELDS}, "the extra fields shown"
    for name, spec in CONN_FIELDS.items():
        root = ui.field_root(name)
        assert _label_text(root) == spec["label"], f"label of extra {name}"
        helper = root.find_element(By.XPATH, ".//*[@data-part='helper-text']")
        assert helper.text.strip() == spec["description"], f"description of extra {name}"
    for name in TOKEN_FIELDS:
        assert ui.field(name).get_attribute("type") == "password", f"{name} is shown in clear"
    assert ui.field(LEFT_EMPTY).get_attribute("type") != "password", "the client id is no secret"

    # A choice of exactly Cronofy's data centers, "us" preselected.
    chosen = ui.driver.find_element(By.XPATH, "//input[@type='hidden'][@name='element_data_center']")
    assert chosen.get_attribute("value") == "us"
    ui.field_root("data_center").find_element(By.XPATH, ".//input[@role='combobox']").click()
    ui.wait_for("//*[@role='option']", "the data-center choices")
    choices = [option.text for option in ui.driver.find_elements(By.XPATH, "//*[@role='option']")]
    ui.shot("data-center-choices")
    assert choices == list(DATA_CENTERS)
    ui.click(f"//*[@role='option'][normalize-space(.)='{DATA_CENTER}']", f"data center {DATA_CENTER}")
    assert chosen.get_attribute("value") == DATA_CENTER

    ui.field("access_token").send_keys(ACCESS_TOKEN)
    ui.field("refresh_token").send_keys(REFRESH_TOKEN)
    for name, typed in TYPED_NUMBERS.items():
        ui.field(name).send_keys(typed)
    # LEFT_EMPTY (the client id) is not touched.
    ui.shot("extra-fields-filled")
    for name in TOKEN_FIELDS:
        assert ui.field(name).get_attribute("type") == "password", f"{name} shown in clear once typed"


def _save(ui: FormDriver) -> None:
    ui.click(f"{DIALOG}//button[normalize-space(.)='Save']", "the Save button")
    ui.wait_gone(DIALOG, "the connection dialog")
    ui.wait_for(ROW, "the saved connection in the list")


def test_add_edit_and_test_a_cronofy_connection_in_the_browser(
    browser: WebDriver, airflow_url: str, artifacts: Path
) -> None:
    ui = FormDriver(browser, artifacts)
    _open_add_connection(ui, airflow_url)
    _pick_cronofy_and_fill_standard_fields(ui)
    _check_and_fill_extra_fields(ui)
    ui.accordion("Extra Fields JSON")  # what the form is about to store, for the screenshot
    ui.shot("extra-fields-json")
    _save(ui)
    ui.shot("saved")
    assert "cronofy" in browser.find_element(By.XPATH, ROW).text

    # --- The stored row: numbers stay numbers, the empty field is null.
    stored = _stored(CONN_ID)
    assert stored["conn_type"] == "cronofy"
    assert stored["password"] == API_KEY
    assert stored["host"] is None
    extra = json.loads(stored["extra"])
    assert extra == EXPECTED_EXTRA
    assert {name: type(value) for name, value in extra.items()} == EXPECTED_TYPES

    # --- The hook takes the row as a worker gets it.
    with _as_env_connection(stored):
        hook = CronofyHook(CONN_ID)
        assert hook.settings == CronofySettings(
            base_url=DATA_CENTERS[DATA_CENTER],
            data_center=DATA_CENTER,
            timeout=(12.5, 12.5),
            max_retries=3,
            rate_limit_per_second=7,
            rate_limit_per_minute=120,
            max_concurrency=7,  # left empty in the form: the per-second rate limit
            batch_rate_cost="request",
        )
        assert hook.require_api_key() == API_KEY
        hook.require_calendar_credentials()  # the access token typed in the form is there
        assert not hook.can_refresh  # the client id was left empty

    with running_emulator(api_key=API_KEY) as cronofy:
        cronofy.add_access_token(ACCESS_TOKEN)

        # --- Edit: the form shows no secret; saving it with only the host changed keeps them.
        ui.click(f"{ROW}//button[@aria-label='Edit Connection']", "the Edit Connection button")
        host = ui.wait_for(f"{DIALOG}//input[@name='host']", "the host field of the edit form")
        ui.shot("edit-form")
        page = browser.page_source
        assert not [secret for secret in SECRETS if secret in page], "the edit form shows a secret"
        host.send_keys(cronofy.url)
        ui.shot("edit-form-base-url-override")
        _save(ui)
        ui.shot("edited")
        edited = _stored(CONN_ID)
        assert edited["host"] == cronofy.url
        assert edited["password"] == API_KEY
        assert json.loads(edited["extra"]) == EXPECTED_EXTRA

        # --- The edited connection works over HTTP: the token typed in the form is accepted.
        with _as_env_connection(edited), CronofyHook(CONN_ID) as hook:
            assert hook.settings.base_url == cronofy.url
            ok, message = hook.test_connection()
        assert ok, message
        assert "The access token was accepted" in message
        userinfo = [request for request in cronofy.requests if request.path == "/v1/userinfo"]
        assert [request.headers.get("authorization") for request in userinfo] == [f"Bearer {ACCESS_TOKEN}"]
