"""Reading the emails sent to the support address.

Pure Python (standard library only, no Tryton import) so that it is tested
without a database: ``parse`` turns the RFC 5322 bytes of an email into a
``Message`` (addresses, ids to thread it, decoded texts, attachments and why
it must be ignored when it is automatic); the helpers find the ticket
references of a subject and the tokens of plus addresses. The models
(inbound_email.py, ticket.py) match the result to tickets and parties.

Nothing of the mail is executed or fetched: HTML is only read as text.
"""
import codecs
import datetime as dt
import io
import mimetypes
import re
import unicodedata
from dataclasses import dataclass, field
from email import policy
from email.generator import BytesGenerator
from email.header import decode_header
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from html import unescape
from html.parser import HTMLParser

MAX_SIZE = 25 * 1024 * 1024  # bytes, default limit
MAX_DEPTH = 50  # nested MIME parts, deeper is refused as malformed
REASONS = {'too_large', 'malformed', 'no_sender'}


class MailError(Exception):
    "An email that can not be read: reason is a stable code"

    def __init__(self, reason, detail):
        assert reason in REASONS, reason
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self):
        return f'{self.reason}: {self.detail}'


@dataclass
class Attachment:
    name: str
    data: bytes
    mimetype: str


@dataclass
class Message:
    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    subject: str
    from_address: str
    from_name: str
    to: list[str]
    cc: list[str]
    delivered_to: list[str]
    date: dt.datetime | None
    text: str
    reply_text: str
    html: str | None
    attachments: list[Attachment] = field(default_factory=list)
    automatic: str | None = None


def parse(raw, max_size=MAX_SIZE):
    """The Message of the RFC 5322 bytes raw; raises MailError when it is
    larger than max_size bytes (checked before parsing), has no header, no
    sender or can not be read at all"""
    if isinstance(raw, str):
        raw = raw.encode('utf-8', 'surrogateescape')
    elif isinstance(raw, (bytearray, memoryview)):
        raw = bytes(raw)
    elif not isinstance(raw, bytes):
        raise TypeError(f"bytes expected, not {type(raw).__name__}")
    if max_size is not None and len(raw) > max_size:
        raise MailError('too_large',
            f"{len(raw)} bytes, more than the limit of {max_size} bytes")
    if not raw.strip():
        raise MailError('malformed', "empty message")
    try:
        msg = _read(raw, policy.default)
    except RecursionError as error:
        raise MailError('malformed', "MIME parts nested too deeply") from error
    except Exception as error:
        # The default policy is stricter; compat32 reads what it can
        try:
            msg = _read(raw, policy.compat32)
        except Exception:
            raise MailError('malformed',
                f"unreadable message: {error!r}") from error
    if not list(msg.raw_items()):
        raise MailError('malformed', "no header found")

    from_name, from_address = _sender(msg)
    try:
        text, html, attachments = _contents(msg)
    except MailError:
        raise
    except RecursionError as error:
        raise MailError('malformed', "MIME parts nested too deeply") from error
    except Exception as error:
        try:
            text, html, attachments = _contents(_read(raw, policy.compat32))
        except Exception:
            raise MailError('malformed',
                f"the body can not be decoded: {error!r}") from error
    subject = ' '.join(_header_text(msg, 'Subject').split())
    return Message(
        message_id=next(iter(_ids(_raw_values(msg, 'Message-ID'))), None),
        in_reply_to=_ids(_raw_values(msg, 'In-Reply-To')),
        references=_ids(_raw_values(msg, 'References')),
        subject=subject,
        from_address=from_address,
        from_name=from_name,
        to=_addresses(msg, 'To'),
        cc=_addresses(msg, 'Cc'),
        delivered_to=_unique(
            _addresses(msg, 'Delivered-To')
            + _addresses(msg, 'X-Original-To')
            + _addresses(msg, 'Envelope-To')),
        date=_date(msg),
        text=text,
        reply_text=strip_quoted(text),
        html=html,
        attachments=attachments,
        automatic=_automatic(msg, from_address, subject),
        )


def _read(raw, policy_):
    return BytesParser(policy=policy_).parsebytes(raw)


# Headers ------------------------------------------------------------------

def _clean(text):
    "text without NUL nor lone surrogates (what a database can store)"
    text = text.replace('\x00', '')
    return re.sub('[\ud800-\udfff]', '\ufffd', text)


def _unfold(value):
    return re.sub(r'\r?\n(?=[ \t])', '', value).replace('\r', '').replace(
        '\n', '')


