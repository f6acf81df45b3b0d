"""Computer-telephony integration: the events a PBX sends (stored once
each, by event id) and the calls they make; the routing decision the
PBX asks for each incoming call.

Events are stored as they come, in any order and as often as they come;
a queue task then makes each touched call what all of its events say
(fold()), so that a late or repeated event changes nothing it should
not."""
import datetime as dt
import logging
import threading
import time
from collections import defaultdict

from sql import Conflict, Literal, Null, Select

import trytond.config as config
from trytond import backend
from trytond.i18n import gettext
from trytond.ir.cron import str2bigint
from trytond.model import Index, ModelSQL, ModelView, Unique, fields
from trytond.pool import Pool
from trytond.tools import grouped_slice
from trytond.transaction import Transaction

from crm_core.savepoint import savepoint

from .call import DIRECTIONS, normalised, seconds
from .exceptions import EventError

logger = logging.getLogger(__name__)

TYPES = [
    ('ringing', "Ringing"),
    ('answered', "Answered"),
    ('ended', "Ended"),
    ('missed', "Missed"),
    ('transferred', "Transferred"),
    ('dtmf', "DTMF"),
    ]
TYPE_NAMES = {t for t, _ in TYPES}
# Why a call ended without answer, as events may say
REASONS = {'abandoned', 'voicemail', 'no_answer', 'busy', 'rejected'}
MAX_TEXT = 128
# Pending events made into calls in one go
BATCH = 500
# Full batches a task applies before it commits and queues the next task
TASK_BATCHES = 10
# The applying task waits a little to take the events of many requests
QUEUE_NAME = 'callcenter'
APPLY_DELAY = dt.timedelta(milliseconds=200)
# A task that takes the events committed until later than this takes the
# events of a request that commits now
APPLY_MARGIN = dt.timedelta(milliseconds=50)
APPLY_LOCK = str2bigint('callcenter.event,apply')


def _now():
    return dt.datetime.now()


# Until when the last task that this process queued takes the committed
# events, per database: a request does not see the tasks committed after
# its snapshot (REPEATABLE READ), nor those of the requests running
# meanwhile
_scheduled = {}
_queuing = threading.Lock()


class _Queued:
    """A data manager: the process knows at once of the task that its
    transaction queued, and forgets it if the transaction is rolled back"""

    def __init__(self, database, at):
        self.database, self.at = database, at
        _scheduled[database] = max(_scheduled.get(database, at), at)

    def tpc_begin(self, transaction):
        pass

    commit = tpc_vote = tpc_finish = tpc_begin

    def tpc_abort(self, transaction):
        if _scheduled.get(self.database) == self.at:
            del _scheduled[self.database]


def _wait_until(at):
    """Sleep until the moment, then take a new snapshot (REPEATABLE READ):
    the events committed meanwhile (the task has written nothing yet)"""
    time.sleep(max(0, (at - _now()).total_seconds()))
    Transaction().commit()


def _worker():
    "Whether trytond-worker runs the tasks (else they run at the commit)"
    return config.getboolean('queue', 'worker', default=False)


def parse_timestamp(value):
    "A naive UTC datetime of an epoch number or an ISO 8601 string"
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(
            value, dt.timezone.utc).replace(tzinfo=None)
    if isinstance(value, str):
        moment = dt.datetime.fromisoformat(value.replace('Z', '+00:00'))
        if moment.tzinfo:
            moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return moment
    raise ValueError(value)


def validate(raw):
    """The event of a JSON object, checked: a dict of the columns of
    callcenter.event; raises EventError naming the fields at fault"""
    if not isinstance(raw, dict):
        raise EventError(gettext('crm_callcenter.msg_event_not_object'),
            fields=['event'])
    wrong = []

    def text(name, required=False):
        value = raw.get(name)
        if value is None or value == '':
            if required:
                wrong.append(name)
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            wrong.append(name)
            return None
        return value.strip()

    event = {
        'event_id': text('id', True),
        'call_id': text('call_id', True),
        'type': raw.get('type'),
        'from_number': text('from'),
        'to_number': text('to'),
        'extension': text('extension'),
        'queue_number': text('queue'),
        'digits': text('digits'),
        'target': text('target'),
        'reason': text('reason'),
        'recording_url': text('recording_url'),
        'direction': raw.get('direction') or 'inbound',
        }
    if event['type'] not in TYPE_NAMES:
        wrong.append('type')
    if event['direction'] not in {d for d, _ in DIRECTIONS}:
        wrong.append('direction')
    if event['reason'] and event['reason'] not in REASONS:
        wrong.append('reason')
    if event['type'] == 'dtmf' and not event['digits']:
        wrong.append('digits')
    try:
        event['timestamp'] = parse_timestamp(raw.get('timestamp'))
    except (ValueError, TypeError, OverflowError, OSError):
        wrong.append('timestamp')
    if wrong:
        raise EventError(gettext('crm_callcenter.msg_event_invalid',
                fields=', '.join(sorted(set(wrong)))), fields=sorted(
                set(wrong)))
    return event


