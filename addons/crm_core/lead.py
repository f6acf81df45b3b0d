import datetime as dt
from decimal import Decimal

from sql import Literal, Null
from sql.aggregate import Max

from trytond import backend
from trytond.i18n import gettext
from trytond.model import (
    Check, Index, ModelSQL, ModelView, Workflow, fields, sequence_ordered)
from trytond.modules.currency.fields import Monetary
from trytond.modules.marketing_campaign.marketing import (
    MarketingCampaignMixin)
from trytond.pool import Pool
from trytond.pyson import Bool, Eval, If
from trytond.report import Report
from trytond.tools import grouped_slice
from trytond.transaction import Transaction, without_check_access
from trytond.wizard import Button, StateTransition, StateView, Wizard

from .contact import clean_email, e164
from .exceptions import ConversionError, LeadValidationError

STATE_OF_KIND = {'open': 'open', 'won': 'won', 'lost': 'lost'}
# Converting a lead links an existing party from this duplicate score
LINK_SCORE = 80


class Lead(Workflow, MarketingCampaignMixin, ModelSQL, ModelView):
    __name__ = 'crm.lead'
    __string__ = "CRM Lead"

    _open = {'readonly': Eval('state') != 'open'}

    name = fields.Char("Title", required=True, states=_open)
    type = fields.Selection([
            ('lead', "Lead"),
            ('opportunity', "Opportunity"),
            ], "Type", required=True, readonly=True, sort=False)
    company = fields.Many2One(
        'company.company', "Company", required=True, states=_open)
    party = fields.Many2One(
        'party.party', "Party", ondelete='RESTRICT',
        states={
            'readonly': _open['readonly'],
            'required': Eval('type') == 'opportunity',
            },
        context={'company': Eval('company', -1)}, depends={'company'},
        help="The customer, a company or a person.")
    contact = fields.Many2One(
        'party.party', "Contact Person", ondelete='RESTRICT', states=_open,
        context={'company': Eval('company', -1)}, depends={'company'})
    contact_name = fields.Char(
        "Contact Name", states=_open,
        help="The name of the person, for a lead without party yet.")
    company_name = fields.Char(
        "Company Name", states=_open,
        help="The name of the company, for a lead without party yet.")
    email = fields.Char("Email", states=_open)
    phone = fields.Char(
        "Phone", states=_open, help="Stored in international (E.164) form.")
    country = fields.Many2One(
        'country.country', "Country", states=_open,
        help="Where the contact is, to read local phone numbers.")
    stage = fields.Many2One(
        'crm.stage', "Stage", required=True, ondelete='RESTRICT',
        domain=[['OR',
                ('team', '=', None),
                ('team', '=', Eval('team', -1)),
                ]])
    state = fields.Selection([
            ('open', "Open"),
            ('won', "Won"),
            ('lost', "Lost"),
            ], "State", required=True, readonly=True, sort=False)
    probability = fields.Integer(
        "Probability", required=True, states=_open, help="In %.")
    currency = fields.Function(
        fields.Many2One('currency.currency', "Currency"),
        'on_change_with_currency')
    # Fixed digits: reading the currency of every lead to validate its
    # digits would slow down imports; amounts are rounded to the currency.
    expected_revenue = Monetary(
        "Expected Revenue", currency='currency', digits=(16, 2),
        required=True,
        states={
            'readonly': _open['readonly'] | Bool(Eval('lines')),
            },
        help="Computed from the lines when there are lines.")
    weighted_revenue = fields.Function(Monetary(
            "Weighted Revenue", currency='currency', digits='currency'),
        'on_change_with_weighted_revenue')
    lines = fields.One2Many('crm.lead.line', 'lead', "Lines", states=_open)
    expected_close = fields.Date("Expected Close Date", states=_open)
    expected_close_month = fields.Function(
        fields.Char("Expected Close Month"), 'get_expected_close_month')
    owner = fields.Many2One(
        'res.user', "Owner", ondelete='RESTRICT', states=_open,
        help="The salesperson in charge.")
    team = fields.Many2One(
        'crm.team', "Team", ondelete='RESTRICT', states=_open,
        domain=[('company', '=', Eval('company', -1))])
    priority = fields.Selection([
            ('0', "Low"),
            ('1', "Normal"),
            ('2', "High"),
            ('3', "Very High"),
            ], "Priority", required=True, sort=False)
    description = fields.Text("Description")
    date_conversion = fields.DateTime("Converted On", readonly=True)
    date_closed = fields.DateTime("Closed On", readonly=True)
    quotation_date = fields.DateTime("Quoted On", readonly=True,
        help="When its quotation was first printed.")
    lost_reason = fields.Many2One(
        'crm.lost_reason', "Lost Reason", ondelete='RESTRICT',
        states={'invisible': Eval('state') != 'lost'},
        help="Required once lost (checked when closing).")
    lost_note = fields.Text(
        "Lost Note", states={'invisible': Eval('state') != 'lost'})
    competitor = fields.Many2One(
        'party.party', "Competitor", ondelete='RESTRICT',
        states={'invisible': Eval('state') != 'lost'},
        context={'company': Eval('company', -1)}, depends={'company'},
        help="Who won the deal instead.")
    next_activity_date = fields.Function(
        fields.DateTime("Next Activity"), 'get_next_activity')
    next_activity_subject = fields.Function(
        fields.Char("Next Activity Subject"), 'get_next_activity')
    next_activity_overdue = fields.Function(
        fields.Boolean("Next Activity Overdue"), 'get_next_activity')
    activities = fields.One2Many('crm.activity', 'origin', "Activities")
    duplicate_parties = fields.Function(fields.Many2Many(
            'party.party', None, None, "Existing Parties",
            states={
                'invisible': Bool(Eval('party')) | ~Eval('duplicate_parties'),
                },
            context={'company': Eval('company', -1)}, depends={'company'},
            help="Parties with the email, phone or a similar name of the "
            "lead; converting links the best one if it is a strong match."),
        'on_change_with_duplicate_parties')
    history = fields.One2Many(
        'crm.lead.history', 'lead', "Stage History", readonly=True)

    del _open

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        # A check in SQL rather than a field domain: leads are created by
        # the thousand (imports, web forms) and a domain costs a query.
        cls._sql_constraints += [
            ('probability_range',
                Check(t, (t.probability >= 0) & (t.probability <= 100)),
                'crm_core.msg_lead_probability_range'),
            ]
        cls._sql_indexes.update({
                # The pipeline board reads one team's open stages.
                Index(t,
                    (t.company, Index.Range()),
                    (t.team, Index.Range()),
                    (t.stage, Index.Range()),
                    (t.state, Index.Equality())),
                Index(t, (t.owner, Index.Range())),
                Index(t, (t.party, Index.Range())),
                Index(t, (t.state, Index.Equality(cardinality='low')),
                    where=t.state == 'open'),
                # The won and lost columns of the board show recent deals.
                Index(t,
                    (t.team, Index.Range()),
                    (t.stage, Index.Range()),
                    (t.date_closed, Index.Range(order='DESC')),
                    where=t.state.in_(['won', 'lost'])),
                })
        cls._order = [
            ('priority', 'DESC'),
            ('create_date', 'DESC'),
            ('id', 'DESC'),
            ]
        cls._transitions |= {
            ('open', 'won'),
            ('open', 'lost'),
            ('won', 'open'),
            ('lost', 'open'),
            }
        cls._buttons.update({
                'convert': {
                    'invisible': ((Eval('type') != 'lead')
                        | (Eval('state') != 'open')),
                    'icon': 'tryton-forward',
                    },
                'won': {
                    'invisible': Eval('state') != 'open',
                    'icon': 'tryton-ok',
                    },
                'lost': {
                    'invisible': Eval('state') != 'open',
                    'icon': 'tryton-cancel',
                    },
                'reopen': {
                    'invisible': Eval('state') == 'open',
                    'icon': 'tryton-undo',
                    },
                })

    @classmethod
    def default_type(cls):
        return 'lead'

    @classmethod
    def default_state(cls):
        return 'open'

    @classmethod
    def default_priority(cls):
        return '1'

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_owner(cls):
        return Transaction().user or None

    @classmethod
    def default_team(cls):
        pool = Pool()
        User = pool.get('res.user')
        Team = pool.get('crm.team')
        company = Transaction().context.get('company')
        for team in Team.browse(User.get_crm_teams(Transaction().user)):
            if team.company.id == company:
                return team.id

    @classmethod
    def default_expected_revenue(cls):
        return Decimal(0)

    @classmethod
    def default_probability(cls):
        stage = cls.first_open_stage(cls.default_team())
        return stage.probability if stage else 0

    @classmethod
    def default_stage(cls):
        stage = cls.first_open_stage(cls.default_team())
        return stage.id if stage else None

    @classmethod
    def first_open_stage(cls, team_id):
        pool = Pool()
        Stage = pool.get('crm.stage')
        Team = pool.get('crm.team')
        team = Team(team_id) if team_id is not None else None
        stages = Stage.for_team(team, kind='open')
        return stages[0] if stages else None

    @fields.depends('team', 'stage')
    def on_change_team(self):
        if self.stage and self.stage.team and self.stage.team != self.team:
            self.stage = self.first_open_stage(
                self.team.id if self.team else None)

    @fields.depends('stage')
    def on_change_stage(self):
        if self.stage:
            self.probability = self.stage.probability

    @fields.depends('company')
    def on_change_with_currency(self, name=None):
        return self.company.currency if self.company else None

    @fields.depends('lines', 'expected_revenue')
    def on_change_lines(self):
        if self.lines:
            self.expected_revenue = sum(
                (l.amount or 0 for l in self.lines), Decimal(0))

    @fields.depends('expected_revenue', 'probability', 'currency')
    def on_change_with_weighted_revenue(self, name=None):
        amount = (self.expected_revenue or 0) * (self.probability or 0) / 100
        amount = Decimal(amount)
        if self.currency:
            return self.currency.round(amount)
        return amount.quantize(Decimal('0.01'))

    def get_expected_close_month(self, name):
        if self.expected_close:
            return self.expected_close.strftime('%Y-%m')

    @classmethod
    def get_next_activity(cls, leads, names):
        "The first planned activity of each lead, in one query"
        pool = Pool()
        Activity = pool.get('crm.activity')
        result = {n: {l.id: None for l in leads} for n in names}
        if 'next_activity_overdue' in result:
            result['next_activity_overdue'] = {l.id: False for l in leads}
        first = Activity.first_planned_starts(leads)
        if not first:
            return result
        activities = Activity.search([
                ('origin', 'in', list(first.keys())),
                ('state', '=', 'planned'),
                ('start', 'in', list(set(first.values()))),
                ], order=[('start', 'ASC'), ('id', 'ASC')])
        now = dt.datetime.now()
        seen = set()
        for activity in activities:
            lead_id = activity.origin.id
            if lead_id in seen:
                continue
            seen.add(lead_id)
            if 'next_activity_date' in result:
                result['next_activity_date'][lead_id] = activity.start
            if 'next_activity_subject' in result:
                result['next_activity_subject'][lead_id] = activity.subject
            if 'next_activity_overdue' in result:
                result['next_activity_overdue'][lead_id] = (
                    activity.start < now)
        return result

    def get_rec_name(self, name):
        party = self.party or self.contact
        name = self.name
        if party:
            name = f'{name} - {party.rec_name}'
        elif self.company_name or self.contact_name:
            name = f'{name} - {self.company_name or self.contact_name}'
        return name

    @classmethod
    def search_rec_name(cls, name, clause):
        _, operator, operand, *extra = clause
        if operator.startswith('!') or operator.startswith('not '):
            bool_op = 'AND'
        else:
            bool_op = 'OR'
        return [bool_op,
            ('name', operator, operand, *extra),
            ('party.rec_name', operator, operand, *extra),
            ('contact_name', operator, operand, *extra),
            ('company_name', operator, operand, *extra),
            ('email', operator, operand, *extra),
            ]

    @classmethod
    def view_attributes(cls):
        return super().view_attributes() + [
            ('/tree', 'visual',
                If(Eval('state') == 'won', 'success',
                    If(Eval('state') == 'lost', 'muted', ''))),
            ('/tree/field[@name="next_activity_date"]', 'visual',
                If(Eval('next_activity_overdue', False), 'danger', '')),
            ]

    @classmethod
    def preprocess_values(cls, mode, values):
        pool = Pool()
        Stage = pool.get('crm.stage')
        Team = pool.get('crm.team')
        Country = pool.get('country.country')
        values = super().preprocess_values(mode, values)
        if mode == 'create':
            if values.get('type') == 'opportunity':
                values.setdefault('date_conversion', dt.datetime.now())
            # The same columns for every kind of lead: trytond inserts a
            # batch in one statement only while the columns do not change
            values.setdefault('date_conversion', None)
            values.setdefault('lost_reason', None)
            if not values.get('owner') and values.get('team'):
                team = Team(values['team'])
                if team.round_robin:
                    owner_id, = team.next_owners(1)
                    if owner_id:
                        values['owner'] = owner_id
            if not values.get('stage'):
                stage = cls.first_open_stage(values.get('team'))
                if not stage:
                    raise LeadValidationError(gettext(
                            'crm_core.msg_lead_no_stage'))
                values['stage'] = stage.id
                values.setdefault('probability', stage.probability)
        if values.get('stage'):
            stage = Stage(values['stage'])
            values['state'] = STATE_OF_KIND[stage.kind]
            if stage.kind == 'won':
                values['probability'] = 100
            elif stage.kind == 'lost':
                values['probability'] = 0
            elif 'probability' not in values:
                values['probability'] = stage.probability
            if stage.kind in {'won', 'lost'}:
                values.setdefault('date_closed', dt.datetime.now())
            else:
                values['date_closed'] = None
                values.setdefault('lost_reason', None)
        if values.get('email'):
            try:
                values['email'] = clean_email(values['email'])
            except ValueError:
                raise LeadValidationError(gettext(
                        'crm_core.msg_lead_email_invalid',
                        email=values['email']))
        if values.get('phone'):
            country = values.get('country')
            code = Country(country).code if country else None
            try:
                values['phone'] = e164(values['phone'], code)
            except ValueError:
                raise LeadValidationError(gettext(
                        'crm_core.msg_lead_phone_invalid',
                        phone=values['phone']))
        return values

    @classmethod
    def check_modification(cls, mode, leads, values=None, external=False):
        pool = Pool()
        Stage = pool.get('crm.stage')
        super().check_modification(
            mode, leads, values=values, external=external)
        if (mode == 'write' and values.get('stage')
                and 'lost_reason' not in values
                and Stage(values['stage']).kind == 'lost'):
            # Refuse before writing: a lost deal always says why
            for lead in leads:
                if not lead.lost_reason:
                    raise LeadValidationError(gettext(
                            'crm_core.msg_lead_lost_reason',
                            lead=lead.rec_name))
        if mode == 'delete':
            for lead in leads:
                if lead.state != 'open' and external:
                    raise LeadValidationError(gettext(
                            'crm_core.msg_lead_delete_closed',
                            lead=lead.rec_name))

    @classmethod
    def on_modification(cls, mode, leads, field_names=None):
        pool = Pool()
        History = pool.get('crm.lead.history')
        Party = pool.get('party.party')
        super().on_modification(mode, leads, field_names=field_names)
        if mode == 'create':
            History.record(leads, created=True)
        elif field_names and field_names & {'stage', 'state'}:
            History.record(leads)
        if mode in {'create', 'write'}:
            won_parties = cls.won_parties(leads)
            if won_parties:
                Party.become_customers(won_parties)

    @classmethod
    def won_parties(cls, leads):
        "The parties of the won leads, read in SQL (leads come by batches)"
        pool = Pool()
        Party = pool.get('party.party')
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        party_ids = set()
        for sub_ids in grouped_slice(
                [l.id for l in leads], backend.MAX_QUERY_PARAMS):
            cursor.execute(*table.select(table.party,
                    where=table.id.in_(list(sub_ids))
                    & (table.state == 'won') & (table.party != Null),
                    group_by=[table.party]))
            party_ids.update(p for p, in cursor)
        return Party.browse(sorted(party_ids))

    @classmethod
    def validate_fields(cls, leads, field_names):
        super().validate_fields(leads, field_names)
        if field_names is None or field_names & {
                'stage', 'state', 'lost_reason'}:
            for lead in leads:
                if lead.state == 'lost' and not lead.lost_reason:
                    raise LeadValidationError(gettext(
                            'crm_core.msg_lead_lost_reason',
                            lead=lead.rec_name))

    @classmethod
    def copy(cls, leads, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('history')
        default.setdefault('activities')
        default.setdefault('date_conversion')
        default.setdefault('date_closed')
        default.setdefault('quotation_date')
        default.setdefault('lost_reason')
        default.setdefault('stage')
        default.setdefault('state', 'open')
        return super().copy(leads, default=default)

    @classmethod
    def update_expected_revenue(cls, leads):
        "Sum the lines of the leads that have lines"
        to_write = []
        for lead in cls.browse(leads):
            if lead.lines:
                amount = sum((l.amount for l in lead.lines), Decimal(0))
                if amount != lead.expected_revenue:
                    to_write.extend(([lead], {'expected_revenue': amount}))
        if to_write:
            cls.write(*to_write)

    def stage_of_kind(self, kind):
        pool = Pool()
        Stage = pool.get('crm.stage')
        stages = Stage.for_team(self.team, kind=kind)
        if not stages:
            raise LeadValidationError(gettext(
                    'crm_core.msg_lead_no_stage_kind',
                    kind=kind, lead=self.rec_name))
        return stages[0]

    @classmethod
    def _move_to_kind(cls, leads, kind, **values):
        to_write = []
        for lead in leads:
            to_write.extend((
                    [lead], {'stage': lead.stage_of_kind(kind).id, **values}))
        if to_write:
            cls.write(*to_write)

    @classmethod
    @ModelView.button
    def convert(cls, leads):
        "Turn leads into opportunities, linking or creating their party"
        for lead in leads:
            if lead.type != 'lead' or lead.state != 'open':
                continue
            if not lead.party:
                lead.link_or_create_party()
            lead.type = 'opportunity'
            lead.date_conversion = dt.datetime.now()
        cls.save(leads)

    def _contact_lookup(self):
        "The email and phone lists of the raw contact data"
        emails, phones = [], []
        if self.email:
            try:
                emails.append(clean_email(self.email))
            except ValueError:
                pass
        if self.phone:
            try:
                phones.append(e164(
                    self.phone, self.country.code if self.country else None))
            except ValueError:
                pass
        return emails, phones

    def duplicate_candidates(self, limit=10):
        """The existing parties that may be the lead's contact or company:
        [(party, score, reasons)] best first"""
        pool = Pool()
        Party = pool.get('party.party')
        emails, phones = self._contact_lookup()
        found = {}
        lookups = []
        if self.contact_name or emails or phones:
            lookups.append((self.contact_name, emails, phones))
        if self.company_name:
            lookups.append((self.company_name, [], []))
        for name, emails, phones in lookups:
            for party, score, reasons in Party.duplicate_candidates(
                    name=name, emails=emails, phones=phones, limit=limit):
                if party.id not in found or found[party.id][1] < score:
                    found[party.id] = (party, score, reasons)
        return sorted(found.values(), key=lambda c: (-c[1], c[0].id))[:limit]

    @fields.depends(
        'contact_name', 'company_name', 'email', 'phone', 'country')
    def on_change_with_duplicate_parties(self, name=None):
        return [p for p, _, _ in self.duplicate_candidates(limit=5)]

    def link_or_create_party(self):
        """Set the party from the raw contact data of the lead: the best
        existing party when it is a strong match (score of at least
        LINK_SCORE), else a new one"""
        pool = Pool()
        Party = pool.get('party.party')
        if not (self.company_name or self.contact_name):
            raise ConversionError(gettext(
                    'crm_core.msg_lead_convert_no_party',
                    lead=self.rec_name))
        emails, phones = self._contact_lookup()
        person = organisation = None
        if self.company_name:
            organisation = Party.find_or_create_company(
                self.company_name, self.country)
        if self.contact_name or not self.company_name:
            for party, score, _ in Party.duplicate_candidates(
                    name=self.contact_name, emails=emails, phones=phones,
                    exclude_ids=[organisation.id] if organisation else [],
                    limit=1):
                if score >= LINK_SCORE:
                    person = party
        if self.company_name:
            if not person and self.contact_name:
                person = Party.create_contact_person(
                    self.contact_name, organisation,
                    self.email, self.phone, self.country)
            self.party = organisation
            self.contact = person
        else:
            if not person:
                person = Party.create_contact_person(
                    self.contact_name, None,
                    self.email, self.phone, self.country)
            self.party = person

    @classmethod
    @ModelView.button
    @Workflow.transition('won')
    def won(cls, leads):
        cls._move_to_kind(leads, 'won')

    @classmethod
    @ModelView.button_action('crm_core.wizard_lead_lost')
    def lost(cls, leads):
        pass

    @classmethod
    def mark_lost(cls, leads, reason, note=None, competitor=None):
        "Close the leads as lost for the reason"
        leads = [l for l in leads if l.state == 'open']
        cls._move_to_kind(leads, 'lost',
            lost_reason=reason.id, lost_note=note,
            competitor=competitor.id if competitor else None)

    @classmethod
    @ModelView.button
    @Workflow.transition('open')
    def reopen(cls, leads):
        pool = Pool()
        History = pool.get('crm.lead.history')
        to_write = []
        for lead in leads:
            stage = History.last_open_stage(lead) or lead.stage_of_kind('open')
            to_write.extend(([lead], {
                        'stage': stage.id,
                        'lost_reason': None,
                        'lost_note': None,
                        'competitor': None,
                        }))
        if to_write:
            cls.write(*to_write)


class LeadLine(sequence_ordered(), ModelSQL, ModelView):
    __name__ = 'crm.lead.line'
    __string__ = "CRM Lead Line"

    lead = fields.Many2One(
        'crm.lead', "Lead", required=True, ondelete='CASCADE')
    product = fields.Many2One(
        'product.product', "Product", ondelete='RESTRICT',
        context={'company': Eval('company', -1)}, depends={'company'})
    description = fields.Text("Description")
    quantity = fields.Float("Quantity", digits='unit', required=True)
    unit = fields.Many2One(
        'product.uom', "Unit", ondelete='RESTRICT',
        states={'required': Bool(Eval('product'))})
    unit_price = Monetary(
        "Unit Price", currency='currency', digits=(16, 4), required=True)
    amount = fields.Function(Monetary(
            "Amount", currency='currency', digits='currency'),
        'on_change_with_amount')
    currency = fields.Function(
        fields.Many2One('currency.currency', "Currency"),
        'on_change_with_currency')
    company = fields.Function(
        fields.Many2One('company.company', "Company"),
        'on_change_with_company')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('lead')

    @classmethod
    def default_quantity(cls):
        return 1

    @fields.depends('lead', '_parent_lead.company')
    def on_change_with_company(self, name=None):
        return self.lead.company if self.lead else None

    @fields.depends('lead', '_parent_lead.company')
    def on_change_with_currency(self, name=None):
        if self.lead and self.lead.company:
            return self.lead.company.currency

    @fields.depends('product', 'unit', 'description')
    def on_change_product(self):
        if self.product:
            self.unit = self.product.default_uom
            if not self.description:
                self.description = self.product.rec_name
            self.unit_price = self.product.list_price_used

    @fields.depends('quantity', 'unit_price', 'currency')
    def on_change_with_amount(self, name=None):
        amount = Decimal(str(self.quantity or 0)) * (
            self.unit_price or Decimal(0))
        if self.currency:
            return self.currency.round(amount)
        return amount.quantize(Decimal('0.01'))

    def get_rec_name(self, name):
        return self.description or (
            self.product.rec_name if self.product else '')

    @classmethod
    def on_modification(cls, mode, lines, field_names=None):
        pool = Pool()
        Lead = pool.get('crm.lead')
        super().on_modification(mode, lines, field_names=field_names)
        if mode in {'create', 'write'}:
            Lead.update_expected_revenue(list({l.lead for l in lines}))

    @classmethod
    def on_delete(cls, lines):
        pool = Pool()
        Lead = pool.get('crm.lead')
        callbacks = super().on_delete(lines)
        leads = list({l.lead for l in lines})
        callbacks.append(
            lambda: Lead.update_expected_revenue(Lead.browse(
                    Lead.search([('id', 'in', [l.id for l in leads])]))))
        return callbacks


class LeadHistory(ModelSQL, ModelView):
    __name__ = 'crm.lead.history'
    __string__ = "CRM Lead Stage History"

    lead = fields.Many2One(
        'crm.lead', "Lead", required=True, ondelete='CASCADE')
    date = fields.DateTime("Date", required=True)
    user = fields.Many2One('res.user', "User", ondelete='SET NULL')
    from_stage = fields.Many2One(
        'crm.stage', "From Stage", ondelete='RESTRICT')
    to_stage = fields.Many2One(
        'crm.stage', "To Stage", required=True, ondelete='RESTRICT')
    from_state = fields.Selection(
        'get_states', "From State")
    to_state = fields.Selection('get_states', "To State", required=True)
    type = fields.Selection('get_types', "Type", required=True)
    expected_revenue = fields.Numeric("Expected Revenue", digits=(16, 2))
    probability = fields.Integer("Probability")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('lead')
        t = cls.__table__()
        cls._sql_indexes.add(
            Index(t, (t.lead, Index.Range()), (t.date, Index.Range())))
        cls._order = [('date', 'DESC'), ('id', 'DESC')]

    @classmethod
    def get_states(cls):
        pool = Pool()
        Lead = pool.get('crm.lead')
        return [(None, '')] + Lead.fields_get(['state'])['state']['selection']

    @classmethod
    def get_types(cls):
        pool = Pool()
        Lead = pool.get('crm.lead')
        return Lead.fields_get(['type'])['type']['selection']

    @classmethod
    def record(cls, leads, created=False):
        """Keep a row for each lead whose stage or state differs from its
        last row. Done in SQL: it follows every change of every lead, and
        imports create them by the thousand."""
        pool = Pool()
        Lead = pool.get('crm.lead')
        transaction = Transaction()
        cursor = transaction.connection.cursor()
        table = cls.__table__()
        previous = cls.__table__()
        lead = Lead.__table__()
        user = transaction.user or None
        now = dt.datetime.now()
        columns = [
            table.lead, table.date, table.user,
            table.from_stage, table.from_state,
            table.to_stage, table.to_state, table.type,
            table.expected_revenue, table.probability,
            table.create_uid, table.create_date]
        for sub_ids in grouped_slice(
                [l.id for l in leads], backend.MAX_QUERY_PARAMS):
            sub_ids = list(sub_ids)
            if created:
                from_, where = lead, lead.id.in_(sub_ids)
                from_stage = from_state = Literal(None)
            else:
                last = table.select(
                    table.lead, Max(table.id).as_('id'),
                    where=table.lead.in_(sub_ids),
                    group_by=[table.lead])
                from_ = lead.join(last, 'LEFT',
                    condition=last.lead == lead.id).join(previous, 'LEFT',
                    condition=previous.id == last.id)
                from_stage, from_state = previous.to_stage, previous.to_state
                where = lead.id.in_(sub_ids) & (
                    (previous.id == Null)
                    | (previous.to_stage != lead.stage)
                    | (previous.to_state != lead.state))
            cursor.execute(*table.insert(columns, from_.select(
                        lead.id, Literal(now), Literal(user),
                        from_stage, from_state,
                        lead.stage, lead.state, lead.type,
                        lead.expected_revenue, lead.probability,
                        Literal(transaction.user), Literal(now),
                        where=where)))

    @classmethod
    def last_open_stage(cls, lead):
        rows = cls.search([
                ('lead', '=', lead.id),
                ('to_state', '=', 'open'),
                ], limit=1)
        if rows:
            return rows[0].to_stage


class LostStart(ModelView):
    __name__ = 'crm.lead.lost.start'
    __string__ = "Mark Lead as Lost"

    reason = fields.Many2One('crm.lost_reason', "Reason", required=True)
    note = fields.Text("Note")
    competitor = fields.Many2One('party.party', "Competitor")


class Lost(Wizard):
    __name__ = 'crm.lead.lost'
    start = StateView('crm.lead.lost.start',
        'crm_core.lead_lost_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Lost", 'lost', 'tryton-ok', default=True),
            ])
    lost = StateTransition()

    def transition_lost(self):
        self.model.mark_lost(
            self.records, self.start.reason,
            note=self.start.note, competitor=self.start.competitor)
        return 'end'


class Quotation(Report):
    __name__ = 'crm.lead.quotation'

    @classmethod
    def execute(cls, ids, data):
        result = super().execute(ids, data)
        cls.date_quotations(ids)
        return result

    @classmethod
    def date_quotations(cls, ids):
        """The first print of their quotation dates the leads (the open
        quotes by age), in a transaction of its own when the report's is
        read-only (as over RPC)"""
        pool = Pool()
        Lead = pool.get('crm.lead')
        transaction = Transaction()

        def write():
            with without_check_access():
                leads = Lead.search([
                        ('id', 'in', list(map(int, ids))),
                        ('quotation_date', '=', None),
                        ])
                if leads:
                    Lead.write(leads, {'quotation_date': dt.datetime.now()})
        if not transaction.readonly:
            write()
            return
        with transaction.new_transaction() as new:
            write()
            new.commit()

    @classmethod
    def get_context(cls, records, header, data):
        context = super().get_context(records, header, data)
        context['today'] = dt.date.today()
        return context
