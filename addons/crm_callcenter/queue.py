"""ACD queues: the number a customer calls, the agents who answer it, and
how the next agent is chosen (the routing API asks route())."""
import datetime as dt

from sql import Literal, Null
from sql.aggregate import Avg, Count, Min, Sum
from sql.conditionals import Case

from trytond.model import (
    DeactivableMixin, Index, ModelSQL, ModelView, Unique, fields)
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.transaction import Transaction


STRATEGIES = [
    ('ring_all', "Ring All"),
    ('longest_idle', "Longest Idle"),
    ('round_robin', "Round Robin"),
    ('skills', "Skills-Based"),
    ('sticky', "Customer's Owner First"),
    ]
OVERFLOWS = [
    (None, "Keep Waiting"),
    ('queue', "Another Queue"),
    ('voicemail', "Voicemail"),
    ('callback', "Callback Request"),
    ]
# The oldest moment, for agents that never had a call
NEVER = dt.datetime.min


class Queue(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'callcenter.queue'
    __string__ = "Call Center Queue"

    name = fields.Char("Name", required=True, translate=True)
    number = fields.Char("Number", required=True, strip=True,
        help="The number customers dial, as the telephony sends it.")
    company = fields.Many2One('company.company', "Company", required=True)
    team = fields.Many2One('crm.team', "Team", ondelete='RESTRICT',
        domain=[('company', '=', Eval('company', -1))],
        help="Whose calendar gives the opening hours.")
    strategy = fields.Selection(STRATEGIES, "Strategy", required=True,
        sort=False)
    members = fields.Many2Many('callcenter.queue.member', 'queue', 'agent',
        "Agents", domain=[('company', '=', Eval('company', -1))])
    skills = fields.Many2Many('callcenter.queue-callcenter.skill', 'queue',
        'skill', "Required Skills",
        states={'invisible': Eval('strategy') != 'skills'})
    wrap_up_seconds = fields.Integer("Wrap-Up Time", required=True,
        domain=[('wrap_up_seconds', '>=', 0)],
        help="Seconds after a call before the agent gets the next one.")
    wrap_up_required = fields.Boolean("Wrap-Up Form Required",
        help="The agent gets no call until the wrap-up form is sent.")
    service_level_seconds = fields.Integer("Service Level", required=True,
        domain=[('service_level_seconds', '>', 0)],
        help="A call answered within these seconds meets the service "
        "level.")
    service_level_target = fields.Integer("Service Level Target",
        required=True, domain=[
            ('service_level_target', '>=', 0),
            ('service_level_target', '<=', 100)],
        help="The share of calls (%) to answer within the service level.")
    overflow_seconds = fields.Integer("Overflow After",
        domain=['OR',
            ('overflow_seconds', '=', None),
            ('overflow_seconds', '>=', 0)],
        states={'invisible': ~Eval('overflow')},
        help="Seconds a caller waits before the overflow; 0: at once when "
        "no agent is free.")
    overflow = fields.Selection(OVERFLOWS, "Overflow", sort=False)
    overflow_queue = fields.Many2One('callcenter.queue', "Overflow Queue",
        domain=[
            ('id', '!=', Eval('id', -1)),
            ('company', '=', Eval('company', -1)),
            ],
        states={
            'invisible': Eval('overflow') != 'queue',
            'required': Eval('overflow') == 'queue',
            })
    last_agent = fields.Many2One('callcenter.agent', "Last Agent",
        readonly=True, ondelete='SET NULL',
        states={'invisible': Eval('strategy') != 'round_robin'})

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('number_unique', Unique(t, t.company, t.number),
                'crm_callcenter.msg_queue_number_unique'),
            ]
        cls._sql_indexes.add(Index(t, (t.number, Index.Equality())))
        cls._order.insert(0, ('name', 'ASC'))

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_strategy(cls):
        return 'longest_idle'

    @classmethod
    def default_wrap_up_seconds(cls):
        return 30

    @classmethod
    def default_service_level_seconds(cls):
        return 20

    @classmethod
    def default_service_level_target(cls):
        return 80

    @classmethod
    def default_overflow_seconds(cls):
        return 60

    def get_rec_name(self, name):
        return f'{self.name} ({self.number})'

    @classmethod
    def search_rec_name(cls, name, clause):
        _, operator, operand, *extra = clause
        bool_op = 'AND' if operator.startswith('!') or operator.startswith(
            'not ') else 'OR'
        return [bool_op,
            ('name', operator, operand, *extra),
            ('number', operator, operand, *extra),
            ]

    def is_open(self, now):
        "Whether the queue takes calls now (the team's business hours)"
        if self.team and self.team.calendar:
            return self.team.working_clock().is_working(now)
        return True

    def choose(self, party=None, now=None):
        """The agents to ring for a call of party, best first (several for
        ring all); an empty list when none is free"""
        now = now or dt.datetime.now()
        free = [a for a in self.members if a.active and a.free(now)]
        if self.strategy == 'skills' and self.skills:
            wanted = {s.id for s in self.skills}
            levels = {}
            for agent in free:
                have = {s.skill.id: s.level for s in agent.skills}
                if wanted <= set(have):
                    levels[agent] = sum(have[s] for s in wanted)
            free = list(levels)
        else:
            levels = {}
        if not free:
            return []

        def idle(agent):
            return (agent.last_call_end or NEVER, agent.id)
        if self.strategy == 'ring_all':
            return sorted(free, key=idle)
        if self.strategy == 'round_robin':
            members = sorted(self.members, key=lambda a: a.id)
            ids = [a.id for a in members]
            start = (ids.index(self.last_agent.id) + 1
                if self.last_agent and self.last_agent.id in ids else 0)
            ordered = members[start:] + members[:start]
            return [a for a in ordered if a in free][:1]
        if self.strategy == 'skills':
            return sorted(free, key=lambda a: (-levels[a], *idle(a)))[:1]
        if self.strategy == 'sticky' and party and party.owner:
            owned = [a for a in free if a.user == party.owner]
            if owned:
                return owned[:1]
        return sorted(free, key=idle)[:1]

    def overflow_target(self, waited=0):
        """(action, queue) when the overflow applies after waited seconds
        without a free agent, else None"""
        if not self.overflow or waited < (self.overflow_seconds or 0):
            return None
        if self.overflow == 'queue':
            return 'queue', self.overflow_queue
        return self.overflow, None

    @classmethod
    def wallboard(cls, queues, now=None):
        """The live figures of the queues for the supervisors' wallboard:
        {queue id: {waiting, longest_wait, answered, abandoned, missed,
        service_level (%% or None), average_handle (s or None)}} since the
        start of today (UTC), and {status: count} of their agents"""
        pool = Pool()
        Call = pool.get('callcenter.call')
        Member = pool.get('callcenter.queue.member')
        Agent = pool.get('callcenter.agent')
        now = now or dt.datetime.now()
        today = dt.datetime.combine(now.date(), dt.time())
        call = Call.__table__()
        cursor = Transaction().connection.cursor()
        ids = [q.id for q in queues]
        figures = {q.id: {
                'waiting': 0, 'longest_wait': 0, 'answered': 0,
                'abandoned': 0, 'missed': 0, 'service_level': None,
                'average_handle': None,
                } for q in queues}
        if not ids:
            return figures, {}
        # Waiting: the ringing calls (an index of them per queue)
        cursor.execute(*call.select(call.queue, Count(call.id),
                Min(call.created),
                where=call.queue.in_(ids) & (call.state == 'ringing'),
                group_by=[call.queue]))
        for queue, count, oldest in cursor:
            if isinstance(oldest, str):
                # SQLite gives the aggregate of a timestamp as text
                oldest = dt.datetime.fromisoformat(oldest)
            figures[queue]['waiting'] = count
            figures[queue]['longest_wait'] = max(
                0, int((now - oldest).total_seconds()))
        levels = {q.id: q.service_level_seconds for q in queues}
        within = Case(*[((call.queue == q) & (call.wait_seconds <= s), 1)
                for q, s in levels.items()], else_=0)
        cursor.execute(*call.select(call.queue,
                Sum(Case((call.answered != Null, 1), else_=0)),
                Sum(Case((call.state == 'abandoned', 1), else_=0)),
                Sum(Case((call.state.in_(['missed', 'voicemail']), 1),
                        else_=0)),
                Sum(Case((call.answered != Null, within), else_=0)),
                Avg(call.talk_seconds),
                where=call.queue.in_(ids) & (call.created >= today),
                group_by=[call.queue]))
        for queue, answered, abandoned, missed, in_time, handle in cursor:
            offered = (answered or 0) + (abandoned or 0)
            figures[queue].update({
                    'answered': answered or 0,
                    'abandoned': abandoned or 0,
                    'missed': missed or 0,
                    'service_level': (round(100 * (in_time or 0) / offered, 1)
                        if offered else None),
                    'average_handle': (round(float(handle), 1)
                        if handle is not None else None),
                    })
        member = Member.__table__()
        agent = Agent.__table__()
        cursor.execute(*agent.select(agent.status, Count(agent.id),
                where=agent.id.in_(member.select(member.agent,
                        where=member.queue.in_(ids)))
                & (agent.active == Literal(True)),
                group_by=[agent.status]))
        return figures, dict(cursor)

    @classmethod
    def by_number(cls, number, company=None):
        domain = [('number', '=', number)]
        if company:
            domain.append(('company', '=', company))
        queues = cls.search(domain, limit=1)
        return queues[0] if queues else None


