import secrets

from trytond.model import ModelSingleton, ModelSQL, ModelView, fields
from trytond.pool import Pool
from trytond.pyson import Id


class Configuration(ModelSingleton, ModelSQL, ModelView):
    __name__ = 'helpdesk.configuration'
    __string__ = "Helpdesk Configuration"

    ticket_sequence = fields.Many2One(
        'ir.sequence', "Ticket Sequence", required=True,
        domain=[('sequence_type', '=',
                Id('crm_helpdesk', 'sequence_type_ticket'))])
    support_address = fields.Char(
        "Support Address",
        help="The address customers write to; answers are sent from it "
        "and replies come back to it.")
    support_name = fields.Char("Support Name",
        help="The name shown beside the support address.")
    link_validity = fields.Integer(
        "Status Link Validity", required=True,
        help="In days: how long the status link of an email works.")
    loop_limit = fields.Integer(
        "Messages per Sender and Hour", required=True,
        help="More messages than this from one address within an hour are "
        "taken for a mail loop and ignored.")
    max_size = fields.Integer(
        "Maximum Email Size", required=True, help="In MB.")
    template_created = fields.Many2One(
        'helpdesk.template', "Acknowledgement",
        help="Sent to the customer when a ticket is created.")
    template_solved = fields.Many2One(
        'helpdesk.template', "Solved Notice",
        help="Sent to the customer when a ticket is solved.")
    secret = fields.Char("Secret", readonly=True, strip=False)

    @classmethod
    def default_ticket_sequence(cls):
        return Pool().get('ir.model.data').get_id(
            'crm_helpdesk', 'sequence_ticket')

    @classmethod
    def default_link_validity(cls):
        return 30

    @classmethod
    def default_loop_limit(cls):
        return 10

    @classmethod
    def default_max_size(cls):
        return 25

    def get_ticket_sequence(self):
        return self.ticket_sequence

    @classmethod
    def preprocess_values(cls, mode, values):
        values = super().preprocess_values(mode, values)
        if mode == 'create' and not values.get('secret'):
            values['secret'] = secrets.token_hex(32)
        return values

    def get_secret(self):
        """The key of this database's signed links: made with the
        configuration record, which the module's data creates"""
        if not self.secret:
            # The record was deleted by hand: a new key (old links die)
            self.secret = secrets.token_hex(32)
            self.save()
        return self.secret