def _raw_values(msg, name):
    "The values of every header name as in the source (unfolded)"
    name = name.lower()
    return [_unfold(str(v)) for k, v in msg.raw_items() if k.lower() == name]


def _has_surrogates(text):
    return re.search('[\ud800-\udfff]', text) is not None


def _decode_raw(value):
    """Decode a header value as written in the source: raw 8-bit bytes
    (UTF-8, else Windows-1252) and RFC 2047 encoded words"""
    if _has_surrogates(value):
        value = _decode_bytes(
            value.encode('ascii', 'surrogateescape'), None)
    try:
        chunks = decode_header(value)
    except Exception:
        return value
    result = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            result.append(chunk)
        elif charset is None:
            result.append(chunk.decode('raw-unicode-escape', 'replace'))
        else:
            result.append(_decode_bytes(chunk, charset))
    return ''.join(result)


def _header_text(msg, name):
    "The decoded text of the first header name, '' when it is missing"
    raw = _raw_values(msg, name)
    if not raw:
        return ''
    try:
        value = msg[name]
        # compat32 gives the raw string, the default policy a header object
        text = str(value) if hasattr(value, 'defects') else None
    except Exception:
        text = None
    if text is None or '\ufffd' in text or _has_surrogates(text) or (
            _has_surrogates(raw[0])):
        text = _decode_raw(raw[0])
    return _clean(text)


def _address_pairs(msg, name):
    "(display name, addr-spec) of every address of the headers name"
    pairs = []
    raw = _raw_values(msg, name)
    if not raw:
        return pairs
    try:
        headers = msg.get_all(name) or []
        for header in headers:
            for address in header.addresses:
                pairs.append((address.display_name, address.addr_spec))
    except Exception:
        # compat32 (plain strings) or a header the default policy refuses
        pairs = []
    if not pairs or any(
            _has_surrogates(n + a) or '\ufffd' in n + a for n, a in pairs):
        try:
            found = getaddresses(raw)
        except Exception:
            found = []
        pairs = [(_decode_raw(n), _decode_raw(a)) for n, a in found if a]
    return [(_clean(' '.join(n.split())), _clean(a.strip()))
        for n, a in pairs]


def _addresses(msg, name):
    return _unique(a.lower() for _, a in _address_pairs(msg, name)
        if a and a != '<>')


def _sender(msg):
    "(name, lower-cased address) of From; raises MailError without any"
    raw = _raw_values(msg, 'From')
    if not raw:
        raise MailError('no_sender', "no From header")
    pairs = [(n, a) for n, a in _address_pairs(msg, 'From') if a]
    if not pairs:
        raise MailError('no_sender', f"no address in From: {raw[0][:200]!r}")
    name, address = pairs[0]
    if not name:
        # "addr (Name)": the default policy drops the comment
        try:
            name = parseaddr(raw[0])[0]
        except Exception:
            name = ''
        name = _clean(' '.join(_decode_raw(name).split()))
    if name.lower() == address.lower():
        name = ''
    return name, address.lower()


def _unique(values):
    result = []
    for value in values:
        if value and value not in result:
            result.append(value)
    return result


def _ids(values):
    "Message ids without <> of id headers (In-Reply-To, References...)"
    ids = []
    for value in values:
        value = _clean(value)
        found = re.findall(r'<\s*([^<>\s]+)\s*>', value)
        if not found:
            # Written without brackets
            found = [v for v in re.split(r'[\s,]+', value.strip('<> '))
                if v]
        ids.extend(found)
    return _unique(ids)


def _date(msg):
    "The Date as naive UTC, None when missing or invalid"
    for value in _raw_values(msg, 'Date')[:1]:
        try:
            date = parsedate_to_datetime(_clean(value).strip())
        except Exception:  # TypeError, ValueError...
            return None
        if date.tzinfo is not None:
            try:
                date = date.astimezone(dt.timezone.utc)
            except (OverflowError, ValueError):
                return None
        return date.replace(tzinfo=None)
    return None


# Automatic mail -----------------------------------------------------------

_PRECEDENCES = {'bulk', 'junk', 'list', 'auto_reply', 'auto-reply'}
_DAEMONS = {'mailer-daemon', 'mailer_daemon', 'mailerdaemon', 'postmaster'}
# Subjects of out-of-office and other automatic replies: the words, then a
# colon or nothing ("Out of office", "Automatic reply: Printer"), so that
# "Out of office settings are lost" is a genuine request
_AUTO_SUBJECT = re.compile(
    r'^\s*(?:out\s+of\s+(?:the\s+)?office(?:\s+auto\s*reply)?'
    r'|automatic\s+(?:reply|response)|auto[\s-]?(?:reply|response)'
    r'|abwesenheitsnotiz|automatische\s+antwort'
    r'|r[ée]ponse\s+automatique|absent\s+du\s+bureau'
    r'|respuesta\s+autom[áa]tica|fuera\s+de\s+la\s+oficina'
    r'|automatikus\s+v[áa]lasz|h[áa]zon\s+k[íi]v[üu]l|irod[áa]n\s+k[íi]v[üu]l'
    r'|automatisch\s+antwoord|risposta\s+automatica'
    r'|resposta\s+autom[áa]tica)\s*(?::|$)',
    re.IGNORECASE)


