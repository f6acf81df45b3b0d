"""Outbound call lists: parties to call (from a selection of parties, or
a segment with crm_marketing), worked by the agents of a queue from their
console: each entry is tried until a call reaches its goal, with a
limit of attempts, retries after a delay and callbacks on a date the
customer asked for (a planned call in the agent's calendar)."""
import datetime as dt

from sql import Null

from trytond.i18n import gettext
from trytond.model import (
    Index, ModelSQL, ModelView, Workflow, fields, sequence_ordered)
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.transaction import Transaction
from trytond.wizard import Button, StateTransition, StateView, Wizard

from .call import normalised
from .exceptions import CallListWarning

PHONE_TYPES = ['mobile', 'phone']


def _now():
    return dt.datetime.now()


class CallList(Workflow, ModelSQL, ModelView):
    __name__ = 'callcenter.call_list'
    __string__ = "Call List"

    name = fields.Char("Name", required=True)
    company = fields.Many2One('company.company', "Company", required=True)
    queue = fields.Many2One('callcenter.queue', "Queue",
        ondelete='RESTRICT',
        domain=[('company', '=', Eval('company', -1))],
        help="Its agents work the list; empty: every agent.")
    max_attempts = fields.Integer("Attempts", required=True,
        domain=[('max_attempts', '>', 0)],
        help="How many calls are tried before an entry fails.")
    retry_minutes = fields.Integer("Retry After", required=True,
        domain=[('retry_minutes', '>=', 0)],
        help="Minutes before a number that did not answer is called again.")
    entries = fields.One2Many('callcenter.call_list.entry', 'call_list',
        "Entries")
    state = fields.Selection([
            ('draft', "Draft"),
            ('running', "Running"),
            ('done', "Done"),
            ], "State", required=True, readonly=True, sort=False)
    progress = fields.Function(fields.Char("Progress"), 'get_progress')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._transitions |= {
            ('draft', 'running'), ('running', 'draft'),
            ('running', 'done'), ('done', 'running'),
            }
        cls._buttons.update({
                'run': {
                    'invisible': Eval('state') == 'running',
                    'depends': ['state'],
                    },
                'draft': {
                    'invisible': Eval('state') != 'running',
                    'depends': ['state'],
                    },
                'done': {
                    'invisible': Eval('state') != 'running',
                    'depends': ['state'],
                    },
                })
        cls._order = [('id', 'DESC')]

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_state(cls):
        return 'draft'

    @classmethod
    def default_max_attempts(cls):
        return 3

    @classmethod
    def default_retry_minutes(cls):
        return 120

    @classmethod
    def get_progress(cls, lists, name):
        progress = {}
        for call_list in lists:
            over = sum(1 for e in call_list.entries
                if e.state in {'done', 'failed'})
            progress[call_list.id] = f'{over}/{len(call_list.entries)}'
        return progress

    @classmethod
    @ModelView.button
    @Workflow.transition('running')
    def run(cls, lists):
        pass

    @classmethod
    @ModelView.button
    @Workflow.transition('draft')
    def draft(cls, lists):
        pass

    @classmethod
    @ModelView.button
    @Workflow.transition('done')
    def done(cls, lists):
        pass

    @classmethod
    def add_parties(cls, call_list, parties):
        """Entries for the parties with a phone not on the list yet; return
        the parties without phone"""
        pool = Pool()
        Entry = pool.get('callcenter.call_list.entry')
        listed = {e.party for e in call_list.entries}
        vlist, without = [], []
        for party in parties:
            if party in listed:
                continue
            number = phone_of(party)
            if not number:
                without.append(party)
                continue
            vlist.append({
                    'call_list': call_list.id,
                    'party': party.id,
                    'number': number,
                    })
        Entry.create(vlist)
        return without

    @classmethod
    def next_entry(cls, user_id=None, now=None):
        """The next entry due for the user (an agent of the list's queue),
        taken for them: in progress, one attempt more. None when nothing
        is due."""
        pool = Pool()
        Entry = pool.get('callcenter.call_list.entry')
        Member = pool.get('callcenter.queue.member')
        transaction = Transaction()
        user_id = user_id or transaction.user
        now = now or _now()
        entry = Entry.__table__()
        call_list = cls.__table__()
        queues = Member.queues_of_user(user_id)
        queue_where = call_list.queue == Null
        if queues:
            queue_where |= call_list.queue.in_(queues)
        # The entries only are locked (a list's row would hold back the
        # other agents)
        lists = call_list.select(call_list.id,
            where=(call_list.state == 'running') & queue_where)
        query = entry.select(entry.id,
            where=entry.call_list.in_(lists)
            & (entry.state == 'pending')
            & ((entry.next_attempt == Null) | (entry.next_attempt <= now))
            & ((entry.user == Null) | (entry.user == user_id)),
            order_by=[entry.next_attempt.nulls_first, entry.sequence.asc,
                entry.id.asc],
            limit=1)
        if transaction.database.has_select_for():
            For = transaction.database.get_select_for_skip_locked()
            query.for_ = For('UPDATE')
        cursor = transaction.connection.cursor()
        cursor.execute(*query)
        row = cursor.fetchone()
        if not row:
            return None
        record = Entry(row[0])
        Entry.write([record], {
                'state': 'in_progress',
                'user': user_id,
                'attempts': record.attempts + 1,
                'last_attempt': now,
                })
        return record


