from trytond.exceptions import UserError


class ReportError(UserError):
    pass
