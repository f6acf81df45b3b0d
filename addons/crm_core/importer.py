"""Reading CSV files as people have them, for the import of parties,
contacts and leads.

This part is pure Python (no Tryton import at the top) so that it can be
tested without a database: encoding and delimiter detection, mapping of the
header names of other CRMs to our fields, and the cleaning of one row with
the rules the models enforce. The import itself is the model crm.import
(csv_import.py); ``python -m crm_core.importer`` runs it from the command
line (see doc/import.rst).
"""
import codecs
import csv
import datetime as dt
import io
import re
import sys
import time
import unicodedata
from collections import namedtuple
from decimal import Decimal, InvalidOperation

from .contact import clean_email

try:
    import phonenumbers
    from phonenumbers import PhoneNumberFormat
except ImportError:  # pragma: no cover (a dependency of crm_core)
    phonenumbers = None

DELIMITERS = [',', ';', '\t', '|']
KINDS = ['party', 'contact', 'lead']
SAMPLE_SIZE = 64 * 1024

# Field: (label, multiple values allowed)
FIELDS = {
    'name': "Name",
    'first_name': "First Name",
    'last_name': "Last Name",
    'contact_name': "Contact Name",
    'company_name': "Company",
    'email': "Email",
    'phone': "Phone",
    'mobile': "Mobile",
    'website': "Website",
    'street': "Street",
    'postal_code': "Postal Code",
    'city': "City",
    'subdivision': "State",
    'country': "Country",
    'title': "Title",
    'notes': "Notes",
    'expected_revenue': "Expected Revenue",
    'stage': "Stage",
    'expected_close': "Close Date",
    'campaign': "Campaign",
    'medium': "Medium",
    'source': "Source",
    }
KIND_FIELDS = {
    'party': [
        'name', 'first_name', 'last_name', 'company_name', 'email', 'phone',
        'mobile', 'website', 'street', 'postal_code', 'city', 'subdivision',
        'country', 'title', 'notes'],
    'lead': [
        'name', 'contact_name', 'first_name', 'last_name', 'company_name',
        'email', 'phone', 'mobile', 'country', 'title', 'notes',
        'expected_revenue', 'stage', 'expected_close', 'campaign', 'medium',
        'source'],
    }
KIND_FIELDS['contact'] = KIND_FIELDS['party']
# Values of several columns mapped to these fields are all kept
LIST_FIELDS = {'email', 'phone', 'mobile'}
LINE_FIELDS = {'street', 'notes'}
WORD_FIELDS = {'name', 'first_name', 'last_name', 'contact_name'}

