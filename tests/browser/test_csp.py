"""The Content-Security-Policy in a real browser: every page a superuser or a reviewer
opens renders without a single violation, and the workspace's script still runs.
Screenshots of the review page and the API docs are saved to test-artifacts/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reviews import services
from reviews.models import ReviewItem
from tests.browser.conftest import ARTIFACTS, PASSWORD
from tests.conftest import make_reviewer
from tests.factories import GateRuleFactory, ReasonCodeFactory, UserFactory, submission

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# Runs before any script of the page: keeps every violation the page reports.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const blocked = event.blockedURI || "inline";
  const where = event.sample || event.sourceFile;
  window.__cspViolations.push(`${event.effectiveDirective} blocked ${blocked} (${where})`);
});
"""


@pytest.fixture
def item(integration, queue):
    """One pending item, past half its SLA, so the changelist shows it as at risk."""
    GateRuleFactory(name="Review everything", queue=queue)
    ReasonCodeFactory(code="factual_error", applies_to=["reject", "edit"])
    item = services.submit_item(integration=integration, payload=submission()).item
    now = timezone.now()
    ReviewItem.objects.filter(pk=item.pk).update(
        at_risk_at=now - timedelta(minutes=1), due_at=now + timedelta(minutes=30)
    )
    return item


def make_user(persona: str, queue):
    if persona == "superuser":
        return UserFactory(username="root", is_staff=True, is_superuser=True, password=PASSWORD)
    user = make_reviewer("reviewer", queue)
    user.set_password(PASSWORD)
    user.save()
    return user


class Watched:
    """A page whose CSP violations, console errors and script errors are all kept."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.add_init_script(RECORD_VIOLATIONS)
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        self.page.on("response", self._response)

    def _console(self, message) -> None:
        # A failed load is reported by _response, which knows which file it was.
        if message.type in ("error", "warning") and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console {message.type}: {message.text}")

    def _response(self, response) -> None:
        # The browser asks for /favicon.ico on its own; the admin has none.
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            self.problems.append(f"{response.status} for {response.url}")

    def open(self, url: str, ready: str = "#content") -> None:
        response = self.page.goto(url)
        assert response.ok, f"{url} answered {response.status}"
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
        self.page.wait_for_selector(ready)
        self.check(url)

    def check(self, where: str) -> None:
        violations = self.page.evaluate("window.__cspViolations")
        assert not violations and not self.problems, f"{where}: {violations + self.problems}"


@pytest.mark.parametrize("persona", ["superuser", "reviewer"])
def test_pages_render_without_a_policy_violation_and_the_workspace_script_runs(
    browser, live_server, queue, item, persona
):
    make_user(persona, queue)
    watched = Watched(browser)
    page = watched.page
    base = live_server.url

    watched.open(f"{base}/admin/login/", ready="#login-form")
    page.fill("#id_username", "root" if persona == "superuser" else "reviewer")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")

    watched.open(f"{base}/admin/", ready="#content-main")
    watched.open(f"{base}{reverse('admin:reviews_reviewitem_changelist')}", ready="#result_list")
    assert page.locator("#result_list .sla-at-risk").count() == 1
    watched.open(f"{base}{reverse('admin:reviews_workspace')}", ready="#content-main")
    watched.open(f"{base}{reverse('admin:policies_safety_policy')}", ready=".safety-policy")
    # The page's inline stylesheet, allowed by its nonce, applied.
    assert page.eval_on_selector(".safety-policy", "el => getComputedStyle(el).maxWidth") != "none"

    watched.open(f"{base}{reverse('admin:reviews_review', args=[item.pk])}", ready="#decision-form")
    assert page.get_attribute("#shortcut-help", "hidden") is not None
    page.keyboard.press("?")
    page.wait_for_selector("#shortcut-help", state="visible")
    page.keyboard.press("?")
    page.keyboard.press("r")
    page.wait_for_selector("#decision-form[data-action=reject] #action-reject.chosen")
    watched.check("the review page after the shortcuts")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"csp-review-page-{persona}.png"), full_page=True)

    watched.open(f"{base}/api/v1/docs/", ready=".swagger-ui .opblock")
    assert "HITL review gates API" in page.inner_text(".swagger-ui .info")
    # drf-spectacular's inline style (allowed by its hash) applied: it alone sets this background.
    assert page.eval_on_selector("body", "el => getComputedStyle(el).backgroundColor") == "rgb(250, 250, 250)"
    page.click(".swagger-ui .opblock-summary >> nth=0")
    page.wait_for_selector(".swagger-ui .opblock-body")
    watched.check("the API docs with an operation open")
    page.screenshot(path=str(ARTIFACTS / f"csp-api-docs-{persona}.png"), full_page=True)