def _automatic(msg, from_address, subject):
    """Why the message must neither create a ticket nor be answered, None
    for a message written by someone"""
    def values(name):
        return [v.strip().lower() for v in _raw_values(msg, name)]

    if _content_type(msg) == 'multipart/report' or any(
            v.replace(' ', '') == '<>' for v in values('Return-Path')):
        return 'bounce'
    if from_address.partition('@')[0] in _DAEMONS:
        return 'bounce'
    if any(v and v not in {'no', 'false'} for v in values('X-Autoreply')
            + values('X-Autorespond')):
        return 'auto-reply'
    for value in values('X-Auto-Response-Suppress'):
        if {'all', 'oof'} & set(re.split(r'[\s,]+', value)):
            return 'auto-reply'
    if _AUTO_SUBJECT.match(subject):
        return 'auto-reply'
    if any(v.split(';')[0].strip() not in {'', 'no'}
            for v in values('Auto-Submitted')):
        return 'auto-submitted'
    if any(v in _PRECEDENCES for v in values('Precedence')):
        return 'precedence'
    if values('List-Id') or values('List-Unsubscribe'):
        return 'list'
    return None


# Body and attachments -----------------------------------------------------

_MIMETYPES = mimetypes.MimeTypes()  # the standard table, not the system's
_CHARSETS = {
    'iso-8859-1': 'cp1252', 'iso8859-1': 'cp1252', 'latin1': 'cp1252',
    'latin-1': 'cp1252', 'l1': 'cp1252',
    'gb2312': 'gb18030', 'gbk': 'gb18030', 'x-gbk': 'gb18030',
    'iso-8859-8-i': 'iso-8859-8', 'iso-8859-6-i': 'iso-8859-6',
    'windows-874': 'cp874', 'x-sjis': 'shift_jis', 'ks_c_5601-1987': 'cp949',
    }
# Charsets that say nothing: guessed (UTF-8, else Windows-1252)
_UNDECLARED = {'', 'us-ascii', 'ascii', 'unknown-8bit', 'x-unknown',
    'unknown', 'default', 'none'}
_NOT_CHARSETS = {'unicode_escape', 'raw_unicode_escape', 'punycode', 'idna',
    'undefined'}


def _decode_bytes(data, charset):
    """data decoded from charset; never fails: unknown charsets are read
    as UTF-8 with replacement characters"""
    charset = (charset or '').strip().strip('"\'').lower()
    charset = _CHARSETS.get(charset, charset)
    if charset in _UNDECLARED:
        try:
            return data.decode('utf-8')
        except UnicodeDecodeError:
            return data.decode('cp1252', 'replace')
    try:
        if codecs.lookup(charset).name in _NOT_CHARSETS:
            raise LookupError(charset)
        return data.decode(charset, 'replace')
    except Exception:
        return data.decode('utf-8', 'replace')


def _content_type(part):
    try:
        return part.get_content_type()
    except Exception:
        return 'text/plain'


def _param(part, name, header='content-type'):
    try:
        value = part.get_param(name, header=header)
    except Exception:
        return None
    if isinstance(value, tuple):  # RFC 2231 (charset, language, value)
        value = value[2]
    return value


def _filename(part):
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name is None:
        return None
    name = str(name)
    if '=?' in name:
        # Encoded words quoted in the parameter (RFC 2047 where not allowed)
        name = _decode_raw(name)
    return name


def _disposition(part):
    try:
        return part.get_content_disposition()
    except Exception:
        return None


def _payload_bytes(part):
    "The decoded content of a leaf part (transfer encoding undone)"
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if data is None:
        payload = part.get_payload()
        if isinstance(payload, str):
            data = payload.encode('ascii', 'surrogateescape')
        else:
            data = b''
    return data


