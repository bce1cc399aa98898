"""Single sign-on end to end in headless Chromium: the sign-in page offers the account's
provider once the email is typed, the provider (a real OpenID provider in this process)
asks who you are, and the callback lands a new technician on their sessions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.sso.provider import Provider, ProviderServer

pytestmark = pytest.mark.e2e

STACK_ENV = {"SSO_DOMAIN_VERIFICATION": "none"}
DOMAIN = "acme-msp.test"


@pytest.fixture(scope="module")
def idp() -> Iterator[Provider]:
    with ProviderServer().running() as server:
        yield server.provider()


@pytest.fixture(scope="module")
def acme_sso(stack, acme, idp):
    response = stack.api(
        acme["admin"].token,
        "PUT",
        "/account/sso",
        json={
            "provider": "oidc",
            "issuer_url": idp.issuer,
            "client_id": "escalation-mode",
            "client_secret": "a-client-secret-for-the-browser-test",
            "domains": [DOMAIN],
            "jit": {"enabled": True, "role": "technician"},
            "required": True,
        },
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_sign_in_with_sso_in_the_browser(stack, acme, acme_sso, idp, browser, open_browsers):
    from playwright.sync_api import expect

    email = f"newhire@{DOMAIN}"
    idp.set_user("sub-newhire", email=email, email_verified=True, name="Nora Newhire")
    context = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 900})
    open_browsers.append(context)
    page = context.new_page()
    page.goto("/login")
    sso = page.get_by_role("link", name="Sign in with SSO")
    expect(sso).to_be_hidden()
    page.get_by_label("Email").fill(email)
    expect(sso).to_be_visible()
    sso.click()
    page.wait_for_url(f"{idp.issuer}/oauth2/authorize*")
    page.get_by_placeholder("sub").fill("sub-newhire")
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{stack.url}/sessions")
    expect(page.locator(".viewer-name")).to_have_text("Nora Newhire")
    me = page.request.get(f"{stack.url}/api/v1/me").json()
    assert (me["role"], me["account"]["name"]) == ("technician", "Acme MSP")

    # Signing out ends that login; the password form is refused for a technician of an
    # account that requires SSO, and points to it.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{stack.url}/login*")
    assert page.request.get(f"{stack.url}/api/v1/me").status == 401
    page.get_by_label("Email").fill(acme["tech"].email)
    page.get_by_label("Password").fill(acme["tech"].password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("signs in with single sign-on")
    expect(page.get_by_role("link", name="Sign in with SSO")).to_be_visible()


def test_the_settings_form_shows_each_fields_message_on_a_422(stack, acme, sign_in):
    page = sign_in(acme["admin"], "/settings")
    section = page.locator("#sso-settings")
    expect(section.locator("#sso-settings-state")).not_to_have_text("Loading…")
    section.get_by_label("Provider").select_option("microsoft")
    section.get_by_label("Directory (tenant) id (Microsoft)").fill("common")
    section.get_by_label("Client id").fill("escalation-mode")
    section.get_by_label("Email domains (comma-separated)").fill("msp.example, not a domain")
    section.get_by_role("button", name="Save single sign-on").click()

    status = section.locator("#sso-settings-status")
    expect(status).to_have_text("Some single sign-on settings are invalid.")
    tenant = section.locator("#sso-tenant-id-error")
    expect(tenant).to_have_text(
        "Required for microsoft: the directory (tenant) id, a GUID. A multi-tenant "
        "app (common, organizations) is not accepted."
    )
    expect(section.locator("#sso-tenant-id")).to_have_attribute("aria-invalid", "true")
    expect(section.locator("#sso-tenant-id")).to_have_attribute(
        "aria-describedby", "sso-tenant-id-error"
    )
    expect(section.locator("#sso-domains-input-error")).to_have_text(
        "'not a domain' is not a domain name."
    )
    expect(section.locator("#sso-client-id-error")).to_have_count(0)

    # Fixed and sent again: the old messages go with the next answer.
    section.get_by_label("Email domains (comma-separated)").fill("msp.example")
    section.get_by_role("button", name="Save single sign-on").click()
    expect(section.locator("#sso-domains-input-error")).to_have_count(0)
    expect(tenant).to_have_count(1)
