from trytond.exceptions import UserError
from trytond.model.exceptions import ValidationError


class ReportError(UserError):
    pass


class TargetValidationError(ValidationError):
    pass