def _part_text(part, html=False, data=None):
    "The decoded text of a text part, newlines normalized"
    if data is None:
        data = _payload_bytes(part)
    charset = _param(part, 'charset')
    if html and not charset:
        found = re.search(
            rb'<meta[^>]+charset\s*=\s*["\']?\s*([\w.:-]+)', data[:4096], re.I)
        if found:
            charset = found.group(1).decode('ascii')
    text = _decode_bytes(data, charset)
    text = text.replace('\r\n', '\n').replace('\r', '\n')
    if not html and (_param(part, 'format') or '').lower() == 'flowed':
        delsp = (_param(part, 'delsp') or '').lower() == 'yes'
        text = _unflow(text, delsp)
    return _clean(text)


def _unflow(text, delsp=False):
    "Join the soft line breaks of format=flowed text (RFC 3676)"
    lines = []
    pieces, depth = [], None  # the unfinished flowed line
    for line in text.split('\n'):
        stripped = line.lstrip('>')
        level = len(line) - len(stripped)
        if stripped.startswith(' '):  # space-stuffing
            stripped = stripped[1:]
        if pieces and (level != depth or stripped == '-- '):
            lines.append(_quoted(depth, ''.join(pieces).rstrip(' ')))
            pieces = []
        depth = level
        if stripped.endswith(' ') and stripped != '-- ':
            pieces.append(stripped[:-1] if delsp else stripped)
            continue
        pieces.append(stripped)
        lines.append(_quoted(depth, ''.join(pieces)))
        pieces = []
    if pieces:
        lines.append(_quoted(depth, ''.join(pieces).rstrip(' ')))
    return '\n'.join(lines)


def _quoted(depth, text):
    return '>' * depth + ' ' + text if depth else text


def _safe_name(name, number, mimetype):
    """A file name without path, control or reserved characters; a default
    like attachment-1.bin when there is none"""
    name = _clean(name or '')
    name = ''.join(c for c in name if unicodedata.category(c)[0] != 'C')
    name = name.replace('\\', '/').rsplit('/', 1)[-1]
    name = re.sub(r'[<>:"|?*]', '_', name)
    name = ' '.join(name.split()).strip(' .')
    if len(name.encode('utf-8')) > 200:
        stem, dot, ext = name.rpartition('.')
        if not dot or len(ext) > 16:
            stem, ext = name, ''
        stem = stem.encode('utf-8')[:200 - len(ext) - 1].decode(
            'utf-8', 'ignore').rstrip(' .')
        name = f'{stem}.{ext}' if ext else stem
    if not name:
        name = f'attachment-{number}{_extension(mimetype)}'
    return name


def _extension(mimetype):
    if mimetype in {'message/rfc822', 'message/global'}:
        return '.eml'
    extension = _MIMETYPES.guess_extension(mimetype)
    if extension:
        return extension
    if mimetype.startswith(('text/', 'message/')):
        return '.txt'
    return '.bin'


def _message_bytes(message):
    "The bytes of an enclosed message, its headers as they came"
    for policy_ in [policy.default.clone(refold_source='none'),
            policy.compat32]:
        try:
            buffer = io.BytesIO()
            BytesGenerator(buffer, mangle_from_=False, policy=policy_
                ).flatten(message)
            return buffer.getvalue()
        except Exception:
            continue
    return b''


@dataclass
class _Body:
    plain: str | None = None
    html: str | None = None

    @property
    def text(self):
        if self.plain is not None:
            return self.plain
        if self.html is not None:
            return html_to_text(self.html)
        return None


