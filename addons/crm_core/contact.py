"Normalisation of the contact data people type into leads and parties"
import re
import unicodedata

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_LABEL = re.compile(r'^(?!-)[a-z0-9-]{1,63}(?<!-)$')


def clean_email(value):
    """Return the email lower-cased (mailboxes are compared
    case-insensitively), or raise ValueError when its syntax is wrong.
    Only the syntax is checked: a CRM must accept addresses whose domain
    it cannot resolve at the moment."""
    value = (value or '').strip()
    if not value:
        return None
    local, at, domain = value.rpartition('@')
    if not (at and local and domain) or len(value) > 254:
        raise ValueError(value)
    if (not _LOCAL.match(local) or local.startswith('.')
            or local.endswith('.') or '..' in local):
        raise ValueError(value)
    try:
        domain = domain.encode('idna').decode('ascii').lower()
    except UnicodeError as exception:
        raise ValueError(value) from exception
    labels = domain.split('.')
    if len(labels) < 2 or not all(_LABEL.match(l) for l in labels):
        raise ValueError(value)
    return f'{local}@{value.rpartition("@")[2]}'.lower()


def e164(value, country_code=None):
    "Return the phone number in E.164 form, or raise ValueError"
    value = (value or '').strip()
    if not value:
        return None
    try:
        number = phonenumbers.parse(value, country_code or None)
    except NumberParseException as exception:
        raise ValueError(str(exception)) from exception
    if not phonenumbers.is_valid_number(number):
        raise ValueError(value)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


# Legal forms left out when names are compared: "Acme Ltd" is "ACME Limited".
LEGAL_FORMS = frozenset('''
    ab ag aps as bt bv bvba co corp corporation cv eg ev gbr gmbh inc
    incorporated kft kg kgaa lda limitada limited llc llp lp ltd ltda nv nyrt
    ohg oy oyj plc pty sa sarl sas sasu sl spa sprl srl sro ug zrt
    '''.split())
_NAME_SEPARATOR = re.compile(r'[^0-9a-z]+')


def normalise_name(name):
    """Return the name as compared for duplicates: accents removed, case
    folded, '&' read as 'and', punctuation as spaces (dots and apostrophes
    dropped, so "S.A." is "sa" and "O'Neil" is "oneil"), legal forms
    (Ltd, GmbH, Kft., S.A., ...) dropped unless nothing else is left."""
    if not name:
        return ''
    text = unicodedata.normalize('NFKD', name)
    text = ''.join(c for c in text if not unicodedata.combining(c))
    text = text.casefold().replace('ß', 'ss').replace('&', ' and ')
    text = text.replace('.', '').replace("'", '').replace('\u2019', '')
    words = _NAME_SEPARATOR.sub(' ', text).split()
    kept = [w for w in words if w not in LEGAL_FORMS]
    while kept and kept[-1] == 'and':
        kept.pop()
    while kept and kept[0] == 'and':
        kept.pop(0)
    return ' '.join(kept or words)


def trigrams(text):
    """The set of trigrams of text as PostgreSQL's pg_trgm extracts them:
    words are runs of alphanumeric characters, lower-cased, each padded
    with two spaces before and one after."""
    result = set()
    word = []
    for char in (text or '').lower() + ' ':
        if char.isalnum():
            word.append(char)
        elif word:
            padded = '  ' + ''.join(word) + ' '
            result.update(
                padded[i:i + 3] for i in range(len(padded) - 2))
            word = []
    return result


def trigram_similarity(a, b):
    "The same value as pg_trgm's similarity(a, b): shared / all trigrams"
    first, second = trigrams(a), trigrams(b)
    if not first or not second:
        return 0.0
    shared = len(first & second)
    return shared / (len(first) + len(second) - shared)
