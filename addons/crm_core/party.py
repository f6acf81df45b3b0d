import datetime as dt

from sql import Null
from sql.aggregate import Max

from trytond.i18n import gettext
from trytond.model import Index, fields
from trytond.model.exceptions import AccessError
from trytond.pool import Pool, PoolMeta
from trytond.transaction import Transaction, without_check_access


class Party(metaclass=PoolMeta):
    __name__ = 'party.party'

    lifecycle_status = fields.Selection([
            ('prospect', "Prospect"),
            ('customer', "Customer"),
            ('former', "Former Customer"),
            ], "Lifecycle Status", required=True, sort=False,
        help="Becomes customer when an opportunity is won, "
        "former after a while without won opportunity.")
    owner = fields.Many2One(
        'res.user', "Owner", ondelete='SET NULL',
        help="The salesperson in charge of the customer.")
    leads = fields.One2Many('crm.lead', 'party', "Leads and Opportunities")
    upcoming_activities = fields.One2Many(
        'crm.activity', 'party', "Upcoming Activities",
        filter=[('state', '=', 'planned')], order=[('start', 'ASC')])
    activity_history = fields.One2Many(
        'crm.activity', 'party', "Activity History",
        filter=[('state', '=', 'done')], order=[('start', 'DESC')],
        readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.lifecycle_status, Index.Equality(
                            cardinality='low'))),
                Index(t, (t.owner, Index.Range())),
                })

    @classmethod
    def default_lifecycle_status(cls):
        return 'prospect'

    @classmethod
    def check_modification(cls, mode, parties, values=None, external=False):
        pool = Pool()
        User = pool.get('res.user')
        ModelData = pool.get('ir.model.data')
        super().check_modification(
            mode, parties, values=values, external=external)
        if (mode == 'write' and external
                and 'lifecycle_status' in values
                and any(p.lifecycle_status != values['lifecycle_status']
                    for p in parties)):
            manager = ModelData.get_id('crm_core', 'group_crm_manager')
            admin = ModelData.get_id('res', 'group_admin')
            if not {manager, admin} & set(User.get_groups()):
                raise AccessError(gettext(
                        'crm_core.msg_party_lifecycle_status_manager'))

    @classmethod
    def become_customers(cls, parties):
        "Mark the parties as customers (a deal was won)"
        with without_check_access():
            parties = cls.search([
                    ('id', 'in', [p.id for p in parties]),
                    ('lifecycle_status', '!=', 'customer'),
                    ])
            if parties:
                cls.write(parties, {'lifecycle_status': 'customer'})

    @classmethod
    def update_lifecycle_status(cls):
        "Customers without a won deal for the configured time become former"
        pool = Pool()
        Configuration = pool.get('crm.configuration')
        Lead = pool.get('crm.lead')
        config = Configuration(1)
        party = cls.__table__()
        lead = Lead.__table__()
        limit = dt.datetime.now() - dt.timedelta(days=config.former_after_days)
        last_won = lead.select(
            lead.party, Max(lead.date_closed).as_('date'),
            where=(lead.state == 'won') & (lead.party != Null),
            group_by=[lead.party])
        query = party.join(last_won, 'LEFT',
            condition=last_won.party == party.id).select(
            party.id,
            where=(party.lifecycle_status == 'customer')
            & ((last_won.date == Null) | (last_won.date < limit)))
        cursor = Transaction().connection.cursor()
        cursor.execute(*query)
        former = cls.browse([r for r, in cursor])
        if former:
            cls.write(former, {'lifecycle_status': 'former'})

    @classmethod
    def find_by_contact(cls, email=None, phone=None):
        "The party that has this email (any case) or this E.164 phone"
        pool = Pool()
        Mechanism = pool.get('party.contact_mechanism')
        for type_, value in [('email', email), ('phone', phone)]:
            if not value:
                continue
            types = ['email'] if type_ == 'email' else ['phone', 'mobile']
            mechanisms = Mechanism.search([
                    ('type', 'in', types),
                    ('value_compact', 'ilike', value)
                    if type_ == 'email' else ('value_compact', '=', value),
                    ], limit=1)
            if mechanisms:
                return mechanisms[0].party

    @classmethod
    def find_or_create_company(cls, name, country=None):
        "The organisation of that name (any case) or a new one"
        parties = cls.search([('name', 'ilike', name.strip())], limit=1)
        if parties:
            return parties[0]
        party = cls(name=name.strip())
        if country:
            party.addresses = [{'country': country.id}]
        party.save()
        return party

    @classmethod
    def create_contact_person(
            cls, name, organisation=None, email=None, phone=None,
            country=None):
        "Create a person, with its contact mechanisms and employer"
        pool = Pool()
        Relation = pool.get('party.relation')
        ModelData = pool.get('ir.model.data')
        party = cls(name=name.strip())
        mechanisms = []
        if email:
            mechanisms.append({'type': 'email', 'value': email})
        if phone:
            mechanisms.append({'type': 'phone', 'value': phone})
        party.contact_mechanisms = mechanisms
        if country:
            party.addresses = [{'country': country.id}]
        party.save()
        if organisation:
            # The reverse "works for" relation is created from the type.
            Relation.save([Relation(
                        from_=organisation, to=party,
                        type=ModelData.get_id(
                            'crm_core', 'relation_type_employs'))])
        return party


class Replace(metaclass=PoolMeta):
    __name__ = 'party.replace'

    @classmethod
    def fields_to_replace(cls):
        return super().fields_to_replace() + [
            ('crm.lead', 'party'),
            ('crm.lead', 'contact'),
            ('crm.lead', 'competitor'),
            ('crm.activity', 'party'),
            ('crm.activity', 'origin'),
            ]


class Erase(metaclass=PoolMeta):
    __name__ = 'party.erase'

    def to_erase(self, party_id):
        pool = Pool()
        Lead = pool.get('crm.lead')
        Activity = pool.get('crm.activity')
        return super().to_erase(party_id) + [
            (Lead, [('party', '=', party_id)], True,
                ['contact_name', 'company_name', 'email', 'phone',
                    'description'],
                [None, None, None, None, None]),
            (Lead, [('contact', '=', party_id)], True,
                ['contact_name', 'email', 'phone'],
                [None, None, None]),
            (Activity, [('party', '=', party_id)], True,
                ['description', 'outcome'],
                [None, None]),
            ]
