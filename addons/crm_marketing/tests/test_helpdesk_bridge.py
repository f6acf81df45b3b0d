"With crm_helpdesk: segments of parties with open tickets"
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction

from crm_core.tests.tools import CrmDatabaseTestCase, CrmSetup, create_party

from . import WITH_EXTRAS


class HelpdeskBridgeTestCase(CrmDatabaseTestCase):
    "Test the open tickets criterion"
    modules = WITH_EXTRAS

    @with_transaction()
    def test_open_tickets_criterion(self):
        "With open tickets: those whose ticket is not closed"
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        Segment = pool.get('crm.segment')
        Party = pool.get('party.party')
        crm = CrmSetup()
        with crm.company_context():
            waiting = create_party("Waiting")
            served = create_party("Served")
            create_party("Quiet")
            open_, done = Ticket.create([
                    {'company': crm.company.id, 'subject': "Broken",
                        'party': waiting.id},
                    {'company': crm.company.id, 'subject': "Fixed",
                        'party': served.id}])
            Ticket.solve([done])
            with_open, without = Segment.create([
                    {'name': "Waiting", 'open_tickets': 'with'},
                    {'name': "Not waiting", 'open_tickets': 'without'}])
            self.assertEqual(
                Party.search([('crm_segments', '=', with_open.id)]),
                [waiting])
            self.assertNotIn(waiting,
                Party.search([('crm_segments', '=', without.id)]))
            self.assertIn(served,
                Party.search([('crm_segments', '=', without.id)]))
