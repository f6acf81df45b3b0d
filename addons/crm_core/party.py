import datetime as dt
import hashlib
import logging
from collections import defaultdict

from sql import Literal, Null
from sql.aggregate import Max
from sql.conditionals import Coalesce
from sql.functions import Lower
from sql.operators import Like, Mod, Or

from trytond import backend
from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, fields
from trytond.model.exceptions import AccessError
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.tools import grouped_slice
from trytond.transaction import Transaction, without_check_access

from .sqltools import forget_cached

from .contact import clean_email, e164, normalise_name, trigram_similarity
from .exceptions import DuplicatePartyWarning

logger = logging.getLogger(__name__)

# Duplicate matching (see doc/data_quality.rst)
NAME_THRESHOLD = 0.6
EMAIL_SCORE = 100
PHONE_SCORE = 90
NAME_SCORE = 80
EXTRA_REASON_SCORE = 5
PHONE_TYPES = ('phone', 'mobile')
MATCH_TYPES = ('email',) + PHONE_TYPES
# The client warns about duplicates when it creates at most this many
# parties at once (a form, not Tryton's own CSV import)
WARNING_MAX_PARTIES = 10
# On SQLite, names are compared in Python with the parties whose normalised
# name contains one of the words of the name (of 3 characters or more),
# reading at most this many of them.
SQLITE_NAME_CANDIDATES = 1000

# Quality score: 100 minus the weight of each issue found
QUALITY_WEIGHTS = {
    'no_contact': 30,
    'no_address_country': 15,
    'no_owner': 10,
    'invalid_email': 15,
    'invalid_phone': 10,
    'stale': 10,
    'duplicate': 10,
    }
INCOMPLETE_ISSUES = ['no_contact', 'no_address_country', 'no_owner']
INVALID_ISSUES = ['invalid_email', 'invalid_phone']
DUPLICATE_ISSUES = ['duplicate']


def _name_score(similarity, exact):
    "Equal normalised names score NAME_SCORE, similar ones less"
    if exact:
        return NAME_SCORE
    return min(round(similarity * NAME_SCORE), NAME_SCORE - 1)


def _combine(reasons):
    "The score of a candidate from the scores of its reasons"
    scores = sorted(reasons.values(), reverse=True)
    return min(100, scores[0] + EXTRA_REASON_SCORE * (len(scores) - 1))


