from trytond.modules.company.tests import CompanyTestMixin
from trytond.modules.party.tests import PartyCheckReplaceMixin
from trytond.tests.test_tryton import ModuleTestCase, with_transaction

from crm_core.tests.tools import CoreDatabaseMixin, sao_unknown_list_columns

from . import WITH_EXTRAS


class CrmMarketingTestCase(CoreDatabaseMixin,
        PartyCheckReplaceMixin, CompanyTestMixin, ModuleTestCase):
    "Test CRM Marketing module"
    module = 'crm_marketing'
    extras = WITH_EXTRAS[1:]

    @with_transaction()
    def test_lists_open_in_sao(self):
        "Every list view has only columns that sao can show"
        self.assertEqual(sao_unknown_list_columns(self.module), [])


del ModuleTestCase
