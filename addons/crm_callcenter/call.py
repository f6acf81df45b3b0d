"""Calls: each one on the customer's single history. A call record is
what the CTI events of its call id say (cti.py keeps it so); the agent
adds the wrap-up: disposition, notes, a follow-up."""
import datetime as dt
import logging
from collections import defaultdict

from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, Index, ModelSQL, ModelView, Unique, fields)
from trytond.pool import Pool
from trytond.pyson import Bool, Eval, If
from trytond.transaction import Transaction

from crm_core.contact import e164

from .exceptions import CallCenterError

logger = logging.getLogger(__name__)

DIRECTIONS = [
    ('inbound', "Inbound"),
    ('outbound', "Outbound"),
    ('internal', "Internal"),
    ]
STATES = [
    ('ringing', "Ringing"),
    ('answered', "Answered"),
    ('missed', "Missed"),
    ('abandoned', "Abandoned"),
    ('voicemail', "Voicemail"),
    ('ended', "Ended"),
    ]
OVER = {'missed', 'abandoned', 'voicemail', 'ended'}


class Disposition(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'callcenter.disposition'
    __string__ = "Call Disposition"

    name = fields.Char("Name", required=True, translate=True)
    code = fields.Char("Code", required=True, strip=True)
    sequence = fields.Integer("Sequence")
    success = fields.Boolean("Success",
        help="The call reached its goal (sale, solved, survey done).")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('code_unique', Unique(t, t.code),
                'crm_callcenter.msg_disposition_code_unique'),
            ]
        cls._order = [
            ('sequence', 'ASC NULLS FIRST'), ('name', 'ASC'), ('id', 'ASC')]


