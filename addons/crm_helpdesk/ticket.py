import datetime as dt
import hashlib
import hmac
import logging
import secrets
from collections import defaultdict
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from sql import Null
from sql.aggregate import Count

from trytond import backend, config
from trytond.i18n import gettext
from trytond.model import (
    ChatMixin, DeactivableMixin, Index, ModelSQL, ModelView, Unique, fields,
    sequence_ordered, tree)
from trytond.pool import Pool
from trytond.pyson import Bool, Eval, If
from trytond.sendmail import send_message_transactional
from trytond.tools import grouped_slice
from trytond.transaction import Transaction
from trytond.url import http_host
from trytond.wizard import Button, StateTransition, StateView, Wizard

from crm_core.stage import TeamStagesMixin

from . import mail
from .exceptions import MergeError, TicketError

logger = logging.getLogger(__name__)

PRIORITIES = [
    ('0', "Low"),
    ('1', "Normal"),
    ('2', "High"),
    ('3', "Urgent"),
    ]
CHANNELS = [
    ('email', "Email"),
    ('web', "Web Form"),
    ('phone', "Phone"),
    ('manual', "Manual"),
    ]
STAGE_KINDS = [
    ('new', "New"),
    ('in_progress', "In Progress"),
    ('waiting', "Waiting on Customer"),
    ('solved', "Solved"),
    ('cancelled', "Cancelled"),
    ]
CLOSED = {'solved', 'cancelled'}
SLA_STATUSES = [
    (None, ""),
    ('on_time', "On Time"),
    ('at_risk', "At Risk"),
    ('breached', "Breached"),
    ('paused', "Paused"),
    ]
# Escalation levels, in order: a level is acted on once
ESCALATION = {None: 0, 'at_risk': 1, 'breached': 2}
# What a change of these fields does to the SLA of a ticket
SLA_FIELDS = {'team', 'type', 'priority', 'party', 'stage', 'first_response'}
RATINGS = [(None, "")] + [(str(i), str(i)) for i in range(1, 6)]


def _now():
    return dt.datetime.now().replace(microsecond=0)


