"Calls from CTI events, routing, callbacks and access"
import datetime as dt

from trytond.exceptions import UserError
from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_core.tests.tools import (
    CrmDatabaseTestCase, create_party, create_team, create_user)

from ..cti import fold, validate

T0 = dt.datetime(2026, 12, 2, 9, 0, 0)


def event(type_, call_id='c1', at=0, **values):
    "The JSON an event API client posts"
    data = {
        'id': f'{call_id}:{type_}:{at}',
        'type': type_,
        'call_id': call_id,
        'from': '+4930901820',
        'to': '5000',
        'queue': '5000',
        'timestamp': (T0 + dt.timedelta(seconds=at)).replace(
            tzinfo=dt.timezone.utc).timestamp(),
        }
    data.update(values)
    return data


class CallCenterSetup:
    """A company, agents 1001 (ann) and 1002 (ben) in the queue 5000, agent
    2001 (zoe) in the queue 6000, a supervisor and a customer"""

    def __init__(self, strategy='longest_idle', **queue_values):
        pool = Pool()
        ModelData = pool.get('ir.model.data')
        User = pool.get('res.user')
        Agent = pool.get('callcenter.agent')
        Queue = pool.get('callcenter.queue')
        self.company = create_company()
        agent_group = ModelData.get_id(
            'crm_callcenter', 'group_callcenter_agent')
        supervisor_group = ModelData.get_id(
            'crm_callcenter', 'group_callcenter_supervisor')
        self.ann = create_user('ann', self.company)
        self.ben = create_user('ben', self.company)
        self.zoe = create_user('zoe', self.company)
        self.sue = create_user('sue', self.company)
        User.write([self.ann, self.ben, self.zoe], {
                'groups': [('add', [agent_group])]})
        User.write([self.sue], {'groups': [('add', [supervisor_group])]})
        with set_company(self.company):
            self.team = create_team("Hotline", self.company,
                [self.ann, self.ben], leader=self.sue)
            self.a1001, self.a1002, self.a2001 = Agent.create([
                    {'user': self.ann.id, 'extension': '1001'},
                    {'user': self.ben.id, 'extension': '1002'},
                    {'user': self.zoe.id, 'extension': '2001'},
                    ])
            Agent.go_available([self.a1001, self.a1002, self.a2001])
            self.hotline, self.sales = Queue.create([{
                        'name': "Hotline",
                        'number': '5000',
                        'team': self.team.id,
                        'strategy': strategy,
                        'members': [('add', [self.a1001.id, self.a1002.id])],
                        **queue_values,
                        }, {
                        'name': "Sales",
                        'number': '6000',
                        'members': [('add', [self.a2001.id])],
                        }])
        self.customer = create_party("Customer Ltd", phones=['+4930901820'])

    def post(self, *events):
        "What the event API does with posted events, then the queue task"
        pool = Pool()
        Event = pool.get('callcenter.event')
        stored = Event.ingest(self.company.id, [validate(e) for e in events])
        Event.apply_pending()
        return stored

    def call(self, call_id='c1'):
        Call = Pool().get('callcenter.call')
        call, = Call.search([('call_id', '=', call_id)])
        return call

    def agent(self, agent):
        return Pool().get('callcenter.agent')(agent.id)


