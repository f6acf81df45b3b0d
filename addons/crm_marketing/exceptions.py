from trytond.exceptions import UserError
from trytond.model.exceptions import ValidationError


class SegmentError(ValidationError):
    pass


class CampaignError(UserError):
    pass
