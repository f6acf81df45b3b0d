"""Segments: who a campaign, a mailing, a process or a call list is for.

A dynamic segment is a set of criteria on parties (each one chosen in the
client, no code), combined with other segments (include / exclude); its
members are kept in crm.segment.member by a refresh (on save and by a
cron), so that campaigns and lists read them with one indexed query. A
static segment is a list: filled by hand, from another segment or from a
CSV file."""
import csv
import datetime as dt
import io

from sql.aggregate import Count

from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, Index, ModelSQL, ModelView, Unique, fields)
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.transaction import Transaction
from trytond.wizard import Button, StateTransition, StateView, Wizard

from crm_core.sqltools import forget_cached, typed

from .exceptions import SegmentError

CHOICE = [
    (None, ""),
    ('with', "With"),
    ('without', "Without"),
    ]
# Member statuses of a campaign that count as a response
RESPONDED = ['clicked', 'responded', 'converted']


class Segment(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'crm.segment'
    __string__ = "Segment"

    _dynamic = {'invisible': Eval('kind') != 'dynamic'}

    name = fields.Char("Name", required=True)
    company = fields.Many2One('company.company', "Company", required=True)
    kind = fields.Selection([
            ('dynamic', "Dynamic"),
            ('static', "Static"),
            ], "Kind", required=True, sort=False,
        help="Dynamic: the parties that match the criteria now.\n"
        "Static: a list of parties.")
    description = fields.Text("Description")
    # Criteria of a dynamic segment; an empty one does not filter
    lifecycle_statuses = fields.MultiSelection(
        'get_lifecycle_statuses', "Lifecycle Statuses", states=_dynamic)
    countries = fields.Many2Many(
        'crm.segment-country.country', 'segment', 'country', "Countries",
        states=_dynamic, help="Of one of the party's addresses.")
    categories = fields.Many2Many(
        'crm.segment-party.category', 'segment', 'category', "Categories",
        states=_dynamic)
    owners = fields.Many2Many(
        'crm.segment-res.user', 'segment', 'user', "Owners",
        states=_dynamic)
    teams = fields.Many2Many(
        'crm.segment-crm.team', 'segment', 'team', "Teams",
        states=_dynamic, help="Parties owned by a member of these teams.")
    quality_min = fields.Integer("Quality Score From", states=_dynamic,
        domain=['OR', ('quality_min', '=', None),
            [('quality_min', '>=', 0), ('quality_min', '<=', 100)]])
    quality_max = fields.Integer("Quality Score To", states=_dynamic,
        domain=['OR', ('quality_max', '=', None),
            [('quality_max', '>=', Eval('quality_min', 0)),
                ('quality_max', '<=', 100)]])
    won_opportunities = fields.Selection(
        CHOICE, "Won Opportunities", states=_dynamic, sort=False)
    open_opportunities = fields.Selection(
        CHOICE, "Open Leads or Opportunities", states=_dynamic, sort=False)
    inactive_days = fields.Integer("No Activity For", states=_dynamic,
        domain=['OR', ('inactive_days', '=', None),
            ('inactive_days', '>', 0)],
        help="In days: parties whose last done activity is older.")
    responded_campaigns = fields.Many2Many(
        'crm.segment-marketing.campaign', 'segment', 'campaign',
        "Responded to Campaigns", states=_dynamic,
        help="Parties that clicked, responded or converted in one of "
        "these campaigns.")
    includes = fields.Many2Many(
        'crm.segment.include', 'segment', 'included', "Include",
        domain=[('id', '!=', Eval('id', -1)),
            ('company', '=', Eval('company', -1))],
        states=_dynamic, help="Their members are members too.")
    excludes = fields.Many2Many(
        'crm.segment.exclude', 'segment', 'excluded', "Exclude",
        domain=[('id', '!=', Eval('id', -1)),
            ('company', '=', Eval('company', -1))],
        states=_dynamic, help="Their members are never members.")
    members = fields.One2Many('crm.segment-party.party', 'segment', "Members",
        states={'readonly': Eval('kind') != 'static'})
    member_count = fields.Integer("Members", readonly=True)
    refreshed = fields.DateTime("Refreshed", readonly=True)
    del _dynamic

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('name', 'ASC'), ('id', 'ASC')]
        cls._buttons.update({
                'refresh': {
                    'invisible': Eval('kind') != 'dynamic',
                    'depends': ['kind'],
                    },
                'open_members': {},
                'fill': {
                    'invisible': Eval('kind') != 'static',
                    'depends': ['kind'],
                    },
                'import_csv': {
                    'invisible': Eval('kind') != 'static',
                    'depends': ['kind'],
                    },
                })

    @classmethod
    def view_attributes(cls):
        dynamic = Eval('kind') != 'dynamic'
        return super().view_attributes() + [
            ('//page[@id="criteria"]', 'states', {'invisible': dynamic}),
            ('//page[@id="combine"]', 'states', {'invisible': dynamic}),
            ('//page[@name="members"]', 'states', {
                    'invisible': Eval('kind') != 'static'}),
            ]

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_kind(cls):
        return 'dynamic'

    @classmethod
    def default_member_count(cls):
        return 0

    @classmethod
    def get_lifecycle_statuses(cls):
        Party = Pool().get('party.party')
        return Party.fields_get(['lifecycle_status'])[
            'lifecycle_status']['selection']

    @classmethod
    def validate_fields(cls, segments, field_names):
        super().validate_fields(segments, field_names)
        if field_names & {'includes', 'excludes'}:
            for segment in segments:
                segment.check_cycle()

    def check_cycle(self, path=()):
        if self in path:
            raise SegmentError(gettext(
                    'crm_marketing.msg_segment_cycle',
                    segment=self.rec_name))
        for other in list(self.includes) + list(self.excludes):
            other.check_cycle(path + (self,))

    def party_domain(self):
        "The criteria as a domain on parties"
        pool = Pool()
        Member = pool.get('crm.team-res.user')
        domain = []
        if self.lifecycle_statuses:
            domain.append(
                ('lifecycle_status', 'in', list(self.lifecycle_statuses)))
        if self.countries:
            domain.append(('addresses', 'where', [
                        ('country', 'in', [c.id for c in self.countries]),
                        ]))
        if self.categories:
            domain.append(
                ('categories', 'in', [c.id for c in self.categories]))
        owners = {u.id for u in self.owners}
        if self.teams:
            members = Member.search(
                [('team', 'in', [t.id for t in self.teams])])
            team_owners = {m.user.id for m in members}
            owners = (owners & team_owners) if owners else team_owners
            domain.append(('owner', 'in', list(owners)))
        elif owners:
            domain.append(('owner', 'in', list(owners)))
        if self.quality_min is not None:
            domain.append(('quality_score', '>=', self.quality_min))
        if self.quality_max is not None:
            domain.append(('quality_score', '<=', self.quality_max))
        for value, lead_domain in [
                (self.won_opportunities, [('state', '=', 'won')]),
                (self.open_opportunities, [('state', '=', 'open')]),
                ]:
            if value:
                operator = 'where' if value == 'with' else 'not where'
                domain.append(('leads', operator, lead_domain))
        if self.inactive_days:
            since = dt.datetime.now() - dt.timedelta(days=self.inactive_days)
            domain.append(('crm_last_activity', '<', since))
        if self.responded_campaigns:
            domain.append(('campaign_memberships', 'where', [
                        ('campaign', 'in',
                            [c.id for c in self.responded_campaigns]),
                        ('status', 'in', RESPONDED),
                        ]))
        return domain

    def parties_query(self):
        "The SQL query of the ids of the segment's parties, as of now"
        pool = Pool()
        Party = pool.get('party.party')
        Member = pool.get('crm.segment-party.party')
        if self.kind == 'static':
            member = Member.__table__()
            return member.select(member.party.as_('id'),
                where=member.segment == self.id)
        query = Party.search(self.party_domain(), order=[], query=True)
        for included in self.includes:
            query = query | included.parties_query()
        for excluded in self.excludes:
            query = query - excluded.parties_query()
        return query

    def evaluate(self):
        "The number of parties the segment has now"
        cursor = Transaction().connection.cursor()
        query = self.parties_query()
        cursor.execute(*query.select(Count()))
        return cursor.fetchone()[0]

    @classmethod
    def on_modification(cls, mode, segments, field_names=None):
        super().on_modification(mode, segments, field_names=field_names)
        if mode in {'create', 'write'}:
            cls.refresh(segments)

    @classmethod
    @ModelView.button
    def refresh(cls, segments=None):
        """Keep the members of the dynamic segments as their criteria say
        now (and the count of every segment)"""
        pool = Pool()
        Member = pool.get('crm.segment-party.party')
        member = Member.__table__()
        cursor = Transaction().connection.cursor()
        if segments is None:
            segments = cls.search([])
        now = dt.datetime.now().replace(microsecond=0)
        user = Transaction().user
        for segment in segments:
            if segment.kind == 'dynamic':
                query = segment.parties_query()
                cursor.execute(*member.delete(
                        where=member.segment == segment.id))
                cursor.execute(*member.insert(
                        [member.segment, member.party, member.create_uid,
                            member.create_date],
                        query.select(typed(segment.id, Member.segment),
                            query.id, typed(user, Member.create_uid),
                            typed(now, Member.create_date))))
            cursor.execute(*member.select(Count(),
                    where=member.segment == segment.id))
            count, = cursor.fetchone()
            # SQL: a write would refresh again
            table = cls.__table__()
            cursor.execute(*table.update(
                    [table.member_count, table.refreshed],
                    [count, now], where=table.id == segment.id))
        forget_cached(cls, segments)

    @classmethod
    def refresh_all(cls):
        "The cron: every active segment"
        cls.refresh(cls.search([]))

    @classmethod
    @ModelView.button_action('crm_marketing.act_segment_parties')
    def open_members(cls, segments):
        pass

    @classmethod
    @ModelView.button_action('crm_marketing.wizard_segment_fill')
    def fill(cls, segments):
        pass

    @classmethod
    @ModelView.button_action('crm_marketing.wizard_segment_import')
    def import_csv(cls, segments):
        pass

    def add_parties(self, party_ids):
        """Add parties to a static segment, once each; the number added"""
        pool = Pool()
        Member = pool.get('crm.segment-party.party')
        present = {m.party.id for m in Member.search(
                [('segment', '=', self.id)])}
        new = sorted(set(party_ids) - present)
        Member.create([{'segment': self.id, 'party': p} for p in new])
        return len(new)


