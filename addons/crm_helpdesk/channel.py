from sql import Null
from sql.conditionals import Coalesce

from trytond.model import Index
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


class Message(metaclass=PoolMeta):
    __name__ = 'ir.chat.message'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        # What email to ticket looks up in every conversation: the replies
        # to our messages, a sender's last hour, a ticket's messages.
        # Optional Char fields are searched as COALESCE(column, '').
        cls._sql_indexes.update({
                Index(t, (t.channel, Index.Equality())),
                Index(t, (Coalesce(t.reference, ''), Index.Equality()),
                    where=t.reference != Null),
                Index(t, (Coalesce(t.email, ''), Index.Equality()),
                    (t.create_date, Index.Range()),
                    where=t.user == Null),
                })
