"""Drive the Airflow UI with Debian's headless Chromium (Selenium, system chromedriver)."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


def _driver(profile: Path):
    import pytest

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(
            "Chromium is missing: run scripts/bootstrap.sh as root "
            "(apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def _click(driver, xpath: str) -> bool:
    """Scroll to and click an element; False (retry) while React re-renders it."""
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        ElementNotInteractableException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By

    try:
        element = driver.find_element(By.XPATH, xpath)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        if not element.is_enabled():
            return False
        element.click()
        return True
    except (
        StaleElementReferenceException,
        NoSuchElementException,
        ElementClickInterceptedException,
        ElementNotInteractableException,
    ):
        return False


def trigger_from_ui(url: str, dag_id: str, profile: Path, timeout: float = 60) -> None:
    """Open the DAG's page, press Trigger, confirm the form's Trigger; screenshot on failure."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    profile.mkdir(parents=True, exist_ok=True)
    driver = _driver(profile)
    wait = WebDriverWait(driver, timeout)
    try:
        # The DAG list first, as a user would: find the DAG by its id and open it.
        driver.get(f"{url}/dags")
        wait.until(lambda d: _click(d, f"//a[.//text()='{dag_id}']"))
        wait.until(ec.url_contains(f"/dags/{dag_id}"))
        opener = "//button[@data-testid='trigger-dag-button']"
        wait.until(lambda d: _click(d, opener))
        # The trigger form (with the DAG's Params) opens in a dialog: submit it as is.
        submit = "//*[@role='dialog']//button[@data-testid='trigger-dag-submit']"
        wait.until(lambda d: _click(d, submit))
        wait.until(ec.invisibility_of_element_located((By.XPATH, submit)))
    except Exception:
        driver.save_screenshot(str(profile.parent / "ui-failure.png"))
        (profile.parent / "ui-failure.html").write_text(driver.page_source)
        raise
    finally:
        driver.quit()


def read_run_report(link: str, profile: Path, timeout: float = 90) -> dict:
    """Follow a task's "DLFlow run report" link as a user would: the run's page opens on
    the report's tab. What the tab's iframe shows: each metric's value and text, each
    plot's name and rendered width, the fmap's rows; screenshot on failure."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    profile.mkdir(parents=True, exist_ok=True)
    driver = _driver(profile)
    wait = WebDriverWait(driver, timeout)
    try:
        driver.get(link)
        frame = wait.until(
            ec.presence_of_element_located((By.XPATH, "//iframe[@title='DLFlow report']"))
        )
        driver.switch_to.frame(frame)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.metrics")))
        loaded = "return [...document.images].every(i => i.complete)"
        wait.until(lambda d: d.execute_script(loaded))
        cells = driver.find_elements(By.CSS_SELECTOR, "td[data-metric]")
        return {
            "url": driver.execute_script("return document.location.pathname"),
            "metrics": {
                td.get_attribute("data-metric"): (td.get_attribute("data-value"), td.text)
                for td in cells
            },
            "plots": dict(
                driver.execute_script(
                    "return [...document.images].map(i => [i.alt, i.naturalWidth])"
                )
            ),
            "fmap": [
                [td.text for td in row.find_elements(By.TAG_NAME, "td")]
                for row in driver.find_elements(By.CSS_SELECTOR, "table.fmap tbody tr")
            ],
        }
    except Exception:
        driver.save_screenshot(str(profile.parent / "report-failure.png"))
        (profile.parent / "report-failure.html").write_text(driver.page_source)
        raise
    finally:
        driver.quit()
