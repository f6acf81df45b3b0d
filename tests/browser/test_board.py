"""The pipeline board (web/crm/board.html) in Chromium, logged in to sao.

Fixtures from conftest.py: crm_server (demo data), page, login().
alice (team "Direct Sales") works on the board; each test puts back what it
moved so that the demo data stay as other tests expect them.
"""
import json
import re

from playwright.sync_api import expect

from conftest import DEMO_PASSWORD, login

STAGES = ['New', 'Qualified', 'Proposition', 'Negotiation', 'Won', 'Lost']


def open_board(page, crm_server, user='alice'):
    "Log in to sao and open CRM > Pipeline Board, which opens a new tab"
    login(page, crm_server, user, DEMO_PASSWORD)
    menu = page.locator('#menu')
    menu.locator('tr', has_text='CRM').locator('.expander').first.click()
    item = menu.locator('.column-char', has_text='Pipeline Board')
    with page.context.expect_page() as new_page:
        item.click()
    board = new_page.value
    board.wait_for_load_state()
    expect(board.locator('.column .card').first).to_be_visible()
    settled(board)
    return board


def column(board, name):
    return board.locator('.column').filter(
        has=board.locator('.column-title', has_text=re.compile(
                r'^\s*' + re.escape(name) + r'\b')))


def settled(board):
    "Wait for the board to show the answer of its last request"
    expect(board.locator('#board')).to_have_attribute('aria-busy', 'false')


def count(board, name):
    return int(column(board, name).locator('.column-count').inner_text())


def drag(board, item, target):
    "SortableJS (fallback mode) follows real pointer moves"
    item.scroll_into_view_if_needed()
    box = item.bounding_box()
    x, y = box['x'] + box['width'] / 2, box['y'] + box['height'] / 2
    board.mouse.move(x, y)
    board.mouse.down()
    board.mouse.move(x + 8, y + 8, steps=4)
    target_box = target.locator('.cards').bounding_box()
    tx = target_box['x'] + target_box['width'] / 2
    ty = target_box['y'] + min(40, target_box['height'] / 2)
    board.mouse.move(tx, ty, steps=20)
    board.wait_for_timeout(150)
    board.mouse.move(tx, ty + 4, steps=2)
    board.mouse.up()


def write_stage(board, lead_id, stage_id):
    "Put a card back through the same JSON-RPC as the page"
    result = board.evaluate("""async ([db, id, stage]) => {
        const response = await fetch('/' + db + '/rpc/', {
            method: 'POST', credentials: 'same-origin',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({id: 1, method: 'model.crm.lead.write',
                params: [[id], {stage: stage}, {}]})});
        return await response.json();
    }""", [board.url.split('/')[3], lead_id, stage_id])
    assert 'error' not in result, result


def test_board_columns_and_cards(page, crm_server):
    board = open_board(page, crm_server)
    db = crm_server['db']

    assert re.search(rf'/{db}/crm/board(\?|$)', board.url)
    expect(board.locator('#team option:checked')).to_have_text(
        'Direct Sales')
    titles = board.locator('.column-title > span:first-child')
    expect(titles).to_have_text(STAGES)
    for name in STAGES:
        header = column(board, name)
        expect(header.locator('.column-count')).to_have_text(
            re.compile(r'^\d+$'))
        expect(header.locator('.column-expected')).not_to_be_empty()

    card = board.locator('.card').first
    card_id = card.get_attribute('data-id')
    expect(card.locator('.card-title')).not_to_be_empty()
    expect(card.locator('.card-party')).not_to_be_empty()
    expect(card.locator('.card-amount')).to_have_text(re.compile(r'\d'))
    expect(card.locator('.card-owner')).not_to_be_empty()
    expect(card.locator('.card-link')).to_have_attribute(
        'href', f'/#{db}/model/crm.lead/{card_id}')
    # Dates of activities that are past are shown as overdue
    for activity in board.locator('.card-activity.overdue').all():
        expect(activity).to_have_attribute('title', re.compile('Overdue'))


def test_board_move_card(page, crm_server):
    board = open_board(page, crm_server)
    new, qualified = column(board, 'New'), column(board, 'Qualified')
    item = new.locator('.card').first
    lead_id = int(item.get_attribute('data-id'))
    name = item.locator('.card-title').inner_text()
    new_count, qualified_count = count(board, 'New'), count(board, 'Qualified')
    new_stage = int(new.get_attribute('data-stage'))

    drag(board, item, qualified)
    try:
        moved = qualified.locator(f'.card[data-id="{lead_id}"]')
        expect(moved).to_be_visible()
        expect(moved).not_to_have_class(re.compile('pending'))
        expect(qualified.locator('.column-count')).to_have_text(
            str(qualified_count + 1))
        expect(new.locator('.column-count')).to_have_text(
            str(new_count - 1))
        expect(board.locator('#alert')).to_be_hidden()
        expect(board.locator('#status')).to_contain_text(name.strip('★ '))

        board.reload()
        expect(column(board, 'Qualified').locator(
                f'.card[data-id="{lead_id}"]')).to_be_visible()
        expect(column(board, 'New').locator(
                f'.card[data-id="{lead_id}"]')).to_have_count(0)
    finally:
        write_stage(board, lead_id, new_stage)


