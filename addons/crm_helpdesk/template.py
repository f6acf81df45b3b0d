import string

from trytond.i18n import gettext
from trytond.model import DeactivableMixin, ModelSQL, ModelView, fields

from .exceptions import TemplateError

PLACEHOLDERS = ['number', 'subject', 'party', 'contact', 'agent', 'team',
    'status_url']


class Template(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'helpdesk.template'
    __string__ = "Helpdesk Canned Response"

    name = fields.Char("Name", required=True, translate=True)
    team = fields.Many2One(
        'crm.team', "Team", ondelete='CASCADE',
        help="Offered only for the tickets of this team.")
    body = fields.Text(
        "Text", required=True, translate=True,
        help="Placeholders: ${number}, ${subject}, ${party}, ${contact}, "
        "${agent}, ${team}, ${status_url}.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order.insert(0, ('name', 'ASC'))

    @classmethod
    def validate_fields(cls, templates, field_names):
        super().validate_fields(templates, field_names)
        if field_names and 'body' not in field_names:
            return
        for template in templates:
            names = set()
            for match in string.Template.pattern.finditer(template.body):
                if match.group('invalid') is not None:
                    raise TemplateError(gettext(
                            'crm_helpdesk.msg_template_invalid',
                            template=template.rec_name))
                name = match.group('named') or match.group('braced')
                if name:
                    names.add(name)
            unknown = names - set(PLACEHOLDERS)
            if unknown:
                raise TemplateError(gettext(
                        'crm_helpdesk.msg_template_placeholder',
                        template=template.rec_name,
                        placeholder=', '.join(sorted(unknown)),
                        placeholders=', '.join(PLACEHOLDERS)))

    def render(self, values):
        "The text with the placeholders filled (values: name -> text)"
        return string.Template(self.body).safe_substitute(values)
