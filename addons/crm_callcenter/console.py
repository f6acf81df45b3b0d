"""The agent console and the wallboard: the RPC methods their pages call
(web/callcenter/)."""
from trytond.pool import PoolMeta


class Agent(metaclass=PoolMeta):
    __name__ = 'callcenter.agent'


class Queue(metaclass=PoolMeta):
    __name__ = 'callcenter.queue'


class Call(metaclass=PoolMeta):
    __name__ = 'callcenter.call'
