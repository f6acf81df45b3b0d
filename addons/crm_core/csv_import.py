"""Import of parties, contacts and leads from CSV files, and their export.

crm.import keeps one import: the file, the mapping of its columns, the
options, the counts and the rejected rows. Parties are written by a bulk
path (multi-row SQL INSERTs) that validates every row in Python with the
rules of the models first; tests/test_import.py compares what it stores
with what the ORM stores for the same rows.
"""
import csv
import io

from sql import Literal
from sql.functions import CurrentTimestamp

from trytond import backend
from trytond.exceptions import UserError, UserWarning
from trytond.i18n import gettext
from trytond.model import ModelSQL, ModelView, fields
from trytond.modules.company.model import CompanyValueMixin
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.tools import grouped_slice
from trytond.transaction import Transaction
from trytond.wizard import (
    Button, StateAction, StateTransition, StateView, Wizard)

from . import importer
from .contact import normalise_name
from .exceptions import ImportFileError
from .savepoint import savepoint

BATCH = 1000
# Records browsed at once for the hooks (browse is quadratic in its size)
HOOK_BATCH = 250
# Files with more rows than this run in the queue (trytond-worker)
QUEUE_ROWS = 2000
# A party of the database is the same as a row when match_bulk finds the
# same email or phone, or, for a row without both, a name that scores this
# much (equal normalised names score 80)
NAME_SCORE = 80
PREVIEW_ROWS = 10

_KINDS = [
    ('party', "Parties"),
    ('contact', "Contacts (persons of companies)"),
    ('lead', "Leads"),
    ]
_DUPLICATES = [
    ('update', "Update Existing"),
    ('skip', "Skip"),
    ('create', "Create Anyway"),
    ]
_DELIMITERS = [
    (None, ""),
    (',', "Comma"),
    (';', "Semicolon"),
    ('\t', "Tab"),
    ('|', "Vertical Bar"),
    ]
_FIELDS = [(None, "(ignore)")] + [
    (k, v) for k, v in importer.FIELDS.items()]
# The header of each field in exported files (the import maps them back)
EXPORT_HEADERS = {
    'party': [
        ('name', "Name"), ('company_name', "Company"), ('email', "Email"),
        ('phone', "Phone"), ('mobile', "Mobile"), ('website', "Website"),
        ('street', "Street"), ('postal_code', "Postal Code"),
        ('city', "City"), ('subdivision', "State"), ('country', "Country"),
        ],
    'lead': [
        ('name', "Opportunity Name"), ('contact_name', "Contact Name"),
        ('company_name', "Company"), ('email', "Email"), ('phone', "Phone"),
        ('country', "Country"), ('expected_revenue', "Expected Revenue"),
        ('stage', "Stage"), ('expected_close', "Close Date"),
        ('campaign', "Campaign"), ('medium', "Medium"), ('source', "Source"),
        ('notes', "Notes"),
        ],
    }


def _delimiter_name(delimiter):
    return {'\t': 'tab'}.get(delimiter, delimiter)