class Type(tree(separator=' / '), DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'helpdesk.type'
    __string__ = "Helpdesk Ticket Type"

    name = fields.Char("Name", required=True, translate=True)
    parent = fields.Many2One(
        'helpdesk.type', "Parent", ondelete='RESTRICT')
    children = fields.One2Many('helpdesk.type', 'parent', "Children")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order.insert(0, ('name', 'ASC'))

    def ancestors_and_self(self):
        "This type, then its parents up to the root"
        type_ = self
        while type_:
            yield type_
            type_ = type_.parent


class Stage(
        TeamStagesMixin, sequence_ordered(), DeactivableMixin, ModelSQL,
        ModelView):
    __name__ = 'helpdesk.stage'
    __string__ = "Helpdesk Stage"

    name = fields.Char("Name", required=True, translate=True)
    kind = fields.Selection(STAGE_KINDS, "Kind", required=True, sort=False,
        help="What the stage means: the SLA clock pauses while the ticket "
        "waits on the customer and stops once solved or cancelled.")
    team = fields.Many2One(
        'crm.team', "Team", ondelete='CASCADE',
        help="Only for the tickets of this team; empty for every team.")

    @classmethod
    def default_kind(cls):
        return 'in_progress'



class Tag(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'helpdesk.tag'
    __string__ = "Helpdesk Tag"

    name = fields.Char("Name", required=True, translate=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints = [
            ('name_unique', Unique(t, t.name),
                'crm_helpdesk.msg_tag_name_unique'),
            ]
        cls._order.insert(0, ('name', 'ASC'))


class TicketTag(ModelSQL):
    __name__ = 'helpdesk.ticket-helpdesk.tag'
    __string__ = "Helpdesk Ticket - Tag"

    ticket = fields.Many2One(
        'helpdesk.ticket', "Ticket", required=True, ondelete='CASCADE')
    tag = fields.Many2One(
        'helpdesk.tag', "Tag", required=True, ondelete='CASCADE')


class Ticket(ChatMixin, ModelSQL, ModelView):
    __name__ = 'helpdesk.ticket'
    __string__ = "Helpdesk Ticket"
    _rec_name = 'number'

    _open = {'readonly': Eval('kind').in_(list(CLOSED))}

    number = fields.Char("Number", readonly=True)
    company = fields.Many2One(
        'company.company', "Company", required=True, states=_open)
    subject = fields.Char("Subject", required=True, states=_open)
    description = fields.Text("Description", states=_open)
    party = fields.Many2One(
        'party.party', "Party", ondelete='RESTRICT', states=_open,
        context={'company': Eval('company', -1)}, depends={'company'},
        help="The customer who asks.")
    contact = fields.Many2One(
        'party.party', "Contact Person", ondelete='RESTRICT', states=_open,
        context={'company': Eval('company', -1)}, depends={'company'})
    email = fields.Char(
        "Email", states=_open,
        help="Where the customer receives the answers and the status link.")
    team = fields.Many2One(
        'crm.team', "Team", ondelete='RESTRICT', states=_open,
        domain=[('company', '=', Eval('company', -1))])
    user = fields.Many2One(
        'res.user', "Assigned To", ondelete='RESTRICT', states=_open)
    type = fields.Many2One(
        'helpdesk.type', "Type", ondelete='RESTRICT', states=_open)
    priority = fields.Selection(
        PRIORITIES, "Priority", required=True, sort=False, states=_open)
    channel = fields.Selection(
        CHANNELS, "Channel", required=True, sort=False, states=_open)
    stage = fields.Many2One(
        'helpdesk.stage', "Stage", required=True, ondelete='RESTRICT',
        domain=[['OR',
                ('team', '=', None),
                ('team', '=', Eval('team', -1)),
                ]])
    kind = fields.Function(
        fields.Selection(STAGE_KINDS, "Stage Kind"),
        'on_change_with_kind', searcher='search_kind')
    tags = fields.Many2Many(
        'helpdesk.ticket-helpdesk.tag', 'ticket', 'tag', "Tags")
    lead = fields.Many2One(
        'crm.lead', "Lead", ondelete='SET NULL', states=_open,
        domain=[If(Bool(Eval('party')),
                ('party', '=', Eval('party', -1)), ())],
        help="The lead or opportunity the request is about.")
    parent = fields.Many2One(
        'helpdesk.ticket', "Parent Ticket", ondelete='SET NULL',
        states=_open)
    children = fields.One2Many('helpdesk.ticket', 'parent', "Sub-Tickets")
    merged_into = fields.Many2One(
        'helpdesk.ticket', "Merged Into", readonly=True, ondelete='SET NULL')
    merged = fields.One2Many(
        'helpdesk.ticket', 'merged_into', "Merged Tickets", readonly=True)
    opened = fields.DateTime("Opened", required=True, readonly=True)
    first_response = fields.DateTime("First Response", readonly=True)
    solved = fields.DateTime("Solved", readonly=True)
    closed = fields.DateTime("Closed", readonly=True)

    sla = fields.Many2One(
        'helpdesk.sla', "SLA Policy", readonly=True, ondelete='SET NULL')
    response_deadline = fields.DateTime("Response Due", readonly=True)
    resolution_deadline = fields.DateTime("Resolution Due", readonly=True)
    sla_status = fields.Selection(
        SLA_STATUSES, "SLA", readonly=True, sort=False)
    sla_paused = fields.TimeDelta(
        "Time Waiting on Customer", readonly=True,
        help="Working time spent waiting on the customer: it does not "
        "count towards the resolution target.")
    paused_since = fields.DateTime("Waiting Since", readonly=True)
    sla_check = fields.DateTime("Next SLA Check", readonly=True)
    sla_escalated = fields.Selection([
            (None, ""),
            ('at_risk', "At Risk"),
            ('breached', "Breached"),
            ], "Escalated", readonly=True, sort=False)

    rating = fields.Selection(RATINGS, "Rating", readonly=True, sort=False)
    rating_comment = fields.Text("Rating Comment", readonly=True)
    token = fields.Char("Token", readonly=True, strip=False)
    activities = fields.One2Many('crm.activity', 'origin', "Activities",
        readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.number, Index.Equality())),
                Index(t, (t.team, Index.Equality()),
                    where=t.closed == Null),
                Index(t, (t.user, Index.Equality()),
                    where=t.closed == Null),
                Index(t, (t.opened, Index.Range(order='DESC')),
                    (t.id, Index.Range(order='DESC')),
                    where=t.closed == Null),
                Index(t, (t.sla_check, Index.Range()),
                    where=t.sla_check != Null),
                Index(t, (t.party, Index.Equality())),
                })
        cls._order = [('opened', 'DESC'), ('id', 'DESC')]
        cls._buttons.update({
                'reply': {
                    'invisible': Eval('kind').in_(['cancelled']),
                    'depends': ['kind'],
                    },
                'solve': {
                    'invisible': Eval('kind').in_(list(CLOSED)),
                    'depends': ['kind'],
                    },
                'reopen': {
                    'invisible': ~Eval('kind').in_(list(CLOSED)),
                    'depends': ['kind'],
                    },
                'merge': {
                    'invisible': Eval('kind').in_(list(CLOSED)),
                    'depends': ['kind'],
                    },
                })

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_priority(cls):
        return '1'

    @classmethod
    def default_channel(cls):
        return 'manual'

    @classmethod
    def default_opened(cls):
        return _now()

    @classmethod
    def default_stage(cls):
        pool = Pool()
        Stage = pool.get('helpdesk.stage')
        stages = Stage.search([('kind', '=', 'new'), ('team', '=', None)],
            limit=1)
        if stages:
            return stages[0].id

    @fields.depends('stage')
    def on_change_with_kind(self, name=None):
        if self.stage:
            return self.stage.kind

    @classmethod
    def search_kind(cls, name, clause):
        _, operator, value = clause
        domain = [('stage.kind', *clause[1:])]
        if (operator == 'not in' and CLOSED <= set(value)) or (
                operator == 'in' and not (CLOSED & set(value))):
            # The same tickets, found through the index of open ones
            domain.append(('closed', '=', None))
        return domain

    @fields.depends('party', 'contact', 'email')
    def on_change_party(self):
        if self.party and not self.email:
            self.email = (self.contact or self.party).email or None

    @fields.depends('contact', 'party', 'email')
    def on_change_contact(self):
        if self.contact:
            email = self.contact.email
            if email:
                self.email = email

    @classmethod
    def view_attributes(cls):
        return super().view_attributes() + [
            ('/tree', 'visual',
                If(Eval('sla_status') == 'breached', 'danger',
                    If(Eval('sla_status') == 'at_risk', 'warning',
                        If(Eval('kind').in_(list(CLOSED)), 'muted', '')))),
            ('/tree/field[@name="sla_status"]', 'visual',
                If(Eval('sla_status') == 'breached', 'danger',
                    If(Eval('sla_status') == 'at_risk', 'warning',
                        If(Eval('sla_status') == 'on_time', 'success', '')))),
            ]

    def get_rec_name(self, name):
        if self.number:
            return f'{self.number}: {self.subject}'
        return self.subject

    @classmethod
    def search_rec_name(cls, name, clause):
        _, operator, value = clause
        bool_op = 'AND' if operator.startswith('!') else 'OR'
        return [bool_op,
            ('number', *clause[1:]),
            ('subject', *clause[1:]),
            ]

    def chat_language(self, audience='internal'):
        party = self.contact or self.party
        if audience == 'public' and party and party.lang:
            return party.lang.code

    # Creation and changes --------------------------------------------------

    @classmethod
    def preprocess_values(cls, mode, values):
        pool = Pool()
        Configuration = pool.get('helpdesk.configuration')
        values = super().preprocess_values(mode, values)
        if mode == 'create':
            if not values.get('number'):
                values['number'] = Configuration(1).get_ticket_sequence(
                    ).get()
            values.setdefault('token', secrets.token_urlsafe(24))
            if values.get('email'):
                values['email'] = values['email'].strip()
        return values

    @classmethod
    def check_modification(cls, mode, tickets, values=None, external=False):
        super().check_modification(
            mode, tickets, values=values, external=external)
        if mode == 'delete':
            for ticket in tickets:
                if ticket.kind not in {'new', 'cancelled'} or ticket.merged:
                    raise TicketError(gettext(
                            'crm_helpdesk.msg_ticket_delete',
                            ticket=ticket.rec_name))

    @classmethod
    def on_modification(cls, mode, tickets, field_names=None):
        super().on_modification(mode, tickets, field_names=field_names)
        if mode == 'create':
            # Assignee and SLA in one write: each write validates again
            cls.update_sla(tickets, extra=cls._assignees(tickets))
            cls.notify_customer(tickets, 'created')
        elif mode == 'write' and field_names & SLA_FIELDS:
            solved = [t for t in tickets if t.kind == 'solved'
                and not t.solved]
            cls.update_sla(tickets,
                now=Transaction().context.get('helpdesk_sla_now'))
            if solved:
                cls.notify_customer(solved, 'solved')

    @classmethod
    def copy(cls, tickets, default=None):
        default = default.copy() if default is not None else {}
        for name in ['number', 'token', 'first_response', 'solved', 'closed',
                'merged_into', 'merged', 'children', 'activities', 'rating',
                'rating_comment', 'sla', 'response_deadline',
                'resolution_deadline', 'sla_status', 'sla_paused',
                'paused_since', 'sla_check', 'sla_escalated']:
            default.setdefault(name)
        default.setdefault('opened', _now())
        default.setdefault('stage', cls.default_stage())
        return super().copy(tickets, default=default)

    # Assignment ------------------------------------------------------------

    @classmethod
    def _assignees(cls, tickets):
        """{ticket: {'user': id}}: a member of their team for the tickets
        without assignee, as the team's assignment says"""
        by_team = defaultdict(list)
        for ticket in tickets:
            if not ticket.user and ticket.team and ticket.kind not in CLOSED:
                by_team[ticket.team].append(ticket)
        assignees = {}
        for team, team_tickets in by_team.items():
            users = team.helpdesk_assignees(len(team_tickets))
            for ticket, user in zip(team_tickets, users):
                if user:
                    assignees[ticket] = {'user': user}
        return assignees

    @classmethod
    def open_counts(cls, users):
        "{user id: number of open tickets assigned to them}"
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        counts = dict.fromkeys(users, 0)
        for sub_users in grouped_slice(users, backend.MAX_QUERY_PARAMS):
            # closed is set with the stage kind: an index of open tickets
            cursor.execute(*table.select(
                    table.user, Count(table.id),
                    where=table.user.in_(list(sub_users))
                    & (table.closed == Null),
                    group_by=[table.user]))
            counts.update(cursor)
        return counts

    # SLA -------------------------------------------------------------------

    @classmethod
    def update_sla(cls, tickets, now=None, extra=None):
        """Choose the SLA policy of each ticket and say where it stands:
        deadlines, status and when to look again. Pauses and resumes the
        resolution clock with the stage. Return the tickets whose status
        reached a new escalation level. extra: {ticket: values} written
        with it."""
        pool = Pool()
        SLA = pool.get('helpdesk.sla')
        now = now or _now()
        policies = SLA.policies()
        to_write = []
        escalate = []
        for ticket in tickets:
            values = ticket._sla_values(policies, now)
            values.update((extra or {}).get(ticket, {}))
            changed = {k: v for k, v in values.items()
                if getattr(ticket, k) != v}
            if changed:
                to_write.extend(([ticket], changed))
        if to_write:
            cls.write(*to_write)
        for ticket in tickets:
            if (ESCALATION.get(ticket.sla_status, 0)
                    > ESCALATION[ticket.sla_escalated]):
                escalate.append(ticket)
        return escalate

    def _sla_values(self, policies, now):
        kind = self.kind
        values = {}
        # The dates of the stage kind
        if kind == 'solved':
            values['solved'] = self.solved or now
        else:
            values['solved'] = None
        values['closed'] = (self.closed or now) if kind in CLOSED else None

        sla = self._find_sla(policies)
        values['sla'] = sla.id if sla else None
        if not sla:
            values.update(response_deadline=None, resolution_deadline=None,
                sla_status=None, sla_check=None, paused_since=None)
            return values
        clock = sla.team.working_clock()
        paused = self.sla_paused or dt.timedelta()
        paused_since = self.paused_since
        if kind == 'waiting':
            paused_since = paused_since or now
        elif paused_since:
            paused += clock.between(paused_since, now)
            paused_since = None
        values['sla_paused'] = paused
        values['paused_since'] = paused_since

        opened = self.opened
        response_due = clock.add(opened, sla.first_response_time)
        response_risk = clock.add(opened, sla.first_response_time
            * (sla.at_risk / 100))
        resolution_due = clock.add(opened, sla.resolution_time + paused)
        resolution_risk = clock.add(opened, sla.resolution_time
            * (sla.at_risk / 100) + paused)
        values['response_deadline'] = response_due
        values['resolution_deadline'] = (
            None if paused_since else resolution_due)

        responded = self.first_response
        end = values['solved'] or values['closed']
        breached = (
            (responded or end or now) > response_due
            or (not paused_since and (end or now) > resolution_due))
        if kind == 'cancelled':
            status = None
        elif breached:
            status = 'breached'
        elif end:
            status = 'on_time'
        elif paused_since:
            status = 'paused'
        elif ((not responded and now >= response_risk)
                or now >= resolution_risk):
            status = 'at_risk'
        else:
            status = 'on_time'
        values['sla_status'] = status

        # The next moment the status would change by itself
        moments = []
        if not end and not paused_since and status != 'breached':
            if not responded:
                moments += [response_risk, response_due]
            moments += [resolution_risk, resolution_due]
        moments = [m for m in moments if m > now]
        values['sla_check'] = min(moments) if moments else None
        return values

    def _find_sla(self, policies):
        "The first policy of the team that fits the ticket"
        if not self.team:
            return None
        types = {t.id for t in self.type.ancestors_and_self()} if self.type \
            else set()
        categories = {c.id for c in self.party.categories} if self.party \
            else set()
        for policy in policies.get(self.team.id, []):
            if policy.type and policy.type.id not in types:
                continue
            if policy.priority and policy.priority != self.priority:
                continue
            if policy.category and policy.category.id not in categories:
                continue
            return policy

    @classmethod
    def check_sla(cls, now=None):
        """Cron: the tickets whose SLA status changes now, found by the
        indexed next check; escalate those that reached a new level"""
        now = now or _now()
        tickets = cls.search([
                ('sla_check', '!=', None),
                ('sla_check', '<=', now),
                ], order=[('sla_check', 'ASC')])
        escalate = []
        for sub_tickets in grouped_slice(tickets, 500):
            escalate += cls.update_sla(cls.browse(sub_tickets), now=now)
        if escalate:
            cls.escalate(escalate, now=now)
        return tickets

    @classmethod
    def escalate(cls, tickets, now=None):
        """Act once per level reached: tell the assignee and the team
        leader; when breached, raise the priority or reassign as the
        policy says. The ticket's conversation keeps a note of it.
        Everything is read first and written at once: a write in the loop
        would make the next ticket read its batch again."""
        pool = Pool()
        User = pool.get('res.user')
        priorities = dict(cls.fields_get(['priority'])['priority'][
                'selection'])
        to_write, notes = [], []
        told = defaultdict(list)
        for ticket in tickets:
            level = ticket.sla_status
            values = {'sla_escalated': level}
            sla = ticket.sla
            actions = []
            if level == 'breached' and sla:
                if sla.raise_priority and ticket.priority < '3':
                    values['priority'] = str(int(ticket.priority) + 1)
                    actions.append(gettext(
                            'crm_helpdesk.msg_escalation_priority',
                            priority=priorities[values['priority']]))
                user = sla.reassign_user_for(ticket)
                if user and user != ticket.user:
                    values['user'] = user.id
                    actions.append(gettext(
                            'crm_helpdesk.msg_escalation_reassign',
                            user=user.rec_name))
            to_write.extend(([ticket], values))
            recipients = {u for u in [ticket.user,
                    ticket.team.leader if ticket.team else None,
                    User(values['user']) if 'user' in values else None]
                if u}
            for user in recipients:
                told[user, level].append(ticket)
            message = gettext(
                'crm_helpdesk.msg_escalation_%s' % level,
                ticket=ticket.rec_name)
            notes.append((ticket, gettext('crm_helpdesk.msg_escalation_note',
                        note=' '.join([message] + actions))))
        # One notification per user and level: a leader is not flooded
        for (user, level), user_tickets in told.items():
            if len(user_tickets) == 1:
                label = gettext('crm_helpdesk.msg_escalation_%s' % level,
                    ticket=user_tickets[0].rec_name)
            else:
                label = gettext(
                    'crm_helpdesk.msg_escalation_%s_count' % level,
                    count=len(user_tickets))
            cls.notify_user(user_tickets, 'tryton-warning', label,
                user=user.id)
        cls.post_notices([(t, text, 'internal') for t, text in notes])
        # A new priority may call for another policy: only those tickets
        # need their SLA again (a write tells the fields of all its records)
        # The tickets of equal values in one UPDATE
        groups = {}
        for records, values in zip(to_write[::2], to_write[1::2]):
            key = tuple(sorted(values.items()))
            groups.setdefault(key, ([], values))[0].extend(records)
        reprioritised, others = [], []
        for records, values in groups.values():
            actions = reprioritised if 'priority' in values else others
            actions.extend((records, values))
        with Transaction().set_context(helpdesk_sla_now=now):
            for actions in [reprioritised, others]:
                if actions:
                    cls.write(*actions)

    @classmethod
    def _channels(cls, tickets):
        "{ticket id: chat channel id}, the missing channels created at once"
        pool = Pool()
        Channel = pool.get('ir.chat.channel')
        resources = {str(t): t.id for t in tickets}
        # Read as strings: a Reference field makes a record of each
        channels = {resources[c['resource']]: c['id']
            for c in Channel.search_read([
                    ('resource', 'in', list(resources)),
                    ], fields_names=['resource'])}
        missing = [r for r, i in resources.items() if i not in channels]
        if missing:
            for channel in Channel.create([{'resource': r} for r in missing]):
                channels[resources[str(channel.resource)]] = channel.id
        return channels

    # Conversation and emails ----------------------------------------------

    def _signature(self, payload):
        "An HMAC of the payload that only this database can make"
        pool = Pool()
        Configuration = pool.get('helpdesk.configuration')
        key = Configuration(1).get_secret().encode() + self.token.encode()
        return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()

    def status_url(self, expires=None):
        """The customer's link to the status page: signed, it expires and
        names the ticket it was made for"""
        pool = Pool()
        Configuration = pool.get('helpdesk.configuration')
        if expires is None:
            days = Configuration(1).link_validity or 30
            expires = int((dt.datetime.utcnow()
                    + dt.timedelta(days=days)).timestamp())
        signature = self._signature(f'status:{self.id}:{expires}')[:32]
        database = Transaction().database.name
        return (f'{http_host()}/{database}/helpdesk/status/'
            f'{self.id}/{expires}/{signature}')

    @classmethod
    def from_link(cls, ticket_id, expires, signature, now=None):
        """The ticket of a status link, or None when the link is altered or
        expired"""
        now = now or dt.datetime.utcnow()
        tickets = cls.search([('id', '=', ticket_id)])
        if not tickets:
            return None
        ticket, = tickets
        expected = ticket._signature(f'status:{ticket.id}:{expires}')[:32]
        if not (isinstance(signature, str) and signature.isascii()
                and hmac.compare_digest(expected, signature)):
            return None
        if expires < now.timestamp():
            return None
        return ticket

    def reply_token(self):
        "The token of the reply-to address, checked when a reply comes back"
        return f'{self.id}.{self._signature(f"reply:{self.id}")[:12]}'

    @classmethod
    def from_reply_token(cls, token):
        ticket_id, _, signature = token.partition('.')
        try:
            ticket_id = int(ticket_id)
        except ValueError:
            return None
        tickets = cls.search([('id', '=', ticket_id)])
        if tickets and signature.isascii() and hmac.compare_digest(
                tickets[0]._signature(f'reply:{ticket_id}')[:12], signature):
            return tickets[0]

    def _placeholders(self):
        return {
            'number': self.number or '',
            'subject': self.subject or '',
            'party': self.party.rec_name if self.party else '',
            'contact': (self.contact or self.party).rec_name
            if (self.contact or self.party) else '',
            'agent': self.user.rec_name if self.user else '',
            'team': self.team.rec_name if self.team else '',
            'status_url': self.status_url() if self.id else '',
            }

    def render(self, template):
        "The text of a canned response for this ticket"
        return template.render(self._placeholders())

    @classmethod
    def notify_customer(cls, tickets, event):
        """Tell each customer that their ticket was created or solved, with
        the template of the configuration, as a public message"""
        pool = Pool()
        Configuration = pool.get('helpdesk.configuration')
        config_ = Configuration(1)
        template = getattr(config_, f'template_{event}', None)
        if not template or Transaction().context.get('helpdesk_silent'):
            return
        cls.post_notices([(t, t.render(template), 'public') for t in tickets
                if t.email and t.channel != 'phone'])

    def post_answer(self, content, audience='public', system=False):
        """Post a message of the current user on the ticket: a public one
        is emailed to the customer and counts as the first response"""
        pool = Pool()
        Channel = pool.get('ir.chat.channel')
        if system:
            message, = self.post_notices([(self, content, audience)])
            return message
        with Transaction().set_context(_notify=False):
            return Channel.post(self, content, audience=audience)

    @classmethod
    def post_notices(cls, notices):
        """Notices of the system [(ticket, text, audience)]: an
        acknowledgement, a solved notice, an escalation or a merge. Nobody
        to tell live; a public one is emailed and goes to the history."""
        pool = Pool()
        Message = pool.get('ir.chat.message')
        if not notices:
            return []
        channels = cls._channels([t for t, _, _ in notices])
        user = Transaction().user
        vlist = [{
                'channel': channels[t.id],
                'user': user,
                'content': text,
                'audience': audience,
                } for t, text, audience in notices]
        # Sent first so that their Message-IDs are saved with them
        emails = [(values, t, Message(**values))
            for (t, _, _), values in zip(notices, vlist)
            if values['audience'] == 'public' and t.email]
        with Transaction().set_context(helpdesk_system=True):
            cls._send([(t, m) for _, t, m in emails])
        for values, _, message in emails:
            values['reference'] = message.reference
        messages = Message.create(vlist)
        cls._history([(t, m) for (t, _, _), m in zip(notices, messages)
                if m.audience == 'public'], inbound=False)
        return messages

    def add_customer_message(self, email, content, files=(), reference=None):
        """The customer's message in the conversation, with its files
        [(name, data)], which the customer sees on the status page; it
        reopens a solved ticket"""
        message, = self.add_customer_messages(
            [(self, email, content, files, reference)])
        return message

    @classmethod
    def add_customer_messages(cls, entries):
        """Messages of customers [(ticket, email, content, files,
        reference)] at once, as add_customer_message says"""
        pool = Pool()
        Message = pool.get('ir.chat.message')
        Attachment = pool.get('ir.attachment')
        Stage = pool.get('helpdesk.stage')
        if not entries:
            return []
        tickets = [e[0] for e in entries]
        # The customer says it is not solved after all
        solved = list({t for t in tickets if t.kind == 'solved'})
        if solved:
            cls._to_kind(solved, 'in_progress')
        # The customer answered: the ticket is back with the team
        waiting = defaultdict(list)
        for ticket in {t for t in tickets if t.kind == 'waiting'}:
            waiting[ticket.team].append(ticket)
        to_write = []
        for team, team_tickets in waiting.items():
            stages = Stage.for_team(team, 'in_progress')
            if stages:
                to_write.extend((team_tickets, {'stage': stages[0].id}))
        if to_write:
            cls.write(*to_write)
        channels = cls._channels(tickets)
        messages = Message.create([{
                    'channel': channels[t.id],
                    'email': email,
                    'audience': 'public',
                    'content': content,
                    'reference': reference,
                    } for t, email, content, _, reference in entries])
        files = [{
                'resource': str(t),
                'name': name,
                'type': 'data',
                'data': data,
                'helpdesk_public': True,
                } for t, _, _, files, _ in entries for name, data in files]
        if files:
            Attachment.create(files)
        cls._history(list(zip(tickets, messages)), inbound=True)
        return messages

    def on_message(self, message, system=False):
        """A message was added to the conversation: an email to the
        customer for an answer, the first response date, an activity in
        the party's history"""
        if message.audience != 'public':
            return
        inbound = bool(message.email and not message.user)
        if not inbound:
            if self.email and not system:
                self._send([(self, message)])
            if not system and not self.first_response:
                self.__class__.write([self], {'first_response': _now()})
        self._history([(self, message)], inbound=inbound)

    @classmethod
    def _history(cls, pairs, inbound):
        """The public messages [(ticket, message)] as email activities of
        the party's history, at once"""
        pool = Pool()
        Activity = pool.get('crm.activity')
        User = pool.get('res.user')
        outcome = gettext('crm_helpdesk.msg_activity_in' if inbound
            else 'crm_helpdesk.msg_activity_out')
        now = _now()
        user = Transaction().user
        vlist = []
        for ticket, message in pairs:
            if not ticket.party:
                continue
            vlist.append({
                    'type': 'email',
                    'subject': ticket.rec_name,
                    'description': message.content,
                    'party': ticket.party.id,
                    'origin': str(ticket),
                    'start': now,
                    'company': ticket.company.id,
                    # The customer's message is in the agent's history
                    'user': (message.user or ticket.user
                        or (ticket.team.leader if ticket.team else None)
                        or User(user)).id,
                    'state': 'done',
                    'outcome': outcome,
                    })
        if vlist:
            Activity.create(vlist)

    @classmethod
    def _send(cls, pairs):
        """Email public messages [(ticket, message)] to the customers,
        threaded with the others; the Message-ID of each becomes the
        reference of its message"""
        pool = Pool()
        Configuration = pool.get('helpdesk.configuration')
        Message = pool.get('ir.chat.message')
        if not pairs:
            return
        config_ = Configuration(1)
        sender = config_.support_address or config.get('email', 'from')
        if not sender or '@' not in sender:
            logger.warning("tickets %s: no support address to answer from",
                ', '.join(t.number for t, _ in pairs))
            return
        domain = sender.rpartition('@')[2] or None
        system = Transaction().context.get('helpdesk_system')
        # The references of each conversation, oldest first
        references = defaultdict(list)
        for other in Message.search([
                    ('channel', 'in', list({m.channel.id for _, m in pairs})),
                    ('reference', '!=', None),
                    ], order=[('id', 'ASC')]):
            references[other.channel.id].append((other.id, other.reference))
        to_write = []
        for ticket, message in pairs:
            msg = EmailMessage()
            msg['From'] = formataddr((config_.support_name or '', sender))
            msg['To'] = ticket.email
            msg['Reply-To'] = mail.reply_address(
                sender, ticket.reply_token())
            msg['Subject'] = f'[{ticket.number}] {ticket.subject}'
            msg['Auto-Submitted'] = 'auto-replied' if system else 'no'
            thread = [r for i, r in references[message.channel.id]
                if i != message.id]
            if thread:
                msg['In-Reply-To'] = f'<{thread[-1]}>'
                msg['References'] = ' '.join(f'<{r}>' for r in thread[-10:])
            message_id = make_msgid(domain=domain)
            msg['Message-ID'] = message_id
            msg.set_content(message.content + '\n\n-- \n' + gettext(
                    'crm_helpdesk.msg_email_footer', url=ticket.status_url()))
            send_message_transactional(msg)
            if message.id is None:
                message.reference = message_id.strip('<>')
            else:
                to_write.extend(([message], {
                            'reference': message_id.strip('<>')}))
        if to_write:
            Message.write(*to_write)

    def from_customer(self, address):
        "Whether the address is the ticket's customer's"
        address = (address or '').lower()
        if self.email and self.email.lower() == address:
            return True
        for party in filter(None, [self.party, self.contact]):
            for mechanism in party.contact_mechanisms:
                if (mechanism.type == 'email'
                        and (mechanism.value or '').lower() == address):
                    return True
        return False

    # Buttons ---------------------------------------------------------------

    @classmethod
    @ModelView.button_action('crm_helpdesk.wizard_ticket_reply')
    def reply(cls, tickets):
        pass

    @classmethod
    @ModelView.button
    def solve(cls, tickets):
        cls._to_kind(tickets, 'solved')

    @classmethod
    @ModelView.button
    def reopen(cls, tickets):
        cls._to_kind(tickets, 'in_progress')

    @classmethod
    @ModelView.button_action('crm_helpdesk.wizard_ticket_merge')
    def merge(cls, tickets):
        pass

    @classmethod
    def _to_kind(cls, tickets, kind):
        pool = Pool()
        Stage = pool.get('helpdesk.stage')
        to_write = []
        for ticket in tickets:
            stages = Stage.for_team(ticket.team, kind)
            if not stages:
                raise TicketError(gettext(
                        'crm_helpdesk.msg_ticket_no_stage',
                        kind=dict(STAGE_KINDS)[kind]))
            to_write.extend(([ticket], {'stage': stages[0].id}))
        if to_write:
            cls.write(*to_write)

    def merge_into(self, target):
        """Merge this duplicate into target: its messages and attachments
        move over, it is cancelled and keeps a link to target"""
        pool = Pool()
        Channel = pool.get('ir.chat.channel')
        Message = pool.get('ir.chat.message')
        Attachment = pool.get('ir.attachment')
        Activity = pool.get('crm.activity')
        if target == self or target.merged_into:
            raise MergeError(gettext(
                    'crm_helpdesk.msg_ticket_merge_target',
                    ticket=target.rec_name))
        channels = Channel.search([('resource', '=', str(self))])
        if channels:
            target_channel = Channel._get_channel(target)
            Message.write(Message.search([('channel', 'in', channels)]),
                {'channel': target_channel.id})
        attachments = Attachment.search([('resource', '=', str(self))])
        if attachments:
            Attachment.write(attachments, {'resource': str(target)})
        activities = Activity.search([('origin', '=', str(self))])
        if activities:
            Activity.write(activities, {'origin': str(target)})
        cancelled = Pool().get('helpdesk.stage').for_team(
            self.team, 'cancelled')
        values = {'merged_into': target.id}
        if cancelled:
            values['stage'] = cancelled[0].id
        with Transaction().set_context(helpdesk_silent=True):
            self.__class__.write([self], values)
        target.post_answer(gettext('crm_helpdesk.msg_ticket_merged',
                ticket=self.rec_name), audience='internal', system=True)

    # Email to ticket -------------------------------------------------------

    @classmethod
    def from_inbound_email(cls, email_, rule):
        """Action of an inbound email rule: checks the email and leaves it
        pending for process_inbound_emails"""
        from .inbound_email import receive
        return receive(email_, rule)

    @classmethod
    def process_inbound_emails(cls, drain=False):
        """Queue task (a batch): the pending inbound emails become tickets
        or replies; all of them with drain"""
        from .inbound_email import BATCH, process
        Email = Pool().get('inbound.email')
        while True:
            emails = Email.claim_helpdesk_pending(BATCH)
            process(emails)
            if not drain or len(emails) < BATCH:
                break

    @classmethod
    def drain_inbound_emails(cls):
        "Cron: what no queue task took (a worker stopped, say)"
        cls.process_inbound_emails(drain=True)


