from urllib.parse import quote

from trytond.pool import Pool, PoolMeta
from trytond.transaction import Transaction

# Models whose record rules depend on who the user is and on their teams
# (other modules add theirs through Rule._crm_user_rule_models).
USER_RULE_MODELS = {'crm.lead', 'crm.activity'}


class Action(metaclass=PoolMeta):
    __name__ = 'ir.action'

    @classmethod
    def get_action_values(cls, type_, action_ids, columns=None):
        values = super().get_action_values(type_, action_ids, columns=columns)
        if type_ == 'ir.action.url':
            # Custom pages live under the database path so that the sao
            # session cookie (Path=/<db>) reaches them.
            database = quote(Transaction().database.name, safe='')
            for value in values:
                if value.get('url') and '{database}' in value['url']:
                    value['url'] = value['url'].replace(
                        '{database}', database)
        return values


class Rule(metaclass=PoolMeta):
    __name__ = 'ir.rule'

    @classmethod
    def _crm_user_rule_models(cls):
        "The models whose rules may use user_id and crm_teams"
        return USER_RULE_MODELS

    @classmethod
    def _get_context(cls, model_name):
        pool = Pool()
        User = pool.get('res.user')
        context = super()._get_context(model_name)
        if model_name in cls._crm_user_rule_models():
            user_id = Transaction().user
            context['user_id'] = user_id
            context['crm_teams'] = User.get_crm_teams(user_id)
        return context

    @classmethod
    def _get_cache_key(cls, model_names):
        key = super()._get_cache_key(model_names)
        if model_names & cls._crm_user_rule_models():
            # Team membership changes clear the rule cache (see crm.team).
            key = (*key, Transaction().user)
        return key


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.extend([
                ('crm.activity|send_reminders',
                    "Remind Users of Upcoming Activities"),
                ('party.party|update_lifecycle_status',
                    "Update Customer Lifecycle Status"),
                ('party.party|update_quality_all',
                    "Update Party Data Quality"),
                ])