class Import(ModelSQL, ModelView):
    __name__ = 'crm.import'
    __string__ = "CRM Import"

    _draft = {'readonly': Eval('state') != 'draft'}

    company = fields.Many2One(
        'company.company', "Company", required=True, states=_draft)
    user = fields.Many2One('res.user', "User", readonly=True)
    kind = fields.Selection(
        _KINDS, "Kind", required=True, sort=False, states=_draft)
    file = fields.Binary(
        "File", filename='file_name', required=True, states=_draft)
    file_name = fields.Char("File Name", states=_draft)
    encoding = fields.Char(
        "Encoding", states=_draft, help="Detected; correct it if needed.")
    delimiter = fields.Selection(
        _DELIMITERS, "Delimiter", sort=False, states=_draft,
        help="Detected; correct it if needed.")
    country = fields.Many2One(
        'country.country', "Default Country", states=_draft,
        help="For the rows without country: their phone numbers are read "
        "as numbers of this country.")
    duplicates = fields.Selection(
        _DUPLICATES, "Duplicates", required=True, sort=False, states=_draft,
        help="What to do with a row that matches an existing party "
        "(same email, same phone, or the same name when the row has "
        "neither) or an earlier row of the file.")
    mappings = fields.One2Many(
        'crm.import.mapping', 'import_', "Mapping", states=_draft)
    state = fields.Selection([
            ('draft', "Draft"),
            ('running', "Running"),
            ('done', "Done"),
            ('failed', "Failed"),
            ], "State", required=True, readonly=True, sort=False)
    rows = fields.Integer("Rows", readonly=True)
    created = fields.Integer("Created", readonly=True)
    updated = fields.Integer(
        "Updated", readonly=True,
        help="Rows merged into an existing record.")
    merged = fields.Integer(
        "Merged", readonly=True,
        help="Rows merged into an earlier row of the same file.")
    skipped = fields.Integer(
        "Skipped", readonly=True, help="Duplicates not imported.")
    rejected = fields.Integer(
        "Rejected", readonly=True,
        help="Rows not imported: see the rejects file.")
    rejects = fields.Binary(
        "Rejects", filename='rejects_name', readonly=True,
        help="The rejected rows with their row number and reason.")
    rejects_name = fields.Function(
        fields.Char("Rejects File Name"), 'get_rejects_name')
    message = fields.Text("Message", readonly=True)

    del _draft

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('create_date', 'DESC'), ('id', 'DESC')]
        cls._buttons.update({
                'run': {
                    'invisible': Eval('state') != 'draft',
                    'icon': 'tryton-launch',
                    },
                'draft': {
                    'invisible': Eval('state') != 'failed',
                    'icon': 'tryton-undo',
                    },
                })

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_user(cls):
        return Transaction().user or None

    @classmethod
    def default_kind(cls):
        return 'party'

    @classmethod
    def default_duplicates(cls):
        return 'update'

    @classmethod
    def default_state(cls):
        return 'draft'

    def get_rec_name(self, name):
        return self.file_name or str(self.id)

    def get_rejects_name(self, name):
        if self.rejects:
            base = (self.file_name or 'import').rsplit('.', 1)[0]
            return f'{base}-rejects.csv'

    def summary(self):
        return gettext('crm_core.msg_import_summary',
            rows=self.rows or 0, created=self.created or 0,
            updated=self.updated or 0, merged=self.merged or 0,
            skipped=self.skipped or 0, rejected=self.rejected or 0)

    # --- reading ------------------------------------------------------------

    def read_table(self):
        try:
            return importer.read(
                bytes(self.file), self.encoding or None,
                self.delimiter or None)
        except (UnicodeError, LookupError, csv.Error) as exception:
            raise ImportFileError(gettext(
                    'crm_core.msg_import_file_unreadable',
                    file=self.file_name or '', error=str(exception))
                ) from exception

    @classmethod
    def mapping_values(cls, table, kind, mapping_options=None):
        "The values of the mapping lines of the table, prefilled"
        fields = importer.parse_mapping_options(
            mapping_options, table.header, kind)
        lines = []
        for column, (header, field) in enumerate(zip(table.header, fields)):
            sample = next(
                (r[column].strip() for r in table.rows[:50]
                    if column < len(r) and r[column].strip()), '')
            lines.append({
                    'column': column,
                    'header': header,
                    'field': field,
                    'sample': sample.replace('\n', ' ')[:80],
                    })
        return lines

    @classmethod
    def from_file(cls, data, file_name, kind='party', encoding=None,
            delimiter=None, duplicates='update', country=None,
            mapping_options=None):
        """A draft import of the file (bytes) with its detected encoding,
        delimiter and mapping; country is an ISO code"""
        pool = Pool()
        Country = pool.get('country.country')
        imp = cls(file=data, file_name=file_name, kind=kind,
            encoding=encoding, delimiter=delimiter, duplicates=duplicates)
        table = imp.read_table()
        imp.encoding = table.encoding
        imp.delimiter = table.delimiter
        imp.rows = len(table.rows)
        if country:
            imp.country, = Country.search([('code', '=', country.upper())])
        imp.mappings = [
            cls.mappings.get_target()(**v)
            for v in cls.mapping_values(table, kind, mapping_options)]
        imp.save()
        return imp

    # --- running ------------------------------------------------------------

    @classmethod
    @ModelView.button
    def run(cls, imports):
        imports = [i for i in imports if i.state == 'draft']
        for imp in imports:
            if imp.rows is None:
                imp.rows = len(imp.read_table().rows)
        cls.save(imports)
        cls.write(imports, {'state': 'running', 'message': None})
        small = [i for i in imports if (i.rows or 0) <= QUEUE_ROWS]
        big = [i for i in imports if (i.rows or 0) > QUEUE_ROWS]
        if small:
            cls.process(small)
        if big:
            with Transaction().set_context(queue_name='crm_import'):
                cls.__queue__.process_queued(big)

    @classmethod
    @ModelView.button
    def draft(cls, imports):
        cls.write([i for i in imports if i.state == 'failed'], {
                'state': 'draft', 'message': None})

    @classmethod
    def process_queued(cls, imports):
        "Run from the queue: a failure is recorded on the import"
        for imp in cls.browse([i.id for i in imports]):
            if imp.state != 'running':
                continue
            # Nothing of a failed import is kept, but its failure
            try:
                with savepoint('crm_import'):
                    cls.process([imp])
            except Exception as exception:
                cls.write([cls(imp.id)], {
                        'state': 'failed',
                        'message': getattr(exception, 'message', None)
                        or str(exception),
                        })

    @classmethod
    def process(cls, imports, progress=None):
        for imp in imports:
            with Transaction().set_context(company=imp.company.id):
                if imp.kind == 'lead':
                    result = LeadImporter(imp, progress).run()
                else:
                    result = PartyImporter(imp, progress).run()
            imp.state = 'done'
            for key, value in result.items():
                setattr(imp, key, value)
            assert (imp.created + imp.updated + imp.merged + imp.skipped
                + imp.rejected == imp.rows), result
        cls.save(imports)

    # --- export -------------------------------------------------------------

    @classmethod
    def export_csv(cls, kind, records=None):
        """CSV (bytes, UTF-8 with BOM for spreadsheets) of the parties or
        leads (all when records is None) with the headers the import maps"""
        pool = Pool()
        if kind == 'lead':
            Lead = pool.get('crm.lead')
            records = Lead.search([]) if records is None else records
            rows = [_lead_export_row(r) for r in records]
        else:
            Party = pool.get('party.party')
            records = Party.search([]) if records is None else records
            rows = [_party_export_row(r) for r in records]
        headers = EXPORT_HEADERS['lead' if kind == 'lead' else 'party']
        out = io.StringIO()
        writer = csv.writer(out, lineterminator='\r\n')
        writer.writerow([h for _, h in headers])
        for row in rows:
            writer.writerow([row.get(f) or '' for f, _ in headers])
        return out.getvalue().encode('utf-8-sig')


