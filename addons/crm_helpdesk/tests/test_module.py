from trytond.modules.company.tests import CompanyTestMixin
from trytond.modules.party.tests import PartyCheckReplaceMixin
from trytond.tests.test_tryton import ModuleTestCase, with_transaction

from crm_core.tests.tools import CoreDatabaseMixin, sao_unknown_list_columns


class CrmHelpdeskTestCase(CoreDatabaseMixin,
        PartyCheckReplaceMixin, CompanyTestMixin, ModuleTestCase):
    "Test CRM Helpdesk module"
    module = 'crm_helpdesk'

    @with_transaction()
    def test_lists_open_in_sao(self):
        "Every list view has only columns that sao can show"
        self.assertEqual(sao_unknown_list_columns(self.module), [])


del ModuleTestCase
