"""Pages of crm_bpm served by trytond: the BPMN modeler, the process card
and the heatmap of a version

All are static pages (web/bpm/) that call the server through JSON-RPC with
the user's sao session, as crm_core's pipeline board does: the routes need
no transaction and give nothing away that the RPC does not check."""
import os

from werkzeug.exceptions import NotFound
from werkzeug.utils import safe_join

from trytond.wsgi import app

from crm_core.routes import send_file, web_root

# URL folder under /<db>/bpm/static/ -> folder of web/. Only bpmn-js's
# dist/ is served of node_modules: its sources, package.json and the other
# packages stay private.
STATIC_DIRS = {
    'bpm': 'bpm',
    'lib/bpmn-js': 'node_modules/bpmn-js/dist',
    }
PAGES = {
    'modeler': 'modeler.html',
    'card': 'card.html',
    'heatmap': 'heatmap.html',
    }


def _page(name):
    return send_file(os.fspath(web_root() / 'bpm' / PAGES[name]))


@app.route('/<database_name>/bpm/modeler', methods={'GET'})
def modeler(request, database_name):
    return _page('modeler')


@app.route('/<database_name>/bpm/card', methods={'GET'})
def card(request, database_name):
    return _page('card')


@app.route('/<database_name>/bpm/heatmap', methods={'GET'})
def heatmap(request, database_name):
    return _page('heatmap')


@app.route('/<database_name>/bpm/static/<path:path>', methods={'GET'})
def static(request, database_name, path):
    for url_dir, fs_dir in STATIC_DIRS.items():
        if path.startswith(url_dir + '/'):
            # safe_join answers None for '..', absolute paths and the like
            return send_file(safe_join(
                    os.fspath(web_root() / fs_dir), path[len(url_dir) + 1:]))
    raise NotFound()
