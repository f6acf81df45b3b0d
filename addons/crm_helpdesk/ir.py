from trytond.pool import PoolMeta


class Rule(metaclass=PoolMeta):
    __name__ = 'ir.rule'

    @classmethod
    def _crm_user_rule_models(cls):
        return super()._crm_user_rule_models() | {'helpdesk.ticket'}


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.append(
            ('helpdesk.ticket|check_sla', "Check and Escalate Ticket SLAs"))
        cls.method.selection.append(
            ('helpdesk.ticket|drain_inbound_emails',
                "Make Tickets of Pending Support Emails"))