def test_board_lost_cancelled(page, crm_server):
    "Dropping on Lost asks for a reason; cancel puts the card back"
    board = open_board(page, crm_server)
    source = column(board, 'Negotiation')
    item = source.locator('.card').first
    lead_id = item.get_attribute('data-id')
    lost_count = count(board, 'Lost')

    drag(board, item, column(board, 'Lost'))
    dialog = board.locator('#lost-dialog')
    expect(dialog).to_be_visible()
    expect(dialog.locator('#lost-reason option')).not_to_have_count(1)
    dialog.locator('#lost-cancel').click()
    expect(dialog).to_be_hidden()
    expect(source.locator(f'.card[data-id="{lead_id}"]')).to_be_visible()
    expect(column(board, 'Lost').locator(
            f'.card[data-id="{lead_id}"]')).to_have_count(0)
    expect(column(board, 'Lost').locator('.column-count')).to_have_text(
        str(lost_count))

    board.reload()
    expect(column(board, 'Negotiation').locator(
            f'.card[data-id="{lead_id}"]')).to_be_visible()


def test_board_lost_with_reason(page, crm_server):
    "With a reason the card is closed as lost"
    board = open_board(page, crm_server)
    source = column(board, 'Proposition')
    item = source.locator('.card').first
    lead_id = int(item.get_attribute('data-id'))
    stage_id = int(source.get_attribute('data-stage'))

    drag(board, item, column(board, 'Lost'))
    dialog = board.locator('#lost-dialog')
    expect(dialog).to_be_visible()
    # The reason is required
    dialog.locator('#lost-ok').click()
    expect(dialog).to_be_visible()
    dialog.locator('#lost-reason').select_option(index=1)
    dialog.locator('#lost-note').fill("Budget moved to next year")
    dialog.locator('#lost-ok').click()
    try:
        expect(dialog).to_be_hidden()
        lost = column(board, 'Lost').locator(f'.card[data-id="{lead_id}"]')
        expect(lost).to_be_visible()
        expect(lost).not_to_have_class(re.compile('pending'))
        board.reload()
        expect(column(board, 'Lost').locator(
                f'.card[data-id="{lead_id}"]')).to_be_visible()
    finally:
        write_stage(board, lead_id, stage_id)


def test_board_refused_move(page, crm_server):
    "When the server refuses the write, the card goes back with the message"
    board = open_board(page, crm_server)

    def refuse_write(route):
        body = json.loads(route.request.post_data or '{}')
        if body.get('method') == 'model.crm.lead.write':
            route.fulfill(
                status=200, content_type='application/json',
                body=json.dumps({'id': body['id'], 'error': [
                            'UserError',
                            ["You cannot move this opportunity.", '', None],
                            ]}))
        else:
            route.continue_()
    board.route('**/rpc/', refuse_write)

    source = column(board, 'New')
    item = source.locator('.card').first
    lead_id = item.get_attribute('data-id')
    drag(board, item, column(board, 'Qualified'))
    expect(board.locator('#alert')).to_be_visible()
    expect(board.locator('#alert')).to_contain_text(
        "You cannot move this opportunity.")
    expect(source.locator(f'.card[data-id="{lead_id}"]')).to_be_visible()
    expect(column(board, 'Qualified').locator(
            f'.card[data-id="{lead_id}"]')).to_have_count(0)


def test_board_filters(page, crm_server):
    board = open_board(page, crm_server)
    total = sum(count(board, name) for name in STAGES)

    board.locator('#mine').check()
    expect(board.locator('#owner')).to_be_disabled()
    expect(board).to_have_url(re.compile(r'mine=1'))
    settled(board)
    owners = {o.inner_text() for o in board.locator('.card-owner').all()}
    assert owners <= {'Alice Martin'}, owners
    mine = sum(count(board, name) for name in STAGES)
    assert mine <= total
    board.locator('#mine').uncheck()
    expect(board).not_to_have_url(re.compile(r'mine=1'))
    settled(board)

    card = board.locator('.card').first
    card_id = card.get_attribute('data-id')
    title = card.locator('.card-title').inner_text().strip('★ ')
    board.locator('#search').fill(title)
    expect(board).to_have_url(re.compile(r'q='))
    settled(board)
    expect(board.locator(f'.card[data-id="{card_id}"]')).to_be_visible()
    expect(board.locator('.column-title')).to_have_count(len(STAGES))
    assert sum(count(board, name) for name in STAGES) <= total

    board.locator('#search').fill('no such opportunity xyzzy')
    expect(board).to_have_url(re.compile(r'q=no\+such'))
    settled(board)
    expect(board.locator('.card')).to_have_count(0)
    for name in STAGES:
        expect(column(board, name).locator('.column-count')).to_have_text('0')


def test_board_needs_login(page, crm_server):
    "Without a sao session the page links to sao's login"
    url, db = crm_server['url'], crm_server['db']
    page.goto(f'{url}/{db}/crm/board')
    login_box = page.locator('#login')
    expect(login_box).to_be_visible()
    expect(login_box.locator('a')).to_have_attribute('href', f'/#{db}')
    expect(page.locator('.column')).to_have_count(0)


def test_board_card_opens_in_sao(page, crm_server):
    board = open_board(page, crm_server)
    card = board.locator('.card').first
    title = card.locator('.card-title').inner_text().strip('★ ')
    errors = []
    board.on('pageerror', lambda error: errors.append(str(error)))
    card.locator('.card-link').click()
    expect(board).to_have_url(
        re.compile(r'#' + re.escape(crm_server['db'])
            + r'/model/crm\.lead/\d+'))
    expect(board.locator('#tabs')).to_contain_text("CRM Lead")
    # the form of the opportunity, not sao's "Processing..." forever
    board.wait_for_function(
        "title => [...document.querySelectorAll('#tabcontent input')]"
        ".some(i => i.offsetParent !== null && i.value === title)",
        arg=title)
    assert not errors, errors
