"Normalisation of the contact data people type into leads and parties"
import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

from trytond.tools.email_ import (
    EmailNotValidError, normalize_email, validate_email)


def clean_email(value):
    """Return the email in its normal form (lower-cased domain and local
    part, since mailboxes are compared case-insensitively), or raise
    ValueError"""
    value = (value or '').strip()
    if not value:
        return None
    try:
        validate_email(value)
    except EmailNotValidError as exception:
        raise ValueError(str(exception)) from exception
    return normalize_email(value).lower()


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
