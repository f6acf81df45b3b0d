from trytond.exceptions import UserError
from trytond.model.exceptions import ValidationError


class ProcessError(ValidationError):
    pass


class VersionError(ValidationError):
    pass


class InstanceError(UserError):
    pass


class TaskError(UserError):
    pass
