from trytond.pool import Pool, PoolMeta
from trytond.transaction import Transaction


class Rule(metaclass=PoolMeta):
    __name__ = 'ir.rule'

    @classmethod
    def _crm_user_rule_models(cls):
        return super()._crm_user_rule_models() | {
            'callcenter.call', 'callcenter.agent'}

    @classmethod
    def _get_context(cls, model_name):
        pool = Pool()
        Member = pool.get('callcenter.queue.member')
        context = super()._get_context(model_name)
        if model_name == 'callcenter.call':
            # An agent reads the calls of the queues they answer
            context['callcenter_queues'] = Member.queues_of_user(
                Transaction().user)
        return context


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.append(
            ('callcenter.event|drain', "Make Calls of Pending CTI Events"))
