"""Reading support emails (mail.py): no database.

The messages written by others are read from the shared folder beside the
checkout (never copied into the repository); ours are in tests/data/.
"""
import ast
import base64
import datetime as dt
import random
import unittest
from pathlib import Path

from .. import mail

from crm_core.tests.tools import shared_samples

DATA = Path(__file__).resolve().parent / 'data'
# ../shared/email-samples of the workspace (see shared_samples)
SAMPLES = shared_samples('email-samples')


def data(name):
    return (DATA / name).read_bytes()


def sample(name):
    return (SAMPLES / name).read_bytes()


def message(*headers, body='Hello', content_type='text/plain'):
    "The bytes of a simple message with headers"
    lines = list(headers)
    lines.append(f'Content-Type: {content_type}; charset=us-ascii')
    return ('\r\n'.join(lines) + '\r\n\r\n' + body + '\r\n').encode('ascii')


FROM = 'From: Customer <customer@example.org>'


@unittest.skipUnless(SAMPLES.is_dir(),
    f"the shared email samples are not there: {SAMPLES}")
class SamplesTestCase(unittest.TestCase):
    "The messages of cpython and talon's test suites"

    def test_msg_04_attachments(self):
        "msg_04: two text parts with a filename are two attachments"
        msg = mail.parse(sample('cpython-msg_04.eml'))
        self.assertEqual(msg.message_id,
            '15261.36209.358846.118674@anthem.python.org')
        self.assertEqual(msg.subject, 'a simple multipart')
        self.assertEqual(msg.from_address, 'barry@python.org')
        # "addr (comment)": the comment is the name
        self.assertEqual(msg.from_name, 'Barry A. Warsaw')
        self.assertEqual(msg.to, ['barry@python.org'])
        self.assertEqual(msg.delivered_to, ['barry@python.org'])
        self.assertEqual(msg.date, dt.datetime(2001, 9, 11, 4, 5, 5))
        self.assertEqual([(a.name, a.mimetype) for a in msg.attachments],
            [('msg.txt', 'text/plain'), ('msg.txt', 'text/plain')])
        for attachment in msg.attachments:
            self.assertEqual(attachment.data,
                b'a simple kind of mirror\nto reflect upon our own\n')
        # Both parts are files: no body text
        self.assertEqual(msg.text, '')
        self.assertIsNone(msg.html)
        self.assertIsNone(msg.automatic)

    def test_msg_08_charsets(self):
        """msg_08: parts in iso-8859-1, iso-8859-2 and koi8-r are read (the
        sample's parts are empty: charsets-mixed.eml has the texts)"""
        msg = mail.parse(sample('cpython-msg_08.eml'))
        self.assertEqual(msg.subject, 'Lyrics')
        self.assertEqual(msg.from_name, 'Barry Warsaw')
        self.assertEqual(msg.to, ['cravindogs@cravindogs.com'])
        self.assertEqual(msg.text, '')
        self.assertIsNone(msg.html)
        self.assertEqual(msg.attachments, [])

    def test_msg_10_transfer_encodings(self):
        "msg_10: 7bit, quoted-printable and base64 parts in order"
        msg = mail.parse(sample('cpython-msg_10.eml'))
        self.assertEqual(msg.text,
            'This is a 7bit encoded message.\n\n'
            '\u00a1This is a Quoted Printable encoded message!\n\n'
            'This is a Base64 encoded message.\n\n'
            'This is a Base64 encoded message.\n\n'
            'This has no Content-Transfer-Encoding: header.')
        self.assertEqual(msg.html.strip(),
            '\u00a1This is a Quoted Printable encoded message!')
        self.assertEqual(msg.date, dt.datetime(2001, 4, 20, 23, 35, 2))

    def test_msg_17_no_boundary_in_body(self):
        "msg_17 (malformed): the boundary is not found, the body is text"
        msg = mail.parse(sample('cpython-msg_17.eml'))
        self.assertEqual(msg.from_address, 'barry@digicool.com')
        self.assertTrue(msg.text.startswith(
                'Hi there,\n\nThis is the dingus fish.'))
        self.assertIn('dingusfish.gif', msg.text)
        self.assertEqual(msg.attachments, [])

    def test_msg_35_no_blank_line(self):
        "msg_35 (malformed): no blank line, the line that is no header is text"
        msg = mail.parse(sample('cpython-msg_35.eml'))
        self.assertEqual(msg.from_address, 'aperson@dom.ain')
        self.assertEqual(msg.to, ['bperson@dom.ain'])
        self.assertEqual(msg.subject, "here's something interesting")
        self.assertEqual(msg.text,
            "counter to RFC 2822, there's no separating newline here")
        self.assertIsNone(msg.date)

    def test_msg_40_html_only(self):
        """msg_40: no From, refused; with one, the HTML-only body gives text
        (the bogus boundary is no multipart: its lines are the text)"""
        raw = sample('cpython-msg_40.eml')
        with self.assertRaises(mail.MailError) as cm:
            mail.parse(raw)
        self.assertEqual(cm.exception.reason, 'no_sender')
        msg = mail.parse(b'From: someone@example.org\n' + raw)
        self.assertIn('<html></html>', msg.html)
        self.assertNotIn('<', msg.text)
        self.assertIn('Content-Transfer-Encoding: 7Bit', msg.text)
        self.assertIsNone(msg.automatic)

    def test_msg_41_multipart_without_boundary(self):
        "msg_41 (malformed): multipart/alternative without boundary is text"
        msg = mail.parse(sample('cpython-msg_41.eml'))
        self.assertEqual(msg.from_name, 'Allison Dunlap')
        self.assertEqual(msg.from_address, 'xxx@example.com')
        self.assertEqual(msg.text, 'Blah blah blah')
        self.assertEqual(msg.date, dt.datetime(2004, 7, 11, 19, 9, 27))

    def test_msg_46_forward(self):
        """msg_46: a top-level message/rfc822 is a .eml attachment and,
        being the only content, gives the text"""
        msg = mail.parse(sample('cpython-msg_46.eml'))
        self.assertEqual(msg.subject, 'GroupwiseForwardingTest')
        self.assertEqual(msg.to, ['someone@example.com'])
        self.assertEqual(msg.text,
            'Testing email forwarding with Groupwise 1.2.2010')
        attachment, = msg.attachments
        self.assertEqual(attachment.name, 'GroupwiseForwardingTest.eml')
        self.assertEqual(attachment.mimetype, 'message/rfc822')
        inner = mail.parse(attachment.data)
        self.assertEqual(inner.message_id, '4B66B890.4070408@teconcept.de')
        self.assertEqual(inner.from_name, 'Dr. Sender')
        self.assertEqual(inner.to, ['recipient@example.com'])

    def test_talon_gmail(self):
        "Gmail reply: reply_text without 'On ... wrote:' and the quote"
        msg = mail.parse(sample('talon-gmail.eml'))
        self.assertEqual(msg.message_id,
            'CAKsfaBW4hj0Gek6TwbR3erng4P1y0CZzJ0d=pXtCNnYnbe7PLg'
            '@mail.gmail.com')
        self.assertEqual(msg.subject, 'Re: Test')
        self.assertEqual(msg.from_name, 'Megan One')
        self.assertEqual(msg.date, dt.datetime(2012, 4, 2, 16, 21, 52))
        self.assertIn('wrote:\n\n> Hi', msg.text)
        self.assertEqual(msg.reply_text, 'Hello')
        self.assertIn('gmail_quote', msg.html)
        # The HTML alternative gives the same reply
        self.assertEqual(
            mail.html_to_text(msg.html),
            'Hello\n\nOn Mon, Apr 2, 2012 at 6:26 PM, Megan One '
            '<xxx@gmail.com> wrote:\n\n> Hi')
        self.assertEqual(
            mail.strip_quoted(mail.html_to_text(msg.html)), 'Hello')

    def test_talon_outlook(self):
        "Outlook reply: reply_text without the 'From: ... Sent:' block"
        msg = mail.parse(sample('talon-outlook.eml'))
        self.assertEqual(msg.from_address, 'me@example.com')
        self.assertIn('Sent: March-09-12 4:22 PM', msg.text)
        self.assertEqual(msg.reply_text, 'Hello')
        # X-Mailgun-Mailing-List-Id is no List-Id
        self.assertIsNone(msg.automatic)
        text = mail.html_to_text(msg.html)
        self.assertTrue(text.startswith('Allo! Follow up MIME!\n\nFrom: '))
        self.assertNotIn('font-family', text)  # the style is dropped
        self.assertIn('Your Loop is here (http://dev.xxx.com/loop/view/', text)
        self.assertEqual(mail.strip_quoted(text), 'Allo! Follow up MIME!')