def _party_export_row(party):
    row = {'name': party.name}
    for type_, field in [('email', 'email'), ('phone', 'phone'),
            ('mobile', 'mobile'), ('website', 'website')]:
        values = [m.value_compact or m.value for m in party.contact_mechanisms
            if m.type == type_ and m.active]
        row[field] = '; '.join(values)
    for address in party.addresses[:1]:
        row['street'] = address.street_unstructured
        row['postal_code'] = address.postal_code
        row['city'] = address.city
        row['country'] = address.country.code if address.country else None
        row['subdivision'] = (address.subdivision.code
            if address.subdivision else None)
    works_for = Pool().get('ir.model.data').get_id(
        'crm_core', 'relation_type_works_for')
    employers = [r.to.name for r in getattr(party, 'relations', [])
        if r.type.id == works_for]
    row['company_name'] = employers[0] if employers else None
    return row


def _lead_export_row(lead):
    return {
        'name': lead.name,
        'contact_name': lead.contact_name or (
            lead.contact.name if lead.contact else None),
        'company_name': lead.company_name or (
            lead.party.name if lead.party else None),
        'email': lead.email,
        'phone': lead.phone,
        'country': lead.country.code if lead.country else None,
        'expected_revenue': str(lead.expected_revenue),
        'stage': lead.stage.name,
        'expected_close': (lead.expected_close.isoformat()
            if lead.expected_close else None),
        'campaign': (lead.marketing_campaign.name
            if lead.marketing_campaign else None),
        'medium': (lead.marketing_medium.name
            if lead.marketing_medium else None),
        'source': (lead.marketing_source.name
            if lead.marketing_source else None),
        'notes': lead.description,
        }