class Entry(sequence_ordered(), ModelSQL, ModelView):
    __name__ = 'callcenter.call_list.entry'
    __string__ = "Call List Entry"

    call_list = fields.Many2One('callcenter.call_list', "Call List",
        required=True, ondelete='CASCADE')
    party = fields.Many2One('party.party', "Party", required=True,
        ondelete='CASCADE')
    number = fields.Char("Number", required=True)
    state = fields.Selection([
            ('pending', "To Call"),
            ('in_progress', "Calling"),
            ('done', "Done"),
            ('failed', "Failed"),
            ], "State", required=True, readonly=True, sort=False)
    attempts = fields.Integer("Attempts", required=True, readonly=True)
    last_attempt = fields.DateTime("Last Attempt", readonly=True)
    next_attempt = fields.DateTime("Next Attempt",
        help="Not before: a retry, or the callback the customer asked for.")
    user = fields.Many2One('res.user', "Agent", ondelete='SET NULL')
    disposition = fields.Many2One('callcenter.disposition', "Disposition",
        readonly=True, ondelete='RESTRICT')
    notes = fields.Text("Notes")
    last_call = fields.Many2One('callcenter.call', "Last Call",
        readonly=True, ondelete='SET NULL')
    callback = fields.Many2One('crm.activity', "Callback", readonly=True,
        ondelete='SET NULL')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('call_list')
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.call_list, Index.Equality()),
                    (t.next_attempt, Index.Range(nulls_first=True)),
                    where=t.state == 'pending'),
                Index(t, (t.user, Index.Equality()),
                    where=t.state == 'in_progress'),
                })

    @classmethod
    def default_state(cls):
        return 'pending'

    @classmethod
    def default_attempts(cls):
        return 0

    @classmethod
    def record_outcome(cls, entries, disposition=None, notes=None,
            callback_at=None, call=None, now=None):
        """What the attempt gave: done when the disposition is a success,
        a callback on the date the customer asked (planned in the agent's
        calendar), else tried again after the list's delay until its
        attempts are used up"""
        pool = Pool()
        Activity = pool.get('crm.activity')
        now = now or _now()
        to_write = []
        for entry in entries:
            values = {
                'disposition': disposition.id if disposition else None,
                'notes': notes,
                'last_call': call.id if call else entry.last_call,
                }
            if callback_at:
                activity, = Activity.create([{
                            'type': 'call',
                            'subject': gettext(
                                'crm_callcenter.msg_call_list_callback',
                                list=entry.call_list.rec_name,
                                party=entry.party.rec_name),
                            'party': entry.party.id,
                            'company': entry.call_list.company.id,
                            'start': callback_at,
                            'user': (entry.user or pool.get('res.user')(
                                    Transaction().user)).id,
                            'state': 'planned',
                            'origin': str(entry.last_call or call)
                            if (entry.last_call or call) else None,
                            'description': entry.number,
                            }])
                values.update(state='pending', next_attempt=callback_at,
                    callback=activity.id)
            elif disposition and disposition.success:
                values.update(state='done', next_attempt=None)
            elif entry.attempts >= entry.call_list.max_attempts:
                values.update(state='failed', next_attempt=None)
            else:
                values.update(state='pending', next_attempt=now
                    + dt.timedelta(minutes=entry.call_list.retry_minutes))
            to_write.extend(([entry], values))
        if to_write:
            cls.write(*to_write)

    @classmethod
    def of_call(cls, call):
        "The entry in progress an outbound call of its agent is for"
        if call.direction != 'outbound' or not call.user:
            return None
        number = normalised(call.to_number)
        for entry in cls.search([
                    ('state', '=', 'in_progress'),
                    ('user', '=', call.user.id),
                    ]):
            if normalised(entry.number) == number:
                return entry


class AddStart(ModelView):
    __name__ = 'callcenter.call_list.add.start'
    __string__ = "Add to Call List"

    call_list = fields.Many2One('callcenter.call_list', "Call List",
        required=True, domain=[('state', '!=', 'done')])


class Add(Wizard):
    "Add the selected parties to a call list"
    __name__ = 'callcenter.call_list.add'

    start = StateView('callcenter.call_list.add.start',
        'crm_callcenter.call_list_add_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Add", 'add', 'tryton-ok', default=True),
            ])
    add = StateTransition()

    def transition_add(self):
        pool = Pool()
        CallList = pool.get('callcenter.call_list')
        Warning = pool.get('res.user.warning')
        without = [p for p in self.records if not phone_of(p)]
        if without:
            key = Warning.format('callcenter_call_list_no_phone', without)
            if Warning.check(key):
                raise CallListWarning(key, gettext(
                        'crm_callcenter.msg_call_list_no_phone',
                        parties=', '.join(
                            p.rec_name for p in without[:10])))
        CallList.add_parties(self.start.call_list, self.records)
        return 'end'


def phone_of(party):
    "The number to call a party on: a mobile first, else a phone"
    phones = sorted((m for m in party.contact_mechanisms
            if m.type in PHONE_TYPES and m.active),
        key=lambda m: PHONE_TYPES.index(m.type))
    if phones:
        return phones[0].value_compact or phones[0].value
