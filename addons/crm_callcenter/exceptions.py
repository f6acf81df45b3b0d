from trytond.exceptions import UserError, UserWarning
from trytond.model.exceptions import ValidationError


class CallCenterError(UserError):
    pass


class AgentValidationError(ValidationError):
    pass


class EventError(UserError):
    """A refused CTI event or routing request; fields names what is wrong
    (for the API's HTTP 4xx answer)"""

    def __init__(self, message, fields=None):
        super().__init__(message)
        self.fields = fields or []


class DialError(UserError):
    pass


class CallListWarning(UserWarning):
    pass
