from trytond.pool import PoolMeta


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.extend([
                ('crm.segment|refresh_all', "Refresh Segments"),
                ('marketing.campaign|choose_winners',
                    "Send the Winners of A/B Tests"),
                ('crm.lead|update_all_scores', "Update Lead Scores"),
                ])