class ReplyStart(ModelView):
    __name__ = 'helpdesk.ticket.reply.start'
    __string__ = "Reply to Ticket"

    ticket = fields.Many2One('helpdesk.ticket', "Ticket", readonly=True)
    template = fields.Many2One(
        'helpdesk.template', "Canned Response",
        domain=[['OR',
                ('team', '=', None),
                ('team', '=', Eval('team', -1)),
                ]])
    team = fields.Many2One('crm.team', "Team", readonly=True)
    audience = fields.Selection([
            ('public', "Answer to the customer"),
            ('internal', "Internal note"),
            ], "Audience", required=True)
    content = fields.Text("Message", required=True)
    then = fields.Selection([
            (None, "Keep the stage"),
            ('waiting', "Wait on the customer"),
            ('solved', "Mark solved"),
            ], "Then", sort=False)

    @fields.depends('template', 'ticket', 'content')
    def on_change_template(self):
        if self.template and self.ticket:
            text = self.ticket.render(self.template)
            self.content = (
                f'{self.content.rstrip()}\n\n{text}' if self.content
                else text)


class Reply(Wizard):
    __name__ = 'helpdesk.ticket.reply'
    start = StateView('helpdesk.ticket.reply.start',
        'crm_helpdesk.ticket_reply_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Send", 'send', 'tryton-ok', default=True),
            ])
    send = StateTransition()

    def default_start(self, fields):
        return {
            'ticket': self.record.id,
            'team': self.record.team.id if self.record.team else None,
            'audience': 'public',
            }

    def transition_send(self):
        ticket = self.record
        ticket.post_answer(self.start.content, audience=self.start.audience)
        if self.start.then:
            ticket.__class__._to_kind([ticket], self.start.then)
        return 'end'


