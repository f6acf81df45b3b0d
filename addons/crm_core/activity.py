import datetime as dt

from sql.aggregate import Min

from trytond import backend
from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Workflow, fields
from trytond.pool import Pool
from trytond.pyson import Eval, If
from trytond.tools import grouped_slice
from trytond.transaction import Transaction
from trytond.wizard import Button, StateTransition, StateView, Wizard

from .exceptions import ActivityValidationError

TYPES = [
    ('call', "Call"),
    ('meeting', "Meeting"),
    ('email', "Email"),
    ('task', "Task"),
    ]


class Activity(Workflow, ModelSQL, ModelView):
    __name__ = 'crm.activity'
    __string__ = "CRM Activity"

    _planned = {'readonly': Eval('state') != 'planned'}

    type = fields.Selection(
        TYPES, "Type", required=True, sort=False, states=_planned)
    subject = fields.Char("Subject", required=True, states=_planned)
    description = fields.Text("Description")
    company = fields.Many2One(
        'company.company', "Company", required=True, states=_planned)
    party = fields.Many2One(
        'party.party', "Party", ondelete='CASCADE', states=_planned,
        context={'company': Eval('company', -1)}, depends={'company'})
    origin = fields.Reference(
        "Origin", selection='get_origins', states=_planned,
        help="The record this activity is about.")
    start = fields.DateTime("Start", required=True, states=_planned)
    end = fields.DateTime(
        "End", states=_planned,
        domain=[If(Eval('end') & Eval('start'),
                ('end', '>=', Eval('start')), ())])
    user = fields.Many2One(
        'res.user', "Assigned To", required=True, ondelete='RESTRICT',
        states=_planned)
    state = fields.Selection([
            ('planned', "Planned"),
            ('done', "Done"),
            ('cancelled', "Cancelled"),
            ], "State", required=True, readonly=True, sort=False)
    outcome = fields.Text(
        "Outcome", states={'invisible': Eval('state') == 'planned'},
        help="What came out of it.")
    date_done = fields.DateTime("Done On", readonly=True)
    reminded = fields.Boolean("Reminded", readonly=True)
    overdue = fields.Function(
        fields.Boolean("Overdue"), 'get_overdue', searcher='search_overdue')

    del _planned

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.origin, Index.Equality()),
                    (t.start, Index.Range()),
                    where=t.state == 'planned'),
                # The history of a record (last done activity of a lead)
                Index(t, (t.origin, Index.Equality()),
                    (t.start, Index.Range())),
                Index(t, (t.party, Index.Range()), (t.start, Index.Range())),
                Index(t, (t.user, Index.Range()), (t.start, Index.Range())),
                Index(t, (t.start, Index.Range()),
                    where=(t.state == 'planned') & (t.reminded == False)),
                })
        cls._order = [('start', 'DESC'), ('id', 'DESC')]
        cls._transitions |= {
            ('planned', 'done'),
            ('planned', 'cancelled'),
            ('done', 'planned'),
            ('cancelled', 'planned'),
            }
        cls._buttons.update({
                'do': {
                    'invisible': Eval('state') != 'planned',
                    'icon': 'tryton-ok',
                    },
                'cancel': {
                    'invisible': Eval('state') != 'planned',
                    'icon': 'tryton-cancel',
                    },
                'plan': {
                    'invisible': Eval('state') == 'planned',
                    'icon': 'tryton-undo',
                    },
                })

    @classmethod
    def default_type(cls):
        return 'call'

    @classmethod
    def default_state(cls):
        return 'planned'

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_user(cls):
        return Transaction().user or None

    @classmethod
    def default_start(cls):
        return dt.datetime.now().replace(second=0, microsecond=0)

    @classmethod
    def default_reminded(cls):
        return False

    @classmethod
    def _get_origin(cls):
        "Models an activity can be about; other modules add theirs"
        return ['crm.lead', 'party.party']

    @classmethod
    def get_origins(cls):
        pool = Pool()
        IrModel = pool.get('ir.model')
        get_name = IrModel.get_name
        return [(None, '')] + [(m, get_name(m)) for m in cls._get_origin()]

    @fields.depends('origin', 'party', '_parent_party.id')
    def on_change_origin(self):
        if not self.party and self.origin and self.origin.id >= 0:
            party = self.party_of(self.origin)
            if party:
                self.party = party

    @staticmethod
    def party_of(origin):
        "The party an origin record is about"
        if origin is None:
            return None
        if origin.__name__ == 'party.party':
            return origin
        return getattr(origin, 'party', None)

    @fields.depends('start', 'end')
    def on_change_start(self):
        if self.start and (not self.end or self.end < self.start):
            self.end = self.start + dt.timedelta(minutes=30)

    @classmethod
    def view_attributes(cls):
        return super().view_attributes() + [
            ('/tree', 'visual',
                If(Eval('overdue', False), 'danger',
                    If(Eval('state') != 'planned', 'muted', ''))),
            ]

    def get_overdue(self, name):
        return self.state == 'planned' and self.start < dt.datetime.now()

    @classmethod
    def search_overdue(cls, name, clause):
        _, operator, value = clause
        overdue = [
            ('state', '=', 'planned'),
            ('start', '<', dt.datetime.now()),
            ]
        if (operator == '=') == bool(value):
            return overdue
        return ['OR', ('state', '!=', 'planned'),
            ('start', '>=', dt.datetime.now())]

    def get_rec_name(self, name):
        return self.subject

    @classmethod
    def search_rec_name(cls, name, clause):
        return [('subject', *clause[1:])]

    @classmethod
    def preprocess_values(cls, mode, values):
        values = super().preprocess_values(mode, values)
        if mode == 'create':
            if values.get('start') and not values.get('end'):
                values['end'] = values['start'] + dt.timedelta(minutes=30)
            origin = values.get('origin')
            if origin and not values.get('party'):
                party = cls.party_of(cls(origin=origin).origin)
                if party:
                    values['party'] = party.id
        if 'start' in values:
            # A moved activity deserves a new reminder
            values.setdefault('reminded', False)
        return values

    @classmethod
    def validate_fields(cls, activities, field_names):
        super().validate_fields(activities, field_names)
        if field_names is None or field_names & {'start', 'end'}:
            for activity in activities:
                if activity.end and activity.end < activity.start:
                    raise ActivityValidationError(gettext(
                            'crm_core.msg_activity_end_before_start',
                            activity=activity.rec_name))

    @classmethod
    def copy(cls, activities, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('state', 'planned')
        default.setdefault('date_done')
        default.setdefault('reminded', False)
        default.setdefault('outcome')
        return super().copy(activities, default=default)

    @classmethod
    @ModelView.button
    @Workflow.transition('done')
    def do(cls, activities):
        cls.write(activities, {'date_done': dt.datetime.now()})

    @classmethod
    @ModelView.button
    @Workflow.transition('cancelled')
    def cancel(cls, activities):
        pass

    @classmethod
    @ModelView.button
    @Workflow.transition('planned')
    def plan(cls, activities):
        cls.write(activities, {'date_done': None})

    @classmethod
    def first_planned_starts(cls, origins):
        "Return {origin: start} of the first planned activity of each origin"
        activity = cls.__table__()
        cursor = Transaction().connection.cursor()
        result = {}
        for sub_origins in grouped_slice(
                [str(o) for o in origins], backend.MAX_QUERY_PARAMS):
            cursor.execute(*activity.select(
                    activity.origin, Min(activity.start),
                    where=activity.origin.in_(list(sub_origins))
                    & (activity.state == 'planned'),
                    group_by=[activity.origin]))
            for origin, start in cursor:
                if isinstance(start, str):
                    # SQLite does not convert aggregates
                    start = dt.datetime.fromisoformat(start)
                result[origin] = start
        return result

    @classmethod
    def send_reminders(cls):
        "Notify the assigned users of the activities that start soon"
        pool = Pool()
        Configuration = pool.get('crm.configuration')
        config = Configuration(1)
        now = dt.datetime.now()
        soon = now + dt.timedelta(minutes=config.reminder_minutes)
        activities = cls.search([
                ('state', '=', 'planned'),
                ('reminded', '=', False),
                ('start', '>=', now - dt.timedelta(minutes=1)),
                ('start', '<=', soon),
                ], order=[('start', 'ASC')])
        for activity in activities:
            minutes = max(0, round(
                    (activity.start - now).total_seconds() / 60))
            cls.notify_user(
                [activity], 'tryton-calendar',
                gettext('crm_core.msg_activity_reminder_label',
                    activity=activity.rec_name),
                gettext('crm_core.msg_activity_reminder_description',
                    minutes=minutes,
                    party=activity.party.rec_name if activity.party else ''),
                user=activity.user.id)
        if activities:
            cls.write(activities, {'reminded': True})


class ScheduleStart(ModelView):
    __name__ = 'crm.activity.schedule.start'
    __string__ = "Schedule Activity"

    type = fields.Selection(TYPES, "Type", required=True, sort=False)
    subject = fields.Char("Subject", required=True)
    start = fields.DateTime("Start", required=True)
    end = fields.DateTime(
        "End", domain=[If(Eval('end') & Eval('start'),
                ('end', '>=', Eval('start')), ())])
    user = fields.Many2One('res.user', "Assigned To", required=True)
    description = fields.Text("Description")

    @classmethod
    def default_type(cls):
        return 'call'

    @classmethod
    def default_user(cls):
        return Transaction().user or None

    @classmethod
    def default_start(cls):
        start = dt.datetime.now().replace(minute=0, second=0, microsecond=0)
        return start + dt.timedelta(days=1)

    @fields.depends('start', 'end')
    def on_change_start(self):
        if self.start and (not self.end or self.end < self.start):
            self.end = self.start + dt.timedelta(minutes=30)


class Schedule(Wizard):
    __name__ = 'crm.activity.schedule'
    start = StateView('crm.activity.schedule.start',
        'crm_core.activity_schedule_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Schedule", 'schedule', 'tryton-ok', default=True),
            ])
    schedule = StateTransition()

    def transition_schedule(self):
        pool = Pool()
        Activity = pool.get('crm.activity')
        activities = []
        for record in self.records:
            activity = Activity(
                type=self.start.type,
                subject=self.start.subject,
                description=self.start.description,
                start=self.start.start,
                end=self.start.end,
                user=self.start.user,
                origin=record,
                company=getattr(record, 'company', None)
                or Transaction().context.get('company'))
            activity.party = Activity.party_of(record)
            activities.append(activity)
        Activity.save(activities)
        return 'end'