_REASON_ORDER = {'email': 0, 'phone': 1, 'name': 2}


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
    name_normalised = fields.Char(
        "Normalised Name", readonly=True,
        help="The name as compared to find duplicates.")
    duplicates = fields.Function(fields.Many2Many(
            'party.party', None, None, "Possible Duplicates",
            states={'invisible': ~Eval('duplicates')},
            help="Existing parties with the same email, phone "
            "or a similar name."),
        'on_change_with_duplicates')
    quality_score = fields.Integer(
        "Quality Score", readonly=True,
        help="From 0 to 100: complete, valid, recent and unique data.")
    quality_issues = fields.MultiSelection([
            ('no_contact', "No Email or Phone"),
            ('no_address_country', "No Address with Country"),
            ('no_owner', "No Owner"),
            ('invalid_email', "Invalid Email"),
            ('invalid_phone', "Invalid Phone"),
            ('stale', "No Recent Activity"),
            ('duplicate', "Suspected Duplicate"),
            ], "Quality Issues", readonly=True, sort=False)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.lifecycle_status, Index.Equality(
                            cardinality='low'))),
                Index(t, (t.owner, Index.Range())),
                Index(t, (t.name_normalised, Index.Equality())),
                # A GIN trigram index when pg_trgm is there (__register__)
                Index(t, (t.name_normalised, Index.Similarity())),
                Index(t, (t.quality_score, Index.Range())),
                })

    @classmethod
    def __register__(cls, module):
        transaction = Transaction()
        database = transaction.database
        cursor = transaction.connection.cursor()
        if backend.name == 'postgresql' and not database.has_extension(
                'pg_trgm'):
            cursor.execute('SAVEPOINT crm_core_pg_trgm')
            try:
                cursor.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
            except Exception:
                cursor.execute('ROLLBACK TO SAVEPOINT crm_core_pg_trgm')
                logger.warning(
                    "pg_trgm is not available: similar names are searched "
                    "without index")
            else:
                cursor.execute('RELEASE SAVEPOINT crm_core_pg_trgm')
                # has_extension reads with another connection, which does
                # not see the extension before the commit.
                database._extensions[database.name]['pg_trgm'] = True
        super().__register__(module)
        table = cls.__table__()
        cursor.execute(*table.select(table.id, table.name,
                where=(table.name_normalised == Null)
                & (table.name != Null)))
        for sub_rows in grouped_slice(list(cursor), 1000):
            for party_id, name in sub_rows:
                cursor.execute(*table.update(
                        [table.name_normalised],
                        [normalise_name(name) or None],
                        where=table.id == party_id))

    @classmethod
    def default_lifecycle_status(cls):
        return 'prospect'

    @classmethod
    def default_quality_score(cls):
        return 0

    @classmethod
    def preprocess_values(cls, mode, values):
        values = super().preprocess_values(mode, values)
        if mode == 'create' or 'name' in values:
            values['name_normalised'] = (
                normalise_name(values.get('name')) or None)
        return values

    @classmethod
    def copy(cls, parties, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('quality_score')
        default.setdefault('quality_issues')
        return super().copy(parties, default=default)

    @classmethod
    def check_modification(cls, mode, parties, values=None, external=False):
        pool = Pool()
        User = pool.get('res.user')
        ModelData = pool.get('ir.model.data')
        super().check_modification(
            mode, parties, values=values, external=external)
        if (mode == 'create' and external
                and len(parties) <= WARNING_MAX_PARTIES
                and Transaction().context.get(
                    'party_duplicate_warning', True)):
            cls.check_duplicates(parties)
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
    def on_write(cls, parties, values):
        callbacks = super().on_write(parties, values)
        status = values.get('lifecycle_status')
        changed = {p.id: p.lifecycle_status for p in parties
            if status and p.lifecycle_status != status}
        if changed:
            Lifecycle = Pool().get('crm.party.lifecycle')
            callbacks.append(lambda: Lifecycle.record(changed, status))
        return callbacks

    @classmethod
    def on_modification(cls, mode, parties, field_names=None):
        super().on_modification(mode, parties, field_names=field_names)
        if mode == 'create':
            Lifecycle = Pool().get('crm.party.lifecycle')
            by_status = defaultdict(dict)
            for party in parties:
                by_status[party.lifecycle_status][party.id] = None
            for status, previous in by_status.items():
                Lifecycle.record(previous, status)
        if mode in {'create', 'write'} and (field_names is None
                or field_names & {
                    'name', 'owner', 'active', 'addresses',
                    'contact_mechanisms'}):
            cls.update_quality(parties)

    def _contact_values(self):
        """The clean emails and E.164 phones of the party, also of a party
        being edited in the client"""
        emails, phones = [], []
        code = None
        for address in getattr(self, 'addresses', None) or []:
            country = getattr(address, 'country', None)
            if country and country.code:
                code = country.code
                break
        for mechanism in getattr(self, 'contact_mechanisms', None) or []:
            if getattr(mechanism, 'active', True) is False:
                continue
            type_ = getattr(mechanism, 'type', None)
            value = getattr(mechanism, 'value', None)
            if not value:
                continue
            if type_ == 'email':
                try:
                    emails.append(clean_email(value))
                except ValueError:
                    pass
            elif type_ in PHONE_TYPES:
                try:
                    phones.append(e164(value, code))
                except ValueError:
                    compact = getattr(mechanism, 'value_compact', None)
                    if compact and compact.startswith('+'):
                        phones.append(compact)
        return emails, phones

    @fields.depends('id', 'name', 'contact_mechanisms', 'addresses')
    def on_change_with_duplicates(self, name=None):
        emails, phones = self._contact_values()
        exclude = [self.id] if self.id is not None and self.id >= 0 else []
        return [p for p, _, _ in self.duplicate_candidates(
                name=self.name, emails=emails, phones=phones,
                exclude_ids=exclude, limit=5)]

    @classmethod
    def check_duplicates(cls, parties):
        "Warn the user who creates parties that look like existing ones"
        pool = Pool()
        Warning = pool.get('res.user.warning')
        exclude = [p.id for p in parties]
        for party in parties:
            emails, phones = party._contact_values()
            candidates = cls.duplicate_candidates(
                name=party.name, emails=emails, phones=phones,
                exclude_ids=exclude, limit=5)
            if not candidates:
                continue
            ids = ','.join(str(c.id) for c, _, _ in candidates)
            digest = hashlib.sha1(
                f'{party.name_normalised}|{ids}'.encode()).hexdigest()
            key = f'crm_core.party_duplicate.{digest[:20]}'
            if Warning.check(key):
                raise DuplicatePartyWarning(key, gettext(
                        'crm_core.msg_party_duplicate',
                        party=party.rec_name,
                        candidates=', '.join(
                            cls._describe_candidate(*c)
                            for c in candidates)))

    @classmethod
    def _describe_candidate(cls, party, score, reasons):
        names = {
            'email': gettext('crm_core.msg_duplicate_reason_email'),
            'phone': gettext('crm_core.msg_duplicate_reason_phone'),
            'name': gettext('crm_core.msg_duplicate_reason_name'),
            }
        return '%s (%s%%: %s)' % (
            party.rec_name, score, ', '.join(names[r] for r in reasons))

    @classmethod
    def _parties_by_contact(cls, emails=(), phones=()):
        """Map each lower-cased email and E.164 phone to the ids of the
        active parties having it as an active contact mechanism"""
        pool = Pool()
        Mechanism = pool.get('party.contact_mechanism')
        mechanism = Mechanism.__table__()
        party = cls.__table__()
        cursor = Transaction().connection.cursor()
        wanted = {}
        for email in emails:
            if email:
                wanted[email.strip().lower()] = 'email'
        for phone in phones:
            if phone:
                wanted[phone.strip().lower()] = 'phone'
        result = defaultdict(set)
        for sub_values in grouped_slice(
                sorted(wanted), backend.MAX_QUERY_PARAMS // 2):
            key = Lower(mechanism.value_compact)
            cursor.execute(*mechanism.join(party,
                    condition=mechanism.party == party.id).select(
                    key, mechanism.type, mechanism.party,
                    where=key.in_(list(sub_values))
                    & mechanism.type.in_(list(MATCH_TYPES))
                    & (mechanism.active == Literal(True))
                    & (party.active == Literal(True))))
            for value, type_, party_id in cursor:
                kind = 'email' if type_ == 'email' else 'phone'
                if wanted.get(value) == kind:
                    result[value].add(party_id)
        return result

    @classmethod
    def _has_trigram(cls):
        return (backend.name == 'postgresql'
            and Transaction().database.has_extension('pg_trgm'))

    @classmethod
    def _parties_by_name(cls, normalised, limit=100):
        """The (party id, similarity, exact) of the active parties whose
        normalised name is similar to the normalised name given"""
        if not normalised:
            return []
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        active = table.active == Literal(True)
        if cls._has_trigram():
            # The % operator uses the GIN trigram index; its threshold is
            # set for this transaction only. Similarities are computed in
            # Python after, as on SQLite, for the same figures.
            cursor.execute(
                "SELECT set_config('pg_trgm.similarity_threshold', %s, "
                "true)", (str(NAME_THRESHOLD - 0.01),))
            database = Transaction().database
            cursor.execute(*table.select(
                    table.id, table.name_normalised,
                    where=Mod(table.name_normalised, normalised) & active,
                    order_by=[database.similarity(
                            table.name_normalised, normalised).desc,
                        table.id.asc],
                    limit=limit))
        else:
            words = [w for w in normalised.split() if len(w) >= 3]
            condition = table.name_normalised == normalised
            if words:
                condition |= Or([
                        Like(table.name_normalised, f'%{w}%')
                        for w in words])
            cursor.execute(*table.select(
                    table.id, table.name_normalised,
                    where=condition & active,
                    limit=SQLITE_NAME_CANDIDATES))
        result = []
        for party_id, other in cursor:
            exact = other == normalised
            similarity = 1.0 if exact else trigram_similarity(
                normalised, other)
            if similarity >= NAME_THRESHOLD:
                result.append((party_id, similarity, exact))
        return result

    @classmethod
    def duplicate_candidates(cls, name=None, emails=(), phones=(),
            exclude_ids=(), limit=10):
        """The existing parties that may be the one described: a list of
        (party, score 0-100, reasons) best first, reasons among 'email',
        'phone' and 'name'"""
        exclude = set(map(int, exclude_ids))
        reasons = defaultdict(dict)
        emails = [e for e in emails if e]
        phones = [p for p in phones if p]
        if emails or phones:
            by_contact = cls._parties_by_contact(emails, phones)
            for kind, values, score in [
                    ('email', emails, EMAIL_SCORE),
                    ('phone', phones, PHONE_SCORE)]:
                for value in values:
                    for party_id in by_contact.get(
                            value.strip().lower(), ()):
                        reasons[party_id][kind] = score
        normalised = normalise_name(name) if name else ''
        for party_id, similarity, exact in cls._parties_by_name(normalised):
            reasons[party_id]['name'] = _name_score(similarity, exact)
        candidates = []
        for party_id, found in reasons.items():
            if party_id in exclude:
                continue
            candidates.append((party_id, _combine(found),
                    sorted(found, key=_REASON_ORDER.get)))
        candidates.sort(key=lambda c: (-c[1], c[0]))
        candidates = candidates[:limit]
        parties = cls.browse([c[0] for c in candidates])
        return [(p, s, r) for p, (_, s, r) in zip(parties, candidates)]

    @classmethod
    def match_bulk(cls, rows, similar_names=False):
        """For each row (dict of 'name', 'emails', 'phones'), the best
        (party id, score, reasons) or None, in a constant number of
        queries. Names match when their normalised forms are equal (score
        80, the same on every backend); with similar_names, similar names
        score below 80 too, on PostgreSQL with pg_trgm only (one index
        search per distinct name: about 5 ms each on 200,000 parties)."""
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        emails = {e for r in rows for e in (r.get('emails') or ()) if e}
        phones = {p for r in rows for p in (r.get('phones') or ()) if p}
        by_contact = cls._parties_by_contact(emails, phones)
        names = [normalise_name(r.get('name')) if r.get('name') else ''
            for r in rows]
        by_name = defaultdict(dict)
        distinct = sorted({n for n in names if n})
        for sub_names in grouped_slice(distinct, backend.MAX_QUERY_PARAMS):
            cursor.execute(*table.select(
                    table.id, table.name_normalised,
                    where=table.name_normalised.in_(list(sub_names))
                    & (table.active == Literal(True))))
            for party_id, other in cursor:
                by_name[other][party_id] = NAME_SCORE
        if similar_names and distinct and cls._has_trigram():
            cursor.execute(
                "SELECT set_config('pg_trgm.similarity_threshold', %s, "
                "true)", (str(NAME_THRESHOLD - 0.01),))
            for sub_names in grouped_slice(distinct, 1000):
                sub_names = list(sub_names)
                cursor.execute(
                    'SELECT v.name, c.id, c.name_normalised '
                    'FROM (VALUES ' + ', '.join(['(%s)'] * len(sub_names))
                    + ') AS v(name) CROSS JOIN LATERAL ('
                    'SELECT p.id, p.name_normalised FROM party_party p '
                    'WHERE p.name_normalised %% v.name AND p.active '
                    'ORDER BY similarity(p.name_normalised, v.name) DESC, '
                    'p.id LIMIT 5) AS c', sub_names)
                for normalised, party_id, other in cursor:
                    if other == normalised:
                        continue
                    similarity = trigram_similarity(normalised, other)
                    if similarity >= NAME_THRESHOLD:
                        by_name[normalised].setdefault(
                            party_id, _name_score(similarity, False))
        result = []
        for row, normalised in zip(rows, names):
            reasons = defaultdict(dict)
            for kind, values, score in [
                    ('email', row.get('emails') or (), EMAIL_SCORE),
                    ('phone', row.get('phones') or (), PHONE_SCORE)]:
                for value in values:
                    if not value:
                        continue
                    for party_id in by_contact.get(
                            value.strip().lower(), ()):
                        reasons[party_id][kind] = score
            for party_id, score in by_name.get(normalised, {}).items():
                reasons[party_id]['name'] = score
            best = None
            for party_id, found in reasons.items():
                candidate = (party_id, _combine(found),
                    sorted(found, key=_REASON_ORDER.get))
                if best is None or (candidate[1], -candidate[0]) > (
                        best[1], -best[0]):
                    best = candidate
            result.append(best)
        return result

    @classmethod
    def update_quality(cls, parties, _partners=True):
        """Compute the quality score and issues of the parties, in a few
        queries per batch, written in SQL"""
        pool = Pool()
        Mechanism = pool.get('party.contact_mechanism')
        Address = pool.get('party.address')
        Country = pool.get('country.country')
        Activity = pool.get('crm.activity')
        Configuration = pool.get('crm.configuration')
        transaction = Transaction()
        cursor = transaction.connection.cursor()
        party = cls.__table__()
        other_party = cls.__table__()
        mechanism = Mechanism.__table__()
        other_mechanism = Mechanism.__table__()
        address = Address.__table__()
        country = Country.__table__()
        activity = Activity.__table__()
        ids = sorted({int(p) for p in parties if int(p) >= 0})
        if not ids:
            return
        # Not Configuration(1): its defaults would stay in the transaction
        # cache when the singleton is created later in the transaction
        config = Configuration.get_singleton()
        stale_days = (config.quality_stale_days if config else None) or 365
        stale_before = dt.datetime.now() - dt.timedelta(days=stale_days)
        partners = set()
        true = Literal(True)
        for sub_ids in grouped_slice(ids, backend.MAX_QUERY_PARAMS // 2):
            sub_ids = list(sub_ids)
            issues = {}
            fresh = {}
            cursor.execute(*party.select(
                    party.id, party.owner, party.create_date,
                    where=party.id.in_(sub_ids)))
            for party_id, owner, create_date in cursor:
                issues[party_id] = {'no_contact', 'no_address_country'}
                if not owner:
                    issues[party_id].add('no_owner')
                fresh[party_id] = create_date
            codes = {}
            cursor.execute(*address.join(country,
                    condition=address.country == country.id).select(
                    address.party, country.code,
                    where=address.party.in_(sub_ids)
                    & (address.active == true),
                    order_by=[address.party,
                        Coalesce(address.sequence, 0), address.id]))
            for party_id, code in cursor:
                codes.setdefault(party_id, code)
                issues[party_id].discard('no_address_country')
            cursor.execute(*mechanism.select(
                    mechanism.party, mechanism.type, mechanism.value,
                    mechanism.undeliverable,
                    where=mechanism.party.in_(sub_ids)
                    & (mechanism.active == true)
                    & mechanism.type.in_(list(MATCH_TYPES))))
            for party_id, type_, value, undeliverable in cursor:
                issues[party_id].discard('no_contact')
                try:
                    if undeliverable:
                        raise ValueError(value)
                    if type_ == 'email':
                        clean_email(value)
                    else:
                        e164(value, codes.get(party_id))
                except ValueError:
                    issues[party_id].add(
                        'invalid_email' if type_ == 'email'
                        else 'invalid_phone')
            cursor.execute(*activity.select(
                    activity.party,
                    Max(activity.start),
                    where=activity.party.in_(sub_ids)
                    & (activity.state == 'done'),
                    group_by=[activity.party]))
            for party_id, last in cursor:
                if isinstance(last, str):
                    # SQLite does not type aggregates
                    last = dt.datetime.fromisoformat(last)
                if last and (not fresh.get(party_id)
                        or last > fresh[party_id]):
                    fresh[party_id] = last
            for party_id, date in fresh.items():
                if not date or date < stale_before:
                    issues[party_id].add('stale')
            key, other_key = (
                Lower(mechanism.value_compact),
                Lower(other_mechanism.value_compact))
            cursor.execute(*mechanism.join(other_mechanism,
                    condition=(other_key == key)
                    & (other_mechanism.party != mechanism.party)
                    ).join(other_party,
                    condition=other_party.id == other_mechanism.party
                    ).select(mechanism.party, other_mechanism.party,
                    where=mechanism.party.in_(sub_ids)
                    & (mechanism.active == true)
                    & mechanism.type.in_(list(MATCH_TYPES))
                    & (other_mechanism.active == true)
                    & other_mechanism.type.in_(list(MATCH_TYPES))
                    & (other_party.active == true),
                    group_by=[mechanism.party, other_mechanism.party]))
            duplicates = list(cursor)
            cursor.execute(*party.join(other_party,
                    condition=(other_party.name_normalised
                        == party.name_normalised)
                    & (other_party.id != party.id)).select(
                    party.id, other_party.id,
                    where=party.id.in_(sub_ids)
                    & (other_party.active == true),
                    group_by=[party.id, other_party.id]))
            duplicates += list(cursor)
            for party_id, other_id in duplicates:
                issues[party_id].add('duplicate')
                partners.add(other_id)
            groups = defaultdict(list)
            for party_id, found in issues.items():
                groups[tuple(sorted(found))].append(party_id)
            for found, group_ids in groups.items():
                score = 100 - sum(QUALITY_WEIGHTS[i] for i in found)
                cursor.execute(*party.update(
                        [party.quality_score, party.quality_issues],
                        [score, cls.quality_issues.sql_format(list(found))],
                        where=party.id.in_(group_ids)))
        forget_cached(cls, ids)
        for record in parties:
            if isinstance(record, cls):
                record._local_cache.pop(record.id, None)
        partners -= set(ids)
        if _partners and partners:
            # The other side of a new duplicate is a suspect too
            cls.update_quality(cls.browse(sorted(partners)), _partners=False)

    @classmethod
    def update_quality_all(cls):
        "Recompute the quality of every party (daily: freshness, duplicates)"
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.select(table.id, order_by=[table.id]))
        ids = [i for i, in cursor]
        for sub_ids in grouped_slice(ids, 1000):
            cls.update_quality(cls.browse(list(sub_ids)), _partners=False)

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
        "The party that has this email (any case) or else this E.164 phone"
        candidates = cls.duplicate_candidates(
            emails=[email] if email else [],
            phones=[phone] if phone else [], limit=1)
        if candidates:
            return candidates[0][0]

    @classmethod
    def find_or_create_company(cls, name, country=None):
        """The organisation of that name (same normalised name: case,
        accents and legal form ignored) or a new one"""
        candidates = [c for c in cls.duplicate_candidates(name=name, limit=5)
            if 'name' in c[2] and c[1] >= NAME_SCORE]
        if candidates:
            return candidates[0][0]
        party = cls(name=name.strip())
        if country:
            party.addresses = [{'country': country.id}]
        with Transaction().set_context(party_duplicate_warning=False):
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
        with Transaction().set_context(party_duplicate_warning=False):
            party.save()
        if organisation:
            # The reverse "works for" relation is created from the type.
            Relation.save([Relation(
                        from_=organisation, to=party,
                        type=ModelData.get_id(
                            'crm_core', 'relation_type_employs'))])
        return party


class PartyQualityMixin:
    "A record of a party whose changes change the party's quality score"
    __slots__ = ()

    @classmethod
    def on_modification(cls, mode, records, field_names=None):
        pool = Pool()
        Party = pool.get('party.party')
        super().on_modification(mode, records, field_names=field_names)
        if mode in {'create', 'write'}:
            Party.update_quality(list({r.party for r in records}))

    @classmethod
    def on_delete(cls, records):
        pool = Pool()
        Party = pool.get('party.party')
        callbacks = super().on_delete(records)
        party_ids = sorted({r.party.id for r in records})
        callbacks.append(
            lambda: Party.update_quality(Party.browse(party_ids)))
        return callbacks


class ContactMechanism(PartyQualityMixin, metaclass=PoolMeta):
    __name__ = 'party.contact_mechanism'

    undeliverable = fields.Boolean("Undeliverable",
        help="Mail to this address bounced or was refused: it counts as "
        "invalid in the party's quality score.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        # Duplicate lookups by email (any case) and E.164 phone
        cls._sql_indexes.add(
            Index(t, (Lower(t.value_compact), Index.Equality(
                        cardinality='high'))))


class Address(PartyQualityMixin, metaclass=PoolMeta):
    __name__ = 'party.address'


# The fields of an address compared to find an exact duplicate
ADDRESS_FIELDS = [
    'party_name', 'attn', 'street_unstructured', 'street_name',
    'building_name', 'building_number', 'unit_number', 'floor_number',
    'room_number', 'post_box', 'private_bag', 'post_office', 'postal_code',
    'city', 'country', 'subdivision']


def _address_key(address):
    key = []
    for name in ADDRESS_FIELDS:
        value = getattr(address, name, None)
        if hasattr(value, 'id'):
            value = value.id
        elif isinstance(value, str):
            value = ' '.join(value.casefold().split()) or None
        key.append(value)
    return tuple(key)


def _mechanism_key(mechanism):
    return (mechanism.type,
        (mechanism.value_compact or mechanism.value or '').strip().lower())


class PartyLifecycle(ModelSQL, ModelView):
    "A change of a party's lifecycle status: customers won and lost in time"
    __name__ = 'crm.party.lifecycle'
    __string__ = "Party Lifecycle Change"

    party = fields.Many2One(
        'party.party', "Party", required=True, ondelete='CASCADE')
    date = fields.DateTime("Date", required=True)
    user = fields.Many2One('res.user', "User", ondelete='SET NULL')
    from_status = fields.Selection('get_statuses', "From Status")
    to_status = fields.Selection('get_statuses', "To Status", required=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('party')
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.party, Index.Range()), (t.date, Index.Range())),
                Index(t, (t.to_status, Index.Equality()),
                    (t.date, Index.Range())),
                })
        cls._order = [('date', 'DESC'), ('id', 'DESC')]

    @classmethod
    def get_statuses(cls):
        pool = Pool()
        Party = pool.get('party.party')
        return [(None, '')] + Party.fields_get(
            ['lifecycle_status'])['lifecycle_status']['selection']

    @classmethod
    def record(cls, previous, status):
        """Keep the change to status of the parties of previous ({party id:
        the status before, None for a new party})"""
        now = dt.datetime.now()
        user = Transaction().user or None
        # A log the system keeps: whoever changes the status adds its row
        with without_check_access():
            cls.create([{
                        'party': party, 'date': now, 'user': user,
                        'from_status': before, 'to_status': status,
                        } for party, before in previous.items()])