class SegmentMember(ModelSQL, ModelView):
    __name__ = 'crm.segment-party.party'
    __string__ = "Segment Member"

    segment = fields.Many2One(
        'crm.segment', "Segment", required=True, ondelete='CASCADE')
    party = fields.Many2One(
        'party.party', "Party", required=True, ondelete='CASCADE',
        context={'company': Eval('company', -1)}, depends={'company'})
    company = fields.Function(
        fields.Many2One('company.company', "Company"),
        'on_change_with_company')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('segment')
        t = cls.__table__()
        cls._sql_constraints += [
            ('segment_party_unique', Unique(t, t.segment, t.party),
                'crm_marketing.msg_segment_member_unique'),
            ]
        cls._sql_indexes.add(Index(t, (t.party, Index.Range())))

    @fields.depends('segment', '_parent_segment.company')
    def on_change_with_company(self, name=None):
        return self.segment.company if self.segment else None

    @classmethod
    def on_modification(cls, mode, members, field_names=None):
        pool = Pool()
        Segment = pool.get('crm.segment')
        super().on_modification(mode, members, field_names=field_names)
        segments = {m.segment for m in members}
        static = [s for s in segments if s.kind == 'static']
        if static:
            Segment.refresh(Segment.browse(static))

    @classmethod
    def on_delete(cls, members):
        pool = Pool()
        Segment = pool.get('crm.segment')
        callbacks = super().on_delete(members)
        ids = sorted({m.segment.id for m in members
                if m.segment.kind == 'static'})
        if ids:
            callbacks.append(lambda: Segment.refresh(Segment.browse(ids)))
        return callbacks


