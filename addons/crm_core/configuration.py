from trytond.model import ModelSingleton, ModelSQL, ModelView, fields


class Configuration(ModelSingleton, ModelSQL, ModelView):
    __name__ = 'crm.configuration'
    __string__ = "CRM Configuration"

    former_after_days = fields.Integer(
        "Former Customer After", required=True,
        domain=[('former_after_days', '>', 0)],
        help="Number of days without a won opportunity after which "
        "a customer becomes a former customer.")
    reminder_minutes = fields.Integer(
        "Activity Reminder", required=True,
        domain=[('reminder_minutes', '>=', 0)],
        help="Minutes before the start of an activity at which "
        "the assigned user is notified.")

    @classmethod
    def default_former_after_days(cls):
        return 365

    @classmethod
    def default_reminder_minutes(cls):
        return 15
