from trytond.exceptions import UserError, UserWarning
from trytond.model.exceptions import ValidationError


class LeadValidationError(ValidationError):
    pass


class ConversionError(UserError):
    pass


class ActivityValidationError(ValidationError):
    pass


class CaptureOriginError(ValidationError):
    pass


class WebhookValidationError(ValidationError):
    pass


class DuplicatePartyWarning(UserWarning):
    pass


class ImportFileError(UserError):
    pass


class MergeError(UserError):
    pass


class WorkingCalendarValidationError(ValidationError):
    pass


class WorkingCalendarError(UserError):
    pass
