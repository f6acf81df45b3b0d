"""The agent console and the wallboard: the RPC methods their pages call
(web/callcenter/, served by pages.py).

The console asks ``callcenter.agent.console_state()`` about once a second:
everything the page shows comes back in that one call. The actions
(status, wrap-up, caller, contact, lead, ticket) answer the new state so
that the page shows it at once. They work on the current user's agent and
on the calls of that agent only; what they write follows the call center's
rules (the wrap-up required by the queue), not the client's access rights,
while what the agent creates (parties, leads, tickets) and reads on the
caller card goes through the user's access rights and record rules."""
import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from trytond.i18n import gettext
from trytond.model.exceptions import AccessError
from trytond.pool import Pool, PoolMeta
from trytond.rpc import RPC
from trytond.transaction import Transaction, without_check_access

from crm_core.contact import e164

from .agent import CHOSEN
from .exceptions import CallCenterError

# Calls still on the line: the agent's status follows them
LIVE = {'ringing', 'answered'}
REASON_SIZE = 100
# What the caller card lists
CARD_LEADS = 10
CARD_TICKETS = 10
CARD_ACTIVITIES = 5
CALLBACKS = 20


def _now():
    return dt.datetime.now()


def _iso(value):
    "A naive UTC datetime as the ISO text JavaScript's Date reads"
    if value is None:
        return None
    return value.isoformat(timespec='milliseconds') + 'Z'


def _labels(Model, name):
    "{value: translated label} of a selection field"
    return dict(Model.fields_get([name])[name]['selection'])


def _record_id(value, message):
    "The id the page sent, checked: a positive integer"
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CallCenterError(gettext(message, id=value))
    return value


def _parse_follow_up(value, now):
    """The follow-up moment the page sent (ISO 8601 text, UTC unless it
    says otherwise) as a naive UTC datetime; None for none"""
    if value is None or value == '':
        return None
    moment = value
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip().replace(
                    'Z', '+00:00'))
        except ValueError:
            moment = None
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        moment = dt.datetime.combine(value, dt.time())
    if not isinstance(moment, dt.datetime):
        raise CallCenterError(gettext(
                'crm_callcenter.msg_console_follow_up_invalid',
                value=value))
    if moment.tzinfo:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if moment < now - dt.timedelta(minutes=1):
        raise CallCenterError(gettext(
                'crm_callcenter.msg_console_follow_up_past'))
    return moment


def _phone(number):
    "The number in E.164 form, or None when it is no phone number"
    try:
        return e164(number)
    except ValueError:
        return None