def fold(events):
    """What a call is after its events (dicts with the Event columns), in
    whatever order they came: the values of callcenter.call that events
    give, and the extension of its agent"""
    events = sorted(events, key=lambda e: (e['timestamp'], e['id']))
    first = events[0]
    by_type = defaultdict(list)
    for event in events:
        by_type[event['type']].append(event)
    values = {
        'direction': first['direction'],
        'from_number': next(
            (e['from_number'] for e in events if e['from_number']), None),
        'to_number': next(
            (e['to_number'] for e in events if e['to_number']), None),
        'created': first['timestamp'],
        'answered': None,
        'ended': None,
        }
    queue = [e['queue_number'] for e in events if e['queue_number']]
    extension = None
    for event in events:
        if event['type'] in {'ringing', 'answered'} and event['extension']:
            extension = event['extension']
        elif event['type'] == 'transferred' and event['target']:
            extension = event['target']
    if extension is None:
        # The agent's phone never rang (unreachable): the end names it
        extension = next((e['extension'] for e in reversed(events)
                if e['extension']), None)
    if by_type['answered']:
        values['answered'] = by_type['answered'][0]['timestamp']
    ends = by_type['ended'] + by_type['missed']
    if ends:
        values['ended'] = ends[-1]['timestamp']
    reasons = [e['reason'] for e in ends if e['reason']]
    if values['ended']:
        if values['answered']:
            state = 'ended'
        elif 'voicemail' in reasons:
            state = 'voicemail'
        elif 'abandoned' in reasons:
            state = 'abandoned'
        else:
            state = 'missed'
    elif values['answered']:
        state = 'answered'
    else:
        state = 'ringing'
    values['state'] = state
    values['wait_seconds'] = seconds(
        values['created'], values['answered'] or values['ended'])
    values['talk_seconds'] = seconds(values['answered'], values['ended'])
    recordings = [e['recording_url'] for e in events if e['recording_url']]
    if recordings:
        values['recording_url'] = recordings[-1]
    return values, extension, queue[-1] if queue else None