class ImportMapping(ModelSQL, ModelView):
    __name__ = 'crm.import.mapping'
    __string__ = "CRM Import Mapping"

    import_ = fields.Many2One(
        'crm.import', "Import", required=True, ondelete='CASCADE')
    column = fields.Integer("Column", readonly=True)
    header = fields.Char("Header", readonly=True)
    field = fields.Selection(_FIELDS, "Field", sort=False)
    sample = fields.Char("Sample", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('import_')
        cls._order = [('import_', 'ASC'), ('column', 'ASC'), ('id', 'ASC')]


# --- the work ---------------------------------------------------------------

class _Importer:
    "Reads the file of an import and accounts for every row"

    def __init__(self, imp, progress=None):
        self.imp = imp
        self.progress = progress or (lambda done: None)
        self.table = imp.read_table()
        self.rows = len(self.table.rows)
        fields = [None] * len(self.table.header)
        for line in imp.mappings:
            if line.column is not None and line.column < len(fields):
                fields[line.column] = line.field or None
        self.fields = fields
        self.outcomes = [None] * self.rows
        self.rejects = []
        self.done = 0

    def reject(self, index, reason):
        self.outcomes[index] = 'rejected'
        self.rejects.append(
            (importer.row_number(index), reason, self.table.rows[index]))

    def reason(self, error):
        return gettext(
            f'crm_core.msg_import_reject_{error.code}', **error.params)

    def lookups(self):
        pool = Pool()
        Country = pool.get('country.country')
        Subdivision = pool.get('country.subdivision')
        country = self.imp.country
        countries = Country.search_read([], fields_names=[
                'id', 'code', 'code3', 'name'])
        with Transaction().set_context(active_test=False):
            subdivisions = Subdivision.search_read([], fields_names=[
                    'id', 'country', 'code', 'name'])
        return importer.Lookups(
            countries=[(c['id'], c['code'], c['code3'], c['name'])
                for c in countries],
            subdivisions=[(s['id'], s['country'], s['code'], s['name'])
                for s in subdivisions],
            default_country=(country.id, country.code) if country else None,
            **self.extra_lookups())

    def extra_lookups(self):
        return {}

    def clean_all(self, clean):
        header = len(self.table.header)
        cleaned = []
        for index, raw in enumerate(self.table.rows):
            if len(raw) > header and any(c.strip() for c in raw[header:]):
                self.reject(index, self.reason(importer.RowError(
                            'columns', count=len(raw), expected=header)))
                continue
            values = importer.mapped_values(raw, self.fields)
            try:
                row = clean(values)
            except importer.RowError as error:
                self.reject(index, self.reason(error))
                continue
            row['index'] = index
            cleaned.append(row)
        return cleaned

    def tick(self, count):
        self.done += count
        self.progress(self.done)

    def result(self):
        counts = {k: 0 for k in
            ['created', 'updated', 'merged', 'skipped', 'rejected']}
        for outcome in self.outcomes:
            counts[outcome] += 1
        counts['rows'] = self.rows
        counts['rejects'] = (importer.rejects_csv(
                self.table.header, self.rejects) if self.rejects else None)
        counts['message'] = None
        return counts


class PartyImporter(_Importer):

    def run(self):
        pool = Pool()
        Party = pool.get('party.party')
        lookups = self.lookups()
        lookups.sizes = _sizes(Party, ['name'])
        mode = self.imp.duplicates
        cleaned = self.clean_all(
            lambda v: importer.clean_party_row(v, lookups, self.imp.kind))
        self.tick(self.rows - len(cleaned))
        leaders = self.group_in_file(cleaned) if mode != 'create' else cleaned
        self.tick(len(cleaned) - len(leaders))
        writer = BulkPartyWriter()
        for batch in grouped_slice(leaders, BATCH):
            batch = list(batch)
            if mode == 'create':
                matches = [None] * len(batch)
            else:
                matches = self.match(batch)
            new, existing = [], []
            for row, match in zip(batch, matches):
                if match is None:
                    new.append(row)
                    self.outcomes[row['index']] = 'created'
                elif mode == 'skip':
                    self.outcomes[row['index']] = 'skipped'
                else:
                    existing.append((row, match))
                    self.outcomes[row['index']] = 'updated'
            ids = writer.create(new)
            for row, id_ in zip(new, ids):
                row['party'] = id_
            for row, party_id in existing:
                row['party'] = party_id
            writer.update(existing)
            writer.link_organisations(
                [r for r in new + [e[0] for e in existing]
                    if r.get('organisation')])
            self.tick(len(batch))
        writer.finish()
        return self.result()

    def group_in_file(self, cleaned):
        """Fold the rows that are the same party as an earlier row of the
        file (same email or phone; same name for rows without both) into
        it; return the first rows of each group"""
        mode = self.imp.duplicates
        first = {}
        leaders = []
        for row in cleaned:
            lookup, register = importer.infile_keys(row)
            leader = next((first[k] for k in lookup if k in first), None)
            if leader is None:
                leaders.append(row)
                for key in register:
                    first.setdefault(key, row)
                continue
            self.outcomes[row['index']] = (
                'skipped' if mode == 'skip' else 'merged')
            if mode == 'skip':
                continue
            _fold(leader, row)
            for key in register:
                first.setdefault(key, leader)
        return leaders

    def match(self, rows):
        "The id of the existing party of each row, or None"
        Party = Pool().get('party.party')
        # A row with an email or a phone is the same party as another only
        # by them: its name is not looked up (similar names are the
        # expensive part of the match)
        results = Party.match_bulk([{
                    'name': (r['name']
                        if not (r['emails'] or r['phones']) else None),
                    'emails': r['emails'],
                    'phones': [p[1] for p in r['phones']],
                    } for r in rows])
        matches = []
        for row, result in zip(rows, results):
            party = None
            if result:
                party_id, score, reasons = result
                if {'email', 'phone'} & set(reasons):
                    party = party_id
                elif (not row['emails'] and not row['phones']
                        and score >= NAME_SCORE):
                    party = party_id
            matches.append(int(party) if party is not None else None)
        return matches


def _fold(leader, row):
    "Add what row has and leader has not"
    for email in row['emails']:
        if email not in leader['emails']:
            leader['emails'].append(email)
    numbers = {p[1] for p in leader['phones']}
    for phone in row['phones']:
        if phone[1] not in numbers:
            leader['phones'].append(phone)
    for key in ['website', 'organisation']:
        if not leader.get(key) and row.get(key):
            leader[key] = row[key]
    if not leader.get('address') and row.get('address'):
        leader['address'] = row['address']
    if row.get('note') and row['note'] != leader.get('note'):
        leader['note'] = '\n'.join(
            filter(None, [leader.get('note'), row['note']]))


def _sizes(Model, names):
    return {n: Model._fields[n].size for n in names
        if getattr(Model._fields[n], 'size', None)}


class BulkPartyWriter:
    """Writes parties with their contact mechanisms, address and note by
    multi-row INSERTs, storing exactly what the ORM stores for the same
    values (the rows are validated by importer.clean_party_row)."""

    def __init__(self):
        pool = Pool()
        transaction = Transaction()
        self.pool = pool
        self.transaction = transaction
        self.database = transaction.database
        self.cursor = transaction.connection.cursor()
        self.Party = pool.get('party.party')
        self.Mechanism = pool.get('party.contact_mechanism')
        self.Address = pool.get('party.address')
        self.Note = pool.get('ir.note')
        ModelAccess = pool.get('ir.model.access')
        for Model in [self.Party, self.Mechanism, self.Address, self.Note]:
            ModelAccess.check(Model.__name__, 'create')
        self.defaults = {}
        self.created = {
            Model: [] for Model in [self.Party, self.Mechanism,
                self.Address, self.Note]}
        self.touched = set()
        self.changed = set()

    def _defaults(self, Model, given):
        "The stored default values of the fields of Model not given"
        key = (Model, tuple(sorted(given)))
        if key not in self.defaults:
            names = [n for n, f in Model._fields.items()
                if n not in given and n not in {
                    'id', 'create_uid', 'create_date', 'write_uid',
                    'write_date'}
                and not isinstance(f, fields.Function)
                and not hasattr(f, 'set')]
            defaults = Model._clean_defaults(
                Model.default_get(names, with_rec_name=False))
            self.defaults[key] = {n: defaults.get(n) for n in names}
        return self.defaults[key]

    def insert(self, Model, vlist):
        """Insert the values (dicts with the same keys) into the table of
        Model with its defaults; return the ids in order"""
        if not vlist:
            return []
        table = Model.__table__()
        given = list(vlist[0])
        defaults = self._defaults(Model, given)
        names = given + list(defaults)
        columns = [getattr(table, n) for n in names] + [
            table.create_uid, table.create_date]
        sql_fields = [Model._fields[n] for n in names]
        user = self.transaction.user
        default_values = [defaults[n] for n in defaults]
        formats = [_sql_formatter(f) for f in sql_fields]
        rows = []
        for values in vlist:
            row = [values[n] for n in given] + default_values
            rows.append([f(v) for f, v in zip(formats, row)]
                + [user, CurrentTimestamp()])
        ids = []
        if backend.name == 'postgresql':
            ids = self._insert_unnest(Model, table, names, rows)
        elif self.database.has_multirow_insert():
            for sub in grouped_slice(rows, 500):
                sub = list(sub)
                new_ids = self.database.nextid(
                    self.transaction.connection, Model._table,
                    count=len(sub))
                if new_ids is not None:
                    new_ids = list(new_ids) if len(sub) > 1 else [new_ids]
                    self.cursor.execute(*table.insert(
                            columns + [table.id],
                            [r + [i] for r, i in zip(sub, new_ids)]))
                    ids.extend(new_ids)
                else:
                    ids.extend(self._insert_one_by_one(table, columns, sub))
        else:
            ids.extend(self._insert_one_by_one(table, columns, rows))
        self.created.setdefault(Model, []).extend(ids)
        self._multivalues(Model, ids)
        return ids

    def _multivalues(self, Model, ids):
        """The value records the ORM creates for the MultiValue fields
        that have a default (party's lang)"""
        names = [n for n, f in Model._fields.items()
            if isinstance(f, fields.MultiValue)]
        if not names or not ids:
            return
        key = (Model, 'multivalue')
        if key not in self.defaults:
            self.defaults[key] = Model.default_get(
                names, with_rec_name=False)
        for name, value in self.defaults[key].items():
            Value = Model.multivalue_model(name)
            pattern = {}
            if issubclass(Value, CompanyValueMixin):
                # as CompanyMultiValueMixin.set_multivalue
                pattern['company'] = Transaction().context.get('company')
            record = Model(ids[0]).multivalue_record(name, **pattern)
            setattr(record, name, value)
            values = {}
            for fname, field_value in record._values._items():
                if isinstance(field_value, Model):
                    field = fname
                    continue
                values[fname] = getattr(field_value, 'id', field_value)
            self.insert(Value, [{**values, field: i} for i in ids])

    def _insert_unnest(self, Model, table, names, rows):
        """PostgreSQL: one INSERT ... SELECT FROM unnest(array per column)
        per 5,000 rows, with the ids reserved from the table's sequence as
        ModelSQL.create does; psycopg parses one parameter per column
        instead of one per value"""
        ids = []
        columns = ', '.join(f'"{n}"' for n in names + ['id', 'create_uid'])
        casts = []
        for name in names:
            base = Model._fields[name].sql_type().base
            casts.append(f'%s::{base}[]')
        casts.append('%s::INTEGER[]')
        casts.append('%s::INTEGER[]')
        query = (f'INSERT INTO "{Model._table}" ({columns}, "create_date") '
            f'SELECT *, CURRENT_TIMESTAMP FROM unnest({", ".join(casts)})')
        user = self.transaction.user
        for sub in grouped_slice(rows, 5000):
            sub = list(sub)
            new_ids = self.database.nextid(
                self.transaction.connection, Model._table, count=len(sub))
            if len(sub) == 1:
                new_ids = [new_ids]
            arrays = [list(c) for c in zip(*(r[:-2] for r in sub))]
            arrays.append(list(new_ids))
            arrays.append([user] * len(sub))
            self.cursor.execute(query, arrays)
            ids.extend(new_ids)
        return ids

    def _insert_one_by_one(self, table, columns, rows):
        # SQLite: no sequence to reserve ids
        for row in rows:
            if self.database.has_returning():
                self.cursor.execute(*table.insert(columns, [row], [table.id]))
                yield self.cursor.fetchone()[0]
            else:
                self.cursor.execute(*table.insert(columns, [row]))
                yield self.database.lastid(self.cursor)

    def create(self, rows):
        "Create a party for each cleaned row; return their ids"
        if not rows:
            return []
        Party = self.Party
        sequence = Party._code_sequence()
        if not sequence:
            raise ImportFileError(gettext('crm_core.msg_import_no_sequence'))
        codes = list(sequence.get_many(len(rows)))
        vlist = []
        normalised = 'name_normalised' in Party._fields
        for row, code in zip(rows, codes):
            values = {'name': row['name'], 'code': code}
            values.update(_code_columns(code))
            if normalised:
                values['name_normalised'] = normalise_name(row['name'])
            vlist.append(values)
        ids = self.insert(Party, vlist)
        for row, id_ in zip(rows, ids):
            row['party'] = id_
        self._add_details(rows, {})
        self.touched.update(ids)
        return ids

    def _add_details(self, rows, existing=None):
        """Insert the contact mechanisms, address and note of the rows.
        existing: {party id: [set of (type, compact), has an address]}
        for parties that exist already; it is kept up to date, so that two
        rows of one party add an email or the address once."""
        existing = existing if existing is not None else {}
        mechanisms, addresses, notes = [], [], []
        for row in rows:
            party = row['party']
            have = existing.setdefault(party, [set(), False])
            count = len(mechanisms) + len(addresses)
            for email in row['emails']:
                if ('email', email) not in have[0]:
                    have[0].add(('email', email))
                    mechanisms.append(_mechanism(party, 'email', email))
            for type_, compact, formatted in row['phones']:
                if ('phone', compact) not in have[0]:
                    have[0].add(('phone', compact))
                    mechanisms.append(_mechanism(
                            party, type_, formatted, compact))
            website = row.get('website')
            if website and ('website', website) not in have[0]:
                have[0].add(('website', website))
                mechanisms.append(_mechanism(party, 'website', website))
            if row.get('address') and not have[1]:
                have[1] = True
                addresses.append(_address(party, row['address']))
            if len(mechanisms) + len(addresses) > count:
                self.changed.add(party)
            if row.get('note'):
                notes.append({
                        'resource': f'party.party,{party}',
                        'message': row['note'],
                        })
        self.insert(self.Mechanism, _uniform(mechanisms))
        self.insert(self.Address, _uniform(addresses))
        self.insert(self.Note, notes)

    def update(self, pairs):
        """Add to the existing parties what the rows bring: the emails,
        phones and website they do not have, an address when they have
        none, the note"""
        if not pairs:
            return
        party_ids = sorted({p for _, p in pairs})
        existing = {p: [set(), False] for p in party_ids}
        mechanisms = self.Mechanism.__table__()
        addresses = self.Address.__table__()
        for sub in grouped_slice(party_ids, BATCH):
            sub = list(sub)
            self.cursor.execute(*mechanisms.select(
                    mechanisms.party, mechanisms.type,
                    mechanisms.value_compact,
                    where=mechanisms.party.in_(sub)))
            for party, type_, value in self.cursor:
                type_ = 'phone' if type_ in {'phone', 'mobile'} else type_
                existing[party][0].add((type_, value))
            self.cursor.execute(*addresses.select(
                    addresses.party, where=addresses.party.in_(sub)))
            for party, in self.cursor:
                existing[party][1] = True
        rows = []
        for row, party in pairs:
            row['party'] = party
            rows.append(row)
        self._add_details(rows, existing)
        self.touched.update(party_ids)

    def link_organisations(self, rows):
        """The person of each row works for its organisation, an existing
        party of that name or a new one"""
        if not rows:
            return
        pool = self.pool
        Relation = pool.get('party.relation')
        ModelData = pool.get('ir.model.data')
        Party = self.Party
        names = {r['organisation'] for r in rows}
        organisations = {}
        table = Party.__table__()
        for sub in grouped_slice(sorted(names), BATCH):
            self.cursor.execute(*table.select(
                    table.id, table.name,
                    where=table.name.in_(list(sub)) & (table.active == Literal(
                            True)),
                    order_by=[table.id.asc]))
            for id_, name in self.cursor:
                organisations.setdefault(name, id_)
        missing = sorted(names - organisations.keys())
        if missing:
            new = [{'name': n, 'emails': [], 'phones': [], 'address': None,
                    'note': None} for n in missing]
            for row, id_ in zip(new, self.create(new)):
                organisations[row['name']] = id_
        employs = ModelData.get_id('crm_core', 'relation_type_employs')
        pairs = {(organisations[r['organisation']], r['party'])
            for r in rows if organisations[r['organisation']] != r['party']}
        relation = Relation.__table__()
        have = set()
        froms = list({f for f, _ in pairs})
        for sub in grouped_slice(froms, BATCH):
            self.cursor.execute(*relation.select(
                    relation.from_, relation.to,
                    where=relation.from_.in_(list(sub))
                    & (relation.type == employs)))
            have.update(self.cursor)
        new = sorted(pairs - have)
        if new:
            Relation.create([{'from_': f, 'to': t, 'type': employs}
                    for f, t in new])

    def finish(self):
        "The hooks the ORM runs after a create, for what was inserted"
        pool = self.pool
        Trigger = pool.get('ir.trigger')
        check_access = self.transaction.user and self.transaction.check_access
        # The hooks of party.party run for the new parties once their
        # contact mechanisms and addresses are there: crm_core's compute
        # the quality score (and queue the webhooks). Those of contact
        # mechanisms and addresses only compute the quality of their party
        # again: the quality of updated parties is computed once below.
        # The import has dealt with the duplicates: no warning about them.
        with self.transaction.set_context(party_duplicate_warning=False):
            for Model, ids in self.created.items():
                if not ids:
                    continue
                triggers = Trigger.get_triggers(Model.__name__, 'create')
                hooks = Model == self.Party
                if not (triggers or hooks):
                    continue
                for sub in grouped_slice(ids, HOOK_BATCH):
                    records = Model.browse(list(sub))
                    if hooks:
                        Model.check_modification(
                            'create', records, external=check_access)
                        Model.on_modification('create', records)
                    for trigger in triggers:
                        trigger.queue_trigger_action(records)
            for Model, ids in self.created.items():
                self.transaction.create_records[Model.__name__].extend(ids)
        # The existing parties that got contact mechanisms or an address,
        # as if written through the ORM (quality, webhooks)
        created = set(self.created.get(self.Party, ()))
        changed = sorted(self.changed - created)
        for sub in grouped_slice(changed, HOOK_BATCH):
            self.Party.on_modification('write', self.Party.browse(list(sub)),
                field_names={'contact_mechanisms', 'addresses'})


def _sql_formatter(field):
    """field.sql_format, without its call for the values it keeps as they
    are (None, values of the field's Python type, stripped strings)"""
    sql_format = field.sql_format
    py_type = getattr(field, '_py_type', None)
    if field._type not in {'char', 'text', 'selection', 'integer',
            'many2one', 'boolean', 'bigint'} or py_type is None:
        return sql_format
    strip = getattr(field, 'strip', False) and field._type == 'char'

    def format_(value):
        if value is None:
            return None
        if type(value) is py_type and not (
                strip and py_type is str and value != value.strip()):
            return value
        return sql_format(value)
    return format_


def _uniform(vlist):
    "Same keys for every dict (insert needs them)"
    keys = set().union(*vlist) if vlist else set()
    return [{k: v.get(k) for k in sorted(keys)} for v in vlist]


def _code_columns(code):
    "code_alnum and code_digit as party.party.compute_fields sets them"
    import re
    alnum = re.sub(r'[\W_]', '', code) if code is not None else None
    try:
        digit = int(re.sub(r'\D', '', code or '')[-18:])
    except ValueError:
        digit = None
    return {'code_alnum': alnum, 'code_digit': digit}


def _mechanism(party, type_, value, compact=None):
    "The stored values of a contact mechanism, as party's compute_fields"
    from trytond.tools.email_ import normalize_email, validate_email
    if type_ == 'email':
        validate_email(value)
        return {'party': party, 'type': type_,
            'value': normalize_email(value), 'value_compact': value}
    return {'party': party, 'type': type_, 'value': value,
        'value_compact': compact if compact is not None else value}


def _address(party, address):
    return {
        'party': party,
        'street_unstructured': address['street'],
        'postal_code': address['postal_code'],
        'city': address['city'],
        'country': address['country'],
        'subdivision': address['subdivision'],
        }


def _address_key(address):
    return (address['street'], address['postal_code'], address['city'],
        address['country'])


class LeadImporter(_Importer):
    "Leads through the ORM (Lead.create is fast enough)"

    def extra_lookups(self):
        Stage = Pool().get('crm.stage')
        return {'stages': [(s.id, s.name) for s in Stage.search([])]}

    def run(self):
        pool = Pool()
        Lead = pool.get('crm.lead')
        Party = pool.get('party.party')
        lookups = self.lookups()
        lookups.sizes = _sizes(Lead, [
                'name', 'contact_name', 'company_name', 'email', 'phone'])
        mode = self.imp.duplicates
        cleaned = self.clean_all(
            lambda v: importer.clean_lead_row(v, lookups))
        self.tick(self.rows - len(cleaned))
        seen = {}
        rows = []
        for row in cleaned:
            key = _lead_key(row)
            if mode != 'create' and key in seen:
                self.outcomes[row['index']] = (
                    'skipped' if mode == 'skip' else 'merged')
                continue
            seen[key] = row
            rows.append(row)
        self.tick(len(cleaned) - len(rows))
        utm = _Utm()
        for batch in grouped_slice(rows, 500):
            batch = list(batch)
            existing = {} if mode == 'create' else _existing_leads(batch)
            # The party of a lead is found by its email or phone only
            parties = Party.match_bulk([{
                        'name': None,
                        'emails': r['emails'],
                        'phones': [p[1] for p in r['phones']],
                        } for r in batch])
            to_create, to_update = [], []
            for row, match in zip(batch, parties):
                values = {k: row[k] for k in [
                        'name', 'contact_name', 'company_name', 'email',
                        'phone', 'country', 'description', 'expected_revenue',
                        'expected_close', 'stage'] if row.get(k) is not None}
                values.update(utm.values(row))
                if match and {'email', 'phone'} & set(match[2]):
                    values['party'] = int(match[0])
                lead = existing.get(_lead_key(row))
                if lead is None:
                    to_create.append((row, values))
                elif mode == 'skip' or lead.state != 'open':
                    self.outcomes[row['index']] = 'skipped'
                else:
                    values.pop('stage', None)
                    to_update.append((row, lead, values))
            self._create(to_create)
            for row, lead, values in to_update:
                changes = {k: v for k, v in values.items()
                    if getattr(lead, k, None) != v
                    and not (k in {'party', 'country'} and getattr(
                            lead, k) and getattr(lead, k).id == v)}
                if changes:
                    Lead.write([lead], changes)
                self.outcomes[row['index']] = 'updated'
            self.tick(len(batch))
        return self.result()

    def _create(self, pairs):
        """Lead.create per batch; a failing batch is rolled back to its
        savepoint and retried row by row to reject the failing rows"""
        if not pairs:
            return
        if self._try_create([v for _, v in pairs]) is None:
            for row, _ in pairs:
                self.outcomes[row['index']] = 'created'
            return
        for row, values in pairs:
            error = self._try_create([values])
            if error is None:
                self.outcomes[row['index']] = 'created'
            else:
                self.reject(row['index'], gettext(
                        'crm_core.msg_import_reject_error',
                        message=getattr(error, 'message', None)
                        or str(error)))

    def _try_create(self, vlist):
        "None or the exception of Lead.create(vlist), undone"
        Lead = Pool().get('crm.lead')
        try:
            with savepoint('crm_import_leads'), \
                    Transaction().set_context(_skip_warnings=True):
                Lead.create(vlist)
        except (UserError, UserWarning, backend.DatabaseIntegrityError,
                backend.DatabaseDataError) as exception:
            return exception
        return None


def _lead_key(row):
    "Two rows are the same lead: same name and same email, phone or names"
    return (row['name'].strip().lower(),
        row.get('email') or row.get('phone')
        or (row.get('company_name') or row.get('contact_name')
            or '').strip().lower())


def _existing_leads(rows):
    "The open or closed leads of the database with the key of a row"
    Lead = Pool().get('crm.lead')
    names = list({r['name'] for r in rows})
    leads = Lead.search([('name', 'in', names)])
    result = {}
    for lead in leads:
        key = _lead_key({
                'name': lead.name, 'email': lead.email, 'phone': lead.phone,
                'company_name': lead.company_name,
                'contact_name': lead.contact_name})
        result.setdefault(key, lead)
    return result


class _Utm:
    "Campaign, medium and source by name, created when missing"

    def __init__(self):
        pool = Pool()
        self.models = {
            'campaign': pool.get('marketing.campaign'),
            'medium': pool.get('marketing.medium'),
            'source': pool.get('marketing.source'),
            }
        self.cache = {}

    def values(self, row):
        values = {}
        for key, Model in self.models.items():
            name = row.get(key)
            if not name:
                continue
            if (key, name) not in self.cache:
                self.cache[key, name] = Model.from_name(name).id
            values[f'marketing_{key}'] = self.cache[key, name]
        return values


# --- wizard -----------------------------------------------------------------

class ImportWizardStart(ModelView):
    __name__ = 'crm.import.wizard.start'
    __string__ = "CRM Import Start"

    kind = fields.Selection(_KINDS, "Kind", required=True, sort=False)
    file = fields.Binary("File", filename='file_name', required=True)
    file_name = fields.Char("File Name")

    @classmethod
    def default_kind(cls):
        return Transaction().context.get('crm_import_kind', 'party')


class ImportWizardMapping(ModelView):
    __name__ = 'crm.import.wizard.mapping'
    __string__ = "CRM Import Mapping"

    encoding = fields.Char("Encoding", readonly=True)
    delimiter = fields.Char("Delimiter", readonly=True)
    rows = fields.Integer("Rows", readonly=True)
    mappings = fields.One2Many(
        'crm.import.wizard.mapping.line', None, "Mapping",
        help="Correct the field of each column; ignored columns are not "
        "imported.")
    preview = fields.Text("Preview", readonly=True)


class ImportWizardMappingLine(ModelView):
    __name__ = 'crm.import.wizard.mapping.line'
    __string__ = "CRM Import Mapping Line"

    column = fields.Integer("Column", readonly=True)
    header = fields.Char("Header", readonly=True)
    field = fields.Selection(_FIELDS, "Field", sort=False)
    sample = fields.Char("Sample", readonly=True)


class ImportWizardOptions(ModelView):
    __name__ = 'crm.import.wizard.options'
    __string__ = "CRM Import Options"

    duplicates = fields.Selection(
        _DUPLICATES, "Duplicates", required=True, sort=False,
        help="What to do with a row that matches an existing party or an "
        "earlier row of the file.")
    country = fields.Many2One(
        'country.country', "Default Country",
        help="For the rows without country.")

    @classmethod
    def default_duplicates(cls):
        return 'update'

    @classmethod
    def default_country(cls):
        pool = Pool()
        Company = pool.get('company.company')
        company = Transaction().context.get('company')
        if company:
            company = Company(company)
            address = company.party.address_get()
            if address and address.country:
                return address.country.id


class ImportWizard(Wizard):
    __name__ = 'crm.import.wizard'
    __string__ = "Import CSV"

    start = StateView('crm.import.wizard.start',
        'crm_core.import_wizard_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Next", 'mapping', 'tryton-forward', default=True),
            ])
    mapping = StateView('crm.import.wizard.mapping',
        'crm_core.import_wizard_mapping_view_form', [
            Button("Back", 'start', 'tryton-back'),
            Button("Next", 'options', 'tryton-forward', default=True),
            ])
    options = StateView('crm.import.wizard.options',
        'crm_core.import_wizard_options_view_form', [
            Button("Back", 'mapping', 'tryton-back'),
            Button("Import", 'import_', 'tryton-ok', default=True),
            ])
    import_ = StateTransition()
    open_ = StateAction('crm_core.act_import_form')

    def _table(self):
        Import = Pool().get('crm.import')
        return Import(file=self.start.file, file_name=self.start.file_name,
            encoding=None, delimiter=None).read_table()

    def default_mapping(self, fields):
        Import = Pool().get('crm.import')
        table = self._table()
        lines = Import.mapping_values(table, self.start.kind)
        old = {(l.column, l.header): l.field
            for l in getattr(self.mapping, 'mappings', None) or []}
        for line in lines:
            key = (line['column'], line['header'])
            if key in old:
                line['field'] = old[key]
        return {
            'encoding': table.encoding,
            'delimiter': _delimiter_name(table.delimiter),
            'rows': len(table.rows),
            'mappings': lines,
            'preview': _preview(table),
            }

    def transition_import_(self):
        pool = Pool()
        Import = pool.get('crm.import')
        Mapping = pool.get('crm.import.mapping')
        table = self._table()
        imp = Import(
            file=self.start.file, file_name=self.start.file_name,
            kind=self.start.kind, encoding=table.encoding,
            delimiter=table.delimiter, rows=len(table.rows),
            duplicates=self.options.duplicates, country=self.options.country)
        imp.mappings = [Mapping(column=l.column, header=l.header,
                field=l.field, sample=l.sample)
            for l in self.mapping.mappings]
        imp.save()
        Import.run([imp])
        return 'open_'

    def do_open_(self, action):
        Import = Pool().get('crm.import')
        imports = Import.search([
                ('user', '=', Transaction().user),
                ], order=[('id', 'DESC')], limit=1)
        action['views'].reverse()
        return action, {'res_id': [i.id for i in imports]}


