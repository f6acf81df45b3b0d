"""Fixtures shared by every browser test (Playwright + Debian's chromium).

Contract used by all tests/browser/test_*.py (keep these names):

``crm_server`` (session)
    A fresh SQLite database ``crm_browser`` in a temporary folder, with every
    module of the suite activated (each folder of addons/ holding a
    tryton.cfg) and scripts/demo_data.py loaded, served by
    ``trytond -d crm_browser`` on 127.0.0.1:8010.  Yields ``CrmServer``,
    a dict that also allows attribute access: ``crm_server.url``
    (``'http://127.0.0.1:8010'``, no trailing slash), ``crm_server.db``
    (``'crm_browser'``), plus ``env`` (the environment the server runs with)
    and ``path`` (the database folder).  Server log: tests/artifacts/server.log.

``browser`` (session)
    Playwright sync API Chromium from /usr/bin/chromium (never
    ``playwright install``).

``page`` (function)
    A new browser context and page; when the test fails, a screenshot is
    saved to tests/artifacts/<test name>.png (and the browser console to
    tests/artifacts/<test name>.console.txt).

``login(page, crm_server, login, password)`` -- a plain function:
    ``from conftest import login``.  Opens ``<url>/#<db>``, fills sao's login
    dialog (database, user name), then sao's password dialog, and waits for
    the main menu.  Raises ``LoginError`` (with sao's message) when sao
    shows an error or asks for the password again (wrong password).
    ``sao_login`` is the same function as a fixture, for who prefers that.

``mail_server`` (session)
    A real SMTP server (aiosmtpd) on 127.0.0.1:MAIL_PORT, where the served
    database sends its mail (``TRYTOND_EMAIL__URI``): ``.messages`` holds
    the envelopes received.  Without it nothing listens there, so the
    browser tests never mail anyone (trytond's default is localhost:25).

``rpc``, ``active_tab``, ``open_menu``, ``wait_idle``,
``assert_no_error_dialog``, ``save_record`` -- plain functions that drive
sao (below).

Demo users (scripts/demo_data.py): manager, alice, bob, carol, dora, all with
password ``crm-demo-2026``; they are not admin, so no configuration wizard
runs at their first login.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / 'tests' / 'artifacts'
DB_NAME = 'crm_browser'
LISTEN = os.environ.get('CRM_BROWSER_LISTEN', '127.0.0.1:8010')
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync']
DEMO_PASSWORD = 'crm-demo-2026'
ADMIN_PASSWORD = os.environ.get('CRM_ADMIN_PASSWORD', 'admin-demo-2026')
# sao, trytond and chromium are slow on a busy 2-core machine.
TIMEOUT_MS = 30_000


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


# Where the served database sends its mail: the mail_server fixture
MAIL_PORT = int(os.environ.get('CRM_BROWSER_MAIL_PORT') or _free_port())


try:
    from playwright.sync_api import expect
    expect.set_options(timeout=TIMEOUT_MS)
except ImportError:  # reported by the browser fixture
    pass


class CrmServer(dict):
    "The running test server: crm_server.url == crm_server['url']"
    __getattr__ = dict.__getitem__


class LoginError(AssertionError):
    pass


def suite_modules():
    "Every module of the suite: folders of addons/ that hold a tryton.cfg"
    return sorted(p.parent.name for p in (ROOT / 'addons').glob('*/tryton.cfg'))


def _project_env():
    "The environment of scripts/env.sh (the single place for defaults)"
    out = subprocess.run(
        ['bash', '-c', 'source "$1" >/dev/null && env -0', 'env',
            str(ROOT / 'scripts' / 'env.sh')],
        check=True, capture_output=True).stdout
    env = {}
    for item in out.split(b'\0'):
        if b'=' in item:
            key, value = item.split(b'=', 1)
            env[key.decode()] = value.decode()
    return env


def _port_free(listen):
    host, port = listen.rsplit(':', 1)
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


def _wait_http(url, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"trytond exited ({proc.returncode}): see {ARTIFACTS}/server.log")
        try:
            with urllib.request.urlopen(url + '/', timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def _run(cmd, env, log):
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    result = subprocess.run(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        timeout=900)
    if result.returncode:
        raise RuntimeError(
            f"{cmd[0]} failed ({result.returncode}): see {log.name}")


@pytest.fixture(scope='session')
def crm_server():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if not _port_free(LISTEN):
        pytest.fail(f"{LISTEN} is already in use: stop what listens there "
            "(or set CRM_BROWSER_LISTEN)")
    tmp = Path(tempfile.mkdtemp(prefix='crm-browser-'))
    passfile = tmp / 'admin-password'
    passfile.write_text(ADMIN_PASSWORD + '\n')
    env = _project_env()
    env.update({
            'TRYTOND_DATABASE__URI': 'sqlite://',
            'TRYTOND_DATABASE_URI': 'sqlite://',
            'TRYTOND_DATABASE__PATH': str(tmp),
            'TRYTOND_WEB__LISTEN': LISTEN,
            'TRYTONPASSFILE': str(passfile),
            'PYTHONUNBUFFERED': '1',
            })
    for name in ['DB_NAME', 'DB_CACHE']:
        env.pop(name, None)
    env['TRYTOND_EMAIL__URI'] = f'smtp://127.0.0.1:{MAIL_PORT}'
    bindir = Path(sys.executable).parent
    (tmp / f'{DB_NAME}.sqlite').touch()
    modules = suite_modules()
    demo_data = os.environ.get(
        'CRM_DEMO_DATA', str(ROOT / 'scripts' / 'demo_data.py'))
    with open(ARTIFACTS / 'setup.log', 'w') as log:
        _run([str(bindir / 'trytond-admin'), '-d', DB_NAME, '--all',
                '-u', *modules, '--activate-dependencies',
                '--email', 'admin@example.com'], env, log)
        _run([sys.executable, demo_data, '-d', DB_NAME], env, log)

    server_log = open(ARTIFACTS / 'server.log', 'w')
    proc = subprocess.Popen(
        [str(bindir / 'trytond'), '-d', DB_NAME], env=env, cwd=ROOT,
        stdout=server_log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL)
    url = f'http://{LISTEN}'
    try:
        _wait_http(url, proc)
        yield CrmServer(url=url, db=DB_NAME, env=env, path=str(tmp))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        server_log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope='session')
def browser():
    from playwright.sync_api import sync_playwright
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium "
            "(scripts/setup.sh --chromium does it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope='session')
def mail_server():
    "A real SMTP server on MAIL_PORT that keeps the envelopes it receives"
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope)
            return '250 OK'
    inbox = Inbox()
    controller = Controller(inbox, hostname='127.0.0.1', port=MAIL_PORT)
    controller.start()
    yield inbox
    controller.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the item: the page fixture reads it.
    report = yield
    setattr(item, 'rep_' + report.when, report)
    return report


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={'width': 1400, 'height': 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    console = []
    page.on('console', lambda msg: console.append(f"{msg.type}: {msg.text}"))
    page.on('pageerror', lambda exc: console.append(f"pageerror: {exc}"))
    yield page
    failed = any(
        getattr(request.node, 'rep_' + when, None) is not None
        and getattr(request.node, 'rep_' + when).failed
        for when in ['setup', 'call'])
    if failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r'[^\w.-]+', '_', request.node.name)
        try:
            page.screenshot(path=str(ARTIFACTS / f'{name}.png'), full_page=True)
        except Exception as exc:  # the page may be gone
            console.append(f"screenshot failed: {exc}")
        (ARTIFACTS / f'{name}.console.txt').write_text('\n'.join(console))
    context.close()


def login(page, crm_server, login, password):
    """Log in to sao as login/password and wait for the main menu.

    Raises LoginError when sao refuses the credentials."""
    url, db = crm_server['url'], crm_server['db']
    page.goto(f'{url}/#{db}')
    dialog = page.locator('.login-dialog')
    dialog.locator('input#login').wait_for(state='visible')
    # The database comes from the URL (#db); sao also shows it as a
    # read-only input (one database) or a select (list of databases, empty
    # when listing is disabled): fill whichever can take it.
    database = dialog.locator('input#database')
    if (database.is_visible() and database.is_editable()
            and not database.input_value()):
        database.fill(db)
    select = dialog.locator('select#database')
    if select.is_visible() and select.locator(
            f'option[value="{db}"]').count():
        select.select_option(db)
    dialog.locator('input#login').fill(login)
    dialog.locator('button[type=submit]').click()

    # sao then asks for the password in its "ask" dialog.
    entry = page.locator('.ask-dialog input#ask-dialog-entry[type=password]')
    entry.wait_for(state='visible')
    entry.fill(password)
    page.locator('.ask-dialog .modal-footer .btn-primary').click()

    # Success: the menu fills in.  Failure: sao asks for the password again
    # (a new, empty password dialog: what sao does on a wrong password) or
    # shows an error/message dialog.
    menu = page.locator('#menu tbody tr').first
    refused = """() => {
        const visible = e => !!(e.offsetWidth || e.offsetHeight
            || e.getClientRects().length);
        for (const e of document.querySelectorAll('#ask-dialog-entry')) {
            if (visible(e) && !e.value) {
                return e.closest('.modal').innerText;
            }
        }
        for (const e of document.querySelectorAll(
                '.error-dialog, .message-dialog, .warning-dialog')) {
            if (visible(e)) {
                return e.innerText;
            }
        }
        return null;
    }"""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        if menu.is_visible():
            return
        text = page.evaluate(refused)
        if text is not None:
            raise LoginError(f"login of {login!r} refused: {text.strip()!r}")
        page.wait_for_timeout(200)
    raise LoginError(f"login of {login!r}: no menu after {TIMEOUT_MS} ms")


@pytest.fixture
def sao_login():
    "The login() function as a fixture: sao_login(page, crm_server, l, p)"
    return login


# Helpers of the tests that drive sao ---------------------------------------

class RpcError(AssertionError):
    pass


def rpc(page, method, *params, context=None):
    """Call method from the page with sao's session cookie, as the custom
    pages do (the context is the last parameter)"""
    answer = page.evaluate("""async ([db, method, params]) => {
        const response = await fetch('/' + db + '/rpc/', {
            method: 'POST', credentials: 'same-origin',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({id: 1, method, params})});
        return await response.json();
    }""", [DB_NAME, method, [*params, context or {}]])
    if 'error' in answer:
        raise RpcError(f"{method}: {answer['error']}")
    return answer['result']


def active_tab(page):
    "The tab sao shows in front (each tab repeats the same toolbar ids)"
    return page.locator('#tabcontent > .tab-pane.active')


def open_menu(page, *path):
    "Open a menu entry through sao's menu tree, e.g. ('CRM', 'Leads')"
    menu = page.locator('#menu')
    *parents, leaf = path
    for name in parents:
        row = menu.locator('tbody tr', has=page.locator(
                '.column-char', has_text=name)).first
        if not menu.locator('.column-char', has_text=leaf).count():
            row.locator('.expander').click()
    # A double click opens the action, as in sao's menu.
    menu.locator('.column-char').filter(has_text=leaf).first.dblclick()


def wait_idle(page):
    "sao shows 'Processing' while an RPC is in flight"
    page.locator('#processing').wait_for(state='hidden')


def assert_no_error_dialog(page):
    errors = page.locator('.error-dialog:visible, .warning-dialog:visible')
    if errors.count():
        pytest.fail(f"sao error: {errors.first.inner_text()}")


def save_record(page, tab, model):
    """Click Save in the tab and wait for the server's answer to sao's
    create or write of the model: the record is saved when this returns
    (its ids for a create).  Not the Save button's state: a redisplay of
    the form on a loaded machine may keep it enabled after the save."""
    methods = {f'model.{model}.create', f'model.{model}.write'}

    def is_save(response):
        request = response.request
        if request.method != 'POST' or '/rpc' not in request.url:
            return False
        try:
            body = json.loads(request.post_data or '{}')
        except ValueError:
            return False
        return isinstance(body, dict) and body.get('method') in methods

    # A create of a record with lines takes a while on a loaded machine
    with page.expect_response(is_save, timeout=2 * TIMEOUT_MS) as response:
        tab.locator('button#save').click()
    answer = response.value.json()
    if 'error' in answer:
        pytest.fail(f"saving {model} failed: {answer['error']}")
    wait_idle(page)
    assert_no_error_dialog(page)
    return answer.get('result')
