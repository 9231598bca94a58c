"""The demo page in headless Chromium (Debian's chromium, driven by Playwright): live highlighting over WebSocket."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SENTENCE = "Angela Merkel met Tim Cook in Berlin and Mary took aspirin in London."
ENTITIES_IN_PAGE = """() => [...document.querySelectorAll('#output mark.entity')].map(m => ({
    label: m.dataset.label, text: m.querySelector('.entity-text').textContent,
    start: Number(m.dataset.start), end: Number(m.dataset.end),
    colour: m.style.getPropertyValue('--colour')}))"""


@pytest.fixture(scope="module")
def browser():
    executable = CHROMIUM if CHROMIUM.is_file() else shutil.which("chromium")
    if not executable:
        pytest.fail("Chromium is not installed: run scripts/setup_test_deps.sh (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.problems = []
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    yield page
    context.close()


def test_typed_text_is_highlighted_like_the_rest_endpoint_says(page, gateway, gateway_token):
    page.goto(f"{gateway.url}/?token={gateway_token}")
    assert "token=" not in page.url  # moved out of the address bar
    # Locator assertions, not wait_for_function: the page's Content-Security-Policy forbids eval, which
    # Playwright's string predicates use.
    expect(page.locator("#status")).to_have_text("connected", timeout=20_000)
    page.locator("#input").press_sequentially(SENTENCE, delay=15)  # keystrokes: debounced messages
    expect(page.locator("#output")).to_have_attribute("data-text", SENTENCE, timeout=30_000)
    shown = page.evaluate(ENTITIES_IN_PAGE)

    rest = requests.post(
        f"{gateway.url}/v1/entities",
        json={"text": SENTENCE},
        headers={"Authorization": f"Bearer {gateway_token}"},
        timeout=60,
    ).json()["entities"]
    assert rest, "the tiny model finds no entity in the sentence; the comparison would prove nothing"
    assert [(e["label"], e["text"], e["start"], e["end"]) for e in shown] == [
        (e["label"], e["text"], e["start"], e["end"]) for e in rest
    ]
    assert all(e["colour"] for e in shown)
    # The highlighted text reads as the sentence (labels are separate tags).
    assert (
        page.evaluate("""() => [...document.getElementById('output').childNodes].map(n =>
        n.nodeType === Node.TEXT_NODE ? n.textContent : n.querySelector('.entity-text').textContent).join('')""")
        == SENTENCE
    )
    legend = page.locator("#legend .legend-item").all_inner_texts()
    assert legend[:3] == ["DRUG", "PER", "CITY"]  # from the checkpoint, in its order
    assert page.problems == []  # no script error, no Content-Security-Policy violation


def test_a_wrong_key_is_reported_on_the_page(page, gateway):
    page.goto(f"{gateway.url}/?token=it.wrong-secret-0123456789")
    expect(page.locator("#status")).to_have_text("refused", timeout=20_000)
    assert "refused" in page.locator("#message").inner_text()


def test_a_key_in_the_fragment_logs_in_and_never_reaches_the_server(page, gateway, gateway_token):
    page.goto(f"{gateway.url}/#token={gateway_token}")
    expect(page.locator("#status")).to_have_text("connected", timeout=20_000)
    assert "token" not in page.url  # the fragment is cleared from the address bar too
    assert gateway_token.split(".", 1)[1] not in gateway.log_text()


def test_without_a_key_the_page_says_where_the_key_lives(page, gateway):
    page.goto(f"{gateway.url}/")
    expect(page.locator("#status")).to_have_text("refused", timeout=20_000)
    message = page.locator("#message").inner_text()
    assert "an API key is needed" in message and "Authorization" not in message
    expect(page.locator("#key-help")).to_have_attribute("open", "")
    assert ".cache/gateway/api_key" in page.locator("#key-help").inner_text()
    # The refusal comes just after the socket opened, when the page also asked for /v1/labels: Chromium reports
    # that 401 on the console. Nothing else may go wrong.
    assert [p for p in page.problems if "status of 401" not in p] == []