class Event(ModelSQL, ModelView):
    __name__ = 'callcenter.event'
    __string__ = "CTI Event"
    _rec_name = 'event_id'

    company = fields.Many2One(
        'company.company', "Company", required=True, readonly=True)
    application = fields.Many2One('res.user.application', "Application",
        readonly=True, ondelete='SET NULL',
        help="The connector that sent the event.")
    event_id = fields.Char("Event ID", required=True, readonly=True)
    call_id = fields.Char("Call ID", required=True, readonly=True)
    type = fields.Selection(TYPES, "Type", required=True, readonly=True)
    timestamp = fields.DateTime("Timestamp", required=True, readonly=True)
    direction = fields.Selection(DIRECTIONS, "Direction", required=True,
        readonly=True)
    from_number = fields.Char("From", readonly=True)
    to_number = fields.Char("To", readonly=True)
    extension = fields.Char("Extension", readonly=True)
    queue_number = fields.Char("Queue", readonly=True)
    digits = fields.Char("Digits", readonly=True)
    target = fields.Char("Target", readonly=True)
    reason = fields.Char("Reason", readonly=True)
    recording_url = fields.Char("Recording", readonly=True)
    pending = fields.Boolean("Pending", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('event_unique', Unique(t, t.company, t.event_id),
                'crm_callcenter.msg_event_id_unique'),
            ]
        cls._sql_indexes.update({
                Index(t, (t.call_id, Index.Equality())),
                Index(t, (t.id, Index.Range()), where=t.pending == True),
                })
        cls._order = [('timestamp', 'DESC'), ('id', 'DESC')]

    @classmethod
    def ingest(cls, company, events, application=None):
        """Store the validated events that are not stored yet (the same
        event id again is a repeat); queue making them calls. Return the
        number of new events."""
        table = cls.__table__()
        transaction = Transaction()
        cursor = transaction.connection.cursor()
        if not events:
            return 0
        columns = ['event_id', 'call_id', 'type', 'timestamp', 'direction',
            'from_number', 'to_number', 'extension', 'queue_number',
            'digits', 'target', 'reason', 'recording_url']
        user = transaction.user
        now = _now()
        # The same id twice in one request is one event
        unique = list({e['event_id']: e for e in events}.values())
        database = transaction.database
        if not database.has_returning():
            # SQLite: one writer at a time, the stored ones are left out
            cursor.execute(*table.select(table.event_id,
                    where=(table.company == company)
                    & table.event_id.in_([e['event_id'] for e in unique])))
            stored = {i for i, in cursor}
            unique = [e for e in unique if e['event_id'] not in stored]
            if not unique:
                return 0
        query = table.insert(
            [table.company, table.application, table.pending,
                table.create_uid, table.create_date]
            + [getattr(table, c) for c in columns],
            [[company, application, True, user, now]
                + [e[c] for c in columns] for e in unique])
        if database.has_returning():
            # Another request may store the same event at the same time
            query.on_conflict = Conflict(
                table, indexed_columns=[table.company, table.event_id])
            query.returning = [table.id]
            cursor.execute(*query)
            ids = [i for i, in cursor]
        else:
            cursor.execute(*query)
            cursor.execute(*table.select(table.id,
                    where=(table.company == company)
                    & table.event_id.in_([e['event_id'] for e in unique])))
            ids = [i for i, in cursor]
        if ids:
            # Unless a task takes the events committed later than this
            # request's commit (a commit later than APPLY_MARGIN is left
            # to the next task or the drain cron)
            cls.schedule_apply(cls.browse(ids[:1]))
        return len(ids)

    @classmethod
    def schedule_apply(cls, events, delay=None):
        """Queue making calls of the pending events: with a worker, the task
        takes the events committed until delay (APPLY_DELAY by default)
        from now, and none is queued when a task takes those committed
        until later than APPLY_MARGIN from now"""
        transaction = Transaction()
        delay = APPLY_DELAY if delay is None else delay
        at = None
        if _worker():
            now = _now()
            at, after = now + delay, now + APPLY_MARGIN
            database = transaction.database.name
            Queue = Pool().get('ir.queue')
            queue = Queue.__table__()
            # The requests of the process decide one at a time
            with _queuing:
                if _scheduled.get(database, after) > after:
                    return
                cursor = transaction.connection.cursor()
                cursor.execute(*queue.select(Literal(1),
                        where=(queue.name == QUEUE_NAME)
                        & (queue.scheduled_at == Null)
                        & (queue.expected_at > after),
                        limit=1))
                if cursor.fetchone():
                    return
                transaction.join(_Queued(database, at))
        # Not scheduled_at: trytond-worker takes a scheduled task only when
        # another task is queued (or after its timeout, a minute)
        with transaction.set_context(
                queue_name=QUEUE_NAME, queue_expected_at=delay):
            cls.__queue__.apply_pending(events[:1], at=at)

    @classmethod
    def apply_pending(cls, events=None, drain=False, at=None):
        """Queue task and cron (drain): the calls of the pending events
        become what their events say. One applier at a time: two would
        make the same calls and write the same agents."""
        if at is not None:
            _wait_until(at)
        # A worker's task comes again later; the cron, direct calls and
        # tasks run at the commit (no worker) wait their turn
        task = events is not None and _worker()
        if not cls._lock_applier(wait=not task):
            # Its events are committed: a task that comes later takes them
            cls.schedule_apply(events)
            return
        batches = 0
        while True:
            pending = cls.claim_pending(BATCH)
            cls.apply(pending)
            batches += 1
            if len(pending) < BATCH:
                break
            if not drain and batches >= TASK_BATCHES:
                # A backlog: commit what is done, the next task goes on
                cls.schedule_apply(cls.browse([pending[0][0]]),
                    delay=dt.timedelta(0))
                break

    @classmethod
    def _lock_applier(cls, wait=False):
        """Whether this transaction is the applier (till its end); always
        on SQLite, which has one writer at a time"""
        database = Transaction().database
        cursor = Transaction().connection.cursor()
        cursor.execute(*Select([database.lock_id(APPLY_LOCK, timeout=wait)]))
        locked, = cursor.fetchone()
        return wait or bool(locked)

    @classmethod
    def drain(cls):
        """Cron: the events no queue task took; the agents whose wrap-up
        time is over"""
        cls.apply_pending(drain=True)
        Pool().get('callcenter.agent').end_wrap_ups()

    @classmethod
    def claim_pending(cls, limit):
        """(id, company, call id) of the oldest pending events, locked:
        another worker takes the next"""
        transaction = Transaction()
        table = cls.__table__()
        cursor = transaction.connection.cursor()
        query = table.select(table.id, table.company, table.call_id,
            where=table.pending == Literal(True),
            order_by=[table.id.asc], limit=limit)
        if transaction.database.has_select_for():
            For = transaction.database.get_select_for_skip_locked()
            query.for_ = For('UPDATE')
        cursor.execute(*query)
        return cursor.fetchall()

    @classmethod
    def apply(cls, events):
        """Make the calls of the events [(id, company, call id)] what all
        their events say; a call that fails stays pending (for the next
        task or the cron) and does not hold back the others"""
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        by_company = defaultdict(set)
        for _, company, call_id in events:
            by_company[company].add(call_id)
        done = []
        for company, call_ids in by_company.items():
            with Transaction().set_context(company=company):
                try:
                    with savepoint('callcenter_apply'):
                        apply_calls(company, sorted(call_ids))
                    done.extend(call_ids)
                except backend.DatabaseOperationalError:
                    raise
                except Exception:
                    logger.info("calls applied one by one", exc_info=True)
                    for call_id in sorted(call_ids):
                        try:
                            with savepoint('callcenter_apply_one'):
                                apply_calls(company, [call_id])
                            done.append(call_id)
                        except backend.DatabaseOperationalError:
                            raise
                        except Exception:
                            logger.exception("call %s left pending", call_id)
        done = set(done)
        ids = [i for i, _, call_id in events if call_id in done]
        for sub_ids in grouped_slice(ids, backend.MAX_QUERY_PARAMS):
            cursor.execute(*table.update([table.pending], [False],
                    where=table.id.in_(list(sub_ids))))


