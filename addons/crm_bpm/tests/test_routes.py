"The routes of the modeler, card and heatmap pages, and of their static files"
import re
from urllib.parse import urljoin

from trytond.tests.test_tryton import RouteTestCase

# What the pages load: their own files and bpmn-js's dist/
STATIC = [
    ('bpm/modeler.js', 'javascript'),
    ('bpm/card.js', 'javascript'),
    ('bpm/heatmap.js', 'javascript'),
    ('bpm/page.js', 'javascript'),
    ('bpm/bpm.css', 'text/css'),
    ('lib/bpmn-js/bpmn-modeler.production.min.js', 'javascript'),
    ('lib/bpmn-js/bpmn-navigated-viewer.production.min.js', 'javascript'),
    ('lib/bpmn-js/assets/diagram-js.css', 'text/css'),
    ('lib/bpmn-js/assets/bpmn-js.css', 'text/css'),
    ('lib/bpmn-js/assets/bpmn-font/css/bpmn.css', 'text/css'),
    ('lib/bpmn-js/assets/bpmn-font/font/bpmn.woff2', 'font/woff2'),
    ]

# Each answers 404: a way out of the allowed folders, a file of web/ or of
# node_modules that is not a page's, or a missing file
REFUSED = [
    '../../etc/passwd',
    'bpm/../../etc/passwd',
    'bpm/../../package.json',
    'bpm/../crm/board.js',
    'bpm/%2e%2e/%2e%2e/package.json',
    'bpm/..%2f..%2fpackage.json',
    'lib/bpmn-js/../package.json',
    'lib/bpmn-js/../../bpmn-js/package.json',
    'lib/bpmn-js/../../sortablejs/package.json',
    'lib/bpmn-js/../../../../../../etc/passwd',
    'lib/bpmn-js/../lib/Modeler.js',
    'lib/bpmn-js/' + '../' * 3 + 'package.json',
    'lib/bpmn-js',
    'lib/bpmn-js/',
    'lib/bpmn-js/assets',
    'lib/bpmn-moddle/package.json',
    'lib/sortablejs/sortable.esm.js',
    'node_modules/bpmn-js/package.json',
    'node_modules/bpmn-js/dist/bpmn-modeler.production.min.js',
    'crm/board.js',
    'package.json',
    'bpm',
    'bpm/',
    'bpm/missing.js',
    ]


class BpmRouteTestCase(RouteTestCase):
    "Test the routes of crm_bpm's pages"
    module = 'crm_bpm'

    def get(self, path):
        return self.client().get(f'/{self.db_name}/bpm/{path}')

    def test_pages(self):
        "The modeler, the card and the heatmap answer their HTML"
        for page, script, bundle in [
                ('modeler', 'modeler.js', 'bpmn-modeler.production.min.js'),
                ('card', 'card.js', 'bpmn-navigated-viewer.production.min.js'),
                ('heatmap', 'heatmap.js',
                    'bpmn-navigated-viewer.production.min.js'),
                ]:
            with self.subTest(page=page):
                response = self.get(f'{page}?version=1&instance=1')
                self.assertEqual(response.status_code, 200)
                self.assertEqual(response.mimetype, 'text/html')
                self.assertIn(script.encode(), response.data)
                self.assertIn(bundle.encode(), response.data)
                self.assertIn(b'id="message"', response.data)

    def test_static_files(self):
        "The pages' files and bpmn-js's bundles, CSS and font are served"
        for path, mimetype in STATIC:
            with self.subTest(path=path):
                response = self.get(f'static/{path}')
                self.assertEqual(response.status_code, 200)
                self.assertIn(mimetype, response.mimetype)
                self.assertTrue(response.data)

    def test_what_pages_load(self):
        "Every file a page, its script or bpmn-js's CSS names is served"
        for page in ['modeler', 'card', 'heatmap']:
            html = self.get(page).get_data(as_text=True)
            # With crm_core's page.css, linked as ../crm/static/crm/
            urls = re.findall(
                r'(?:href|src)="((?:\.\./crm/)?static/[^"]+)"', html)
            self.assertGreaterEqual(len(urls), 7)
            self.assertIn('../crm/static/crm/page.css', urls)
            for url in urls:
                with self.subTest(page=page, url=url):
                    response = self.client().get(urljoin(
                            f'/{self.db_name}/bpm/{page}', url))
                    self.assertEqual(response.status_code, 200)
            # The modules its own script imports (page.js, and crm_core's
            # rpc.js through it), resolved from the importer's URL as the
            # browser does
            script = f'static/bpm/{page}.js'
            self.assertIn(script, urls)
            scripts = [f'/{self.db_name}/bpm/{script}']
            for importer in scripts:
                imports = re.findall(
                    r"^import [^;]*?'([^']+)';", self.client().get(
                        importer).get_data(as_text=True), re.MULTILINE)
                for module in imports:
                    with self.subTest(page=page, module=module):
                        url = urljoin(importer, module)
                        response = self.client().get(url)
                        self.assertEqual(response.status_code, 200)
                        self.assertIn('javascript', response.mimetype)
                        scripts.append(url)
            self.assertIn(f'/{self.db_name}/crm/static/crm/rpc.js', scripts)
        # The font of bpmn.css: relative URLs from its own folder
        css_path = 'static/lib/bpmn-js/assets/bpmn-font/css/bpmn.css'
        css = self.get(css_path).get_data(as_text=True)
        fonts = {re.split(r'[?#]', u)[0] for u in re.findall(
                    r'url\([\'"]?([^\'")]+)', css)
            if not u.startswith('data:')}
        self.assertTrue(fonts)
        for font in fonts:
            with self.subTest(font=font):
                self.assertEqual(
                    self.get(urljoin(css_path, font)).status_code, 200)

    def test_static_refused(self):
        "Nothing outside web/bpm and bpmn-js's dist/ is served"
        for path in REFUSED:
            with self.subTest(path=path):
                response = self.get(f'static/{path}')
                self.assertEqual(response.status_code, 404)
                self.assertNotIn(b'root:', response.data)
                self.assertNotIn(b'"dependencies"', response.data)

    def test_absolute_path_refused(self):
        "An absolute path after static/ gives no file"
        response = self.get('static//etc/passwd')
        # werkzeug merges the slashes with a redirect, to a path refused
        self.assertIn(response.status_code, {404, 308})
        self.assertNotIn(b'root:', response.data)
        if response.status_code == 308:
            location = response.headers['Location']
            self.assertEqual(
                self.client().get(location).status_code, 404)


del RouteTestCase
