"""Agents of the call center: who answers which extension, with which
skills, in which status (the ACD routes by it), with a log of every
status for occupancy reports."""
import datetime as dt

from sql import Null
from sql.functions import CurrentTimestamp

from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, Index, ModelSQL, ModelView, Unique, fields)
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.transaction import Transaction

from .exceptions import AgentValidationError

STATUSES = [
    ('available', "Available"),
    ('ringing', "Ringing"),
    ('on_call', "On Call"),
    ('wrap_up', "Wrap-Up"),
    ('paused', "Paused"),
    ('offline', "Offline"),
    ]
# The statuses an agent chooses; the others follow the calls
CHOSEN = {'available', 'paused', 'offline'}
# How long an agent the ACD chose waits for the telephony's ringing event
RINGING_TIMEOUT = dt.timedelta(seconds=60)


def _now():
    return dt.datetime.now()


class Skill(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'callcenter.skill'
    __string__ = "Call Center Skill"

    name = fields.Char("Name", required=True, translate=True,
        help="A language, a product or a kind of request.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order.insert(0, ('name', 'ASC'))


class Agent(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'callcenter.agent'
    __string__ = "Call Center Agent"
    _rec_name = 'extension'

    company = fields.Many2One('company.company', "Company", required=True)
    user = fields.Many2One(
        'res.user', "User", required=True, ondelete='CASCADE')
    extension = fields.Char("Extension", required=True, strip=True,
        help="The SIP user or extension of the agent's phone.")
    skills = fields.One2Many('callcenter.agent-callcenter.skill', 'agent',
        "Skills")
    status = fields.Selection(STATUSES, "Status", required=True,
        readonly=True, sort=False)
    pause_reason = fields.Char("Pause Reason", readonly=True,
        states={'invisible': Eval('status') != 'paused'})
    status_since = fields.DateTime("Status Since", readonly=True)
    wrap_up_until = fields.DateTime("Wrap-Up Until", readonly=True,
        help="Empty while the wrap-up form is due.")
    last_call_end = fields.DateTime("Last Call Ended", readonly=True)
    phone_control = fields.Char("Phone Control",
        help="host:port of the ctrl_tcp interface of the agent's baresip "
        "phone, for click-to-dial.")
    current_call = fields.Many2One('callcenter.call', "Current Call",
        readonly=True, ondelete='SET NULL')
    queues = fields.Many2Many('callcenter.queue.member', 'agent', 'queue',
        "Queues", readonly=True)
    status_log = fields.One2Many('callcenter.agent.status', 'agent',
        "Status Log", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('extension_unique', Unique(t, t.company, t.extension),
                'crm_callcenter.msg_agent_extension_unique'),
            ('user_unique', Unique(t, t.user),
                'crm_callcenter.msg_agent_user_unique'),
            ]
        cls._sql_indexes.add(Index(t, (t.extension, Index.Equality())))
        cls._order = [('extension', 'ASC'), ('id', 'ASC')]
        cls._buttons.update({
                'go_available': {
                    'invisible': Eval('status') == 'available',
                    'depends': ['status'],
                    },
                'go_offline': {
                    'invisible': Eval('status') == 'offline',
                    'depends': ['status'],
                    },
                })

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_status(cls):
        return 'offline'

    def get_rec_name(self, name):
        return f'{self.extension} {self.user.rec_name}'

    @classmethod
    def search_rec_name(cls, name, clause):
        _, operator, operand, *extra = clause
        bool_op = 'AND' if operator.startswith('!') or operator.startswith(
            'not ') else 'OR'
        return [bool_op,
            ('extension', operator, operand, *extra),
            ('user.rec_name', operator, operand, *extra),
            ]

    @classmethod
    def validate_fields(cls, agents, field_names):
        super().validate_fields(agents, field_names)
        if field_names is None or 'extension' in field_names:
            for agent in agents:
                extension = agent.extension or ''
                if (not extension or len(extension) > 64
                        or any(c.isspace() or c in '@:;<>"' for c in
                            extension)):
                    raise AgentValidationError(gettext(
                            'crm_callcenter.msg_agent_extension_invalid',
                            extension=extension))

    @classmethod
    def on_modification(cls, mode, agents, field_names=None):
        super().on_modification(mode, agents, field_names=field_names)
        if mode == 'create':
            # The log starts with the first status
            Pool().get('callcenter.agent.status').create([{
                        'agent': a.id,
                        'status': a.status,
                        'start': a.status_since or _now(),
                        } for a in agents])

    @classmethod
    @ModelView.button
    def go_available(cls, agents):
        cls.set_status(agents, 'available')

    @classmethod
    @ModelView.button
    def go_offline(cls, agents):
        cls.set_status(agents, 'offline')

    @classmethod
    def pause(cls, agents, reason):
        cls.set_status(agents, 'paused', reason=reason)

    @classmethod
    def set_status(cls, agents, status, reason=None, now=None, call=None,
            **values):
        """Put the agents in a status: their log gets a line (the open one
        is closed); values are more fields to write (wrap_up_until...)"""
        pool = Pool()
        Log = pool.get('callcenter.agent.status')
        now = now or _now()
        if call is not None:
            # Already in the status (the router made them ring): the call
            # is theirs all the same, the console shows its caller
            current = call.id if call else None
            moved = [a for a in agents
                if a.status == status and a.pause_reason == reason
                and (a.current_call.id if a.current_call else None)
                != current]
            if moved:
                cls.write(moved, {'current_call': current})
        agents = [a for a in agents
            if a.status != status or a.pause_reason != reason]
        if not agents:
            return
        log = Log.__table__()
        cursor = Transaction().connection.cursor()
        # Stamped as the ORM would: reports count statuses written since
        # their summaries' refresh from the records
        cursor.execute(*log.update(
                [log.end, log.write_date, log.write_uid],
                [now, CurrentTimestamp(), Transaction().user],
                where=log.agent.in_([a.id for a in agents])
                & (log.end == Null)))
        Log.create([{
                    'agent': a.id,
                    'status': status,
                    'reason': reason,
                    'start': now,
                    } for a in agents])
        values = {
            'status': status,
            'pause_reason': reason if status == 'paused' else None,
            'status_since': now,
            **values,
            }
        if call is not None:
            values['current_call'] = call.id if call else None
        cls.write(agents, values)

    @classmethod
    def by_extension(cls, extensions, company=None):
        "{extension: agent} of the active agents"
        domain = [('extension', 'in', list(extensions))]
        if company:
            domain.append(('company', '=', company))
        return {a.extension: a for a in cls.search(domain)}

    @classmethod
    def dial(cls, number):
        """Make the current user's phone call number through the connector
        of the configuration: False when there is no connector or the user
        is no agent (the caller falls back to a tel: link)"""
        pool = Pool()
        Configuration = pool.get('callcenter.configuration')
        connector = Configuration(1).get_connector()
        agents = cls.search([('user', '=', Transaction().user)], limit=1)
        if not connector or not agents:
            return False
        connector.originate(agents[0], number)
        return True

    def free(self, now=None):
        "Whether the agent can take a call now"
        now = now or _now()
        if self.status == 'available':
            return True
        if (self.status == 'ringing' and not self.current_call
                and self.status_since
                and self.status_since + RINGING_TIMEOUT <= now):
            # Routed to, but the telephony never said the phone rang
            return True
        return (self.status == 'wrap_up' and self.wrap_up_until is not None
            and self.wrap_up_until <= now)

    @classmethod
    def end_wrap_ups(cls, now=None):
        "Cron: the agents whose wrap-up time is over are available"
        now = now or _now()
        agents = cls.search([
                ('status', '=', 'wrap_up'),
                ('wrap_up_until', '<=', now),
                ])
        cls.set_status(agents, 'available', now=now, call=False)


class AgentSkill(ModelSQL, ModelView):
    __name__ = 'callcenter.agent-callcenter.skill'
    __string__ = "Agent Skill"

    agent = fields.Many2One(
        'callcenter.agent', "Agent", required=True, ondelete='CASCADE')
    skill = fields.Many2One(
        'callcenter.skill', "Skill", required=True, ondelete='CASCADE')
    level = fields.Integer("Level", required=True,
        domain=[('level', '>=', 1), ('level', '<=', 5)],
        help="From 1 (basic) to 5 (expert): skills-based queues prefer "
        "the higher level.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('agent')
        t = cls.__table__()
        cls._sql_constraints += [
            ('agent_skill_unique', Unique(t, t.agent, t.skill),
                'crm_callcenter.msg_agent_skill_unique'),
            ]

    @classmethod
    def default_level(cls):
        return 3


class AgentStatus(ModelSQL, ModelView):
    __name__ = 'callcenter.agent.status'
    __string__ = "Agent Status"

    agent = fields.Many2One(
        'callcenter.agent', "Agent", required=True, ondelete='CASCADE')
    status = fields.Selection(STATUSES, "Status", required=True, sort=False)
    reason = fields.Char("Reason")
    start = fields.DateTime("Start", required=True)
    end = fields.DateTime("End")
    duration = fields.Function(fields.TimeDelta("Duration"), 'get_duration')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('agent')
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.agent, Index.Equality()),
                    (t.start, Index.Range())),
                Index(t, (t.agent, Index.Equality()), where=t.end == Null),
                })
        cls._order = [('start', 'DESC'), ('id', 'DESC')]

    def get_duration(self, name):
        return (self.end or _now()) - self.start
