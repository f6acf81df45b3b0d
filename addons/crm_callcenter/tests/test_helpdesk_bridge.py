"With crm_helpdesk: a ticket made from a call"
from trytond.modules.company.tests import set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction

from crm_core.tests.tools import CrmDatabaseTestCase

from . import WITH_EXTRAS
from .test_callcenter import CallCenterSetup, event


class HelpdeskBridgeTestCase(CrmDatabaseTestCase):
    "Test the call center with the helpdesk"
    modules = WITH_EXTRAS

    @with_transaction()
    def test_ticket_from_call(self):
        "Create Ticket makes a phone ticket of the caller, linked both ways"
        pool = Pool()
        Call = pool.get('callcenter.call')
        cc = CallCenterSetup()
        with set_company(cc.company):
            cc.post(event('ringing', at=0, extension='1001'),
                event('answered', at=5, extension='1001'),
                event('ended', at=65))
            call = cc.call()
            Call.write([call], {'notes': "The printer jams on page 2"})
            action = Call.create_ticket([call])
            call = cc.call()
            ticket = call.ticket
            self.assertEqual(action['res_id'], [ticket.id])
            self.assertEqual((ticket.party, ticket.channel, ticket.user,
                    ticket.team), (cc.customer, 'phone', cc.ann, cc.team))
            self.assertEqual(ticket.description, "The printer jams on page 2")
            self.assertIn('+4930901820', ticket.subject)
            self.assertEqual(list(ticket.calls), [call])
            # Once made, not again
            Call.create_ticket([call])
            self.assertEqual(
                pool.get('helpdesk.ticket').search_count([]), 1)


del CrmDatabaseTestCase