class QueueMember(ModelSQL):
    __name__ = 'callcenter.queue.member'
    __string__ = "Queue Member"

    queue = fields.Many2One(
        'callcenter.queue', "Queue", required=True, ondelete='CASCADE')
    agent = fields.Many2One(
        'callcenter.agent', "Agent", required=True, ondelete='CASCADE')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('queue_agent_unique', Unique(t, t.queue, t.agent),
                'crm_callcenter.msg_queue_member_unique'),
            ]
        cls._sql_indexes.add(Index(t, (t.agent, Index.Equality())))

    @classmethod
    def on_modification(cls, mode, members, field_names=None):
        super().on_modification(mode, members, field_names=field_names)
        # Agents read the calls of their queues: the record rules change
        Pool().get('ir.rule')._domain_get_cache.clear()

    @classmethod
    def on_delete(cls, members):
        callback = super().on_delete(members)
        return callback + [Pool().get('ir.rule')._domain_get_cache.clear]

    @classmethod
    def queues_of_user(cls, user_id):
        "The ids of the queues whose agent the user is"
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        member = cls.__table__()
        agent = Agent.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*member.join(agent,
                condition=member.agent == agent.id).select(
                member.queue, where=agent.user == user_id))
        return sorted({q for q, in cursor})


class QueueSkill(ModelSQL):
    __name__ = 'callcenter.queue-callcenter.skill'
    __string__ = "Queue Skill"

    queue = fields.Many2One(
        'callcenter.queue', "Queue", required=True, ondelete='CASCADE')
    skill = fields.Many2One(
        'callcenter.skill', "Skill", required=True, ondelete='CASCADE')
