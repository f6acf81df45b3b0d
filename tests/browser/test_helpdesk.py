"""The helpdesk in sao, as a support agent uses it (fixtures: conftest.py).

dora, the demo's support agent (scripts/demo_data.py), opens one of her
open tickets from Helpdesk > My Tickets, answers it with a canned response
through the Reply wizard and marks it solved on the way.
"""
import re

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from conftest import (
    DEMO_PASSWORD, active_tab, assert_no_error_dialog, login, open_menu,
    rpc, wait_idle)

AGENT = 'dora'
AGENT_NAME = "Dora Support"
CANNED_RESPONSE = "Problem solved"


def test_agent_answers_with_canned_response_and_solves(page, crm_server):
    # A view sao cannot draw shows nothing: its script error says why
    page_errors = []
    page.on('pageerror', lambda error: page_errors.append(str(error)))
    login(page, crm_server, AGENT, DEMO_PASSWORD)
    open_menu(page, 'Helpdesk', 'My Tickets')
    tab = active_tab(page)
    try:
        expect(page.locator('#tablist .active')).to_contain_text('My Tickets')
    except AssertionError as error:
        raise AssertionError(
            f"My Tickets did not open, sao errors: {page_errors}") from error
    # My Tickets lists her open tickets only: open one being worked on.
    row = tab.locator('.treeview tbody tr', has_text='In Progress').first
    expect(row).to_be_visible()
    # Not on the party or team column: those cells are links of their own.
    row.locator('.column-char').first.dblclick()
    wait_idle(page)
    number_field = tab.locator('input[name="number"]')
    expect(number_field).to_have_value(re.compile(r'^TCK\d+$'))
    number = number_field.input_value()
    expect(tab.locator('input[name="stage"]')).to_have_value('In Progress')
    ticket, = rpc(page, 'model.helpdesk.ticket.search_read',
        [['number', '=', number]], 0, None, None,
        ['user.login', 'kind', 'subject'])
    assert ticket['user.']['login'] == AGENT
    assert ticket['kind'] == 'in_progress'

    tab.locator('button', has_text='Reply').click()
    dialog = page.locator('.modal-dialog', has=page.locator(
            'textarea[name="content"]'))
    expect(dialog).to_be_visible()
    # The wizard shows its defaults (the ticket) once loaded: typing before
    # that is wiped out
    expect(dialog.locator('input[name="ticket"]')).to_have_value(
        re.compile(rf'^{number}: '))
    wait_idle(page)
    content = dialog.locator('textarea[name="content"]')
    expect(content).to_have_value('')
    # The canned response through the field's completion, as typed
    template = dialog.locator('input[name="template"]')
    completion = dialog.locator('li.completion', has_text=CANNED_RESPONSE)
    for _ in range(3):
        template.fill(CANNED_RESPONSE[:7])
        try:
            completion.wait_for(timeout=5000)
            break
        except PlaywrightTimeoutError:
            # a late redisplay of the form may still clear it
            continue
    completion.click()
    # Filled in for this ticket: its number, its subject, the agent
    expect(content).to_have_value(re.compile(
            rf'we have solved {number} \({re.escape(ticket["subject"])}\)'))
    expect(content).to_have_value(re.compile(AGENT_NAME))
    answer = content.input_value()
    assert '${' not in answer
    dialog.locator('select[name="then"]').select_option(label="Mark solved")
    dialog.locator('button[title="Send"]').click()
    expect(dialog).to_be_hidden()
    wait_idle(page)
    assert_no_error_dialog(page)

    # sao reloads the ticket when the wizard ends: solved, so it can be
    # reopened but no longer solved, and nothing is left to save
    expect(tab.locator('input[name="stage"]')).to_have_value('Solved')
    expect(tab.locator('button', has_text='Reopen')).to_be_visible()
    expect(tab.locator('button', has_text='Solve')).to_be_hidden()
    expect(number_field).to_have_value(number)
    expect(tab.locator('button#save')).to_be_disabled()
    # The same, read again from the server
    ticket, = rpc(page, 'model.helpdesk.ticket.search_read',
        [['number', '=', number]], 0, None, None,
        ['kind', 'solved', 'first_response'])
    assert ticket['kind'] == 'solved'
    assert ticket['solved'] and ticket['first_response']
    # Her answer is in the ticket's conversation, to the customer
    messages = rpc(page, 'model.ir.chat.channel.get',
        f'helpdesk.ticket,{ticket["id"]}')
    public = [m['content'] for m in messages
        if m['author'] == AGENT_NAME and m['audience'] == 'public']
    assert answer in public
    # then the solved notice of the helpdesk configuration, with the link
    # where the customer rates the answer
    assert f'your request {number} is solved' in public[-1]