class MergeStart(ModelView):
    __name__ = 'helpdesk.ticket.merge.start'
    __string__ = "Merge Tickets"

    target = fields.Many2One(
        'helpdesk.ticket', "Keep", required=True,
        domain=[
            ('id', 'in', Eval('tickets', [])),
            ],
        help="The ticket that stays; the others are merged into it.")
    tickets = fields.Many2Many(
        'helpdesk.ticket', None, None, "Tickets", readonly=True)


class Merge(Wizard):
    __name__ = 'helpdesk.ticket.merge'
    start = StateView('helpdesk.ticket.merge.start',
        'crm_helpdesk.ticket_merge_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Merge", 'merge', 'tryton-ok', default=True),
            ])
    merge = StateTransition()

    def default_start(self, fields):
        tickets = list(self.records)
        if len(tickets) < 2:
            raise MergeError(gettext('crm_helpdesk.msg_ticket_merge_two'))
        # The oldest one stays by default: replies refer to it
        oldest = min(tickets, key=lambda t: (t.opened, t.id))
        return {
            'target': oldest.id,
            'tickets': [t.id for t in tickets],
            }

    def transition_merge(self):
        target = self.start.target
        for ticket in self.records:
            if ticket != target:
                ticket.merge_into(target)
        return 'end'
