"""Leads in sao, as a salesperson uses them (fixtures: conftest.py)."""
import re
import time

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from conftest import (
    LoginError, active_tab, assert_no_error_dialog, login, open_menu,
    wait_idle)

SALESPERSON = 'alice'
PASSWORD = 'crm-demo-2026'


def test_salesperson_creates_lead_and_finds_it_in_list(page, crm_server):
    title = f"Browser lead {time.strftime('%H%M%S')}"
    login(page, crm_server, SALESPERSON, PASSWORD)

    open_menu(page, 'CRM', 'Leads')
    tab = active_tab(page)
    expect(page.locator('#tablist .active')).to_contain_text('Leads')
    # The list view loaded (its column headers are there).
    expect(tab.locator('.treeview th', has_text='Title').first).to_be_visible()

    tab.locator('button#new_').click()
    title_input = tab.get_by_label(re.compile(r'^Title:?$'))
    expect(title_input).to_be_visible()
    # sao labels read "Title:" (accessible name of the input).
    title_input.fill(title)
    tab.get_by_label(re.compile(r'^Contact Name:?$')).fill('Jane Browser')
    tab.locator('input[name="email"]').fill('jane.browser@example.com')
    # Leave the field and let sao ask the server what it changes (the
    # possible duplicates) first: a click on Save while that call was in
    # flight was lost in 2 runs of 3 (sao sent no create)
    tab.locator('input[name="email"]').press('Tab')
    wait_idle(page)
    tab.locator('button#save').click()
    wait_idle(page)
    assert_no_error_dialog(page)
    # Saved: Save is disabled again. (sao's "Record saved." info bar is
    # not checked: a later redisplay of the record may clear it at once
    # on a loaded machine, which made this test flaky.)
    expect(tab.locator('button#save')).to_be_disabled()
    # sao's info bars cover the toolbar, and "Record saved." may appear
    # only after a first round of closing them on a loaded machine.
    for _ in range(10):
        page.locator('.infobar .alert button.close').evaluate_all(
            "buttons => buttons.forEach(b => b.click())")
        try:
            tab.locator('button#switch_').click(timeout=3000)
            break
        except PlaywrightTimeoutError:
            continue
    else:
        pytest.fail("an info bar kept covering the Switch button")
    wait_idle(page)
    row = tab.locator('.treeview tbody tr', has_text=title)
    expect(row).to_be_visible()
    assert_no_error_dialog(page)


def test_wrong_password_is_refused(page, crm_server):
    with pytest.raises(LoginError):
        login(page, crm_server, SALESPERSON, 'not-the-password')
    # sao asks for the password again and never shows the menu.
    expect(page.locator('.ask-dialog input#ask-dialog-entry').last
        ).to_be_visible()
    expect(page.locator('#menu tbody tr')).to_have_count(0)
    # No session was opened: no tryton_session cookie, no stored user.
    cookies = {c['name'] for c in page.context.cookies()}
    assert 'tryton_session' not in cookies
    session = page.evaluate(
        "db => JSON.parse(localStorage.getItem('sao_session_' + db))",
        crm_server['db'])
    assert not (session and session.get('user_id'))