class _Walker:
    "Collects the body texts and the attachments of a message"

    def __init__(self):
        self.attachments = []
        self.forwarded = []

    def attach(self, name, data, mimetype):
        if mimetype == 'application/octet-stream' and name:
            mimetype = _MIMETYPES.guess_type(name)[0] or mimetype
        self.attachments.append(Attachment(
                name=_safe_name(name, len(self.attachments) + 1, mimetype),
                data=data, mimetype=mimetype))

    def walk(self, part, depth=0):
        if depth > MAX_DEPTH:
            raise MailError('malformed',
                f"MIME parts nested more than {MAX_DEPTH} levels")
        ctype = _content_type(part)
        maintype, _, subtype = ctype.partition('/')
        payload = part.get_payload()
        if maintype == 'multipart':
            if not isinstance(payload, list):
                # No boundary or the boundary is not found: the body is
                # read as the text it is
                return _Body(plain=_part_text(part))
            return self.multipart(subtype, payload, depth)
        if maintype == 'message' and isinstance(payload, list):
            self.message(part, ctype, payload)
            return None
        disposition = _disposition(part)
        filename = _filename(part)
        if (ctype in {'text/plain', 'text/html'}
                and disposition != 'attachment' and filename is None):
            if ctype == 'text/html':
                return _Body(html=_part_text(part, html=True))
            return _Body(plain=_part_text(part))
        self.attach(filename, _payload_bytes(part), ctype)
        return None

    def multipart(self, subtype, parts, depth):
        bodies = [b for b in (self.walk(p, depth + 1) for p in parts)
            if b is not None]
        if subtype == 'alternative':
            plains = [b.plain for b in bodies if b.plain is not None]
            htmls = [b.html for b in bodies if b.html is not None]
            return _Body(plain=plains[0] if plains else None,
                html=htmls[-1] if htmls else None)
        # mixed, related, signed, report...: the parts one after the other
        texts = [t for t in (
                (b.text or '').strip('\n') for b in bodies) if t.strip()]
        htmls = [b.html for b in bodies if b.html]
        has_plain = any(b.plain is not None for b in bodies)
        return _Body(
            plain='\n\n'.join(texts) if has_plain else None,
            html='\n'.join(htmls) if htmls else None)

    def message(self, part, ctype, payload):
        "message/rfc822 as a .eml file, others (delivery-status) as text"
        filename = _filename(part)
        if ctype in {'message/rfc822', 'message/global'} and payload:
            inner = payload[0]
            self.forwarded.append(inner)
            if not filename:
                subject = ' '.join(_header_text(inner, 'Subject').split())
                if subject:
                    filename = f'{subject[:100]}.eml'
            data = _message_bytes(inner)
        else:
            data = b''.join(_message_bytes(p) for p in payload)
        self.attach(filename, data, ctype)


def _contents(msg):
    "(text, html, attachments) of a message"
    walker = _Walker()
    body = walker.walk(msg) or _Body()
    text = body.text or ''
    if not text.strip() and walker.forwarded:
        # Only a forwarded message (GroupWise forwards): its text is the
        # text of the mail, the message itself stays attached
        inner = _Walker().walk(walker.forwarded[0]) or _Body()
        text = inner.text or ''
    return text.strip(), body.html or None, walker.attachments


# HTML ---------------------------------------------------------------------

_BLOCKS = {'address', 'article', 'aside', 'center', 'dd', 'details', 'div',
    'dl', 'dt', 'fieldset', 'figcaption', 'figure', 'footer', 'form',
    'header', 'hr', 'li', 'main', 'nav', 'ol', 'section', 'summary', 'table',
    'tbody', 'tfoot', 'thead', 'tr', 'ul', 'caption'}