# Header names of other systems (normalised: see normalise_header)
_SYNONYMS = {
    'name': [
        'name', 'fullname', 'displayname', 'partyname', 'customername',
        'contactname', 'contact'],
    'first_name': ['firstname', 'givenname', 'forename', 'prenom', 'vorname',
        'keresztnev'],
    'last_name': ['lastname', 'surname', 'familyname', 'nom', 'nachname',
        'vezeteknev'],
    'company_name': [
        'company', 'companyname', 'accountname', 'account', 'organisation',
        'organization', 'organisationname', 'organizationname',
        'relatedcompany', 'employer', 'parentcompany', 'firma', 'societe',
        'entreprise', 'unternehmen', 'ceg'],
    'email': [
        'email', 'emailaddress', 'mail', 'mailaddress', 'courriel',
        'emailaddresses'],
    'phone': [
        'phone', 'telephone', 'tel', 'phonenumber', 'telephonenumber',
        'officephone', 'businessphone', 'workphone', 'homephone',
        'telefon', 'telefonnummer',
        'primaryphone', 'otherphone', 'landline'],
    'mobile': [
        'mobile', 'mobilephone', 'mobilenumber', 'cell', 'cellphone',
        'cellular', 'handy', 'portable'],
    'website': ['website', 'web', 'url', 'homepage', 'site', 'websiteurl',
        'webpage', 'www'],
    'street': [
        'street', 'address', 'streetaddress', 'street1', 'street2',
        'street3', 'address1', 'address2', 'address3', 'addressline1',
        'adresse', 'rue', 'strasse', 'cim',
        'addressline2', 'addressline3', 'addressstreet', 'mailingstreet',
        'billingstreet', 'businessstreet', 'homestreet'],
    'postal_code': [
        'zip', 'zipcode', 'postalcode', 'postcode', 'plz', 'codepostal',
        'mailingzip', 'billingzip', 'mailingpostalcode',
        'billingpostalcode', 'businesspostalcode'],
    'city': ['city', 'town', 'locality', 'ville', 'ort', 'varos',
        'mailingcity',
        'billingcity', 'businesscity'],
    'subdivision': [
        'state', 'province', 'region', 'county', 'stateprovince',
        'subdivision', 'stateregion', 'mailingstate', 'billingstate',
        'businessstate'],
    'country': [
        'country', 'countrycode', 'countryregion', 'nation', 'land', 'pays',
        'mailingcountry', 'billingcountry', 'businesscountry'],
    'title': ['title', 'jobtitle', 'position', 'function', 'role'],
    'notes': [
        'notes', 'note', 'comments', 'comment', 'description', 'background',
        'remarks', 'memo', 'remarques', 'bemerkungen', 'megjegyzes'],
    'expected_revenue': [
        'amount', 'expectedrevenue', 'value', 'dealvalue', 'revenue',
        'opportunityamount', 'dealamount', 'expectedamount'],
    'stage': ['stage', 'salesstage', 'dealstage', 'pipelinestage'],
    'expected_close': [
        'closedate', 'expectedclose', 'expectedclosedate', 'closingdate',
        'expectedclosingdate', 'dateclosing'],
    'campaign': ['campaign', 'utmcampaign', 'campaignname',
        'marketingcampaign'],
    'medium': ['medium', 'utmmedium', 'marketingmedium'],
    'source': ['source', 'leadsource', 'utmsource', 'origin',
        'marketingsource'],
    }
_LEAD_SYNONYMS = dict(_SYNONYMS,
    name=['opportunityname', 'opportunity', 'subject', 'dealname', 'deal',
        'leadname', 'lead', 'topic', 'opportunitytitle', 'leadtitle'],
    contact_name=['name', 'fullname', 'contactname', 'contact',
        'contactperson', 'person'])
SYNONYMS = {
    'party': _SYNONYMS,
    'contact': _SYNONYMS,
    'lead': _LEAD_SYNONYMS,
    }
_AFFIXES = ['work', 'home', 'business', 'primary', 'other', 'private',
    'personal', 'main', 'office', 'contact', 'default', 'preferred']

# Names of countries people write that are not the ISO name
COUNTRY_ALIASES = {
    'usa': 'US', 'us': 'US', 'unitedstatesofamerica': 'US',
    'america': 'US', 'uk': 'GB', 'greatbritain': 'GB', 'england': 'GB',
    'scotland': 'GB', 'wales': 'GB', 'deutschland': 'DE',
    'magyarorszag': 'HU', 'osterreich': 'AT', 'schweiz': 'CH',
    'suisse': 'CH', 'espana': 'ES', 'italia': 'IT', 'nederland': 'NL',
    'holland': 'NL', 'belgique': 'BE', 'belgie': 'BE', 'polska': 'PL',
    'ceskarepublika': 'CZ', 'czechia': 'CZ', 'russia': 'RU',
    'southkorea': 'KR', 'korea': 'KR', 'vietnam': 'VN',
    }

Table = namedtuple('Table', ['header', 'rows', 'encoding', 'delimiter'])


class RowError(Exception):
    """A row that cannot be imported: code is the end of the message id
    msg_import_reject_<code>, params its parameters"""

    def __init__(self, code, **params):
        super().__init__(code, params)
        self.code = code
        self.params = params

    def __str__(self):
        return REJECT_TEXTS[self.code] % self.params


# English texts of the reject reasons (message.xml holds the translatable
# ones with the same %(name)s parameters)
REJECT_TEXTS = {
    'empty_name': "The row has no name.",
    'email_invalid': 'The email address "%(value)s" is not valid.',
    'phone_invalid': 'The phone number "%(value)s" is not valid '
    'for country "%(country)s".',
    'country_unknown': 'The country "%(value)s" is unknown.',
    'subdivision_unknown':
    'The subdivision "%(value)s" is unknown in country "%(country)s".',
    'amount_invalid': 'The amount "%(value)s" is not a number.',
    'date_invalid': 'The date "%(value)s" is not a date.',
    'stage_unknown': 'The stage "%(value)s" is unknown.',
    'too_long': 'The value of "%(field)s" is longer than %(size)s '
    'characters.',
    'columns': "The row has %(count)s columns instead of %(expected)s.",
    'error': "%(message)s",
    }


