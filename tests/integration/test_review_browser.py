"""The review desk end to end in a real browser: headless Chromium (Debian's chromium and
chromium-driver, `make browser`) drives `describer review serve` on the local stack through
queue -> product -> correct, then the record in DynamoDB, the Product Reviewed event on the bus, a
second reviewer's conflict, and the correction exported as training data."""

from __future__ import annotations

import html
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from describer.deployment import Deployment, UploadRef, fetch_records, wait_for_final_records
from describer.local.samples import SampleFile, synthetic_photos
from describer.local.stack import LocalSettings
from describer_aws.results_table import utc_now
from describer_rules.catalogue import load_catalogue
from describer_rules.contracts import ProductRecord, Question, ReviewStatus
from describer_steps.settings import DEFAULT_REVIEW_THRESHOLD
from endpoint.serve import EntryPoint
from training.dataset import read_qa_rows

pytestmark = pytest.mark.integration

HOSTILE = "<img src=x onerror=alert(1)>"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# Where the product page's screenshot goes: a temporary folder, or docs/ when this is set.
SCREENSHOT = os.environ.get("DESCRIBER_REVIEW_SCREENSHOT")


def _unsure_photo(model_dir: Path, out_dir: Path) -> tuple[SampleFile, list[str]]:
    """A held-out synthetic photo the demo model is unsure of (so the pipeline flags it), and the
    attributes it is unsure of; chosen by running the model's own code here, as the endpoint would."""
    model = EntryPoint(model_dir)
    catalogue = load_catalogue()
    for sample in synthetic_photos(out_dir, per_category=20):
        questions = [Question(attribute=a, question=q) for a, q in catalogue.questions(sample.category)]
        response = model.model.describe_image(sample.path.read_bytes(), questions, sample.category)
        unsure = [
            answer.attribute
            for answer in response.answers
            if answer.confidence is not None
            and answer.confidence < DEFAULT_REVIEW_THRESHOLD
            and answer.attribute in (sample.truth or {})  # drawn, so the truth is known
        ]
        if unsure:
            return sample, unsure
    raise AssertionError("the demo model is sure of all 40 held-out photos: nothing to review")


