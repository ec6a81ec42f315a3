"""The ``cronofy`` connection form in Airflow 3.3's UI, driven in headless Chromium like a user would.

Admin -> Connections -> Add Connection -> type "Cronofy": the labels, descriptions and placeholders
of ``get_provider_info``, the data-center choice, masked token fields; then the form is filled in
(one optional field left empty), saved, read back from the metadata database, and handed to
``CronofyHook``. Each step leaves a screenshot in ``artifacts/browser/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from airflow_provider_cronofy.get_provider_info import CONN_FIELDS, DATA_CENTERS, UI_FIELD_BEHAVIOUR

CONN_ID = "cronofy_from_the_form"
API_KEY = "form-api-key-3c9d71"
ACCESS_TOKEN = "form-access-token-58e2a0"
REFRESH_TOKEN = "form-refresh-token-b41f6e"
DATA_CENTER = "de"  # not the default, so the choice visibly reaches the stored connection
TYPED_NUMBERS = {
    "timeout": "12.5",
    "max_retries": "3",
    "rate_limit_per_second": "7",
    "rate_limit_per_minute": "120",
}
LEFT_EMPTY = "client_id"
TOKEN_FIELDS = ("access_token", "refresh_token")
STEP_TIMEOUT = 30.0


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
            self.shot(f"timeout-waiting-for-{what.replace(' ', '-')}")
            raise AssertionError(
                f"{what} did not show up within {STEP_TIMEOUT:.0f} s (xpath {xpath})"
            ) from None
        return element

    def click(self, xpath: str, what: str) -> None:
        self.wait_for(xpath, what, clickable=True).click()

    def field(self, name: str) -> WebElement:
        """The input of extra field ``name`` (the form names every one ``element_<name>``)."""
        return self.wait_for(f"//*[@name='element_{name}']", f"extra field {name}")

    def field_root(self, name: str) -> WebElement:
        return self.driver.find_element(
            By.XPATH, f"//*[@name='element_{name}']/ancestor::*[@data-scope='field' and @data-part='root'][1]"
        )

    def accordion(self, title: str) -> None:
        self.click(f"//button[@data-part='item-trigger'][normalize-space(.)='{title}']", f"section {title}")


def _label_text(root: WebElement) -> str:
    # The label of a required field ends with a "*" marker; the label itself is the rest.
    return root.find_element(By.TAG_NAME, "label").text.replace("*", "").strip()


def test_add_a_cronofy_connection_in_the_browser(
    browser: WebDriver, airflow_url: str, artifacts: Path
) -> None:
    ui = FormDriver(browser, artifacts)

    # --- Admin -> Connections -> Add Connection, the way a user clicks there.
    browser.get(airflow_url + "/")
    ui.click("//button[@aria-label='Admin']", "the Admin menu")
    ui.wait_for("//a[@role='menuitem'][normalize-space(.)='Connections']", "the Connections menu item")
    ui.shot("admin-menu")
    ui.click("//a[@role='menuitem'][normalize-space(.)='Connections']", "the Connections menu item")
    ui.wait_for("//button[normalize-space(.)='Add Connection']", "the Add Connection button")
    ui.shot("connections-list")
    ui.click("//button[normalize-space(.)='Add Connection']", "the Add Connection button")
    ui.wait_for("//*[@role='dialog']//input[@name='connection_id']", "the Add Connection dialog")

    # --- Connection type "Cronofy": the provider is found and its standard fields are relabelled.
    conn_type = ui.wait_for("//*[@role='dialog']//input[@role='combobox']", "the connection type picker")
    conn_type.send_keys("Cronofy")
    ui.wait_for("//*[@role='option'][normalize-space(.)='Cronofy']", "the Cronofy connection type")
    ui.shot("connection-type-cronofy-offered")
    ui.click("//*[@role='option'][normalize-space(.)='Cronofy']", "the Cronofy connection type")
    host = ui.wait_for("//*[@role='dialog']//input[@name='host']", "the host field")
    password = browser.find_element(By.XPATH, "//*[@role='dialog']//input[@name='password']")
    ui.shot("cronofy-standard-fields")

    relabel, placeholders = UI_FIELD_BEHAVIOUR["relabeling"], UI_FIELD_BEHAVIOUR["placeholders"]
    for name, element in (("host", host), ("password", password)):
        label = browser.find_element(By.XPATH, f"//label[@for='{element.get_attribute('id')}']")
        assert label.text.strip() == relabel[name], f"label of {name}"
        assert element.get_attribute("placeholder") == placeholders[name], f"placeholder of {name}"
    assert password.get_attribute("type") == "password", "the API key is shown in clear"
    for hidden in UI_FIELD_BEHAVIOUR["hidden-fields"]:
        if hidden != "extra":  # Airflow 3.3 always offers the raw "Extra Fields JSON" editor
            assert not browser.find_elements(By.XPATH, f"//*[@role='dialog']//*[@name='{hidden}']"), hidden

    browser.find_element(By.XPATH, "//*[@role='dialog']//input[@name='connection_id']").send_keys(CONN_ID)
    password.send_keys(API_KEY)
    # host stays empty: the data center picks the base URL.
    ui.shot("standard-fields-filled")

    # --- The extra fields: every one of CONN_FIELDS, labelled and described as the provider says.
    ui.accordion("Extra Fields")
    ui.field("access_token")
    ui.shot("extra-fields")
    for name, spec in CONN_FIELDS.items():
        root = ui.field_root(name)
        assert _label_text(root) == spec["label"], f"label of extra {name}"
        helper = root.find_element(By.XPATH, ".//*[@data-part='helper-text']")
        assert helper.text.strip() == spec["description"], f"description of extra {name}"
    for name in TOKEN_FIELDS:
        assert ui.field(name).get_attribute("type") == "password", f"{name} is shown in clear"
    assert ui.field(LEFT_EMPTY).get_attribute("type") != "password", "the client id is no secret"

    # --- The data center: a choice of exactly Cronofy's data centers, "us" preselected.
    data_center_value = browser.find_element(By.XPATH, "//input[@type='hidden'][@name='element_data_center']")
    assert data_center_value.get_attribute("value") == "us"
    picker = ui.field_root("data_center").find_element(By.XPATH, ".//input[@role='combobox']")
    picker.click()
    ui.wait_for("//*[@role='option']", "the data-center choices")
    choices = [option.text for option in browser.find_elements(By.XPATH, "//*[@role='option']")]
    ui.shot("data-center-choices")
    assert choices == list(DATA_CENTERS)
    ui.click(f"//*[@role='option'][normalize-space(.)='{DATA_CENTER}']", f"data center {DATA_CENTER}")
    assert data_center_value.get_attribute("value") == DATA_CENTER

    # --- Fill in the rest; the client id stays empty.
    ui.field("access_token").send_keys(ACCESS_TOKEN)
    ui.field("refresh_token").send_keys(REFRESH_TOKEN)
    for name, typed in TYPED_NUMBERS.items():
        ui.field(name).send_keys(typed)
    ui.shot("extra-fields-filled")
    for name in TOKEN_FIELDS:
        assert ui.field(name).get_attribute("type") == "password", f"{name} shown in clear once typed"

    ui.accordion("Extra Fields JSON")  # what the form is about to store, for the screenshot
    ui.shot("extra-fields-json")

    ui.click("//*[@role='dialog']//button[normalize-space(.)='Save']", "the Save button")
    ui.wait_for(f"//*[normalize-space(text())='{CONN_ID}']", "the saved connection in the list")
    ui.shot("saved")
    row_texts = [row.text for row in browser.find_elements(By.XPATH, "//tr")]
    assert any(CONN_ID in text and "cronofy" in text for text in row_texts), row_texts

    # --- Read it back from the metadata database: the extras keep their JSON types.
    from airflow.models import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        stored = session.query(Connection).filter_by(conn_id=CONN_ID).one()
        conn_type_stored, host_stored, password_stored, extra_stored = (
            stored.conn_type,
            stored.host,
            stored.password,
            stored.extra,
        )
    assert conn_type_stored == "cronofy"
    assert password_stored == API_KEY
    assert host_stored is None  # left empty: the data center picks the base URL
    extra = json.loads(extra_stored)
    assert extra == {
        "data_center": DATA_CENTER,
        "access_token": ACCESS_TOKEN,
        "refresh_token": REFRESH_TOKEN,
        "timeout": 12.5,
        "max_retries": 3,
        "rate_limit_per_second": 7,
        "rate_limit_per_minute": 120,
        # Airflow 3.3's form stores every field it shows: one left empty is JSON null, not "".
        LEFT_EMPTY: None,
    }
    assert {name: type(value) for name, value in extra.items()} == {
        "data_center": str,
        "access_token": str,
        "refresh_token": str,
        "timeout": float,
        "max_retries": int,
        "rate_limit_per_second": int,
        "rate_limit_per_minute": int,
        LEFT_EMPTY: type(None),
    }

    # --- The hook takes the stored row as a worker gets it (the extra as the stored JSON text).
    from airflow_provider_cronofy.hooks.cronofy import CronofyHook, CronofySettings

    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
        {
            "conn_type": conn_type_stored,
            "host": host_stored,
            "password": password_stored,
            "extra": extra_stored,
        }
    )
    try:
        hook = CronofyHook(CONN_ID)
        assert hook.settings == CronofySettings(
            base_url=DATA_CENTERS[DATA_CENTER],
            data_center=DATA_CENTER,
            timeout=(12.5, 12.5),
            max_retries=3,
            rate_limit_per_second=7,
            rate_limit_per_minute=120,
        )
        assert hook.require_api_key() == API_KEY
        hook.require_calendar_credentials()  # the access token from the form is there
        assert not hook.can_refresh  # the client id was left empty
    finally:
        del os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"]
