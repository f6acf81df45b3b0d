from trytond.exceptions import UserError
from trytond.model.exceptions import ValidationError


class TicketError(UserError):
    pass


class MergeError(UserError):
    pass


class SLAValidationError(ValidationError):
    pass


class TemplateError(ValidationError):
    pass


class InboundEmailError(UserError):
    "A refused inbound email; reason is a stable code for the webhook"

    def __init__(self, message, reason='malformed'):
        super().__init__(message)
        self.reason = reason