class ModuleTestCase(unittest.TestCase):

    def test_no_tryton(self):
        "mail.py imports nothing but the standard library"
        source = Path(mail.__file__).read_text()
        modules = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                modules.update(a.name.split('.')[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                self.assertEqual(node.level, 0)
                modules.add(node.module.split('.')[0])
        self.assertLessEqual(modules, {'codecs', 'datetime', 'io',
                'mimetypes', 're', 'unicodedata', 'dataclasses', 'email',
                'html'})

    def test_error(self):
        error = mail.MailError('malformed', "no header found")
        self.assertEqual((error.reason, error.detail),
            ('malformed', "no header found"))
        self.assertIsInstance(error, Exception)


class OwnMessagesTestCase(unittest.TestCase):
    "Our messages in tests/data"

    def test_alternative_with_attachments(self):
        "multipart/alternative, an inline image and attachments"
        msg = mail.parse(data('alternative-attachment.eml'))
        self.assertEqual(msg.message_id, 'alt-attach-1@mail.example.org')
        self.assertEqual(msg.subject,
            'Invoice n\u00b01 is wrong \u2013 please check')
        self.assertEqual(msg.from_name, 'Anna Kov\u00e1cs')
        self.assertEqual(msg.from_address, 'anna.kovacs@example.org')
        self.assertEqual(msg.to, ['support@example.com'])
        self.assertEqual(msg.cc, ['boss@example.org', 'other@example.org'])
        self.assertEqual(msg.date, dt.datetime(2024, 1, 3, 9, 15))
        # text/plain is preferred to its HTML alternative
        self.assertEqual(msg.text,
            'Hello,\n\nthe invoice n\u00b01 charges 120 \u20ac instead of '
            '100 \u20ac.\nSee the attached PDF and the screenshot.\n\nAnna')
        self.assertEqual(msg.reply_text, msg.text)
        self.assertIn('<b>120 \u20ac</b>', msg.html)
        self.assertEqual([(a.name, a.mimetype) for a in msg.attachments], [
                ('attachment-1.png', 'image/png'),  # inline, no name
                ('facture n\u00b01.pdf', 'application/pdf'),  # RFC 2231
                ('r=C3=A9sum=C3=A9.txt', 'text/plain'),  # no path
                ('r\u00e9sum\u00e9.csv', 'text/csv'),  # RFC 2047
                ('attachment-5.bin', 'application/x-unknown-thing'),
                ])
        png, pdf, txt, csv, unknown = msg.attachments
        self.assertTrue(png.data.startswith(b'\x89PNG\r\n'))
        self.assertTrue(pdf.data.startswith(b'%PDF-1.4'))
        self.assertEqual(txt.data.strip(), b'not a path')
        self.assertEqual(csv.data, b'a;b\n1;2\n')
        self.assertEqual(unknown.data, b'\x00\x01\x02')
        self.assertIsNone(msg.automatic)

    def test_hungarian_iso_8859_2(self):
        "ISO-8859-2: the Hungarian letters of the body and the headers"
        msg = mail.parse(data('hungarian-iso-8859-2.eml'))
        self.assertEqual(msg.subject, '\u00c1rv\u00edzt\u0171r\u0151 '
            't\u00fck\u00f6rf\u00far\u00f3g\u00e9p')
        self.assertEqual(msg.from_name, 'Kov\u00e1cs \u00d6d\u00f6n')
        self.assertIn('Az \u00e1rv\u00edzt\u0171r\u0151 '
            't\u00fck\u00f6rf\u00far\u00f3g\u00e9p nem m\u0171k\u00f6dik',
            msg.text)
        self.assertTrue(msg.text.endswith('Kov\u00e1cs \u00d6d\u00f6n'))
        self.assertNotIn('\ufffd', msg.text)

    def test_charsets(self):
        "Parts in iso-8859-1, iso-8859-2, koi8-r and an unknown charset"
        msg = mail.parse(data('charsets-mixed.eml'))
        self.assertEqual(msg.subject,
            '\u041f\u0440\u0438\u0432\u0435\u0442and \u00e9t\u00e9')
        self.assertEqual(msg.text.split('\n\n'), [
                'Caf\u00e9 cr\u00e8me, d\u00e9j\u00e0 vu.',
                'T\u0171r\u0151 \u00edr\u00f3g\u00e9p, \u0141\u00f3d\u017a.',
                '\u041f\u0440\u0438\u0432\u0435\u0442, '
                '\u043c\u0438\u0440!',
                # Unknown charset: UTF-8 with replacement characters
                'caf\ufffd ok',
                ])

    def test_html_only(self):
        "HTML only: text with entities, links, lists; scripts dropped"
        msg = mail.parse(data('html-only-entities.eml'))
        self.assertEqual(msg.subject, 'Commande r\u00e9f. 42')
        self.assertEqual(msg.date, dt.datetime(2024, 1, 6, 4, 30))
        self.assertEqual(msg.text,
            'Bonjour,\n\n'
            'Ma commande n\u00b0 42 co\u00fbte 10 \u20ac & les frais '
            '<5\u20ac> "offerts".\n'
            'Voir ma commande (https://shop.example.net/orders/42) ou '
            'jean@shop.example.net.\n\n'
            '- premier article\n- second article\n\n'
            'Cordialement,\nJean')
        self.assertIn('<script>', msg.html)  # kept, never run
        self.assertEqual(msg.attachments, [])

    def test_reply_threaded(self):
        "A reply: ids, plus address, reference, flowed text without quote"
        msg = mail.parse(data('reply-threaded.eml'))
        self.assertEqual(msg.message_id, 'reply-2@customer.example')
        self.assertEqual(msg.in_reply_to, ['ticket-12-msg-2@example.com'])
        self.assertEqual(msg.references,
            ['ticket-12-msg-1@example.com', 'ticket-12-msg-2@example.com'])
        self.assertEqual(msg.from_address, 'john.smith@customer.example')
        self.assertEqual(msg.to, ['support+12.ab12cd34ef56@example.com'])
        self.assertEqual(msg.delivered_to,
            ['support+12.ab12cd34ef56@example.com'])
        self.assertEqual(
            mail.plus_tokens(msg.to + msg.delivered_to, 'support@example.com'),
            ['12.ab12cd34ef56'])
        self.assertEqual(mail.subject_references(msg.subject), ['TCK00012'])
        # format=flowed: the soft break is joined
        self.assertTrue(msg.text.startswith(
                'Thanks, the printer works again after the update. This line '
                'is long and flowed over two lines.\n\n-- \nJohn Smith'))
        self.assertIn('> Please install the driver update', msg.text)
        self.assertEqual(msg.reply_text,
            'Thanks, the printer works again after the update. This line is '
            'long and flowed over two lines.')
        self.assertIsNone(msg.automatic)

    def test_forward_attached(self):
        "A forwarded message/rfc822 part is a .eml attachment"
        msg = mail.parse(data('forward-attached.eml'))
        self.assertEqual(msg.text,
            "See the shop's mail below: the parcel never arrived.")
        attachment, = msg.attachments
        self.assertEqual(attachment.name, 'Your order has shipped.eml')
        self.assertEqual(attachment.mimetype, 'message/rfc822')
        inner = mail.parse(attachment.data)
        self.assertEqual(inner.from_address, 'orders@shop.example.net')
        self.assertEqual(inner.text, 'Your parcel is on its way.')

    def test_crlf(self):
        "CRLF line ends read as LF ones"
        raw = data('reply-threaded.eml')
        msg = mail.parse(raw.replace(b'\n', b'\r\n'))
        self.assertEqual(msg, mail.parse(raw))

    def test_every_file(self):
        "Every message of tests/data parses"
        files = sorted(DATA.glob('*.eml'))
        self.assertGreaterEqual(len(files), 10)
        for path in files:
            with self.subTest(path=path.name):
                msg = mail.parse(path.read_bytes())
                self.assertTrue(msg.from_address)
                for text in [msg.text, msg.reply_text, msg.subject]:
                    text.encode('utf-8')  # no lone surrogate


class AutomaticTestCase(unittest.TestCase):
    "Mail that must neither create a ticket nor be answered"

    def test_auto_submitted(self):
        msg = mail.parse(data('auto-replied.eml'))
        self.assertEqual(msg.automatic, 'auto-submitted')
        self.assertEqual(msg.in_reply_to, ['ticket-12-msg-2@example.com'])
        for value, expected in [
                ('auto-generated', 'auto-submitted'),
                ('auto-notified; owner-email="x@example.org"',
                    'auto-submitted'),
                ('no', None), ('No', None)]:
            with self.subTest(value=value):
                msg = mail.parse(message(FROM, f'Auto-Submitted: {value}'))
                self.assertEqual(msg.automatic, expected)

    def test_precedence(self):
        msg = mail.parse(data('precedence-bulk.eml'))
        self.assertEqual(msg.automatic, 'precedence')
        for value in ['junk', 'list', 'auto_reply', 'Bulk']:
            with self.subTest(value=value):
                msg = mail.parse(message(FROM, f'Precedence: {value}'))
                self.assertEqual(msg.automatic, 'precedence')
        msg = mail.parse(message(FROM, 'Precedence: first-class'))
        self.assertIsNone(msg.automatic)

    def test_bounce_report(self):
        "A DSN (multipart/report): its parts are read, it is a bounce"
        msg = mail.parse(data('bounce-dsn.eml'))
        self.assertEqual(msg.automatic, 'bounce')
        self.assertEqual(msg.text, 'Your message to nobody@customer.example '
            'could not be delivered.')
        status, returned = msg.attachments
        self.assertEqual(status.mimetype, 'message/delivery-status')
        self.assertTrue(status.name.startswith('attachment-1.'))
        self.assertIn(b'Status: 5.1.1', status.data)
        self.assertEqual(returned.name,
            '[TCK00012] Printer does not print.eml')
        self.assertEqual(mail.parse(returned.data).message_id,
            'ticket-12-msg-3@example.com')

    def test_bounce_senders(self):
        for headers in [
                ['From: MAILER-DAEMON@mx.example.net'],
                ['From: Mail Delivery System <Mailer-Daemon@example.net>'],
                ['From: postmaster@example.net'],
                ['From: MAILER-DAEMON'],
                ['Return-Path: <>', FROM],
                ]:
            with self.subTest(headers=headers):
                msg = mail.parse(message(*headers, 'Subject: failure'))
                self.assertEqual(msg.automatic, 'bounce')

    def test_auto_reply(self):
        msg = mail.parse(data('out-of-office.eml'))
        self.assertEqual(msg.automatic, 'auto-reply')
        self.assertEqual(mail.subject_references(msg.subject), ['TCK00012'])
        for header in [
                'X-Autoreply: yes', 'X-Autorespond: vacation',
                'X-Auto-Response-Suppress: All',
                'X-Auto-Response-Suppress: DR, OOF, AutoReply']:
            with self.subTest(header=header):
                msg = mail.parse(message(FROM, header, 'Subject: Hi'))
                self.assertEqual(msg.automatic, 'auto-reply')
        msg = mail.parse(message(FROM, 'X-Auto-Response-Suppress: DR, RN'))
        self.assertIsNone(msg.automatic)

    def test_auto_reply_subjects(self):
        for subject in [
                'Out of office', 'Out of Office: Printer',
                'Out of Office AutoReply: Printer', 'Automatic reply: Hi',
                'Auto-Reply: Hi', 'AutoReply', 'Abwesenheitsnotiz: Drucker',
                'Automatische Antwort: Drucker',
                'R\u00e9ponse automatique : imprimante',
                'Respuesta autom\u00e1tica: impresora',
                'Automatikus v\u00e1lasz: nyomtat\u00f3',
                'H\u00e1zon k\u00edv\u00fcl: nyomtat\u00f3']:
            with self.subTest(subject=subject):
                encoded = base64.b64encode(subject.encode()).decode()
                msg = mail.parse(message(FROM,
                        f'Subject: =?utf-8?b?{encoded}?='))
                self.assertEqual(msg.subject, subject)
                self.assertEqual(msg.automatic, 'auto-reply')
        # A genuine request about out-of-office settings
        for subject in ['Out of office settings are lost',
                'Re: automatic replies do not work', 'Printer']:
            with self.subTest(subject=subject):
                msg = mail.parse(message(FROM, f'Subject: {subject}'))
                self.assertIsNone(msg.automatic)

    def test_list(self):
        for header in ['List-Id: <printers.lists.example.org>',
                'List-Unsubscribe: <mailto:leave@lists.example.org>']:
            with self.subTest(header=header):
                msg = mail.parse(message(FROM, header))
                self.assertEqual(msg.automatic, 'list')

    def test_person(self):
        "A message written by someone is not automatic"
        msg = mail.parse(message(FROM, 'Subject: Printer',
                'To: s@example.com'))
        self.assertIsNone(msg.automatic)


class RefusedTestCase(unittest.TestCase):
    "Malformed or oversized input: MailError with a stable reason"

    def assertRefused(self, raw, reason, **kwargs):
        with self.assertRaises(mail.MailError) as cm:
            mail.parse(raw, **kwargs)
        self.assertEqual(cm.exception.reason, reason)
        self.assertTrue(cm.exception.detail)
        return cm.exception

    def test_too_large(self):
        raw = data('alternative-attachment.eml')
        error = self.assertRefused(raw, 'too_large', max_size=1000)
        self.assertIn(str(len(raw)), error.detail)
        mail.parse(raw, max_size=len(raw))
        self.assertEqual(mail.MAX_SIZE, 25 * 1024 * 1024)

    def test_too_large_before_parsing(self):
        "The size is checked before reading: garbage too large is too_large"
        self.assertRefused(b'\xff' * 2000, 'too_large', max_size=1999)

    def test_no_sender(self):
        self.assertRefused(message('To: support@example.com',
                'Subject: who am I'), 'no_sender')
        self.assertRefused(message('From: ', 'Subject: empty'), 'no_sender')
        self.assertRefused(message('From: undisclosed-recipients:;'),
            'no_sender')

    def test_garbage(self):
        for raw in [
                bytes(range(256)) * 4,
                b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00',
                b'\x00' * 100,
                b'just some words without any header\nand a second line\n',
                ]:
            with self.subTest(raw=raw[:20]):
                self.assertRefused(raw, 'malformed')

    def test_empty(self):
        for raw in [b'', b'\r\n\r\n', b'   ']:
            with self.subTest(raw=raw):
                self.assertRefused(raw, 'malformed')

    def test_nested_too_deeply(self):
        raw = FROM.encode() + b'\r\n'
        for i in range(200):
            raw += b'Content-Type: multipart/mixed; boundary=b%d\r\n\r\n' \
                b'--b%d\r\n' % (i, i)
        raw += b'Content-Type: text/plain\r\n\r\nhi\r\n'
        self.assertRefused(raw, 'malformed')

    def test_broken_headers(self):
        "Broken headers are read as well as they can be, never a crash"
        msg = mail.parse(
            b'From: =?x-no-such?q?J=E9r=F4me?= <Jerome@Example.COM>\r\n'
            b'Cc: =?unknown-8bit?q?Ren=E9?= <rene@example.org>\r\n'
            b'To: "unterminated <a@example.org>, b@example.org\r\n'
            b'Subject: Caf\xe9 \xe0 la cr\xe8me =?utf-8?q?d=C3=A9j=C3=A0?=\r\n'
            b'Message-ID: no-brackets@example.org\r\n'
            b'In-Reply-To: <a@b> (sent by someone)\r\n'
            b'Date: not a date\r\n'
            b'Content-Type: text/plain; charset="utf-8\r\n'
            b'\r\nbody \xe9\r\n')
        self.assertEqual(msg.from_address, 'jerome@example.com')
        # An unknown charset: UTF-8 with replacement characters
        self.assertEqual(msg.from_name, 'J\ufffdr\ufffdme')
        self.assertEqual(msg.cc, ['rene@example.org'])
        # Raw 8-bit bytes that are not UTF-8 are Windows-1252
        self.assertEqual(msg.subject,
            'Caf\u00e9 \u00e0 la cr\u00e8me d\u00e9j\u00e0')
        self.assertEqual(msg.message_id, 'no-brackets@example.org')
        self.assertEqual(msg.in_reply_to, ['a@b'])
        self.assertIsNone(msg.date)
        # The declared charset wins, its errors replaced
        self.assertEqual(msg.text, 'body \ufffd')
        self.assertTrue(msg.to)

    def test_mutations(self):
        "Damaged copies of our messages: a Message or a MailError"
        rnd = random.Random(42)
        seeds = [p.read_bytes() for p in sorted(DATA.glob('*.eml'))]
        pieces = [b'\n', b'--', b'=?utf-8?q?', b'?=', b'<', b'"', b';',
            b'\xff', b'\x00', b'boundary=', b'charset=', b"*=''",
            b'Content-Type: multipart/mixed; boundary=x\n', b'<blockquote>']
        for i in range(300):
            raw = bytearray(rnd.choice(seeds))
            for _ in range(rnd.randint(1, 6)):
                pos = rnd.randrange(len(raw) + 1)
                if rnd.random() < 0.5:
                    raw[pos:pos] = rnd.choice(pieces)
                else:
                    del raw[pos:pos + rnd.randint(1, 30)]
            with self.subTest(i=i):
                try:
                    msg = mail.parse(bytes(raw))
                except mail.MailError:
                    continue
                for text in [msg.text, msg.reply_text, msg.subject,
                        msg.from_name, *(a.name for a in msg.attachments)]:
                    self.assertNotIn('\x00', text)
                    text.encode('utf-8')

    def test_str_input(self):
        "A str (some providers' JSON) is read as UTF-8"
        msg = mail.parse(
            message(FROM, 'Subject: x').decode() + 'd\u00e9j\u00e0')
        self.assertIn('d\u00e9j\u00e0', msg.text)


class HtmlToTextTestCase(unittest.TestCase):

    def test_paragraphs_and_breaks(self):
        self.assertEqual(mail.html_to_text(
                '<p>One\n  two</p><p>Three<br>four<br/><br>five</p>'
                '<div>six</div>seven'),
            'One two\n\nThree\nfour\n\nfive\n\nsix\nseven')

    def test_links(self):
        self.assertEqual(mail.html_to_text(
                '<a href="https://example.org/a?b=1&amp;c=2">the page</a>, '
                '<a href="https://example.org/">https://example.org/</a>, '
                '<a href="mailto:x@example.org">x@example.org</a>, '
                '<a href="javascript:alert(1)">click</a>, '
                '<a href="#top">top</a>, <a href="https://t.example/p">'
                '<img src="https://t.example/p.gif"></a>'),
            'the page (https://example.org/a?b=1&c=2), https://example.org/, '
            'x@example.org, click, top,')

    def test_dropped(self):
        self.assertEqual(mail.html_to_text(
                '<html><head><title>T</title><style>p{}</style>'
                '<script>var a = "<p>no</p>";</script><body>'
                '<!-- comment --><p>Yes</p><noscript>no</noscript>'
                '<template><p>no</p></template></body></html>'),
            'Yes')
        # An unclosed head does not hide the body
        self.assertEqual(mail.html_to_text(
                '<html><head><title>T<body><p>Body</p>'), 'Body')

    def test_entities(self):
        self.assertEqual(mail.html_to_text(
                '&eacute;&amp;&lt;b&gt;&nbsp;&#8364;&#x20AC;&quot;&hellip;'
                '&unknown;'),
            '\u00e9&<b> \u20ac\u20ac"\u2026&unknown;')

    def test_lists_tables_pre(self):
        self.assertEqual(mail.html_to_text(
                '<ol><li>one</li><li>two<ul><li>sub</li></ul></li></ol>'
                '<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr>'
                '</table><pre>  keep\n    this</pre>'),
            '1. one\n2. two\n  - sub\n\na b\nc\n\n  keep\n    this')

    def test_blockquote(self):
        self.assertEqual(mail.html_to_text(
                '<p>Answer</p><div>On Monday, X wrote:</div>'
                '<blockquote><p>Question</p><blockquote>Older'
                '</blockquote></blockquote>'),
            'Answer\n\nOn Monday, X wrote:\n\n> Question\n>\n> > Older')

    def test_broken(self):
        "Broken HTML gives text, never an error"
        for html in ['<p>unclosed <b>bold <a href="x">link',
                '<<>>&&;<!--', '</p></div></blockquote></a>text',
                '<![CDATA[x]]>y', '<!DOCTYPE', '\x00<p>\udcff</p>']:
            with self.subTest(html=html):
                text = mail.html_to_text(html)
                text.encode('utf-8')
        self.assertEqual(mail.html_to_text(''), '')


class StripQuotedTestCase(unittest.TestCase):

    def test_languages(self):
        for header in [
                'On Mon, Apr 2, 2012 at 6:26 PM, Megan One <x@example.org> '
                'wrote:',
                'On Mon, Apr 2, 2012 at 6:26 PM, Megan One <x@example.org>\n'
                'wrote:',
                'On 02/04/2012 18:26, Megan One wrote:',
                'Am 02.04.2012 um 18:26 schrieb Megan One <x@example.org>:',
                'Am Mo., 2. Apr. 2012 um 18:26 Uhr schrieb Megan One '
                '<x@example.org>:',
                'Le lun. 2 avr. 2012 \u00e0 18:26, Megan One <x@example.org> '
                'a \u00e9crit :',
                'El lun., 2 abr. 2012 a las 18:26, Megan One '
                '(<x@example.org>) escribi\u00f3:',
                'Megan One <x@example.org> ezt \u00edrta (id\u0151pont: '
                '2012. \u00e1pr. 2., H, 18:26):',
                '2012.04.02. 18:26 keltez\u00e9ssel, Megan One \u00edrta:',
                'Op ma 2 apr. 2012 om 18:26 schreef Megan One '
                '<x@example.org>:',
                'Il giorno lun 2 apr 2012 alle ore 18:26 Megan One ha '
                'scritto:',
                '-----Original Message-----',
                '----- Original Message -----',
                '-----Urspr\u00fcngliche Nachricht-----',
                "-----Message d'origine-----",
                '-----Mensaje original-----',
                '-----Eredeti \u00fczenet-----',
                'From: Megan One [mailto:x@example.org]\nSent: Monday, '
                'April 2, 2012 6:26 PM\nTo: Support\nSubject: Printer',
                'Von: Megan One <x@example.org>\nGesendet: Montag, 2. April '
                '2012 18:26\nAn: Support\nBetreff: Drucker',
                'De : Megan One\nEnvoy\u00e9 : lundi 2 avril 2012 18:26\n'
                '\u00c0 : Support',
                'De: Megan One\nEnviado el: lunes, 2 de abril de 2012\n'
                'Para: Support',
                'Felad\u00f3: Megan One\nK\u00fcldve: 2012. \u00e1prilis 2.\n'
                'C\u00edmzett: Support',
                '________________________________\nFrom: Megan One\n'
                'Sent: Monday\nTo: Support',
                ]:
            with self.subTest(header=header):
                text = (f'Thanks, it works.\n\nBest regards\n\n{header}\n\n'
                    'Quoted text\nwithout any mark\n')
                self.assertEqual(mail.strip_quoted(text),
                    'Thanks, it works.\n\nBest regards')

    def test_trailing_quote(self):
        self.assertEqual(mail.strip_quoted(
                'Yes.\n\nMegan wrote:\n> Is it\n>\n> fixed?\n\n'), 'Yes.')
        self.assertEqual(mail.strip_quoted('Yes.\n> Is it fixed?'), 'Yes.')
        # Interleaved answers stay
        self.assertEqual(mail.strip_quoted(
                '> Question one\nAnswer one\n> Question two\nAnswer two'),
            'Answer one\n> Question two\nAnswer two')

    def test_bottom_posting(self):
        self.assertEqual(mail.strip_quoted(
                'On Monday, Megan wrote:\n> Is it fixed?\n\nYes, it is.'),
            'Yes, it is.')
        self.assertEqual(mail.strip_quoted('> Is it fixed?\n\nYes.'), 'Yes.')

    def test_signature(self):
        self.assertEqual(mail.strip_quoted(
                'It works.\n\n-- \nJohn Smith\nCustomer Ltd.\n+1 555 0100'),
            'It works.')
        self.assertEqual(mail.strip_quoted('It works.\n--\nJohn'), 'It works.')
        self.assertEqual(mail.strip_quoted('It works.\n\nSent from my iPhone'),
            'It works.')
        self.assertEqual(mail.strip_quoted(
                'It works.\n\nVon meinem iPhone gesendet\n\n'
                'Am 02.04.2012 um 18:26 schrieb Support <s@example.com>:\n'
                '> Hi'), 'It works.')

    def test_kept(self):
        "What only looks like a quote stays"
        for text in [
                'My colleague wrote: the printer is broken.',
                'On Monday the printer stopped.\nIt wrote: error 42',
                'From: the accounting department\nWe need two printers.',
                'Here is the log:\n---\nerror 42\n---\nThanks',
                'Use -- to separate options.',
                'On Monday the technician wrote:\nhis report is attached.',
                ]:
            with self.subTest(text=text):
                self.assertEqual(mail.strip_quoted(text), text)

    def test_only_quote(self):
        self.assertEqual(mail.strip_quoted(
                'On Monday, Megan wrote:\n> Is it fixed?'), '')
        self.assertEqual(mail.strip_quoted(''), '')


class ReferencesTestCase(unittest.TestCase):

    def test_subject_references(self):
        for subject, expected in [
                ('Re: [TCK00042] Printer', ['TCK00042']),
                ('RE: AW: [#TCK00042] Printer', ['TCK00042']),
                ('[TCK-42] and [HD7] [TCK-42]', ['TCK-42', 'HD7']),
                ('Fwd: [ TCK00042 ] spaced', ['TCK00042']),
                ('(TCK00042) Printer', []),
                ('TCK00042 Printer', []),
                ('[tck00042] lower case', []),
                ('[SPAM] [EXTERNAL] Printer', []),
                ('[42] digits only', []),
                ('', []),
                ]:
            with self.subTest(subject=subject):
                self.assertEqual(mail.subject_references(subject), expected)

    def test_plus_tokens(self):
        support = 'support@example.com'
        self.assertEqual(mail.plus_tokens(
                ['support+ab12cd@example.com'], support), ['ab12cd'])
        self.assertEqual(mail.plus_tokens([
                    'SUPPORT+AbC@EXAMPLE.COM',  # case kept for the token
                    'Support <support+12.f00d@Example.com>',
                    'support@example.com',  # no token
                    'support+@example.com',  # empty token
                    'support+x@other.example.com',  # other domain
                    'supportx+y@example.com',  # other local part
                    'other+z@example.com',
                    'not an address',
                    'support+AbC@example.com',  # once
                    ], 'Support <Support@Example.COM>'),
            ['AbC', '12.f00d'])
        self.assertEqual(mail.plus_tokens([], support), [])
        self.assertEqual(mail.plus_tokens(['support+a@example.com'], ''), [])

    def test_reply_address(self):
        self.assertEqual(mail.reply_address('support@example.com', 'ab12cd'),
            'support+ab12cd@example.com')
        address = mail.reply_address('help@example.com', '12.f00dcafe1234')
        self.assertEqual(address, 'help+12.f00dcafe1234@example.com')
        self.assertEqual(mail.plus_tokens([address], 'help@example.com'),
            ['12.f00dcafe1234'])
        for token in ['', 'a b', 'a@b', '.a', 'a..b', 'a\n']:
            with self.subTest(token=token):
                with self.assertRaises(ValueError):
                    mail.reply_address('support@example.com', token)
        with self.assertRaises(ValueError):
            mail.reply_address('not an address', 'ab')
