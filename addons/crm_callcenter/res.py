from trytond.pool import PoolMeta

APPLICATION = 'crm_callcenter'


class UserApplication(metaclass=PoolMeta):
    __name__ = 'res.user.application'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.application.selection.append(
            (APPLICATION, "Call Center Telephony"))
