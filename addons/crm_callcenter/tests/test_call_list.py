"Outbound call lists worked by the agents"
import datetime as dt

from trytond.exceptions import UserWarning
from trytond.modules.company.tests import set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_core.tests.tools import CrmDatabaseTestCase, create_party

from .test_callcenter import T0, CallCenterSetup, event


class CallListTestCase(CrmDatabaseTestCase):
    "Test outbound call lists"
    modules = ['crm_callcenter']

    def setup(self, **values):
        pool = Pool()
        CallList = pool.get('callcenter.call_list')
        cc = CallCenterSetup()
        with set_company(cc.company):
            call_list, = CallList.create([{'name': "Renewals",
                        'queue': cc.hotline.id, **values}])
        return cc, call_list

    @with_transaction()
    def test_parties_added_with_their_phone(self):
        "The selected parties are entries, those without phone left out"
        pool = Pool()
        CallList = pool.get('callcenter.call_list')
        Wizard = pool.get('callcenter.call_list.add', type='wizard')
        cc, call_list = self.setup()
        mobile = create_party("Mobile Max", phones=['+4930901821'])
        Pool().get('party.contact_mechanism').create([{
                    'party': mobile.id, 'type': 'mobile',
                    'value': '+4915112345678'}])
        nophone = create_party("No Phone Nora", emails=['nora@example.com'])
        with set_company(cc.company):
            session_id, _, _ = Wizard.create()
            wizard = Wizard(session_id)
            wizard.start.call_list = call_list
            records = [cc.customer, mobile, nophone]
            with Transaction().set_context(active_model='party.party',
                    active_ids=[p.id for p in records],
                    active_id=records[0].id):
                with self.assertRaises(UserWarning) as context:
                    wizard.transition_add()
                self.assertIn("No Phone Nora", context.exception.message)
                # The user goes on: the others are added
                with Transaction().set_context(_skip_warnings=True):
                    wizard.transition_add()
            call_list = CallList(call_list.id)
            self.assertEqual(sorted((e.party.name, e.number)
                    for e in call_list.entries), [
                    ("Customer Ltd", '+4930901820'),
                    ("Mobile Max", '+4915112345678')])
            # Added again: nothing twice
            CallList.add_parties(call_list, records)
            self.assertEqual(len(CallList(call_list.id).entries), 2)

    @with_transaction()
    def test_agents_work_the_list(self):
        """An agent of the list's queue takes the next entry; no answer is
        retried after the delay until the attempts are used, a success
        is done, a callback is planned in the agent's calendar"""
        pool = Pool()
        CallList = pool.get('callcenter.call_list')
        Entry = pool.get('callcenter.call_list.entry')
        Disposition = pool.get('callcenter.disposition')
        cc, call_list = self.setup(max_attempts=2, retry_minutes=30)
        other = create_party("Other Oy", phones=['+358401234567'])
        with set_company(cc.company):
            sold, later = Disposition.create([
                    {'name': "Sold", 'code': 'sold', 'success': True},
                    {'name': "No answer", 'code': 'none'}])
            CallList.add_parties(call_list, [cc.customer, other])
            # Not running: nothing to call; an agent of another queue: none
            self.assertIsNone(CallList.next_entry(cc.ann.id, now=T0))
            CallList.run([call_list])
            self.assertIsNone(CallList.next_entry(cc.zoe.id, now=T0))
            first = CallList.next_entry(cc.ann.id, now=T0)
            self.assertEqual((first.party, first.state, first.attempts,
                    first.user), (cc.customer, 'in_progress', 1, cc.ann))
            second = CallList.next_entry(cc.ben.id, now=T0)
            self.assertEqual(second.party, other)
            self.assertIsNone(CallList.next_entry(cc.ann.id, now=T0))

            Entry.record_outcome([first], later, now=T0)
            first = Entry(first.id)
            self.assertEqual((first.state, first.next_attempt),
                ('pending', T0 + dt.timedelta(minutes=30)))
            self.assertIsNone(CallList.next_entry(cc.ann.id, now=T0))
            again = CallList.next_entry(cc.ann.id,
                now=T0 + dt.timedelta(minutes=31))
            self.assertEqual((again, again.attempts), (first, 2))
            Entry.record_outcome([again], later, now=T0)
            self.assertEqual(Entry(first.id).state, 'failed')

            callback_at = T0 + dt.timedelta(days=1)
            Entry.record_outcome([second], later, notes="Call tomorrow 9",
                callback_at=callback_at, now=T0)
            second = Entry(second.id)
            self.assertEqual((second.state, second.next_attempt),
                ('pending', callback_at))
            self.assertEqual((second.callback.user, second.callback.start,
                    second.callback.state), (cc.ben, callback_at, 'planned'))
            # The callback stays with the agent who promised it
            self.assertIsNone(CallList.next_entry(cc.ann.id,
                    now=callback_at))
            self.assertEqual(CallList.next_entry(cc.ben.id,
                    now=callback_at), second)
            Entry.record_outcome([Entry(second.id)], sold, now=callback_at)
            self.assertEqual(Entry(second.id).state, 'done')
            self.assertEqual(CallList(call_list.id).progress, '2/2')

    @with_transaction()
    def test_wrap_up_of_the_outbound_call_records_the_outcome(self):
        "The agent's wrap-up of the outbound call is the entry's outcome"
        pool = Pool()
        CallList = pool.get('callcenter.call_list')
        Call = pool.get('callcenter.call')
        Disposition = pool.get('callcenter.disposition')
        cc, call_list = self.setup()
        with set_company(cc.company):
            sold, = Disposition.create([
                    {'name': "Sold", 'code': 'sold', 'success': True}])
            CallList.add_parties(call_list, [cc.customer])
            CallList.run([call_list])
            entry = CallList.next_entry(cc.ann.id, now=T0)
            out = {'direction': 'outbound', 'from': '1001',
                'to': '+4930901820', 'queue': None}
            cc.post(event('ringing', call_id='o1', at=0, extension='1001',
                    **out),
                event('answered', call_id='o1', at=8, extension='1001',
                    **out),
                event('ended', call_id='o1', at=128, **out))
            call = cc.call('o1')
            self.assertEqual((call.direction, call.party, call.user),
                ('outbound', cc.customer, cc.ann))
            Call.finish_wrap_up([call], sold, "Renewed for two years")
            entry = pool.get('callcenter.call_list.entry')(entry.id)
            self.assertEqual((entry.state, entry.disposition, entry.notes,
                    entry.last_call), ('done', sold,
                    "Renewed for two years", call))


del CrmDatabaseTestCase