EVENT_COLUMNS = ['id', 'call_id', 'type', 'timestamp', 'direction',
    'from_number', 'to_number', 'extension', 'queue_number', 'target',
    'reason', 'recording_url']
# The fields of callcenter.call that apply_calls gives values
CALL_FIELDS = ['direction', 'from_number', 'to_number', 'created',
    'answered', 'ended', 'state', 'wait_seconds', 'talk_seconds',
    'recording_url', 'agent', 'user', 'queue']


def apply_calls(company, call_ids):
    """Create or update the calls of call_ids from all their events, and
    what a change of state does: the agent's status, the screen pop, the
    history entry, a callback for a missed call"""
    pool = Pool()
    Event = pool.get('callcenter.event')
    Call = pool.get('callcenter.call')
    Agent = pool.get('callcenter.agent')
    Queue = pool.get('callcenter.queue')
    Party = pool.get('party.party')
    table = Event.__table__()
    cursor = Transaction().connection.cursor()
    events = defaultdict(list)
    for sub_ids in grouped_slice(
            call_ids, backend.MAX_QUERY_PARAMS):
        cursor.execute(*table.select(
                *[getattr(table, c) for c in EVENT_COLUMNS],
                where=(table.company == company)
                & table.call_id.in_(list(sub_ids))))
        for row in cursor:
            event = dict(zip(EVENT_COLUMNS, row))
            events[event['call_id']].append(event)
    # The stored values, compared as read: records would read each
    # Many2One on its own
    calls = {c['call_id']: c for c in Call.search_read([
                ('company', '=', company),
                ('call_id', 'in', call_ids),
                ], fields_names=['call_id'] + CALL_FIELDS)}
    folded = {i: fold(events[i]) for i in call_ids if events[i]}
    agents = Agent.by_extension(
        {e for _, e, _ in folded.values() if e}, company)
    # A routed call's events may only give the number dialled: its queue
    for call_id, (values, extension, number) in list(folded.items()):
        if not number and values['direction'] == 'inbound':
            folded[call_id] = (values, extension, values['to_number'])
    queues = {}
    for _, _, number in folded.values():
        if number and number not in queues:
            queues[number] = Queue.by_number(number, company)
    # The party of a new call is the one with the customer's number
    numbers = {}
    for call_id, (values, _, _) in folded.items():
        if call_id not in calls:
            number = (values['from_number']
                if values['direction'] == 'inbound'
                else values['to_number'])
            numbers[call_id] = normalised(number)
    by_phone = Party._parties_by_contact(
        phones=[n for n in numbers.values() if n])

    to_create, to_write, changes = [], [], []
    for call_id, (values, extension, queue_number) in folded.items():
        agent = agents.get(extension)
        queue = queues.get(queue_number)
        values = dict(values,
            agent=agent.id if agent else None,
            user=agent.user.id if agent else None,
            queue=queue.id if queue else None)
        call = calls.get(call_id)
        if call is None:
            parties = by_phone.get((numbers[call_id] or '').lower(), ())
            # Several parties with the number: the agent chooses
            values['party'] = min(parties) if len(parties) == 1 else None
            to_create.append(dict(values, call_id=call_id, company=company))
            changes.append((call_id, None))
        else:
            changed = {k: v for k, v in values.items() if call[k] != v}
            if changed:
                to_write.extend(([Call(call['id'])], changed))
                changes.append((call_id, call['state']))
    ids = {i: c['id'] for i, c in calls.items()}
    if to_create:
        for values, call in zip(to_create, Call.create(to_create)):
            ids[values['call_id']] = call.id
    if to_write:
        Call.write(*to_write)
    # One list: on_state_change reads the calls all at once
    changed = Call.browse([ids[i] for i, _ in changes])
    Call.on_state_change(list(zip(changed, (old for _, old in changes))))