_PARAGRAPHS = {'p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'pre', 'table'}
_SKIP = {'script', 'style', 'head', 'title', 'template', 'noscript',
    'iframe', 'object', 'svg', 'math', 'select'}
_MAX_NESTING = 10  # quotes and lists deeper are written at this level
_INVISIBLE = dict.fromkeys(map(ord, '\u200b\u2060\ufeff\u00ad\u034f'))


class _Buffer:
    def __init__(self):
        self.parts = []
        self.newlines = 0  # newlines that end the buffer
        self.pending = 0  # newlines wanted before the next text
        self.space = False  # a space wanted before the next text

    def emit(self, text):
        if not text:
            return
        self.parts.append(text)
        stripped = text.rstrip('\n')
        if stripped:
            self.newlines = len(text) - len(stripped)
        else:
            self.newlines += len(text)

    def write(self, text):
        if not text:
            return
        if self.parts and self.pending > self.newlines:
            self.emit('\n' * (self.pending - self.newlines))
            self.space = False
        elif self.space and self.parts and not self.newlines:
            self.emit(' ')
        self.pending = 0
        self.space = False
        self.emit(text)

    def text(self):
        return _tidy(''.join(self.parts))


def _tidy(text):
    lines = [line.rstrip() for line in text.split('\n')]
    return re.sub(r'\n{3,}', '\n\n', '\n'.join(lines)).strip('\n')


class _HTMLToText(HTMLParser):

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.buffers = [_Buffer()]
        self.skip = []
        self.pre = 0
        self.links = []
        self.lists = []
        self.quotes = []  # whether each open blockquote has its buffer

    @property
    def buffer(self):
        return self.buffers[-1]

    def newline(self, count=1):
        self.buffer.pending = max(self.buffer.pending, count)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'body':
            # An unclosed head must not hide the body
            self.skip = [t for t in self.skip if t not in {'head', 'title'}]
        if tag in _SKIP:
            self.skip.append(tag)
            return
        if self.skip:
            return
        if tag == 'br':
            buffer = self.buffer
            if buffer.parts and buffer.pending > buffer.newlines:
                buffer.emit('\n' * (buffer.pending - buffer.newlines))
            buffer.pending = 0
            buffer.space = False
            buffer.emit('\n')
        elif tag == 'blockquote':
            self.newline(2)
            self.quotes.append(len(self.buffers) < _MAX_NESTING)
            if self.quotes[-1]:
                self.buffers.append(_Buffer())
        elif tag in _PARAGRAPHS:
            self.newline(2)
            if tag == 'pre':
                self.pre += 1
        elif tag in {'ul', 'ol'}:
            self.newline(1 if self.lists else 2)
            self.lists.append([tag, 0])
        elif tag == 'li':
            self.newline(1)
            indent = '  ' * min(max(len(self.lists) - 1, 0), _MAX_NESTING)
            if self.lists and self.lists[-1][0] == 'ol':
                self.lists[-1][1] += 1
                self.buffer.write(f'{indent}{self.lists[-1][1]}. ')
            else:
                self.buffer.write(f'{indent}- ')
        elif tag in _BLOCKS:
            self.newline(1)
        elif tag in {'td', 'th'}:
            self.buffer.space = True
        elif tag == 'a':
            self.links.append((attrs.get('href') or '', len(self.buffers),
                    len(self.buffer.parts)))
        elif tag == 'img':
            alt = ' '.join((attrs.get('alt') or '').split())
            if alt:
                self.buffer.write(alt)

    def handle_endtag(self, tag):
        if tag in _SKIP:
            if tag in self.skip:
                while self.skip and self.skip.pop() != tag:
                    pass
            return
        if self.skip:
            return
        if tag == 'blockquote':
            if self.quotes and self.quotes.pop() and len(self.buffers) > 1:
                self.quote()
            else:
                self.newline(2)
        elif tag in _PARAGRAPHS:
            self.newline(2)
            if tag == 'pre' and self.pre:
                self.pre -= 1
        elif tag in {'ul', 'ol'}:
            if self.lists:
                self.lists.pop()
            self.newline(1 if self.lists else 2)
        elif tag in _BLOCKS:
            self.newline(1)
        elif tag == 'a' and self.links:
            self.link(*self.links.pop())

    def link(self, href, depth, start):
        href = href.strip()
        if depth != len(self.buffers):
            return
        parts = self.buffer.parts[start:start + 64]
        text = ''.join(parts).strip()
        if len(self.buffer.parts) - start > len(parts):
            text += ' ...'  # long: not the address
        scheme = href.partition(':')[0].lower()
        if not text or not href or href.startswith('#') or scheme in {
                'javascript', 'data', 'cid', 'vbscript'}:
            return
        address = href[7:].partition('?')[0] if scheme == 'mailto' else href
        if address.lower().rstrip('/') in {text.lower().rstrip('/'),
                f'http://{text.lower()}', f'https://{text.lower()}'}:
            return
        self.buffer.emit(f' ({href})')

    def quote(self):
        "Close a blockquote: its lines prefixed with '> '"
        inner = self.buffers.pop().text()
        self.links = [link for link in self.links
            if link[1] <= len(self.buffers)]
        if inner:
            self.newline(2)
            self.buffer.write('\n'.join(
                    f'> {line}' if line else '>'
                    for line in inner.split('\n')))
        self.newline(2)

    def handle_data(self, data):
        if self.skip:
            return
        data = data.translate(_INVISIBLE).replace('\xa0', ' ')
        if self.pre:
            self.buffer.write(data.replace('\r\n', '\n'))
            return
        words = data.split()
        if not words:
            if data:
                self.buffer.space = True
            return
        if data[0].isspace():
            self.buffer.space = True
        self.buffer.write(' '.join(words))
        if data[-1].isspace():
            self.buffer.space = True

    def result(self):
        while len(self.buffers) > 1:
            self.quote()
        return self.buffer.text()


def html_to_text(html):
    """Readable text of HTML: paragraphs and breaks as newlines, links as
    "text (url)", quotes prefixed with '> ', scripts and styles dropped,
    entities decoded"""
    if not html:
        return ''
    parser = _HTMLToText()
    try:
        parser.feed(html)
        parser.close()
        return _clean(parser.result())
    except Exception:
        # html.parser gave up: the text without the tags
        text = re.sub(r'(?is)<(script|style|head)\b.*?</\1\s*>', ' ', html)
        text = re.sub(r'(?i)<br\s*/?>|</p\s*>|</div\s*>', '\n', text)
        text = re.sub(r'(?s)<[^>]*>', ' ', text)
        text = unescape(text).replace('\xa0', ' ')
        return _clean(_tidy('\n'.join(
                    ' '.join(line.split()) for line in text.split('\n'))))


# Quotes and signatures ----------------------------------------------------

# "On <date>, <name> wrote:" in several languages: the first word starts a
# line, the verb ends it (the header may wrap over up to three lines)
_ATTRIBUTIONS = [re.compile(p, re.IGNORECASE | re.DOTALL) for p in [
        r'(?-i:On)\s.{1,300}?\swrote\s*:',  # en
        r'(?-i:Am)\s.{1,300}?\sschrieb\s.{0,300}:',  # de
        r'(?-i:Le)\s.{1,300}?\sa\s+[ée]crit\s*:',  # fr
        r'(?-i:El)\s.{1,300}?\sescribi[óo]\s*:',  # es
        r'.{1,300}?\sezt\s+írta\s*(?:\(.{0,200}\))?\s*:',  # hu (Gmail)
        r'.{1,300}?\skeltezéssel,?\s.{1,200}?\sírta\s*:',  # hu (Thunderbird)
        r'(?-i:Op)\s.{1,300}?\sschreef\s.{0,300}:',  # nl
        r'(?-i:Il)\s.{1,300}?\sha\s+scritto\s*:',  # it
        r'(?-i:Em)\s.{1,300}?\sescreveu\s*:',  # pt
        r'(?-i:Den)\s.{1,300}?\sskrev\s.{0,300}:',  # sv, da, no
        r'(?-i:W)\s+dniu\s.{1,300}?\snapisał\w*\s*(?:\(a\))?\s*:',  # pl
        ]]
# "<someone> wrote:" alone: only when a '>' quote follows
_WEAK_ATTRIBUTION = re.compile(
    r'.{0,300}\s(?:wrote|writes|schrieb|a\s+[ée]crit|escribi[óo]|írta'
    r'|ha\s+scritto|escreveu|schreef|skrev|napisał\w*|написал\w*'
    r'(?:\(а\))?)\s*:', re.IGNORECASE | re.DOTALL)
_ORIGINAL = re.compile(
    r'\s*-{2,}\s*(?:original\s+message|ursprüngliche\s+nachricht'
    r"|message\s+d'origine|mensaje\s+original|eredeti\s+üzenet"
    r'|messaggio\s+originale|oorspronkelijk\s+bericht|mensagem\s+original'
    r'|originalmeddelande|alkuperäinen\s+viesti|wiadomość\s+oryginalna'
    r'|původní\s+zpráva|original-nachricht)\s*-{2,}\s*', re.IGNORECASE)
# Outlook's header block: "From: ..." then "Sent: ..." within a few lines
_HEADER_FROM = re.compile(
    r'\s*\*?\s*(?:from|von|de|feladó|da|van|från|fra|od|от|lähettäjä)'
    r'\s*\*?\s*:\s*\*?\s*\S', re.IGNORECASE)
_HEADER_SENT = re.compile(
    r'\s*\*?\s*(?:sent|date|gesendet|datum|envoyé|enviado(?:\s+el)?|fecha'
    r'|küldve'
    r'|elküldve|dátum|inviato|data|verzonden|skickat|sendt|wysłano'
    r'|отправлено|lähetetty)\s*\*?\s*:', re.IGNORECASE)
_MOBILE_SIGNATURE = re.compile(
    r'\s*(?:sent\s+from\s+my\s.{1,40}|sent\s+from\s+(?:mail|outlook|yahoo'
    r'\s+mail)\b.{0,40}|get\s+outlook\s+for\s.{1,30}'
    r'|von\s+meinem\s.{1,40}\sgesendet|envoyé\s+de\s+mon\s.{1,40}'
    r'|enviado\s+desde\s+mi\s.{1,40}|az\s+\S{1,30}(?:ról|ről)\s+küldve)'
    r'\s*', re.IGNORECASE)


def _is_quote(line):
    return line.lstrip().startswith('>')


def _attribution(lines, index):
    """The number of lines of the "On ... wrote:" header starting at index
    (0 when there is none)"""
    if not lines[index].strip() or _is_quote(lines[index]):
        return 0
    joined = ''
    for count in range(1, 4):
        if index + count > len(lines):
            break
        line = lines[index + count - 1]
        if count > 1 and (not line.strip() or _is_quote(line)):
            break
        joined = f'{joined} {line.strip()}' if joined else line.strip()
        if not joined.endswith(':'):
            continue
        following = next(
            (l for l in lines[index + count:] if l.strip()), '')
        if any(p.fullmatch(joined) for p in _ATTRIBUTIONS) and (
                re.search(r'[0-9]', joined) or _is_quote(following)):
            # With its date ("On Monday the technician wrote:" is text)
            return count
        if _WEAK_ATTRIBUTION.fullmatch(joined) and _is_quote(following):
            return count
    return 0


def _outlook_header(lines, index):
    if not _HEADER_FROM.match(lines[index]):
        return False
    for line in lines[index + 1:index + 6]:
        if _HEADER_SENT.match(line):
            return True
    return False


def _quote_start(lines):
    "(index, length) of the first header of a quoted message, else None"
    for index, line in enumerate(lines):
        if _ORIGINAL.fullmatch(line) or _outlook_header(lines, index):
            return index, None
        count = _attribution(lines, index)
        if count:
            return index, count
    return None


def strip_quoted(text):
    """The text someone wrote in a reply: without the quoted previous
    message ("On ... wrote:" and its translations, "-----Original
    Message-----", Outlook's "From: ... Sent: ..." block, the '>' lines
    at the end) and without the signature ("-- ", "Sent from my phone")"""
    if not text:
        return ''
    lines = text.replace('\r\n', '\n').replace('\r', '\n').split('\n')
    found = _quote_start(lines)
    if found:
        index, count = found
        if any(l.strip() for l in lines[:index]):
            lines = lines[:index]
        elif count:
            # Written below the quote: drop the header and the quote
            rest = lines[index + count:]
            while rest and (not rest[0].strip() or _is_quote(rest[0])):
                rest.pop(0)
            lines = rest
        else:
            lines = []
    else:
        # A quote without header at the top, the answer below it
        start = 0
        while start < len(lines) and (
                not lines[start].strip() or _is_quote(lines[start])):
            start += 1
        if start < len(lines) and any(_is_quote(l) for l in lines[:start]):
            lines = lines[start:]
    # The '>' lines at the end and the "X wrote:" that introduces them
    end = len(lines)
    while end and (not lines[end - 1].strip() or _is_quote(lines[end - 1])):
        end -= 1
    if any(_is_quote(l) for l in lines[end:]):
        lines = lines[:end]
        for count in (1, 2):
            if len(lines) >= count:
                joined = ' '.join(l.strip() for l in lines[-count:])
                if _WEAK_ATTRIBUTION.fullmatch(joined):
                    lines = lines[:-count]
                    break
    # Separator lines left above a cut header (Outlook's underscores)
    while lines and (not lines[-1].strip()
            or re.fullmatch(r'\s*[_=*~-]{5,}\s*', lines[-1])):
        lines.pop()
    # The signature: from the last "-- " line
    for index in range(len(lines) - 1, 0, -1):
        if lines[index].rstrip() == '--':
            if any(l.strip() for l in lines[:index]):
                lines = lines[:index]
            break
    while lines and not lines[-1].strip():
        lines.pop()
    if lines and _MOBILE_SIGNATURE.fullmatch(lines[-1]):
        lines.pop()
    return '\n'.join(lines).strip()


# Ticket references and reply addresses ------------------------------------

_REFERENCE = re.compile(r'\[\s*#?\s*([A-Z]+-?[0-9]+)\s*\]')


def subject_references(subject):
    """The ticket references written in brackets in subject:
    'Re: [TCK00042] Printer' and '[#TCK00042]' give ['TCK00042']"""
    return _unique(_REFERENCE.findall(subject or ''))


def _split_address(address):
    address = parseaddr(address or '')[1] or (address or '').strip()
    local, at, domain = address.rpartition('@')
    if not at or not local or not domain:
        raise ValueError(f"not an email address: {address!r}")
    return local, domain


def plus_tokens(addresses, support_address):
    """The tokens of the plus addresses of support_address among addresses:
    'support+ab12cd@example.com' gives 'ab12cd' (the local part and the
    domain compared without case, the token kept as written); none when
    support_address is no address"""
    try:
        local, domain = _split_address(support_address)
    except ValueError:
        return []
    prefix = f'{local.lower()}+'
    tokens = []
    for address in addresses or []:
        try:
            a_local, a_domain = _split_address(address)
        except ValueError:
            continue
        if (a_domain.lower() == domain.lower()
                and a_local.lower().startswith(prefix)
                and len(a_local) > len(prefix)):
            tokens.append(a_local[len(prefix):])
    return _unique(tokens)


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_TOKEN = re.compile(rf'{_ATEXT}(?:\.{_ATEXT})*')  # a dot-atom


def reply_address(support_address, token):
    "The address support+TOKEN@domain of support_address (as plus_tokens)"
    local, domain = _split_address(support_address)
    if not token or not _TOKEN.fullmatch(token):
        raise ValueError(f"invalid token for an address: {token!r}")
    return f'{local}+{token}@{domain}'