class SegmentLinkMixin:
    "A criterion of a segment: a link row read and written with it"
    __slots__ = ()
    segment = fields.Many2One(
        'crm.segment', "Segment", required=True, ondelete='CASCADE')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('segment')


class SegmentCountry(SegmentLinkMixin, ModelSQL):
    __name__ = 'crm.segment-country.country'
    __string__ = "Segment Country"
    country = fields.Many2One(
        'country.country', "Country", required=True, ondelete='CASCADE')


class SegmentCategory(SegmentLinkMixin, ModelSQL):
    __name__ = 'crm.segment-party.category'
    __string__ = "Segment Category"
    category = fields.Many2One(
        'party.category', "Category", required=True, ondelete='CASCADE')


class SegmentOwner(SegmentLinkMixin, ModelSQL):
    __name__ = 'crm.segment-res.user'
    __string__ = "Segment Owner"
    user = fields.Many2One(
        'res.user', "User", required=True, ondelete='CASCADE')


class SegmentTeam(SegmentLinkMixin, ModelSQL):
    __name__ = 'crm.segment-crm.team'
    __string__ = "Segment Team"
    team = fields.Many2One(
        'crm.team', "Team", required=True, ondelete='CASCADE')


class SegmentCampaign(SegmentLinkMixin, ModelSQL):
    __name__ = 'crm.segment-marketing.campaign'
    __string__ = "Segment Campaign"
    campaign = fields.Many2One(
        'marketing.campaign', "Campaign", required=True, ondelete='CASCADE')