def _preview(table):
    "The header and first rows, in columns"
    rows = [table.header] + table.rows[:PREVIEW_ROWS]
    rows = [[c.replace('\n', ' ')[:24] for c in r] for r in rows]
    width = max(len(r) for r in rows)
    sizes = [max((len(r[i]) for r in rows if i < len(r)), default=0)
        for i in range(width)]
    return '\n'.join(
        ' | '.join(c.ljust(s) for c, s in zip(r, sizes)) for r in rows)


class ExportStart(ModelView):
    __name__ = 'crm.export.start'
    __string__ = "CRM Export Start"

    kind = fields.Selection([
            ('party', "Parties"),
            ('lead', "Leads"),
            ], "Kind", required=True)


class ExportResult(ModelView):
    __name__ = 'crm.export.result'
    __string__ = "CRM Export Result"

    file = fields.Binary("File", filename='file_name', readonly=True)
    file_name = fields.Char("File Name", readonly=True)


class Export(Wizard):
    __name__ = 'crm.export'
    __string__ = "Export CSV"

    start = StateView('crm.export.start',
        'crm_core.export_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Export", 'result', 'tryton-ok', default=True),
            ])
    result = StateView('crm.export.result',
        'crm_core.export_result_view_form', [
            Button("Close", 'end', 'tryton-close', default=True),
            ])

    def default_start(self, fields):
        model = Transaction().context.get('active_model')
        return {'kind': 'lead' if model == 'crm.lead' else 'party'}

    def default_result(self, fields):
        pool = Pool()
        Import = pool.get('crm.import')
        kind = self.start.kind
        model = 'crm.lead' if kind == 'lead' else 'party.party'
        records = None
        context = Transaction().context
        if context.get('active_model') == model and context.get(
                'active_ids'):
            records = pool.get(model).browse(context['active_ids'])
        name = 'leads' if kind == 'lead' else 'parties'
        return {
            'file': Import.export_csv(kind, records),
            'file_name': f'{name}.csv',
            }
