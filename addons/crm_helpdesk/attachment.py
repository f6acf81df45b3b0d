from trytond.model import fields
from trytond.pool import PoolMeta


class Attachment(metaclass=PoolMeta):
    __name__ = 'ir.attachment'

    helpdesk_public = fields.Boolean(
        "Shown to the Customer",
        help="On a ticket: the customer sees and downloads it on the "
        "status page. Files the customer sent are.")

    @classmethod
    def default_helpdesk_public(cls):
        return False