def _end_of_today(now):
    "The end of the user's day (context timezone, else UTC), in naive UTC"
    name = Transaction().context.get('timezone')
    try:
        zone = ZoneInfo(name) if name else dt.timezone.utc
    except (ZoneInfoNotFoundError, ValueError):
        zone = dt.timezone.utc
    local = now.replace(tzinfo=dt.timezone.utc).astimezone(zone)
    end = dt.datetime.combine(
        local.date() + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return end.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _in_pool(model_name):
    "Whether the model is activated (helpdesk.ticket with crm_helpdesk)"
    try:
        Pool().get(model_name)
    except KeyError:
        return False
    return True


def _allowed(model_name, mode='read'):
    "Whether the model is activated and the user may read (mode) it"
    pool = Pool()
    ModelAccess = pool.get('ir.model.access')
    return (_in_pool(model_name)
        and ModelAccess.check(model_name, mode, raise_exception=False))


class Agent(metaclass=PoolMeta):
    __name__ = 'callcenter.agent'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__rpc__.update({
                'console_state': RPC(readonly=True),
                'set_my_status': RPC(readonly=False),
                'wrap_up': RPC(readonly=False),
                'choose_party': RPC(readonly=False),
                'create_contact': RPC(readonly=False),
                'create_lead': RPC(readonly=False),
                'create_ticket': RPC(readonly=False),
                })

    # --- The current user's agent and calls ------------------------------

    @classmethod
    def my_agent(cls):
        "The active agent of the current user, or None"
        with without_check_access():
            agents = cls.search([
                    ('user', '=', Transaction().user),
                    ], limit=1)
        return agents[0] if agents else None

    @classmethod
    def _my_agent_required(cls):
        agent = cls.my_agent()
        if not agent:
            raise AccessError(gettext('crm_callcenter.msg_console_no_agent'))
        return agent

    @classmethod
    def _my_call(cls, call_id):
        """The call of call_id when it is a call of the user's agent, else
        AccessError"""
        pool = Pool()
        Call = pool.get('callcenter.call')
        agent = cls._my_agent_required()
        call_id = _record_id(call_id, 'crm_callcenter.msg_console_call_id')
        with without_check_access():
            calls = Call.search([('id', '=', call_id)], limit=1)
        if not calls or calls[0].agent != agent:
            raise AccessError(gettext(
                    'crm_callcenter.msg_console_call_not_yours',
                    call=calls[0].rec_name if calls else call_id))
        return agent, calls[0]

    @staticmethod
    def wrap_up_pending(call):
        "Whether the wrap-up form of the call is still to fill in"
        return bool(call and call.state == 'ended' and not call.wrapped_up)

    # --- State -----------------------------------------------------------

    @classmethod
    def console_state(cls):
        """What the agent console shows, in one call:

        {'now': ISO UTC, 'agent': {...} | None, 'statuses': {value: label},
        'call': {...} | None, 'caller': {...} | None, 'matches': [...],
        'wrap_up': {'call', 'required', 'dispositions'} | None,
        'callbacks': [...], 'can': {'lead': bool, 'ticket': bool}}

        Datetimes are ISO 8601 texts in UTC ('...Z')."""
        now = _now()
        agent = cls.my_agent()
        state = {
            'now': _iso(now),
            'agent': None,
            'statuses': _labels(cls, 'status'),
            'call': None,
            'caller': None,
            'matches': [],
            'wrap_up': None,
            'callbacks': cls._console_callbacks(now),
            'can': {
                'lead': _allowed('crm.lead', 'create'),
                'ticket': _allowed('helpdesk.ticket', 'create'),
                },
            }
        if not agent:
            return state
        state['agent'] = {
            'id': agent.id,
            'name': agent.user.rec_name,
            'extension': agent.extension,
            'status': agent.status,
            'pause_reason': agent.pause_reason,
            'status_since': _iso(agent.status_since),
            'wrap_up_until': _iso(agent.wrap_up_until),
            }
        with without_check_access():
            # The call on the line, or the last one while its wrap-up is
            # to fill in
            call = agent.current_call
            pending = cls.wrap_up_pending(call)
            if not call or not (call.state in LIVE or pending):
                return state
            state['call'] = cls._console_call(call)
            party = call.party
            matches = [] if party else list(call.matches)
            queue = call.queue
        if party:
            state['caller'] = cls._console_caller(party, call)
        else:
            state['matches'] = cls._console_matches(matches)
        if pending:
            state['wrap_up'] = {
                'call': call.id,
                'required': bool(queue and queue.wrap_up_required),
                'dispositions': cls._console_dispositions(),
                }
        return state

    @classmethod
    def _console_call(cls, call):
        queue = call.queue
        return {
            'id': call.id,
            'call_id': call.call_id,
            'direction': call.direction,
            'state': call.state,
            'state_string': call.state_string,
            'number': call.customer_number,
            'queue': {
                'id': queue.id,
                'name': queue.name,
                'number': queue.number,
                } if queue else None,
            'party': call.party.id if call.party else None,
            'lead': call.lead.id if call.lead else None,
            'created': _iso(call.created),
            'answered': _iso(call.answered),
            'ended': _iso(call.ended),
            'talk_seconds': call.talk_seconds,
            'wrapped_up': bool(call.wrapped_up),
            'disposition': (call.disposition.rec_name
                if call.disposition else None),
            }

    @classmethod
    def _console_caller(cls, party, call):
        """The caller card: who calls, with the user's access (a list the
        user may not read is None)"""
        pool = Pool()
        Party = pool.get('party.party')
        party = Party(party.id)
        card = {
            'id': party.id,
            'name': party.rec_name,
            'number': call.customer_number,
            'lifecycle_status': party.lifecycle_status,
            'lifecycle_status_string': _labels(
                Party, 'lifecycle_status').get(party.lifecycle_status),
            'quality_score': party.quality_score,
            'owner': party.owner.rec_name if party.owner else None,
            'leads': None,
            'tickets': None,
            'activities': None,
            }
        if _allowed('crm.lead'):
            Lead = pool.get('crm.lead')
            types = _labels(Lead, 'type')
            leads = Lead.search([
                    ('party', '=', party.id),
                    ('state', '=', 'open'),
                    ], order=[('type', 'DESC'), ('id', 'DESC')],
                limit=CARD_LEADS)
            card['leads'] = [{
                    'id': lead.id,
                    'name': lead.name,
                    'type': lead.type,
                    'type_string': types.get(lead.type),
                    'stage': lead.stage.rec_name,
                    'probability': lead.probability,
                    } for lead in leads]
        if _allowed('helpdesk.ticket'):
            Ticket = pool.get('helpdesk.ticket')
            tickets = Ticket.search([
                    ('party', '=', party.id),
                    ('closed', '=', None),
                    ], order=[('opened', 'DESC'), ('id', 'DESC')],
                limit=CARD_TICKETS)
            card['tickets'] = [{
                    'id': ticket.id,
                    'number': ticket.number,
                    'subject': ticket.subject,
                    'stage': ticket.stage.rec_name,
                    } for ticket in tickets]
        if _allowed('crm.activity'):
            Activity = pool.get('crm.activity')
            types = _labels(Activity, 'type')
            activities = Activity.search([
                    ('party', '=', party.id),
                    ('state', '=', 'done'),
                    ], order=[('start', 'DESC'), ('id', 'DESC')],
                limit=CARD_ACTIVITIES)
            card['activities'] = [{
                    'id': activity.id,
                    'type': activity.type,
                    'type_string': types.get(activity.type),
                    'subject': activity.subject,
                    'start': _iso(activity.start),
                    'user': activity.user.rec_name,
                    'outcome': activity.outcome,
                    } for activity in activities]
        return card

    @classmethod
    def _console_matches(cls, parties):
        "The parties that have the caller's number, to choose from"
        pool = Pool()
        Party = pool.get('party.party')
        if not parties:
            return []
        statuses = _labels(Party, 'lifecycle_status')
        return [{
                'id': party.id,
                'name': party.rec_name,
                'lifecycle_status_string': statuses.get(
                    party.lifecycle_status),
                } for party in Party.browse([p.id for p in parties])]

    @classmethod
    def _console_dispositions(cls):
        pool = Pool()
        Disposition = pool.get('callcenter.disposition')
        return [{'id': d.id, 'name': d.name, 'success': bool(d.success)}
            for d in Disposition.search([])]

    @classmethod
    def _console_callbacks(cls, now):
        """The user's planned calls due by the end of their day, the
        earliest first"""
        pool = Pool()
        if not _allowed('crm.activity'):
            return []
        Activity = pool.get('crm.activity')
        activities = Activity.search([
                ('user', '=', Transaction().user),
                ('type', '=', 'call'),
                ('state', '=', 'planned'),
                ('start', '<', _end_of_today(now)),
                ], order=[('start', 'ASC'), ('id', 'ASC')], limit=CALLBACKS)
        return [{
                'id': activity.id,
                'subject': activity.subject,
                'start': _iso(activity.start),
                'overdue': activity.start < now,
                'party': {
                    'id': activity.party.id,
                    'name': activity.party.rec_name,
                    } if activity.party else None,
                'description': activity.description,
                } for activity in activities]

    # --- Actions ---------------------------------------------------------

    @classmethod
    def set_my_status(cls, status, reason=None):
        """Put the user's agent in a status the agent chooses: available,
        paused (with a reason) or offline. Refused while a call is on the
        line, and going available while the queue requires the wrap-up of
        the last call. Returns the console state."""
        agent = cls._my_agent_required()
        if status not in CHOSEN:
            raise CallCenterError(gettext(
                    'crm_callcenter.msg_console_status_invalid',
                    status=status))
        if status == 'paused':
            reason = reason.strip() if isinstance(reason, str) else ''
            if not reason:
                raise CallCenterError(gettext(
                        'crm_callcenter.msg_console_pause_reason'))
            if len(reason) > REASON_SIZE:
                raise CallCenterError(gettext(
                        'crm_callcenter.msg_console_pause_reason_size',
                        size=REASON_SIZE))
        else:
            reason = None
        with without_check_access():
            call = agent.current_call
            if call and call.state in LIVE:
                raise CallCenterError(gettext(
                        'crm_callcenter.msg_console_status_on_call',
                        call=call.rec_name))
            if (status == 'available' and cls.wrap_up_pending(call)
                    and call.queue and call.queue.wrap_up_required):
                raise CallCenterError(gettext(
                        'crm_callcenter.msg_console_wrap_up_required',
                        call=call.rec_name))
            cls.set_status([agent], status, reason=reason)
        return cls.console_state()

    @classmethod
    def wrap_up(cls, call_id, disposition_id, notes=None, follow_up=None):
        """The wrap-up form of the agent's ended call: the disposition, the
        notes and, when a moment is given (ISO 8601), a planned follow-up
        call activity for the user. Frees the agent in wrap-up. Returns
        the console state."""
        pool = Pool()
        Call = pool.get('callcenter.call')
        Disposition = pool.get('callcenter.disposition')
        Activity = pool.get('crm.activity')
        now = _now()
        agent, call = cls._my_call(call_id)
        if call.state != 'ended':
            raise CallCenterError(gettext(
                    'crm_callcenter.msg_console_wrap_up_not_ended',
                    call=call.rec_name))
        if call.wrapped_up:
            raise CallCenterError(gettext(
                    'crm_callcenter.msg_console_wrap_up_done',
                    call=call.rec_name))
        if disposition_id in (None, ''):
            raise CallCenterError(gettext(
                    'crm_callcenter.msg_console_disposition_required'))
        disposition_id = _record_id(disposition_id,
            'crm_callcenter.msg_console_disposition_unknown')
        dispositions = Disposition.search([('id', '=', disposition_id)])
        if not dispositions:
            raise CallCenterError(gettext(
                    'crm_callcenter.msg_console_disposition_unknown',
                    id=disposition_id))
        disposition, = dispositions
        if notes is not None and not isinstance(notes, str):
            notes = str(notes)
        notes = notes.strip() if notes else None
        follow_up = _parse_follow_up(follow_up, now)
        with without_check_access():
            Call.finish_wrap_up([call], disposition, notes)
            if follow_up:
                party = call.party
                Activity.create([{
                            'type': 'call',
                            'subject': gettext(
                                'crm_callcenter.msg_console_follow_up_subject',
                                caller=(party.rec_name if party
                                    else call.customer_number or '?')),
                            'party': party.id if party else None,
                            'origin': str(call),
                            'company': call.company.id,
                            'user': agent.user.id,
                            'start': follow_up,
                            'state': 'planned',
                            'description': '\n'.join(filter(None, [
                                        call.customer_number, notes])),
                            }])
        return cls.console_state()

    @classmethod
    def choose_party(cls, call_id, party_id):
        """The caller is this party: for a number several parties share.
        The call's history entry and callback follow. Returns the console
        state."""
        pool = Pool()
        Call = pool.get('callcenter.call')
        Party = pool.get('party.party')
        Activity = pool.get('crm.activity')
        _, call = cls._my_call(call_id)
        party_id = _record_id(party_id,
            'crm_callcenter.msg_console_party_unknown')
        # Through the user's record rules: a party the user may read
        parties = Party.search([('id', '=', party_id)], limit=1)
        if not parties:
            raise CallCenterError(gettext(
                    'crm_callcenter.msg_console_party_unknown',
                    id=party_id))
        party, = parties
        with without_check_access():
            Call.write([call], {'party': party.id})
            activities = [a for a in [call.activity, call.callback]
                if a and a.party != party]
            if activities:
                Activity.write(activities, {'party': party.id})
        return cls.console_state()

    @classmethod
    def create_contact(cls, call_id):
        """A person with the caller's number for the agent's call that has
        no party. Returns the console state."""
        pool = Pool()
        Call = pool.get('callcenter.call')
        Activity = pool.get('crm.activity')
        _, call = cls._my_call(call_id)
        if not call.party:
            Call.create_contact([call])
            call = Call(call.id)
            with without_check_access():
                activities = [a for a in [call.activity, call.callback]
                    if a and not a.party]
                if activities:
                    Activity.write(activities, {'party': call.party.id})
        return cls.console_state()

    @classmethod
    def create_lead(cls, call_id):
        """A lead of the agent's call: its caller and number; the call is
        about it. Returns {'id': lead id} (the page opens it in sao)."""
        pool = Pool()
        Call = pool.get('callcenter.call')
        Lead = pool.get('crm.lead')
        _, call = cls._my_call(call_id)
        party = call.party
        caller = party.rec_name if party else (call.customer_number or '?')
        lead, = Lead.create([{
                    'name': gettext('crm_callcenter.msg_console_lead_name',
                        caller=caller),
                    'party': party.id if party else None,
                    'phone': _phone(call.customer_number),
                    'company': call.company.id,
                    }])
        if not call.lead:
            with without_check_access():
                Call.write([call], {'lead': lead.id})
        return {'id': lead.id}

    @classmethod
    def create_ticket(cls, call_id):
        """A helpdesk ticket (crm_helpdesk) of the agent's call, by phone,
        assigned to the agent. Returns {'id': ticket id} (the page opens it
        in sao)."""
        pool = Pool()
        _, call = cls._my_call(call_id)
        if not _in_pool('helpdesk.ticket'):
            raise CallCenterError(gettext(
                    'crm_callcenter.msg_console_no_helpdesk'))
        Ticket = pool.get('helpdesk.ticket')
        party = call.party
        caller = party.rec_name if party else (call.customer_number or '?')
        values = {
            'subject': gettext('crm_callcenter.msg_console_ticket_subject',
                caller=caller),
            'party': party.id if party else None,
            'company': call.company.id,
            # The agent who took the call has it first (and may create it)
            'user': Transaction().user,
            }
        if 'phone' in dict(Ticket.channel.selection):
            values['channel'] = 'phone'
        ticket, = Ticket.create([values])
        return {'id': ticket.id}


class Queue(metaclass=PoolMeta):
    __name__ = 'callcenter.queue'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__rpc__.update({
                'wallboard_data': RPC(readonly=True),
                })

    @classmethod
    def _check_supervisor(cls):
        pool = Pool()
        User = pool.get('res.user')
        ModelData = pool.get('ir.model.data')
        if Transaction().user == 0:
            return
        group = ModelData.get_id(
            'crm_callcenter', 'group_callcenter_supervisor')
        if group not in User.get_groups():
            raise AccessError(gettext(
                    'crm_callcenter.msg_console_wallboard_supervisors'))

    @classmethod
    def wallboard_data(cls):
        """The supervisors' wallboard: every active queue of the user's
        companies with its figures of today (Queue.wallboard) and its
        agents by status, and the agents:

        {'now', 'statuses': {value: label},
        'queues': [{'id', 'name', 'number', 'waiting', 'longest_wait',
            'answered', 'abandoned', 'missed', 'service_level',
            'service_level_target', 'service_level_seconds',
            'average_handle', 'agents': {status: count}}],
        'agents': [{'id', 'name', 'extension', 'status', 'status_since',
            'pause_reason', 'queues': [queue id]}],
        'totals': {status: count}}"""
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        Member = pool.get('callcenter.queue.member')
        cls._check_supervisor()
        now = _now()
        queues = cls.search([])
        figures, _ = cls.wallboard(queues, now)
        ids = [q.id for q in queues]
        member = Member.__table__()
        cursor = Transaction().connection.cursor()
        members = {}
        if ids:
            cursor.execute(*member.select(member.agent, member.queue,
                    where=member.queue.in_(ids)))
            for agent_id, queue_id in cursor:
                members.setdefault(agent_id, []).append(queue_id)
        agents = Agent.search([])
        by_queue = {i: {} for i in ids}
        totals = {}
        agent_rows = []
        for agent in agents:
            queue_ids = sorted(members.get(agent.id, []))
            for queue_id in queue_ids:
                counts = by_queue[queue_id]
                counts[agent.status] = counts.get(agent.status, 0) + 1
            totals[agent.status] = totals.get(agent.status, 0) + 1
            agent_rows.append({
                    'id': agent.id,
                    'name': agent.user.rec_name,
                    'extension': agent.extension,
                    'status': agent.status,
                    'status_since': _iso(agent.status_since),
                    'pause_reason': agent.pause_reason,
                    'queues': queue_ids,
                    })
        return {
            'now': _iso(now),
            'statuses': _labels(Agent, 'status'),
            'queues': [dict(figures[q.id],
                    id=q.id, name=q.name, number=q.number,
                    service_level_target=q.service_level_target,
                    service_level_seconds=q.service_level_seconds,
                    agents=by_queue[q.id]) for q in queues],
            'agents': agent_rows,
            'totals': totals,
            }


class Call(metaclass=PoolMeta):
    __name__ = 'callcenter.call'
