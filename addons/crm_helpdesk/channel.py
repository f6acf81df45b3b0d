from trytond.pool import PoolMeta
from trytond.transaction import Transaction


class Channel(metaclass=PoolMeta):
    __name__ = 'ir.chat.channel'

    @classmethod
    def post(cls, resource, content, audience='internal'):
        "A message on a ticket is also an email and an activity"
        message = super().post(resource, content, audience=audience)
        resource = message.channel.resource
        if resource.__name__ == 'helpdesk.ticket':
            resource.on_message(message, system=Transaction().context.get(
                    'helpdesk_system', False))
        return message