# --- reading ---------------------------------------------------------------

_BOMS = [
    (codecs.BOM_UTF32_LE, 'utf-32'),
    (codecs.BOM_UTF32_BE, 'utf-32'),
    (codecs.BOM_UTF8, 'utf-8-sig'),
    (codecs.BOM_UTF16_LE, 'utf-16'),
    (codecs.BOM_UTF16_BE, 'utf-16'),
    ]


def detect_encoding(data):
    """The encoding of data (bytes): a BOM first, then UTF-8 when it
    decodes, then charset-normalizer's best guess (cp1252 when in doubt)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    try:
        data.decode('utf-8')
    except UnicodeDecodeError:
        pass
    else:
        return 'utf-8'
    # UTF-16 without BOM: every other byte of ASCII text is NUL
    sample = data[:SAMPLE_SIZE]
    if sample and sample.count(b'\x00') > len(sample) // 4:
        even = sample[0::2].count(b'\x00')
        odd = sample[1::2].count(b'\x00')
        return 'utf-16-be' if even > odd else 'utf-16-le'
    import charset_normalizer
    best = charset_normalizer.from_bytes(data[:SAMPLE_SIZE * 4]).best()
    encoding = best.encoding if best else None
    # Western files from spreadsheets are cp1252 (a superset of latin-1 for
    # printable characters); charset-normalizer often names a cousin.
    if encoding in {None, 'ascii', 'latin_1', 'iso8859_15', 'cp1250',
            'iso8859_2', 'cp1257', 'mac_roman', 'cp850'}:
        if _decodes(data, 'cp1252'):
            return 'cp1252'
        return 'latin-1'
    return encoding


def _decodes(data, encoding):
    try:
        data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def decode(data, encoding=None):
    "Return (text, encoding) of the bytes"
    if isinstance(data, str):
        return data, encoding or 'utf-8'
    encoding = encoding or detect_encoding(data)
    text = data.decode(encoding)
    if text.startswith('\ufeff'):
        text = text[1:]
    return text, encoding


def detect_delimiter(text):
    """The delimiter of the CSV text: csv.Sniffer on a sample, checked
    against the first lines; else the candidate that splits the first lines
    into the same number of columns (more than one) most often."""
    sample = _sample(text)
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=''.join(DELIMITERS))
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = None
    if delimiter in DELIMITERS and _consistent(sample, delimiter):
        return delimiter
    best, best_score = ',', (0, 0)
    for candidate in DELIMITERS:
        score = _consistent(sample, candidate)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _sample(text):
    sample = text[:SAMPLE_SIZE]
    if len(text) > SAMPLE_SIZE:
        # cut at the end of a line, so the last record is complete
        cut = sample.rfind('\n')
        if cut > 0:
            sample = sample[:cut + 1]
    return sample


def _consistent(sample, delimiter):
    """(rows with the header's number of columns, that number) for the
    sample read with delimiter; 0 when it gives one column"""
    try:
        rows = list(csv.reader(io.StringIO(sample), delimiter=delimiter))
    except csv.Error:
        return (0, 0)
    rows = [r for r in rows if r][:50]
    if not rows or len(rows[0]) < 2:
        return (0, 0)
    width = len(rows[0])
    return (sum(1 for r in rows if len(r) == width), width)


def read(data, encoding=None, delimiter=None):
    """Read the CSV file (bytes or text) into a Table: header (list of
    names), rows (list of lists of strings, one per record, quoted newlines
    kept), encoding and delimiter (detected unless given)."""
    text, encoding = decode(data, encoding)
    delimiter = delimiter or detect_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=''), delimiter=delimiter)
    header = None
    rows = []
    for record in reader:
        if header is None:
            if not any(c.strip() for c in record):
                continue
            header = [c.strip() for c in record]
            continue
        # Windows line ends inside quoted fields
        rows.append([c.replace('\r\n', '\n') if '\r' in c else c
                for c in record])
    # Trailing empty records (blank lines) are not rows
    while rows and not any(c.strip() for c in rows[-1]):
        rows.pop()
    return Table(header or [], rows, encoding, delimiter)


def row_number(index):
    "The spreadsheet row number of the data row at index (header is row 1)"
    return index + 2


# --- mapping ---------------------------------------------------------------

def normalise_header(name):
    "Lower case, accents removed, only letters and digits"
    name = unicodedata.normalize('NFKD', name or '')
    name = ''.join(c for c in name if not unicodedata.combining(c))
    return re.sub(r'[^a-z0-9]', '', name.lower())


def map_header(name, kind='party'):
    "Our field for a header name of another system, or None"
    synonyms = SYNONYMS[kind]
    fields = KIND_FIELDS[kind]
    key = normalise_header(name)
    candidates = [key, re.sub(r'\d+$', '', key)]
    for candidate in list(candidates):
        for affix in _AFFIXES:
            if candidate.startswith(affix) and len(candidate) > len(affix):
                candidates.append(candidate[len(affix):])
            if candidate.endswith(affix) and len(candidate) > len(affix):
                candidates.append(candidate[:-len(affix)])
    for candidate in candidates:
        for field in fields:
            if candidate in synonyms.get(field, ()):
                return field
    return None


def map_headers(header, kind='party'):
    "The list of fields (or None) aligned with the header"
    return [map_header(h, kind) for h in header]


def parse_mapping_options(options, header, kind='party'):
    """Corrections of the automatic mapping given as 'Header=field'
    (field empty: ignore the column). Return the list of fields."""
    fields = map_headers(header, kind)
    keys = [normalise_header(h) for h in header]
    for option in options or ():
        name, _, field = option.partition('=')
        field = field.strip() or None
        if field is not None and field not in KIND_FIELDS[kind]:
            raise ValueError(f"unknown field {field!r} for {kind}")
        key = normalise_header(name)
        if key not in keys:
            raise ValueError(f"no column {name!r} in the file")
        for i, k in enumerate(keys):
            if k == key:
                fields[i] = field
    return fields


def mapped_values(row, fields):
    """The values of the row by field: a list of the non-empty stripped
    values of the columns mapped to it"""
    values = {}
    for value, field in zip(row, fields):
        if field is None:
            continue
        value = (value or '').strip()
        if value:
            values.setdefault(field, []).append(value)
    return values


# --- cleaning --------------------------------------------------------------

def key_text(value):
    "Accents removed, lower case, letters and digits only: for lookups"
    return normalise_header(value)


class Lookups:
    """What the cleaning of rows looks up, loaded once per import:
    countries {key: (id, code)}, subdivisions {(country id, key): id},
    stages {key: id}, the default country (id, code) and the maximum
    sizes of the fields {field: size}."""

    def __init__(self, countries=(), subdivisions=(), stages=(),
            default_country=None, sizes=None):
        self.countries = {}
        for id_, code, code3, name in countries:
            for key in [code, code3, name]:
                if key:
                    self.countries.setdefault(key_text(key), (id_, code))
        for alias, code in COUNTRY_ALIASES.items():
            for id_, code_, _, _ in countries:
                if code_ == code:
                    self.countries.setdefault(alias, (id_, code))
        self.subdivisions = {}
        for id_, country, code, name in subdivisions:
            keys = [code, name]
            if code and '-' in code:
                keys.append(code.split('-', 1)[1])
            for key in keys:
                if key:
                    self.subdivisions.setdefault(
                        (country, key_text(key)), id_)
        self.stages = {key_text(n): i for i, n in stages}
        self.default_country = default_country
        self.sizes = sizes or {}

    def country(self, value):
        return self.countries.get(key_text(value))


def _join(values, field):
    if field in LINE_FIELDS:
        return '\n'.join(values)
    if field in WORD_FIELDS:
        return ' '.join(values)
    return values[0]


def _first(values, field):
    return _join(values[field], field) if field in values else None


def _split_emails(values):
    for value in values:
        for part in re.split(r'[,;\s]+', value):
            if part:
                yield part


def _split_phones(values):
    for value in values:
        for part in re.split(r'[;\n]+|\s+/\s+', value):
            if part.strip():
                yield part.strip()


def parse_phone(value, country_code=None):
    """(E.164, international format) of the phone number or ValueError, by
    the rules of contact.e164 with one parse; the international form (with
    an extension like "x371", which E.164 has not) is what
    party.contact_mechanism stores as value"""
    try:
        number = phonenumbers.parse(value.strip(), country_code or None)
    except phonenumbers.NumberParseException as exception:
        raise ValueError(str(exception)) from exception
    if not phonenumbers.is_valid_number(number):
        raise ValueError(value)
    return (phonenumbers.format_number(number, PhoneNumberFormat.E164),
        phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL))


def _clean_country(values, lookups):
    if 'country' in values:
        raw = _first(values, 'country')
        country = lookups.country(raw)
        if not country:
            raise RowError('country_unknown', value=raw)
        return country
    return lookups.default_country


def _clean_contacts(values, country, lookups):
    emails = []
    for raw in _split_emails(values.get('email', [])):
        try:
            email = clean_email(raw)
        except ValueError:
            raise RowError('email_invalid', value=raw)
        if email and email not in emails:
            emails.append(email)
    phones = []
    code = country[1] if country else None
    for type_ in ['phone', 'mobile']:
        for raw in _split_phones(values.get(type_, [])):
            try:
                compact, formatted = parse_phone(raw, code)
            except ValueError:
                raise RowError('phone_invalid', value=raw,
                    country=code or '')
            if compact not in [p[1] for p in phones]:
                phones.append((type_, compact, formatted))
    return emails, phones


def _check_sizes(row, lookups):
    for field, size in lookups.sizes.items():
        value = row.get(field)
        if isinstance(value, str) and size and len(value) > size:
            raise RowError('too_long', field=FIELDS.get(field, field),
                size=size)


def person_name(values, kind='party'):
    "The name of the person: Name, or First Name and Last Name joined"
    name = _first(values, 'contact_name' if kind == 'lead' else 'name')
    if not name:
        name = ' '.join(
            v for v in [_first(values, 'first_name'),
                _first(values, 'last_name')] if v)
    return name or None


def clean_party_row(values, lookups, kind='party'):
    """The cleaned party of the mapped values of a row, or RowError.
    Returns a dict: name, emails (clean), phones [(type, E.164,
    international)], website, address (dict or None), organisation
    (the company name when the row is a person of a company), note."""
    person = person_name(values)
    company = _first(values, 'company_name')
    if kind == 'contact' or person:
        name = person
        organisation = company if company != person else None
    else:
        name, organisation = company, None
    if not name:
        raise RowError('empty_name')
    country = _clean_country(values, lookups)
    emails, phones = _clean_contacts(values, country, lookups)
    address = None
    street = _first(values, 'street')
    postal_code = _first(values, 'postal_code')
    city = _first(values, 'city')
    subdivision = None
    if 'subdivision' in values:
        raw = _first(values, 'subdivision')
        if not country:
            raise RowError('subdivision_unknown', value=raw, country='')
        subdivision = lookups.subdivisions.get((country[0], key_text(raw)))
        if subdivision is None:
            raise RowError('subdivision_unknown', value=raw,
                country=country[1])
    if (street or postal_code or city or subdivision
            or 'country' in values):
        address = {
            'street': street,
            'postal_code': postal_code,
            'city': city,
            'country': country[0] if country else None,
            'subdivision': subdivision,
            }
    note = []
    if 'title' in values:
        note.append(f"{FIELDS['title']}: {_first(values, 'title')}")
    if 'notes' in values:
        note.append(_first(values, 'notes'))
    row = {
        'name': name,
        'emails': emails,
        'phones': phones,
        'website': _first(values, 'website'),
        'address': address,
        'organisation': organisation,
        'note': '\n'.join(note) or None,
        }
    _check_sizes(row, lookups)
    return row


def parse_amount(value):
    "Decimal of '1,234.50', '1.234,50', '$ 1 200', '1200 EUR' or ValueError"
    text = re.sub(r'[^\d,.\-]', '', value)
    if not re.search(r'\d', text):
        raise ValueError(value)
    if ',' in text and '.' in text:
        # the last separator is the decimal one
        if text.rfind(',') > text.rfind('.'):
            text = text.replace('.', '').replace(',', '.')
        else:
            text = text.replace(',', '')
    else:
        for separator in ',.':
            if separator not in text:
                continue
            groups = text.split(separator)
            if len(groups) > 2 or (separator == ','
                    and all(len(g) == 3 for g in groups[1:])):
                # thousands: "1,234", "1.234.567"
                text = ''.join(groups)
            else:
                text = '.'.join(groups)
    try:
        return Decimal(text).quantize(Decimal('0.01'))
    except InvalidOperation as exception:
        raise ValueError(value) from exception


# Order of day and month in D/M/Y dates when both are 12 or less
DATE_ORDER = 'day'


def parse_date(value):
    "date of ISO, D.M.Y, D/M/Y or M/D/Y text (day first unless impossible)"
    text = value.strip()
    match = re.match(r'^(\d{4})-(\d{1,2})-(\d{1,2})', text)
    if match:
        year, month, day = map(int, match.groups())
        return dt.date(year, month, day)
    match = re.match(r'^(\d{1,2})([./-])(\d{1,2})[./-](\d{2,4})$', text)
    if match:
        first, separator, second, year = match.groups()
        first, second, year = int(first), int(second), int(year)
        if year < 100:
            year += 2000
        if separator == '/' and (second > 12
                or (DATE_ORDER == 'month' and first <= 12)):
            return dt.date(year, first, second)
        return dt.date(year, second, first)
    raise ValueError(value)


def clean_lead_row(values, lookups):
    "The cleaned values of a lead row (crm.lead fields) or RowError"
    person = person_name(values, 'lead')
    company = _first(values, 'company_name')
    name = _first(values, 'name') or company or person
    if not name:
        raise RowError('empty_name')
    country = _clean_country(values, lookups)
    emails, phones = _clean_contacts(values, country, lookups)
    row = {
        'name': name,
        'contact_name': person,
        'company_name': company,
        'email': emails[0] if emails else None,
        'phone': phones[0][1] if phones else None,
        'country': country[0] if country else None,
        'emails': emails,
        'phones': phones,
        }
    description = []
    if 'title' in values:
        description.append(f"{FIELDS['title']}: {_first(values, 'title')}")
    if 'notes' in values:
        description.append(_first(values, 'notes'))
    extra = emails[1:] + [p[1] for p in phones[1:]]
    if extra:
        description.append(', '.join(extra))
    row['description'] = '\n'.join(description) or None
    if 'expected_revenue' in values:
        raw = _first(values, 'expected_revenue')
        try:
            row['expected_revenue'] = parse_amount(raw)
        except ValueError:
            raise RowError('amount_invalid', value=raw)
    if 'expected_close' in values:
        raw = _first(values, 'expected_close')
        try:
            row['expected_close'] = parse_date(raw)
        except ValueError:
            raise RowError('date_invalid', value=raw)
    if 'stage' in values:
        raw = _first(values, 'stage')
        stage = lookups.stages.get(key_text(raw))
        if stage is None:
            raise RowError('stage_unknown', value=raw)
        row['stage'] = stage
    for utm in ['campaign', 'medium', 'source']:
        if utm in values:
            row[utm] = _first(values, utm).lower()
    _check_sizes(row, lookups)
    return row


def infile_keys(row):
    """(keys to look up, keys to register) of a row for the duplicates
    inside a file: two rows are the same party when they share an email or
    a phone, or, for a row without both, when their normalised names are
    equal"""
    from .contact import normalise_name
    contacts = [('email', e) for e in row.get('emails', ())]
    contacts += [('phone', p[1]) for p in row.get('phones', ())]
    name = ('name', normalise_name(row['name']))
    return (contacts or [name]), contacts + [name]


# --- rejects file ----------------------------------------------------------

def rejects_csv(header, rejects, delimiter=','):
    """The rejects file: row number, reason, then the original columns.
    rejects is a list of (row number, reason, row)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator='\r\n')
    writer.writerow(['Row', 'Reason'] + list(header))
    for number, reason, row in rejects:
        writer.writerow([number, reason] + list(row))
    return out.getvalue().encode('utf-8-sig')