@pytest.fixture(scope="module")
def review_server(local_settings: LocalSettings) -> Iterator[str]:
    """`describer review serve` as a reviewer starts it; yields the URL it prints (with the token)."""
    command = [sys.executable, "-m", "describer.cli", "review", "serve", "--port", "0"]
    command += ["--state-dir", str(local_settings.state_dir)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("review: http://127.0.0.1:"), (line, process.stderr and process.stderr.read())
        yield line.removeprefix("review: ").strip()
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    assert CHROMIUM and CHROMEDRIVER, "no chromium/chromedriver: `make browser` installs Debian's packages"
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1800"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def _status(url: str) -> int:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
    status = connection.getresponse().status
    connection.close()
    return status


def _listen_for_reviews(deployment: Deployment) -> str:
    sqs, events = deployment.client("sqs"), deployment.client("events")
    queue_url = sqs.create_queue(QueueName="reviewed-products")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": ["product-describer"], "detail-type": ["Product Reviewed"]}
    events.put_rule(
        Name="reviewed-products", EventBusName=deployment.event_bus, EventPattern=json.dumps(pattern)
    )
    events.put_targets(
        Rule="reviewed-products", EventBusName=deployment.event_bus, Targets=[{"Id": "q", "Arn": arn}]
    )
    return str(queue_url)


def _reviewed_event(deployment: Deployment, queue_url: str, product_id: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = deployment.client("sqs").receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in response.get("Messages", []):
            event = json.loads(message["Body"])
            if event["detail"]["product_id"] == product_id:
                return dict(event)
    raise AssertionError(f"no Product Reviewed event for {product_id} on the bus in 30 s")


def test_a_reviewer_corrects_a_flagged_product_in_the_browser(
    tmp_path: Path,
    demo_model_dir: Path,
    deployment: Deployment,
    review_server: str,
    browser: webdriver.Chrome,
    local_settings: LocalSettings,
) -> None:
    sample, unsure = _unsure_photo(demo_model_dir, tmp_path / "photos")
    hostile_key = f"{sample.category}/{HOSTILE}.jpg"
    uploads = {}
    for product_id, key in ((sample.product_id, sample.key), (HOSTILE, hostile_key)):
        uploaded_at = utc_now()
        uploads[product_id] = UploadRef.from_response(deployment.upload(sample.path, key), uploaded_at)
    records = wait_for_final_records(deployment, uploads, timeout_s=300)
    flagged = records[sample.product_id]
    assert flagged.needs_review and records[HOSTILE].needs_review, {
        product_id: (r.status, r.error_message, r.attributes, r.unknown_attributes)
        for product_id, r in records.items()
    }
    queue_url = _listen_for_reviews(deployment)

    # Without the token or its session: refused; the printed link opens a session.
    root = review_server.split("?", 1)[0]
    assert _status(root) == 401 and _status(root + "product?id=1") == 401
    assert _status(root + "?token=wrong") == 403
    # Signing in never leads off the desk: the browser reads `/\evil.example` as `//evil.example`.
    query = urllib.parse.urlsplit(review_server).query
    browser.get(f"{root}\\evil.example/?{query}")
    assert browser.current_url == root
    browser.get(review_server)
    assert "Needs review" in browser.find_element(By.TAG_NAME, "h1").text
    # The session: the desk's own cookie (named for its port), script-proof, same-site only, expiring.
    port = urllib.parse.urlsplit(root).port
    [cookie] = [c for c in browser.get_cookies() if c["name"].startswith("review_session")]
    assert (
        cookie["name"] == f"review_session_{port}" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    )
    assert cookie["path"] == urllib.parse.urlsplit(root).path.rstrip("/") and "expiry" in cookie
    links = {link.text: link for link in browser.find_elements(By.CSS_SELECTOR, "a.product")}
    assert {sample.product_id, HOSTILE} <= set(links)  # the hostile id is a link's text, not markup
    assert browser.find_elements(By.CSS_SELECTOR, "img[src='x']") == []

    # The product: photo, the unsure attribute's alternatives, the copy of both locales.
    _click_and_wait(browser, links[sample.product_id])
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith(sample.product_id)
    photo = browser.find_element(By.CSS_SELECTOR, ".photos img")
    assert browser.execute_script("return arguments[0].naturalWidth", photo) > 0
    attribute = unsure[0]
    assert sample.truth is not None
    truth = sample.truth[attribute]
    if SCREENSHOT:
        browser.save_screenshot(SCREENSHOT)
    browser.save_screenshot(str(tmp_path / "product.png"))
    # A second reviewer opens the same version (a plain HTTP session of their own).
    second = _second_reviewer(review_server, sample.product_id)

    # Correct the unsure attribute: to the truth when the model got it wrong, else to its runner-up (a
    # reviewer's other choice); one click on the value when it is offered, else typed.
    runners_up = [alternative.value for alternative in flagged.alternatives.get(attribute, [])]
    if truth != flagged.attributes[attribute]:
        wanted = truth
    else:
        wanted = runners_up[0] if runners_up else _other_value(attribute, flagged)
    selector = f"input[type=radio][name='attr:{attribute}'][value='{wanted}']"
    if choice := browser.find_elements(By.CSS_SELECTOR, selector):
        choice[0].click()
    else:
        browser.find_element(By.NAME, f"other:{attribute}").send_keys(wanted)
    _click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "button[value=correct]"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Review recorded: corrected"

    record = deployment_record(deployment, sample.product_id)
    assert record.attributes[attribute] == wanted and record.needs_review is False
    assert record.review_decision is not None and record.review_decision.status == ReviewStatus.CORRECTED
    reviewer = deployment.client("sts").get_caller_identity()["Arn"]
    assert record.review_decision.reviewer == reviewer
    [change] = [c for c in record.review_decision.changes if c.field == f"attributes.{attribute}"]
    assert (change.before, change.after) == (flagged.attributes[attribute], wanted)
    # Re-written by the stack's WriteDescription: the offline writer names every value word for word.
    assert wanted.lower() in record.content["en-US"].description.lower()
    assert set(record.content) == set(flagged.content)
    item = deployment.client("dynamodb").get_item(
        TableName=deployment.results_table, Key={"product_id": {"S": sample.product_id}}
    )["Item"]
    assert "review" not in item  # off the review queue
    event = _reviewed_event(deployment, queue_url, sample.product_id)
    assert event["detail"]["review_decision"]["status"] == "corrected"
    assert event["detail"]["review_decision"]["changes"][0]["after"] == wanted

    # The second reviewer's correction of the version they opened is refused, and they are told.
    status, page = second()
    assert status == 409 and "Changed since you opened it" in page
    assert deployment_record(deployment, sample.product_id) == record

    # The correction is training data: exported in the prepared format with the photo it was read from.
    out = tmp_path / "corrections"
    export = [sys.executable, "-m", "describer.cli", "corrections", "export", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    subprocess.run([*export, "--state-dir", str(local_settings.state_dir)], check=True, env=env, timeout=120)
    rows = {
        row["attribute"]: row
        for row in read_qa_rows(out / "corrections.csv")
        if row["id"] == sample.product_id
    }
    assert rows[attribute]["value"] == wanted and rows[attribute]["review_status"] == "corrected"
    assert rows[attribute]["photo_key"] == record.source_key
    assert rows[attribute]["photo_version"] == record.source_version
    assert (out / rows[attribute]["image"]).read_bytes() == sample.path.read_bytes()


def _click_and_wait(browser: webdriver.Chrome, element: WebElement) -> None:
    """Click what leads to another page, and wait until that page replaced this one."""
    page = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 180).until(lambda _: _replaced(page))
    WebDriverWait(browser, 30).until(
        lambda driver: driver.execute_script("return document.readyState") == "complete"
    )


def _replaced(page: WebElement) -> bool:
    """Whether ``page`` belongs to a document that another one replaced."""
    try:
        page.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        # Mid-navigation chromedriver may say so in its own words instead of "stale element".
        if "does not belong to the document" in str(error):
            return True
        raise
    return False


def deployment_record(deployment: Deployment, product_id: str) -> ProductRecord:
    return fetch_records(deployment, [product_id])[product_id]


def _other_value(attribute: str, record: ProductRecord) -> str:
    spec = load_catalogue().category(record.category).attribute(attribute)
    return next(value for value in spec.values if value != record.attributes[attribute])


def _second_reviewer(url: str, product_id: str):  # type: ignore[no-untyped-def]
    """Open the product now in another session; returns a function that submits a correction of it."""
    parts = urllib.parse.urlsplit(url)

    def request(method: str, path: str, cookie: str | None, body: str | None = None) -> tuple[int, str, dict]:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        headers = {"Cookie": cookie} if cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        result = response.status, response.read().decode(), dict(response.getheaders())
        connection.close()
        return result

    _, _, headers = request("GET", f"{parts.path}?{parts.query}", None)
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    _, page, _ = request("GET", f"{parts.path}product?" + urllib.parse.urlencode({"id": product_id}), cookie)
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))
    form = {
        **{k: html.unescape(v) for k, v in hidden.items()},
        "action": "reject",
        "reason": "second reviewer",
    }

    def submit() -> tuple[int, str]:
        status, text, _ = request("POST", f"{parts.path}review", cookie, urllib.parse.urlencode(form))
        return status, text

    return submit
