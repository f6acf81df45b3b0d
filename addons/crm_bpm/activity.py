from trytond.i18n import gettext
from trytond.model import fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import Transaction

from .exceptions import TaskError


class Activity(metaclass=PoolMeta):
    __name__ = 'crm.activity'

    bpm_task = fields.Char("Process Task", readonly=True)
    bpm_element = fields.Char("Process Element", readonly=True)
    bpm_kind = fields.Selection([
            (None, ""),
            ('task', "Task"),
            ('timer', "Timer"),
            ], "Process Entry", readonly=True)
    bpm_outcomes = fields.Char("Possible Outcomes", readonly=True)
    bpm_outcome = fields.Selection(
        'get_bpm_outcomes', "Process Outcome",
        states={
            'invisible': ~Eval('bpm_outcomes'),
            'readonly': Eval('state') != 'planned',
            },
        help="What the process does next depends on it.")

    @classmethod
    def _get_origin(cls):
        return super()._get_origin() + ['bpm.instance']

    @fields.depends('bpm_outcomes')
    def get_bpm_outcomes(self):
        outcomes = [o for o in (self.bpm_outcomes or '').split(',') if o]
        return [(None, '')] + [(o, o) for o in outcomes]

    @classmethod
    def copy(cls, activities, default=None):
        default = default.copy() if default is not None else {}
        for name in ['bpm_task', 'bpm_element', 'bpm_kind', 'bpm_outcomes',
                'bpm_outcome']:
            default.setdefault(name)
        return super().copy(activities, default=default)

    def _process_instance(self):
        origin = self.origin
        if self.bpm_kind and origin and origin.__name__ == 'bpm.instance':
            return origin

    @classmethod
    def do(cls, activities):
        pool = Pool()
        Instance = pool.get('bpm.instance')
        syncing = Transaction().context.get('_bpm_sync')
        instances = []
        for activity in activities:
            instance = activity._process_instance()
            if not instance or syncing or activity.state != 'planned':
                continue
            if activity.bpm_kind == 'timer':
                raise TaskError(gettext(
                        'crm_bpm.msg_activity_timer_done',
                        activity=activity.rec_name))
            if instance.state not in {'running', 'failed'}:
                raise TaskError(gettext(
                        'crm_bpm.msg_activity_instance_not_running',
                        activity=activity.rec_name,
                        instance=instance.rec_name))
            if activity.bpm_outcomes and not activity.bpm_outcome:
                raise TaskError(gettext(
                        'crm_bpm.msg_activity_outcome_required',
                        activity=activity.rec_name,
                        outcomes=activity.bpm_outcomes.replace(',', ', ')))
            instances.append(instance)
        super().do(activities)
        if instances:
            Instance.advance(Instance.browse(list({i.id for i in instances})))

    @classmethod
    def cancel(cls, activities):
        if not Transaction().context.get('_bpm_sync'):
            for activity in activities:
                instance = activity._process_instance()
                if (instance and activity.state == 'planned'
                        and instance.state in {'running', 'suspended'}):
                    raise TaskError(gettext(
                            'crm_bpm.msg_activity_cancel_process',
                            activity=activity.rec_name,
                            instance=instance.rec_name))
        super().cancel(activities)