class Replace(metaclass=PoolMeta):
    __name__ = 'party.replace'

    def check_similarity(self):
        # The duplicate wizard shows the reasons and the user chose
        if not Transaction().context.get('crm_merge'):
            super().check_similarity()

    def transition_replace(self):
        """Replace, then give the kept party back the addresses and contact
        mechanisms of the replaced one that it does not already have"""
        pool = Pool()
        Party = pool.get('party.party')
        Address = pool.get('party.address')
        Mechanism = pool.get('party.contact_mechanism')
        source, destination = self.ask.source, self.ask.destination
        addresses = [a for a in source.addresses if a.active]
        mechanisms = [m for m in source.contact_mechanisms if m.active]
        result = super().transition_replace()
        destination = Party(destination.id)
        cursor = Transaction().connection.cursor()
        for Model, records, existing, key in [
                (Address, addresses, destination.addresses, _address_key),
                (Mechanism, mechanisms, destination.contact_mechanisms,
                    _mechanism_key)]:
            seen = {key(r) for r in existing if r.active}
            restore = []
            for record in records:
                if key(record) not in seen:
                    seen.add(key(record))
                    restore.append(record.id)
            if restore:
                table = Model.__table__()
                cursor.execute(*table.update(
                        [table.active], [True],
                        where=table.id.in_(restore)))
                Model._insert_history(restore)
                forget_cached(Model, restore)
        Party.update_quality([destination, source])
        return result

    @classmethod
    def fields_to_replace(cls):
        return super().fields_to_replace() + [
            ('crm.lead', 'party'),
            ('crm.lead', 'contact'),
            ('crm.lead', 'competitor'),
            ('crm.activity', 'party'),
            ('crm.activity', 'origin'),
            ('crm.party.lifecycle', 'party'),
            ]


class Erase(metaclass=PoolMeta):
    __name__ = 'party.erase'

    def to_erase(self, party_id):
        pool = Pool()
        Lead = pool.get('crm.lead')
        Activity = pool.get('crm.activity')
        Party = pool.get('party.party')
        return super().to_erase(party_id) + [
            (Party, [('id', '=', party_id)], False,
                ['name_normalised'], [None]),
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