# --- command line ----------------------------------------------------------

class Progress:
    "A progress bar on stderr: [#####     ] 12,000/50,000 1,234 rows/s"

    def __init__(self, total, stream=None, width=30):
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.width = width
        self.start = time.monotonic()
        self.last = 0

    def __call__(self, done):
        now = time.monotonic()
        if done < self.total and now - self.last < 0.2:
            return
        self.last = now
        fill = int(self.width * done / self.total)
        rate = done / max(now - self.start, 1e-6)
        self.stream.write(
            f"\r[{'#' * fill}{' ' * (self.width - fill)}] "
            f"{done:,}/{self.total:,} {rate:,.0f} rows/s")
        if done >= self.total:
            self.stream.write('\n')
        self.stream.flush()


def _parser():
    import argparse
    parser = argparse.ArgumentParser(
        prog='python -m crm_core.importer',
        description="Import parties, contacts or leads from a CSV file "
        "into a Tryton database (or export them with --export).")
    parser.add_argument('file', help="the CSV file (- for stdin/stdout)")
    parser.add_argument('--database', '-d', required=True)
    parser.add_argument('--kind', choices=KINDS, default='party')
    parser.add_argument('--mapping', action='append', default=[],
        metavar='Header=field',
        help="correct the mapping of a column (empty field: ignore it); "
        "fields: " + ', '.join(FIELDS))
    parser.add_argument('--duplicates', choices=['update', 'skip', 'create'],
        default='update')
    parser.add_argument('--rejects', metavar='FILE',
        help="write the rejected rows with their row number and reason")
    parser.add_argument('--encoding', help="instead of detecting it")
    parser.add_argument('--delimiter', help="instead of detecting it")
    parser.add_argument('--country', metavar='CODE',
        help="country of the rows without one (ISO code)")
    parser.add_argument('--company', type=int,
        help="id of the company (default: the user's)")
    parser.add_argument('--user', default='admin',
        help="login of the user importing (default admin)")
    parser.add_argument('--export', action='store_true',
        help="export the parties or leads to FILE instead")
    parser.add_argument('--dry-run', action='store_true',
        help="check the rows and roll back")
    return parser


