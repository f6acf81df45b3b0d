"""The dashboards of every role load: each board's actions give their
view's records, run as a user of the role (access rules apply)"""
from lxml import etree

from trytond.pool import Pool
from trytond.pyson import PYSONDecoder
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_core.tests.tools import CrmDatabaseTestCase, CrmSetup, create_party

from . import WITH_EXTRAS

BOARDS = ['dashboard_salesperson', 'dashboard_sales_manager',
    'dashboard_support', 'dashboard_callcenter', 'dashboard_marketing']


def load_board(xml_id):
    """Open the board as the client does: each action's first view and its
    records; return {action name: number of records}"""
    pool = Pool()
    ModelData = pool.get('ir.model.data')
    View = pool.get('ir.ui.view')
    Action = pool.get('ir.action')
    view = View(ModelData.get_id('crm_reports', f'{xml_id}_view'))
    loaded = {}
    for node in etree.fromstring(view.arch).iter('action'):
        module, name = node.get('name').split('.')
        action, = Action.get_action_values('ir.action.act_window', [
                Action.get_action_id(ModelData.get_id(module, name))])
        env = {'_user': Transaction().user}
        decoder = PYSONDecoder(env)
        context = decoder.decode(action['pyson_context'] or '{}')
        domain = decoder.decode(action['pyson_domain'] or '[]')
        Model = pool.get(action['res_model'])
        view_id, view_type = action['views'][0]
        fields_view = Model.fields_view_get(view_id, view_type)
        with Transaction().set_context(context):
            records = Model.search_read(
                domain, fields_names=list(fields_view['fields']))
        loaded[action['name']] = len(records)
    return loaded


class DashboardTestCase(CrmDatabaseTestCase):
    "Dashboards"
    modules = WITH_EXTRAS

    @with_transaction()
    def test_every_board_loads(self):
        "Each role's board shows its graphs and lists to that role"
        pool = Pool()
        Lead = pool.get('crm.lead')
        User = pool.get('res.user')
        ModelData = pool.get('ir.model.data')
        crm = CrmSetup()
        with crm.company_context():
            Lead.create([{'name': "Big deal", 'type': 'opportunity',
                        'party': create_party("Acme").id,
                        'owner': crm.alice.id, 'team': crm.north.id,
                        'expected_revenue': 1000}])
        groups = [ModelData.get_id(m, g) for m, g in [
                ('crm_helpdesk', 'group_helpdesk_manager'),
                ('crm_callcenter', 'group_callcenter_supervisor'),
                ('crm_marketing', 'group_marketing_user')]]
        User.write([crm.manager], {'groups': [('add', groups)]})
        with crm.as_user(crm.alice):
            mine = load_board('dashboard_salesperson')
            # The bridges' roles do not hide the menu from salespeople
            Menu = pool.get('ir.ui.menu')
            dashboards = Menu.search([('parent', '=', ModelData.get_id(
                            'crm_reports', 'menu_dashboards'))])
            self.assertEqual([m.name for m in dashboards], ["Salesperson"])
            self.assertTrue(Menu.search([('id', '=', ModelData.get_id(
                            'crm_reports', 'menu_dashboards'))]))
        self.assertEqual(mine["My Pipeline"], 1)
        with crm.as_user(crm.carol):
            self.assertEqual(load_board('dashboard_salesperson')[
                    "My Pipeline"], 0)
        with crm.as_user(crm.manager):
            for board in BOARDS:
                with self.subTest(board=board):
                    self.assertTrue(load_board(board))
            self.assertEqual(load_board('dashboard_sales_manager')[
                    "Pipeline by Stage"], 1)


del CrmDatabaseTestCase