class SegmentInclude(SegmentLinkMixin, ModelSQL):
    __name__ = 'crm.segment.include'
    __string__ = "Segment Include"
    included = fields.Many2One(
        'crm.segment', "Included", required=True, ondelete='CASCADE')


class SegmentExclude(SegmentLinkMixin, ModelSQL):
    __name__ = 'crm.segment.exclude'
    __string__ = "Segment Exclude"
    excluded = fields.Many2One(
        'crm.segment', "Excluded", required=True, ondelete='RESTRICT')


class FillStart(ModelView):
    __name__ = 'crm.segment.fill.start'
    __string__ = "Fill Segment"
    segment = fields.Many2One('crm.segment', "Segment", readonly=True)
    source = fields.Many2One('crm.segment', "From Segment", required=True,
        domain=[('id', '!=', Eval('segment', -1))],
        help="Its members as of now are added to the list.")


class Fill(Wizard):
    "Copy the members of a segment into a static segment"
    __name__ = 'crm.segment.fill'
    start = StateView('crm.segment.fill.start',
        'crm_marketing.segment_fill_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Add", 'fill', 'tryton-ok', default=True),
            ])
    fill = StateTransition()

    def default_start(self, fields):
        return {'segment': self.record.id}

    def transition_fill(self):
        cursor = Transaction().connection.cursor()
        query = self.start.source.parties_query()
        cursor.execute(*query)
        self.record.add_parties([p for p, in cursor])
        return 'end'


class ImportStart(ModelView):
    __name__ = 'crm.segment.import.start'
    __string__ = "Import Segment Members"
    file_ = fields.Binary("File", required=True,
        help="A CSV file with a header; the parties are found by their "
        "code, email or phone (columns code, email, phone).")
    matched = fields.Integer("Matched", readonly=True)
    unmatched = fields.Text("Not Found", readonly=True)


class Import(Wizard):
    "Add the parties of a CSV file to a static segment"
    __name__ = 'crm.segment.import'
    start = StateView('crm.segment.import.start',
        'crm_marketing.segment_import_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Import", 'import_', 'tryton-ok', default=True),
            ])
    import_ = StateTransition()
    done = StateView('crm.segment.import.start',
        'crm_marketing.segment_import_done_view_form', [
            Button("Close", 'end', 'tryton-close', default=True),
            ])

    def transition_import_(self):
        found, missing = parse_members_csv(self.start.file_)
        self.start.matched = self.record.add_parties(found)
        self.start.unmatched = '\n'.join(missing) or None
        return 'done'

    def default_done(self, fields):
        return {'matched': self.start.matched,
            'unmatched': self.start.unmatched}


def parse_members_csv(data):
    """The party ids found in a CSV file (by code, email or phone) and the
    rows not found"""
    pool = Pool()
    Party = pool.get('party.party')
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        try:
            text = data.decode('utf-8-sig')
        except UnicodeDecodeError:
            text = data.decode('latin-1')
    else:
        text = data
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=',;\t')
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    columns = {(c or '').strip().lower(): c for c in reader.fieldnames or []}
    if not set(columns) & {'code', 'email', 'phone'}:
        raise SegmentError(gettext('crm_marketing.msg_segment_csv_columns'))
    rows = list(reader)
    codes = {(r.get(columns.get('code', '')) or '').strip() for r in rows}
    codes.discard('')
    by_code = {p.code: p.id for p in Party.search(
            [('code', 'in', list(codes))])} if codes else {}
    found, missing = [], []
    for number, row in enumerate(rows, 2):
        def value(name):
            return (row.get(columns.get(name, '')) or '').strip()
        party_id = by_code.get(value('code'))
        if not party_id and (value('email') or value('phone')):
            party = Party.find_by_contact(
                email=value('email') or None, phone=value('phone') or None)
            party_id = party.id if party else None
        if party_id:
            found.append(party_id)
        else:
            missing.append(gettext('crm_marketing.msg_segment_csv_row',
                    row=number,
                    value=value('code') or value('email') or value('phone')))
    return found, missing
