from trytond.exceptions import UserError
from trytond.model.exceptions import ValidationError


class LeadValidationError(ValidationError):
    pass


class ConversionError(UserError):
    pass


class ActivityValidationError(ValidationError):
    pass
