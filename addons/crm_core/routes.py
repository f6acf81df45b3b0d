"Custom pages of the CRM served by trytond, next to the sao web client"
import mimetypes
import os
from pathlib import Path

from werkzeug.exceptions import NotFound
from werkzeug.utils import safe_join
from werkzeug.wrappers import Response

from trytond import config
from trytond.wsgi import app


def web_root():
    "The project's web/ folder: [crm] web_root, or next to addons/"
    root = config.get('crm', 'web_root', default=None)
    if root:
        return Path(root)
    return Path(__file__).resolve().parents[2] / 'web'


# Files a page may load: the project's pages, and the front-end libraries
# installed from npm (web/package.json). Nothing else of web/ is served.
STATIC_DIRS = {
    'crm': 'crm',
    'lib/sortablejs': 'node_modules/sortablejs/modular',
    }


def _send(path):
    if path is None or not os.path.isfile(path):
        raise NotFound()
    mimetype = mimetypes.guess_type(path)[0] or 'application/octet-stream'
    with open(path, 'rb') as file:
        response = Response(file.read(), mimetype=mimetype)
    response.headers['Cache-Control'] = 'no-cache'
    return response


@app.route('/<database_name>/crm/board', methods={'GET'})
def board(request, database_name):
    return _send(os.fspath(web_root() / 'crm' / 'board.html'))


@app.route('/<database_name>/crm/static/<path:path>', methods={'GET'})
def static(request, database_name, path):
    prefix, _, rest = path.rpartition('/')
    for url_dir, fs_dir in STATIC_DIRS.items():
        if path.startswith(url_dir + '/'):
            return _send(safe_join(
                    os.fspath(web_root() / fs_dir), path[len(url_dir) + 1:]))
    raise NotFound()
