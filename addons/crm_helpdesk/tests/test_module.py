from trytond.modules.company.tests import CompanyTestMixin
from trytond.modules.party.tests import PartyCheckReplaceMixin
from trytond.tests.test_tryton import ModuleTestCase


class CrmHelpdeskTestCase(
        PartyCheckReplaceMixin, CompanyTestMixin, ModuleTestCase):
    "Test CRM Helpdesk module"
    module = 'crm_helpdesk'


del ModuleTestCase