class CallCenterTestCase(CrmDatabaseTestCase):
    "Test the call center"
    modules = ['crm_callcenter']

    def test_fold_any_order(self):
        "A call is what all its events say, whatever their order"
        events = [dict(validate(e), id=i) for i, e in enumerate([
                    event('ended', at=95), event('ringing', at=0,
                        extension='1001'),
                    event('answered', at=12, extension='1001')])]
        for order in [events, events[::-1], events[1:] + events[:1]]:
            values, extension, queue = fold(order)
            self.assertEqual(values['state'], 'ended')
            self.assertEqual((values['wait_seconds'],
                    values['talk_seconds']), (12, 83))
            self.assertEqual((extension, queue), ('1001', '5000'))
        values, _, _ = fold(events[1:2])
        self.assertEqual(values['state'], 'ringing')
        missed = [dict(validate(event('missed', at=30,
                        reason='abandoned')), id=9), events[1]]
        values, _, _ = fold(missed)
        self.assertEqual((values['state'], values['wait_seconds'],
                values['talk_seconds']), ('abandoned', 30, None))

    def test_event_validation_names_the_fields(self):
        "A bad event is refused with the fields at fault"
        with self.assertRaises(UserError) as context:
            validate({'id': 'x', 'type': 'rang', 'timestamp': 'yesterday',
                    'direction': 'sideways'})
        self.assertEqual(context.exception.fields,
            ['call_id', 'direction', 'timestamp', 'type'])
        with self.assertRaises(UserError) as context:
            validate(event('dtmf'))
        self.assertEqual(context.exception.fields, ['digits'])
        with self.assertRaises(UserError):
            validate(['not', 'an', 'object'])
        self.assertEqual(validate(event('ringing', at=0))['timestamp'], T0)
        self.assertEqual(validate(dict(event('ringing'),
                    timestamp='2026-12-02T10:00:00+01:00'))['timestamp'], T0)

    @with_transaction()
    def test_events_make_one_call_on_the_history(self):
        """Events in any order and repeated make one call with its times,
        on the party's history, and the agent's status follows"""
        pool = Pool()
        Activity = pool.get('crm.activity')
        Event = pool.get('callcenter.event')
        cc = CallCenterSetup(wrap_up_seconds=30)
        with set_company(cc.company):
            self.assertEqual(cc.post(event('ringing', at=0,
                        extension='1001')), 1)
            call = cc.call()
            self.assertEqual((call.state, call.party, call.agent,
                    call.queue), ('ringing', cc.customer, cc.a1001,
                    cc.hotline))
            self.assertEqual(cc.agent(cc.a1001).status, 'ringing')
            self.assertEqual(cc.agent(cc.a1001).current_call, call)
            # The end before the answer, and the ringing again
            self.assertEqual(cc.post(event('ended', at=95),
                    event('ringing', at=0, extension='1001')), 1)
            self.assertEqual(cc.post(event('answered', at=12,
                        extension='1001')), 1)
            call = cc.call()
            self.assertEqual(call.state, 'ended')
            self.assertEqual((call.created, call.answered, call.ended),
                (T0, T0 + dt.timedelta(seconds=12),
                    T0 + dt.timedelta(seconds=95)))
            self.assertEqual((call.wait_seconds, call.talk_seconds),
                (12, 83))
            self.assertEqual(Event.search_count([]), 3)
            history, = Activity.search([('origin', '=', str(call)),
                    ('state', '=', 'done')])
            self.assertEqual((history.type, history.party, history.state,
                    history.user), ('call', cc.customer, 'done', cc.ann))
            self.assertEqual(history.subject, "Call from +4930901820")
            # The callback asked while it looked missed is cancelled
            self.assertEqual(call.callback.state, 'cancelled')
            self.assertEqual((history.start, history.end),
                (call.answered, call.ended))
            agent = cc.agent(cc.a1001)
            self.assertEqual(agent.status, 'wrap_up')
            self.assertEqual(agent.wrap_up_until,
                call.ended + dt.timedelta(seconds=30))
            # What the CRM knew in turn: the end first looked missed
            self.assertEqual([s.status for s in sorted(
                        agent.status_log, key=lambda s: s.id)],
                ['offline', 'available', 'ringing', 'available', 'wrap_up'])
            agent.__class__.end_wrap_ups(
                now=call.ended + dt.timedelta(seconds=31))
            self.assertEqual(cc.agent(cc.a1001).status, 'available')

    @with_transaction()
    def test_wrap_up_frees_the_agent(self):
        "The wrap-up form, when required, frees the agent"
        pool = Pool()
        Call = pool.get('callcenter.call')
        Disposition = pool.get('callcenter.disposition')
        cc = CallCenterSetup(wrap_up_required=True)
        with set_company(cc.company):
            cc.post(event('ringing', at=0, extension='1001'),
                event('answered', at=5, extension='1001'),
                event('ended', at=65))
            call = cc.call()
            agent = cc.agent(cc.a1001)
            self.assertEqual((agent.status, agent.wrap_up_until),
                ('wrap_up', None))
            self.assertFalse(agent.free())
            sold, = Disposition.create([{'name': "Sold", 'code': 'sold',
                        'success': True}])
            cc.a1002.__class__.end_wrap_ups(now=T0 + dt.timedelta(hours=1))
            self.assertEqual(cc.agent(cc.a1001).status, 'wrap_up')
            Call.finish_wrap_up([call], sold, "Wants the yearly plan")
            self.assertEqual(cc.agent(cc.a1001).status, 'available')
            call = cc.call()
            self.assertTrue(call.wrapped_up)
            self.assertEqual(call.activity.outcome, "Sold")
            self.assertEqual(call.notes, "Wants the yearly plan")

    @with_transaction()
    def test_missed_call_becomes_a_callback(self):
        "A call nobody answered asks a free agent to call back"
        pool = Pool()
        Activity = pool.get('crm.activity')
        cc = CallCenterSetup()
        with set_company(cc.company):
            cc.post(event('ringing', at=0, extension='1001'),
                event('missed', at=40, reason='abandoned'))
            call = cc.call()
            self.assertEqual(call.state, 'abandoned')
            self.assertEqual(call.wait_seconds, 40)
            callback = call.callback
            self.assertEqual((callback.type, callback.state,
                    callback.party), ('call', 'planned', cc.customer))
            self.assertIn('+4930901820', callback.subject)
            self.assertIn(callback.user, {cc.ann, cc.ben})
            self.assertEqual(cc.agent(cc.a1001).status, 'available')
            # Its history entry says it was missed
            history, = Activity.search([
                    ('origin', '=', str(call)), ('state', '=', 'done')])
            self.assertIn('Abandoned', history.subject)
            # Again: no second callback
            cc.post(event('missed', at=41, reason='abandoned'))
            self.assertEqual(Activity.search_count(
                    [('state', '=', 'planned')]), 1)

    @with_transaction()
    def test_several_parties_with_the_number_are_offered(self):
        "Two parties with the number: none chosen, both offered"
        cc = CallCenterSetup()
        twin = create_party("Twin GmbH", phones=['+4930901820'])
        with set_company(cc.company):
            cc.post(event('ringing', at=0, extension='1001'))
            call = cc.call()
            self.assertIsNone(call.party)
            self.assertEqual(set(call.matches), {cc.customer, twin})
            cc.post(event('ringing', call_id='c2', at=1,
                    extension='1002', **{'from': '+4930555000'}))
            stranger = cc.call('c2')
            self.assertEqual(list(stranger.matches), [])
            stranger.__class__.create_contact([stranger])
            self.assertEqual(cc.call('c2').party.name, '+4930555000')

    @with_transaction()
    def test_longest_idle_and_ringing_agents(self):
        "The agent idle the longest gets the call; a ringing one does not"
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        from ..cti import Router
        cc = CallCenterSetup()
        with set_company(cc.company):
            Agent.write([cc.a1001], {'last_call_end': T0})
            Agent.write([cc.a1002], {
                    'last_call_end': T0 - dt.timedelta(hours=1)})
            router = Router(cc.company.id)
            first = router.route('r1', '+4930901820', '5000', now=T0)
            self.assertEqual((first['action'], first['target']),
                ('agent', '1002'))
            self.assertEqual(cc.agent(cc.a1002).status, 'ringing')
            second = router.route('r2', '+4930901820', '5000', now=T0)
            self.assertEqual(second['target'], '1001')
            third = router.route('r3', '+4930901820', '5000', now=T0)
            self.assertEqual((third['action'], third['retry_after']),
                ('wait', 5))
            # The telephony never said it rang: free again after a minute
            self.assertEqual(router.route('r6', None, '5000',
                    now=T0 + dt.timedelta(seconds=61))['target'], '1002')
            # A direct call to a busy extension
            self.assertEqual(router.route('r4', None, '1001', now=T0)[
                    'action'], 'busy')
            self.assertEqual(router.route('r5', None, '999', now=T0),
                {'action': 'reject', 'reason': 'unknown_number'})

    @with_transaction()
    def test_routed_call_answered_in_one_batch(self):
        "An agent routed a second call follows it, whose events come at once"
        from ..cti import Router
        cc = CallCenterSetup()
        sales = dict(to='6000', queue='6000', extension='2001')
        with set_company(cc.company):
            router = Router(cc.company.id)
            for call_id, at in [('first', 0), ('second', 100)]:
                # The sales queue's one agent gets both calls
                decision = router.route(call_id, '+4930901820', '6000',
                    now=T0 + dt.timedelta(seconds=at))
                self.assertEqual(decision['target'], '2001')
                # Ringing and answered applied by the same task
                cc.post(event('ringing', call_id=call_id, at=at, **sales),
                    event('answered', call_id=call_id, at=at + 1, **sales))
                agent = cc.agent(cc.a2001)
                self.assertEqual(
                    (agent.status, agent.current_call.call_id),
                    ('on_call', call_id))
                cc.post(event('ended', call_id=call_id, at=at + 30, **sales))
                agent = cc.agent(cc.a2001)
                self.assertEqual(agent.status, 'wrap_up')
                self.assertTrue(agent.free(T0 + dt.timedelta(seconds=at + 99)))

    @with_transaction()
    def test_strategies(self):
        "Round robin turns, skills pick the expert, sticky the owner"
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        Queue = pool.get('callcenter.queue')
        Skill = pool.get('callcenter.skill')
        Party = pool.get('party.party')
        from ..cti import Router
        cc = CallCenterSetup(strategy='round_robin')
        with set_company(cc.company):
            router = Router(cc.company.id)

            def target():
                decision = router.route('x', '+4930901820', '5000', now=T0)
                Agent.go_available([cc.a1001, cc.a1002])
                return decision['target']
            self.assertEqual([target() for _ in range(4)],
                ['1001', '1002', '1001', '1002'])

            german, = Skill.create([{'name': "German"}])
            Agent.write([cc.a1001], {'skills': [('create', [
                                {'skill': german.id, 'level': 2}])]})
            Agent.write([cc.a1002], {'skills': [('create', [
                                {'skill': german.id, 'level': 5}])]})
            Queue.write([cc.hotline], {'strategy': 'skills',
                    'skills': [('add', [german.id])]})
            self.assertEqual(target(), '1002')

            Queue.write([cc.hotline], {'strategy': 'sticky'})
            Party.write([cc.customer], {'owner': cc.ann.id})
            self.assertEqual(target(), '1001')
            Party.write([cc.customer], {'owner': cc.zoe.id})
            self.assertIn(target(), {'1001', '1002'})

            Queue.write([cc.hotline], {'strategy': 'ring_all'})
            decision = router.route('y', '+4930901820', '5000', now=T0)
            self.assertEqual(sorted(decision['targets']), ['1001', '1002'])

    @with_transaction()
    def test_overflow(self):
        "No free agent: the overflow of the queue after its seconds"
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        Queue = pool.get('callcenter.queue')
        Activity = pool.get('crm.activity')
        from ..cti import Router
        cc = CallCenterSetup()
        with set_company(cc.company):
            Queue.write([cc.hotline], {'overflow': 'queue',
                    'overflow_seconds': 30, 'overflow_queue': cc.sales.id})
            Agent.pause([cc.a1001, cc.a1002], "Lunch")
            router = Router(cc.company.id)
            self.assertEqual(router.route('o1', '+4930901820', '5000',
                    waited=10, now=T0)['action'], 'wait')
            decision = router.route('o1', '+4930901820', '5000', waited=31,
                now=T0)
            self.assertEqual((decision['target'], decision['queue']),
                ('2001', '6000'))
            Queue.write([cc.hotline], {'overflow': 'callback'})
            decision = router.route('o2', '+4930901820', '5000', waited=31,
                now=T0)
            self.assertEqual(decision['action'], 'callback')
            callback, = Activity.search([('state', '=', 'planned')])
            # Nobody of the queue free: the team's leader
            self.assertEqual((callback.user, callback.party),
                (cc.sue, cc.customer))

    @with_transaction()
    def test_agent_reads_only_own_and_queue_calls(self):
        "An agent cannot read the notes of another queue's call"
        pool = Pool()
        Call = pool.get('callcenter.call')
        cc = CallCenterSetup()
        with set_company(cc.company):
            cc.post(event('ringing', call_id='hot', at=0, extension='1001'),
                event('ringing', call_id='sale', at=1, to='6000',
                    queue='6000', extension='2001'),
                event('answered', call_id='sale', at=3, to='6000',
                    queue='6000', extension='2001'),
                event('ended', call_id='sale', at=60, to='6000',
                    queue='6000'))
            Call.finish_wrap_up([cc.call('sale')], None, "Discount 40 %")
            sale = cc.call('sale')
            self.assertTrue(sale.activity)
        with Transaction().set_user(cc.ben.id), \
                Transaction().set_context(
                    _check_access=True, company=cc.company.id):
            calls = Call.search([])
            self.assertEqual([c.call_id for c in calls], ['hot'])
            with self.assertRaises(UserError):
                Call.read([sale.id], ['notes'])
            with self.assertRaises(UserError):
                Call.write([Call(sale.id)], {'notes': "mine now"})
            # Nor through the party's history, which everybody reads
            Activity = Pool().get('crm.activity')
            self.assertIn(sale.activity, Activity.search([]))
            self.assertFalse(Activity.search(['OR',
                        ('description', 'ilike', '%Discount%'),
                        ('outcome', 'ilike', '%Discount%')]))
        with Transaction().set_user(cc.sue.id), \
                Transaction().set_context(
                    _check_access=True, company=cc.company.id):
            self.assertEqual(len(Call.search([])), 2)
            self.assertEqual(Call(sale.id).notes, "Discount 40 %")

    @with_transaction()
    def test_wallboard(self):
        "Waiting calls, today's answered and abandoned, service level"
        pool = Pool()
        Queue = pool.get('callcenter.queue')
        cc = CallCenterSetup()
        with set_company(cc.company):
            cc.post(
                # answered in 10 s (service level 20 s), 60 s of talk
                event('ringing', call_id='a', at=0, extension='1001'),
                event('answered', call_id='a', at=10, extension='1001'),
                event('ended', call_id='a', at=70),
                # answered in 30 s, 20 s of talk
                event('ringing', call_id='b', at=0, extension='1002'),
                event('answered', call_id='b', at=30, extension='1002'),
                event('ended', call_id='b', at=50),
                # abandoned, and one still waiting
                event('ringing', call_id='c', at=0),
                event('missed', call_id='c', at=15, reason='abandoned'),
                event('ringing', call_id='d', at=100))
            figures, agents = Queue.wallboard([cc.hotline, cc.sales],
                now=T0 + dt.timedelta(seconds=130))
        hotline = figures[cc.hotline.id]
        self.assertEqual((hotline['waiting'], hotline['longest_wait']),
            (1, 30))
        self.assertEqual((hotline['answered'], hotline['abandoned']), (2, 1))
        self.assertEqual(hotline['service_level'], 33.3)
        self.assertEqual(hotline['average_handle'], 40.0)
        self.assertEqual(figures[cc.sales.id]['answered'], 0)
        self.assertEqual(sum(agents.values()), 3)


del CrmDatabaseTestCase