class Call(ModelSQL, ModelView):
    __name__ = 'callcenter.call'
    __string__ = "Call"
    _rec_name = 'call_id'

    call_id = fields.Char("Call ID", required=True, readonly=True,
        help="The id the telephony gives the call.")
    company = fields.Many2One(
        'company.company', "Company", required=True, readonly=True)
    direction = fields.Selection(DIRECTIONS, "Direction", required=True,
        readonly=True)
    from_number = fields.Char("From", readonly=True)
    to_number = fields.Char("To", readonly=True)
    customer_number = fields.Function(fields.Char("Customer Number"),
        'get_customer_number')
    party = fields.Many2One('party.party', "Party", ondelete='SET NULL',
        context={'company': Eval('company', -1)}, depends={'company'})
    matches = fields.Function(fields.Many2Many('party.party', None, None,
            "Parties with this Number",
            context={'company': Eval('company', -1)}, depends={'company'}),
        'get_matches')
    lead = fields.Many2One('crm.lead', "Lead", ondelete='SET NULL',
        domain=[If(Bool(Eval('party')),
                ('party', '=', Eval('party', -1)), ())])
    agent = fields.Many2One('callcenter.agent', "Agent", readonly=True,
        ondelete='SET NULL')
    user = fields.Many2One('res.user', "User", readonly=True,
        ondelete='SET NULL', help="The agent's user.")
    queue = fields.Many2One('callcenter.queue', "Queue", readonly=True,
        ondelete='SET NULL')
    state = fields.Selection(STATES, "State", required=True, readonly=True,
        sort=False)
    state_string = state.translated('state')
    created = fields.DateTime("Created", required=True, readonly=True)
    answered = fields.DateTime("Answered", readonly=True)
    ended = fields.DateTime("Ended", readonly=True)
    wait_seconds = fields.Integer("Wait (s)", readonly=True)
    talk_seconds = fields.Integer("Talk (s)", readonly=True)
    disposition = fields.Many2One('callcenter.disposition', "Disposition",
        ondelete='RESTRICT')
    notes = fields.Text("Notes")
    recording_url = fields.Char("Recording", readonly=True)
    wrapped_up = fields.Boolean("Wrapped Up", readonly=True)
    activity = fields.Many2One('crm.activity', "History Entry",
        readonly=True, ondelete='SET NULL')
    callback = fields.Many2One('crm.activity', "Callback", readonly=True,
        ondelete='SET NULL')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('call_id_unique', Unique(t, t.company, t.call_id),
                'crm_callcenter.msg_call_id_unique'),
            ]
        cls._sql_indexes.update({
                Index(t, (t.call_id, Index.Equality())),
                Index(t, (t.party, Index.Equality()),
                    (t.created, Index.Range())),
                Index(t, (t.user, Index.Equality()),
                    (t.created, Index.Range())),
                Index(t, (t.queue, Index.Equality()),
                    (t.created, Index.Range())),
                Index(t, (t.created, Index.Range())),
                Index(t, (t.queue, Index.Equality()),
                    where=t.state == 'ringing'),
                })
        cls._order = [('created', 'DESC'), ('id', 'DESC')]
        cls._buttons.update({
                'wrap_up': {
                    'invisible': (Eval('state') != 'ended')
                    | Bool(Eval('wrapped_up')),
                    'depends': ['state', 'wrapped_up'],
                    },
                'create_contact': {
                    'invisible': Bool(Eval('party')),
                    'depends': ['party'],
                    },
                })

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    def get_customer_number(self, name):
        return (self.from_number if self.direction == 'inbound'
            else self.to_number)

    @classmethod
    def get_matches(cls, calls, name):
        "The parties whose phone is the customer's number"
        pool = Pool()
        Party = pool.get('party.party')
        numbers = {c.id: normalised(c.customer_number) for c in calls}
        by_phone = Party._parties_by_contact(
            phones=[n for n in numbers.values() if n])
        return {i: sorted(by_phone.get(n.lower(), ())) if n else []
            for i, n in numbers.items()}

    @classmethod
    @ModelView.button
    def wrap_up(cls, calls):
        "The agent is done with the calls: free for the next one"
        cls.finish_wrap_up(calls)

    @classmethod
    def finish_wrap_up(cls, calls, disposition=None, notes=None,
            callback_at=None):
        """The agent's wrap-up: disposition and notes on the calls and their
        history, the outcome of the call list entries they were for
        (callback_at: when the customer asked to be called again)"""
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        Activity = pool.get('crm.activity')
        Entry = pool.get('callcenter.call_list.entry')
        values = {'wrapped_up': True}
        if disposition:
            values['disposition'] = disposition.id
        if notes is not None:
            values['notes'] = notes
        cls.write(calls, values)
        outcomes = []
        for call in calls:
            if call.activity:
                outcomes.extend(([call.activity], {
                            'outcome': call.outcome_text()}))
        if outcomes:
            Activity.write(*outcomes)
        for call in calls:
            entry = Entry.of_call(call)
            if entry:
                Entry.record_outcome([entry], disposition, notes,
                    callback_at=callback_at, call=call)
        agents = [c.agent for c in calls
            if c.agent and c.agent.status == 'wrap_up'
            and c.agent.current_call == c]
        if agents:
            Agent.set_status(agents, 'available', call=False)

    @classmethod
    def on_state_change(cls, changes):
        """The calls [(call, old state)] changed: the agent's status
        follows, the ringing agent gets the screen pop, an ended call goes
        to the party's history, a missed one asks for a callback"""
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        Activity = pool.get('crm.activity')
        statuses = defaultdict(list)
        pops, history, callbacks, cancelled = [], [], [], []
        for call, old in changes:
            agent = call.agent
            mine = agent and (agent.current_call in {None, call})
            # A late answer turns a missed call into an ended one
            corrected = (old in OVER and call.state == 'ended'
                and old != 'ended')
            if corrected:
                mine = mine and agent.status == 'available'
                if call.callback and call.callback.state == 'planned':
                    cancelled.append(call.callback)
            if call.state == 'ringing' and agent and old is None:
                statuses['ringing', call, None].append(agent)
                pops.append(call)
            elif call.state == 'answered' and mine:
                statuses['on_call', call, None].append(agent)
            elif call.state in OVER and (old not in OVER or corrected):
                if mine and call.state == 'ended':
                    queue = call.queue
                    until = None
                    if queue and not queue.wrap_up_required:
                        until = call.ended + dt.timedelta(
                            seconds=queue.wrap_up_seconds)
                    if queue:
                        statuses['wrap_up', call, until].append(agent)
                    else:
                        statuses['available', call, None].append(agent)
                elif mine:
                    statuses['available', call, None].append(agent)
                if (call.state != 'ended' and call.direction == 'inbound'
                        and not call.callback):
                    callbacks.append(call)
            if call.state in OVER:
                history.append(call)
        for (status, call, until), agents in statuses.items():
            values = {}
            if status == 'wrap_up':
                values = {'wrap_up_until': until,
                    'last_call_end': call.ended}
            elif status == 'available' and call.state in OVER:
                values = {'last_call_end': call.ended}
            Agent.set_status(agents, status, now=call.ended or call.created,
                call=call if status in {'ringing', 'on_call', 'wrap_up'}
                else False, **values)
        if cancelled:
            Activity.cancel(cancelled)
        for call in pops:
            cls.screen_pop(call)
        cls._history(history)
        activities = cls.request_callbacks([(c.queue, c.customer_number,
                    c.party, c.ended, c.agent) for c in callbacks])
        to_write = [x for call, activity in zip(callbacks, activities)
            if activity for x in ([call], {'callback': activity.id})]
        if to_write:
            cls.write(*to_write)

    def screen_pop(self):
        "Tell the ringing agent who calls (sao shows it; so does the console)"
        if not (self.agent and self.user):
            return
        caller = self.party.rec_name if self.party else (
            self.customer_number or '?')
        self.__class__.notify_user([self], 'tryton-phone', gettext(
                'crm_callcenter.msg_screen_pop', caller=caller),
            user=self.user.id)

    @classmethod
    def _history(cls, calls):
        "The calls over as call activities of the party's history"
        pool = Pool()
        Activity = pool.get('crm.activity')
        to_create, to_write = [], []
        for call in calls:
            values = {
                'subject': call.history_subject(),
                'party': call.party.id if call.party else None,
                'start': call.answered or call.created,
                'end': call.ended,
                'outcome': call.outcome_text(),
                }
            if call.activity:
                to_write.extend(([call.activity], values))
            else:
                to_create.append((call, dict(values,
                            type='call',
                            origin=str(call),
                            company=call.company.id,
                            user=(call.user.id if call.user
                                else Transaction().user),
                            state='done')))
        if to_write:
            Activity.write(*to_write)
        if to_create:
            activities = Activity.create([v for _, v in to_create])
            cls.write(*[x for (call, _), activity in zip(
                        to_create, activities)
                    for x in ([call], {'activity': activity.id})])

    def history_subject(self):
        number = self.customer_number or '?'
        key = {
            ('inbound', 'ended'): 'msg_history_inbound',
            ('outbound', 'ended'): 'msg_history_outbound',
            }.get((self.direction, self.state), 'msg_history_missed')
        return gettext(f'crm_callcenter.{key}', number=number,
            state=self.state_string)

    @classmethod
    def request_callback(cls, queue, number, party, now, agent=None):
        """A call activity to call the customer back, for the next free
        agent of the queue (else the agent that rang, else the team's
        leader); None when nobody can take it"""
        activity, = cls.request_callbacks([(queue, number, party, now, agent)])
        return activity

    @classmethod
    def request_callbacks(cls, requests):
        """The callbacks of request_callback for [(queue, number, party,
        now, agent)], made at once: an activity or None for each"""
        pool = Pool()
        Activity = pool.get('crm.activity')
        users, to_create = [], []
        for queue, number, party, now, agent in requests:
            user = None
            if queue:
                free = queue.choose(party, now)
                if free:
                    user = free[0].user
            if not user and agent:
                user = agent.user
            if not user and queue and queue.team:
                user = queue.team.leader
            users.append(user)
            if not user:
                logger.warning("no agent for the callback of %s", number)
                continue
            to_create.append({
                    'type': 'call',
                    'subject': gettext('crm_callcenter.msg_callback_subject',
                        number=number or '?'),
                    'party': party.id if party else None,
                    'company': (queue.company.id if queue
                        else Transaction().context.get('company')),
                    'start': now,
                    'user': user.id,
                    'state': 'planned',
                    'description': number,
                    })
        activities = iter(Activity.create(to_create) if to_create else [])
        return [next(activities) if user else None for user in users]

    def outcome_text(self):
        # The notes stay on the call: they follow the call's rules (own
        # calls and the queues' calls), the history is read by everyone
        return self.disposition.name if self.disposition else None

    @classmethod
    @ModelView.button
    def create_contact(cls, calls):
        "A person with the customer's number, for the calls without party"
        pool = Pool()
        Party = pool.get('party.party')
        for call in calls:
            if call.party:
                continue
            number = call.customer_number
            if not number:
                raise CallCenterError(gettext(
                        'crm_callcenter.msg_call_no_number',
                        call=call.rec_name))
            party = Party.create_contact_person(number, phone=number)
            cls.write([call], {'party': party.id})


def normalised(number):
    """The E.164 form of a number when it is one (as crm_core stores
    phones), else the number as the telephony gave it"""
    if not number:
        return None
    try:
        return e164(number) or number
    except ValueError:
        return number


def seconds(start, end):
    if start and end and end >= start:
        return int((end - start) / dt.timedelta(seconds=1))
    return None
