from trytond.pool import PoolMeta


class Rule(metaclass=PoolMeta):
    __name__ = 'ir.rule'

    @classmethod
    def _crm_user_rule_models(cls):
        # Salespeople read their own targets and their teams'
        return super()._crm_user_rule_models() | {'crm.target'} | {
            # Users manage their own scheduled reports
            'crm.report.subscription', 'crm.report.sending'}


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.append(
            ('crm.lead|update_win_probabilities',
                "Update Win Probabilities of Opportunities"))
        cls.method.selection.append(
            ('crm.report.subscription|send_due',
                "Send Scheduled Reports"))
        cls.method.selection.append(
            ('crm.report.summary.refresh|refresh',
                "Refresh Report Summaries"))
