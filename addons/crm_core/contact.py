"Normalisation of the contact data people type into leads and parties"
import re

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
