import datetime as dt
from collections import defaultdict

from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, ModelSQL, ModelView, fields, sequence_ordered)
from trytond.pool import Pool
from trytond.pyson import Eval

from .exceptions import SLAValidationError
from .ticket import PRIORITIES


class SLA(sequence_ordered(), DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'helpdesk.sla'
    __string__ = "Helpdesk SLA Policy"

    name = fields.Char("Name", required=True, translate=True)
    team = fields.Many2One(
        'crm.team', "Team", required=True, ondelete='CASCADE')
    type = fields.Many2One(
        'helpdesk.type', "Type", ondelete='CASCADE',
        help="Only tickets of this type or of its sub-types.")
    priority = fields.Selection(
        [(None, "")] + PRIORITIES, "Priority", sort=False,
        help="Only tickets of this priority.")
    category = fields.Many2One(
        'party.category', "Customer Category", ondelete='CASCADE',
        help="Only tickets of customers in this category.")
    first_response_time = fields.TimeDelta(
        "First Response", required=True,
        help="Working time until the first answer to the customer.")
    resolution_time = fields.TimeDelta(
        "Resolution", required=True,
        help="Working time until the ticket is solved, not counting the "
        "time it waits on the customer.")
    at_risk = fields.Integer(
        "At Risk From", required=True,
        help="In % of a target: from then on the ticket is at risk.")
    raise_priority = fields.Boolean(
        "Raise Priority When Breached")
    reassign = fields.Selection([
            (None, "No"),
            ('leader', "To the team leader"),
            ('user', "To a user"),
            ], "Reassign When Breached", sort=False)
    reassign_user = fields.Many2One(
        'res.user', "Reassign To",
        states={
            'invisible': Eval('reassign') != 'user',
            'required': Eval('reassign') == 'user',
            })

    @classmethod
    def default_at_risk(cls):
        return 80

    @classmethod
    def validate_fields(cls, policies, field_names):
        super().validate_fields(policies, field_names)
        for policy in policies:
            for name in ['first_response_time', 'resolution_time']:
                if getattr(policy, name) <= dt.timedelta():
                    raise SLAValidationError(gettext(
                            'crm_helpdesk.msg_sla_positive',
                            policy=policy.rec_name,
                            field=cls.__names__(name)['field']))
            if not 0 < policy.at_risk <= 100:
                raise SLAValidationError(gettext(
                        'crm_helpdesk.msg_sla_at_risk',
                        policy=policy.rec_name))

    @classmethod
    def policies(cls):
        """{team id: active policies}, the most specific first when they
        have the same sequence"""
        result = defaultdict(list)
        policies = cls.search([])
        policies.sort(key=lambda p: (
                p.sequence if p.sequence is not None else 2 ** 31,
                -sum(bool(x) for x in [p.type, p.priority, p.category])))
        for policy in policies:
            result[policy.team.id].append(policy)
        return result

    def reassign_user_for(self, ticket):
        "Who gets the ticket when it breaches this policy"
        if self.reassign == 'leader':
            return ticket.team.leader if ticket.team else None
        if self.reassign == 'user':
            return self.reassign_user

    @classmethod
    def on_modification(cls, mode, policies, field_names=None):
        "A changed policy applies to the open tickets of its team"
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        super().on_modification(mode, policies, field_names=field_names)
        if mode != 'create':
            teams = {p.team.id for p in policies}
            tickets = Ticket.search([
                    ('team', 'in', list(teams)),
                    ('closed', '=', None),
                    ])
            Ticket.update_sla(tickets)