def main(argv=None):
    options = _parser().parse_args(argv)
    from trytond import config
    config.update_etc()
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    Pool.start()
    pool = Pool(options.database)
    pool.init()
    with Transaction().start(options.database, 0) as transaction:
        User = pool.get('res.user')
        user, = User.search([('login', '=', options.user)])
        company = options.company or (user.company.id if user.company
            else None)
    with Transaction().start(options.database, user.id,
            context={'company': company, 'language': 'en'}) as transaction:
        Import = pool.get('crm.import')
        if options.export:
            data = Import.export_csv(options.kind)
            if options.file == '-':
                sys.stdout.buffer.write(data)
            else:
                with open(options.file, 'wb') as file:
                    file.write(data)
            print(f"exported {options.kind} to {options.file}",
                file=sys.stderr)
            return 0
        if options.file == '-':
            data = sys.stdin.buffer.read()
            file_name = 'stdin.csv'
        else:
            with open(options.file, 'rb') as file:
                data = file.read()
            file_name = options.file.rsplit('/', 1)[-1]
        delimiter = options.delimiter
        if delimiter in {'tab', '\\t'}:
            delimiter = '\t'
        imp = Import.from_file(data, file_name, kind=options.kind,
            encoding=options.encoding, delimiter=delimiter,
            duplicates=options.duplicates, country=options.country,
            mapping_options=options.mapping)
        print(f"{file_name}: {imp.rows} rows, encoding {imp.encoding}, "
            f"delimiter {imp.delimiter!r}", file=sys.stderr)
        for line in imp.mappings:
            print(f"  {line.header!r} -> {line.field or '(ignored)'}",
                file=sys.stderr)
        Import.process([imp], progress=Progress(imp.rows))
        if options.rejects and imp.rejects:
            with open(options.rejects, 'wb') as file:
                file.write(imp.rejects)
        summary, state = imp.summary(), imp.state
        if options.dry_run:
            transaction.rollback()
        else:
            transaction.commit()
        print(summary)
        return 0 if state == 'done' else 1


if __name__ == '__main__':
    sys.exit(main())
