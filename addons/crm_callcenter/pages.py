"""The routes of the agent console and wallboard pages.

Both are static pages (web/callcenter/) that call the server through
JSON-RPC with the user's sao session, as crm_core's pipeline board does
(console.py has their methods): the routes need no transaction and give
nothing away that the RPC does not check.

    GET /<db>/callcenter/console            the agent console
    GET /<db>/callcenter/wallboard          the supervisors' wallboard
    GET /<db>/callcenter/static/<file>      their scripts and stylesheet
"""
import os

from werkzeug.utils import safe_join

from trytond.wsgi import app

from crm_core.routes import send_file, web_root

PAGES = {
    'console': 'console.html',
    'wallboard': 'wallboard.html',
    }


def _folder():
    return os.fspath(web_root() / 'callcenter')


@app.route('/<database_name>/callcenter/console', methods={'GET'})
def console(request, database_name):
    return send_file(safe_join(_folder(), PAGES['console']))


@app.route('/<database_name>/callcenter/wallboard', methods={'GET'})
def wallboard(request, database_name):
    return send_file(safe_join(_folder(), PAGES['wallboard']))


@app.route('/<database_name>/callcenter/static/<path:path>', methods={'GET'})
def static(request, database_name, path):
    # safe_join answers None for '..', absolute paths and the like
    return send_file(safe_join(_folder(), path))