class Router:
    """The routing decision for an incoming call: which agent, queue or
    overflow gets it. The answer is a JSON-able dict:
    {'action': 'agent', 'target': extension, 'targets': [...],
    'queue': number} | {'action': 'wait', 'queue': number,
    'retry_after': s} | {'action': 'voicemail' | 'callback' | 'reject',
    ...}"""

    def __init__(self, company):
        self.company = company

    def route(self, call_id, from_number, to_number, waited=0, now=None):
        pool = Pool()
        Queue = pool.get('callcenter.queue')
        Agent = pool.get('callcenter.agent')
        IVR = pool.get('callcenter.ivr')
        now = now or _now()
        agent = Agent.by_extension([to_number], self.company).get(to_number)
        if agent:
            if agent.free(now):
                self._ringing([agent], call_id, from_number, to_number,
                    None, now)
                return {'action': 'agent', 'target': agent.extension,
                    'targets': [agent.extension]}
            return {'action': 'busy', 'target': agent.extension}
        menu = IVR.by_number(to_number, self.company)
        if menu:
            return menu.route_call(call_id, from_number, now)
        queue = Queue.by_number(to_number, self.company)
        if not queue:
            return {'action': 'reject', 'reason': 'unknown_number'}
        return self.to_queue(queue, call_id, from_number, waited, now,
            seen=set())

    def to_queue(self, queue, call_id, from_number, waited, now, seen):
        pool = Pool()
        Party = pool.get('party.party')
        seen.add(queue.id)
        parties = Party._parties_by_contact(
            phones=[normalised(from_number)] if from_number else [])
        found = parties.get((normalised(from_number) or '').lower(), ())
        party = Party(min(found)) if len(found) == 1 else None
        if queue.is_open(now):
            agents = queue.choose(party, now)
            if agents:
                self._ringing(agents, call_id, from_number, queue.number,
                    queue, now)
                return {'action': 'agent', 'target': agents[0].extension,
                    'targets': [a.extension for a in agents],
                    'queue': queue.number}
            overflow = queue.overflow_target(waited)
        else:
            overflow = queue.overflow_target(float('inf')) or ('reject', None)
        if not overflow:
            return {'action': 'wait', 'queue': queue.number,
                'retry_after': 5}
        action, other = overflow
        if action == 'queue' and other and other.id not in seen:
            return self.to_queue(other, call_id, from_number, 0, now, seen)
        if action == 'callback':
            pool.get('callcenter.call').request_callback(
                queue, from_number, party, now)
        return {'action': action if action != 'queue' else 'reject',
            'queue': queue.number}

    def _ringing(self, agents, call_id, from_number, to_number, queue, now):
        """The agents ring: no other call is routed to them meanwhile.
        Their last call is no longer theirs: the events of the new one may
        make it answered at once, which only their current call (or none)
        may do to their status"""
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        Agent.set_status(agents, 'ringing', now=now, call=False)
        if queue and queue.strategy == 'round_robin':
            queue.__class__.write([queue], {'last_agent': agents[0].id})
