"Segments, campaigns, consent, bounces and lead scoring"
import datetime as dt
import email
from decimal import Decimal
from email.policy import default as default_policy

from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError
from trytond.model.modelview import AccessButtonError
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_core.tests.tools import (
    CrmDatabaseTestCase, CrmSetup, create_party, create_user, deliver_mail,
    smtp_server)

BODY = ('<html><body><p>Hello ${record.party.name},</p>'
    '<p><a href="https://example.com/offer">Our offer</a></p>'
    '<p><a href="unsubscribe">Unsubscribe</a></p></body></html>')

DSN = """\
From: MAILER-DAEMON@example.net
To: news@example.com
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
 boundary="b1"

--b1
Content-Type: text/plain

The mail could not be delivered.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {address}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 User unknown

--b1--
"""


class MarketingSetup(CrmSetup):
    "CrmSetup with countries, a VIP category and a marketing user"

    def __init__(self):
        super().__init__()
        pool = Pool()
        Country = pool.get('country.country')
        Category = pool.get('party.category')
        ModelData = pool.get('ir.model.data')
        User = pool.get('res.user')
        self.de, self.fr = Country.create([
                {'name': "Germany", 'code': 'DE'},
                {'name': "France", 'code': 'FR'}])
        self.vip, = Category.create([{'name': "VIP"}])
        self.marketer = create_user('marketer', self.company)
        User.write([self.marketer], {'groups': [('add', [ModelData.get_id(
                            'crm_marketing', 'group_marketing_user')])]})

    def segment(self, **values):
        Segment = Pool().get('crm.segment')
        segment, = Segment.create([dict({
                        'name': "Segment", 'company': self.company.id},
                    **values)])
        return Segment(segment.id)

    def email_campaign(self, segment, **values):
        Campaign = Pool().get('marketing.campaign')
        campaign, = Campaign.create([dict({
                        'name': "Spring offer",
                        'type': 'email',
                        'segment': segment.id,
                        'currency': self.company.currency.id,
                        'variants': [('create', [{
                                        'name': 'a',
                                        'subject': "Offer for "
                                        "${record.party.name}",
                                        'body': BODY}])],
                        }, **values)])
        return campaign

    def send(self):
        "What marketing_automation's queue does: the due activities"
        RecordActivity = Pool().get('marketing.automation.record.activity')
        RecordActivity.do(RecordActivity.search([
                    ('state', '=', 'waiting')]))


def members(campaign):
    Member = Pool().get('marketing.campaign.member')
    return {m.party.name: m for m in Member.search(
            [('campaign', '=', campaign.id)])}


class MarketingTestCase(CrmDatabaseTestCase):
    "Test crm_marketing"
    modules = ['crm_marketing']

    @with_transaction()
    def test_dynamic_segment_with_four_criteria(self):
        "A segment's members are the parties its criteria describe"
        pool = Pool()
        Party = pool.get('party.party')
        Activity = pool.get('crm.activity')
        ms = MarketingSetup()
        with ms.company_context():
            anna = create_party("Anna", countries=[ms.de],
                lifecycle_status='customer', owner=ms.alice.id,
                categories=[('add', [ms.vip.id])])
            create_party("Bert", countries=[ms.de],
                lifecycle_status='prospect', owner=ms.bob.id,
                categories=[('add', [ms.vip.id])])
            create_party("Chloe", countries=[ms.fr],
                lifecycle_status='customer', owner=ms.alice.id,
                categories=[('add', [ms.vip.id])])
            dora = create_party("Dora", countries=[ms.de],
                lifecycle_status='customer', owner=ms.bob.id,
                categories=[('add', [ms.vip.id])])
            create_party("Emil", countries=[ms.de],
                lifecycle_status='customer', owner=ms.carol.id,
                categories=[('add', [ms.vip.id])])
            Activity.create([{'type': 'call', 'subject': "Call",
                        'party': dora.id, 'company': ms.company.id,
                        'start': dt.datetime.now() - dt.timedelta(days=3),
                        'user': ms.bob.id, 'state': 'done'}])
            segment = ms.segment(
                lifecycle_statuses=['customer'],
                countries=[('add', [ms.de.id])],
                categories=[('add', [ms.vip.id])],
                teams=[('add', [ms.north.id])])
            self.assertEqual(segment.member_count, 2)
            self.assertEqual(
                sorted(p.name for p in Party.search(
                        [('crm_segments', '=', segment.id)])),
                ["Anna", "Dora"])
            # Inactive for 30 days: Dora called 3 days ago is not
            segment.inactive_days = 30
            segment.save()
            segment = segment.__class__(segment.id)
            self.assertEqual(segment.member_count, 1)
            self.assertEqual(segment.evaluate(), 1)
            self.assertEqual([p.name for p in Party.search(
                        [('crm_segments', '=', segment.id)])], ["Anna"])
            # A party changes: the refresh follows
            Party.write([anna], {'lifecycle_status': 'former'})
            segment.__class__.refresh_all()
            self.assertEqual(segment.__class__(segment.id).member_count, 0)

    @with_transaction()
    def test_segments_combine(self):
        "Include and exclude other segments, never itself"
        pool = Pool()
        Party = pool.get('party.party')
        Lead = pool.get('crm.lead')
        ms = MarketingSetup()
        with ms.company_context():
            anna = create_party("Anna", owner=ms.alice.id)
            bert = create_party("Bert", owner=ms.bob.id)
            create_party("Carl", owner=ms.carol.id)
            Lead.create([{'name': "Deal", 'party': bert.id,
                        'company': ms.company.id,
                        'expected_revenue': Decimal(100)}])
            north = ms.segment(name="North", teams=[('add', [ms.north.id])])
            open_leads = ms.segment(name="Open leads",
                open_opportunities='with')
            carol = ms.segment(name="Carol's", owners=[('add', [ms.carol.id])])
            combined = ms.segment(name="Combined",
                owners=[('add', [ms.carol.id])],
                includes=[('add', [north.id])],
                excludes=[('add', [open_leads.id])])
            self.assertEqual(
                sorted(p.name for p in Party.search(
                        [('crm_segments', '=', combined.id)])),
                ["Anna", "Carl"])
            self.assertIn(anna, Party.search(
                    [('crm_segments', '=', north.id)]))
            with self.assertRaises(UserError):
                north.__class__.write([north],
                    {'includes': [('add', [combined.id])]})
            self.assertEqual(carol.member_count, 1)

    @with_transaction()
    def test_static_segment_from_segment_and_csv(self):
        "A static list filled from a dynamic segment and from a CSV file"
        pool = Pool()
        Fill = pool.get('crm.segment.fill', type='wizard')
        Import = pool.get('crm.segment.import', type='wizard')
        ms = MarketingSetup()
        with ms.company_context():
            create_party("Anna", owner=ms.alice.id)
            create_party("Bert", emails=['bert@example.com'])
            create_party("Carl", phones=['+4930901820'], code='C-7')
            alice = ms.segment(name="Alice's",
                owners=[('add', [ms.alice.id])])
            static = ms.segment(name="List", kind='static')
            session_id, _, _ = Fill.create()
            with Transaction().set_context(active_model='crm.segment',
                    active_id=static.id, active_ids=[static.id]):
                fill = Fill(session_id)
                fill.start.source = alice
                fill.transition_fill()
                importer = Import(Import.create()[0])
                importer.start.file_ = (
                    b'email;code\nBERT@example.com;\n;C-7\nnobody@x.org;\n')
                importer.transition_import_()
            static = static.__class__(static.id)
            self.assertEqual(static.member_count, 3)
            self.assertEqual(sorted(m.party.name for m in static.members),
                ["Anna", "Bert", "Carl"])
            self.assertEqual(importer.start.matched, 2)
            self.assertIn('nobody@x.org', importer.start.unmatched)
            with self.assertRaises(UserError):
                importer.start.file_ = b'name\nAnna\n'
                importer.transition_import_()

    @with_transaction()
    def test_email_campaign_respects_consent(self):
        """An email campaign reaches its segment's addresses through SMTP,
        with List-Unsubscribe and tracked links; opted-out and suppressed
        addresses get nothing, from any campaign"""
        pool = Pool()
        Campaign = pool.get('marketing.campaign')
        Consent = pool.get('marketing.consent')
        Suppression = pool.get('marketing.suppression')
        Record = pool.get('marketing.automation.record')
        smtp = smtp_server(self)
        ms = MarketingSetup()
        with ms.company_context():
            for name in ["Anna", "Bert", "Carl", "Dora"]:
                create_party(name, emails=[f'{name.lower()}@example.com'],
                    owner=ms.alice.id)
            create_party("Emil", owner=ms.alice.id)
            Consent.record(['Carl@Example.com'], 'opted_out', 'manual')
            Suppression.suppress(['dora@example.com'], 'bounce')
            segment = ms.segment(owners=[('add', [ms.alice.id])])
            campaign = ms.email_campaign(segment)
            Campaign.run([campaign])
            self.assertEqual(sorted(members(campaign)), ["Anna", "Bert"])
            ms.send()
            deliver_mail()
        received = {m.rcpt_tos[0]: email.message_from_bytes(
                m.original_content, policy=default_policy)
            for m in smtp.messages}
        self.assertEqual(sorted(received),
            ['anna@example.com', 'bert@example.com'])
        anna_mail = received['anna@example.com']
        self.assertEqual(anna_mail['Subject'], "Offer for Anna")
        body = anna_mail.get_body(('html',)).get_content()
        self.assertIn("Hello Anna", body)
        self.assertNotIn('https://example.com/offer', body)
        self.assertIn('/s/', body)
        self.assertIn('/unsubscribe?', body)
        unsubscribe = anna_mail['List-Unsubscribe'].strip('<>')
        self.assertIn(unsubscribe.split('/m/')[1], body.replace('&amp;', '&'))
        with ms.company_context():
            campaign = Campaign(campaign.id)
            self.assertEqual((campaign.targeted, campaign.reached), (2, 2))
            # Anna unsubscribes (marketing_automation's route blocks her
            # record): she is opted out of every later campaign
            anna = members(campaign)['Anna']
            record, = Record.search([('record', '=', str(anna))])
            record.block()
            self.assertEqual(members(campaign)['Anna'].status, 'unsubscribed')
            consent, = Consent.search([('email', '=', 'anna@example.com')])
            self.assertEqual((consent.status, consent.method),
                ('opted_out', 'unsubscribe'))
            smtp.messages.clear()
            second = ms.email_campaign(segment, name="Summer offer")
            Campaign.run([second])
            self.assertEqual(sorted(members(second)), ["Bert"])
            ms.send()
            deliver_mail()
        self.assertEqual([m.rcpt_tos for m in smtp.messages],
            [['bert@example.com']])

    @with_transaction()
    def test_mailing_list_skips_opted_out(self):
        "marketing_email's mailings skip addresses opted out elsewhere"
        pool = Pool()
        Lang = pool.get('ir.lang')
        EmailList = pool.get('marketing.email.list')
        Message = pool.get('marketing.email.message')
        Consent = pool.get('marketing.consent')
        smtp = smtp_server(self)
        ms = MarketingSetup()
        with ms.company_context():
            en, = Lang.search([('code', '=', 'en')], limit=1)
            news, = EmailList.create([{'name': "News", 'language': en.id,
                        'emails': [('create', [
                                    {'email': 'anna@example.com'},
                                    {'email': 'bert@example.com'}])]}])
            Consent.record(['bert@example.com'], 'opted_out', 'unsubscribe')
            message, = Message.create([{'list_': news.id,
                        'title': "News", 'content': '<p>Hello</p>'}])
            Message.send([message])
            Message.process()
            deliver_mail()
            self.assertEqual(Message(message.id).state, 'sent')
        self.assertEqual([m.rcpt_tos for m in smtp.messages],
            [['anna@example.com']])
        with ms.company_context():
            # Leaving the list through its own unsubscribe is an opt-out
            anna, = [e for e in news.emails if e.email.startswith('anna')]
            anna.__class__.unsubscribe([anna.email_token])
            self.assertIn('anna@example.com', Consent.blocked(
                    ['anna@example.com']))

    @with_transaction()
    def test_bounce_suppresses_and_lowers_quality(self):
        """A bounce arriving through inbound_email suppresses the address,
        marks it undeliverable (lower quality score) and the member
        bounced"""
        pool = Pool()
        Campaign = pool.get('marketing.campaign')
        Inbox = pool.get('inbound.email.inbox')
        InboundEmail = pool.get('inbound.email')
        Suppression = pool.get('marketing.suppression')
        Party = pool.get('party.party')
        ms = MarketingSetup()
        smtp_server(self)
        with ms.company_context():
            anna = create_party("Anna", emails=['anna@example.com'],
                countries=[ms.de], owner=ms.alice.id)
            score = anna.quality_score
            segment = ms.segment(owners=[('add', [ms.alice.id])])
            campaign = ms.email_campaign(segment)
            Campaign.run([campaign])
            ms.send()
            inbox, = Inbox.create([{'name': "Bounces", 'rules': [
                            ('create', [{'action':
                                        'marketing.suppression'
                                        '|from_inbound_email'}])]}])
            bounce, = InboundEmail.create([{'inbox': inbox.id,
                        'data': DSN.format(
                            address='Anna@example.com').encode(),
                        'data_type': 'raw'}])
            InboundEmail.process([bounce])
            suppression, = Suppression.search([])
            self.assertEqual((suppression.email, suppression.reason),
                ('anna@example.com', 'bounce'))
            self.assertEqual(InboundEmail(bounce.id).result, suppression)
            anna = Party(anna.id)
            self.assertLess(anna.quality_score, score)
            self.assertIn('invalid_email', anna.quality_issues)
            self.assertEqual(members(campaign)['Anna'].status, 'bounced')
            self.assertEqual(Campaign(campaign.id).bounced, 1)
            # A delay notice (not a failure) suppresses nothing
            delay, = InboundEmail.create([{'inbox': inbox.id,
                        'data': DSN.format(address='bert@example.com')
                        .replace('Action: failed', 'Action: delayed')
                        .encode(),
                        'data_type': 'raw'}])
            InboundEmail.process([delay])
            self.assertEqual(len(Suppression.search([])), 1)

    @with_transaction()
    def test_funnel_and_roi(self):
        "A campaign counts its members, leads and won deals, and its ROI"
        pool = Pool()
        Campaign = pool.get('marketing.campaign')
        Member = pool.get('marketing.campaign.member')
        Lead = pool.get('crm.lead')
        ms = MarketingSetup()
        with ms.company_context():
            parties = [create_party(n, emails=[f'{n}@example.com'],
                    owner=ms.alice.id) for n in ['a', 'b', 'c', 'd']]
            segment = ms.segment(owners=[('add', [ms.alice.id])])
            campaign = ms.email_campaign(segment, costs=[('create', [
                            {'description': "Design",
                                'amount': Decimal(150)},
                            {'description': "Ads", 'amount': Decimal(50)},
                            ])])
            Campaign.run([campaign])
            ms.send()
            by_name = members(campaign)
            Member.mark([by_name['a'], by_name['b']], 'opened')
            Member.mark([by_name['a']], 'clicked')
            leads = Lead.create([{
                        'name': f"Deal {p.name}", 'party': p.id,
                        'company': ms.company.id,
                        'marketing_campaign': campaign.id,
                        'expected_revenue': Decimal(amount)}
                    for p, amount in zip(parties[:2], [1000, 300])])
            self.assertEqual(members(campaign)['a'].status, 'responded')
            Lead.won([leads[0]])
            self.assertEqual(members(campaign)['a'].status, 'converted')
            campaign = Campaign(campaign.id)
            self.assertEqual(
                (campaign.targeted, campaign.reached, campaign.opened,
                    campaign.clicked, campaign.responded,
                    campaign.lead_count, campaign.won_count),
                (4, 4, 2, 1, 2, 2, 1))
            self.assertEqual(campaign.cost, Decimal(200))
            self.assertEqual(campaign.won_revenue, Decimal(1000))
            self.assertEqual(campaign.cost_per_lead, Decimal(100))
            self.assertEqual(campaign.roi, 4.0)

    @with_transaction()
    def test_ab_test_sends_the_winner_to_the_rest(self):
        "A and B go to a sample; the better open rate goes to the others"
        pool = Pool()
        Campaign = pool.get('marketing.campaign')
        Member = pool.get('marketing.campaign.member')
        Variant = pool.get('marketing.campaign.variant')
        smtp = smtp_server(self)
        ms = MarketingSetup()
        with ms.company_context():
            for i in range(20):
                create_party(f"P{i:02}", emails=[f'p{i}@example.com'],
                    owner=ms.alice.id)
            segment = ms.segment(owners=[('add', [ms.alice.id])])
            campaign = ms.email_campaign(segment, ab_test=True,
                ab_sample=50, ab_metric='opened',
                ab_delay=dt.timedelta(hours=2))
            Variant.create([{'campaign': campaign.id, 'name': 'b',
                        'subject': "B for ${record.party.name}",
                        'body': BODY}])
            Campaign.run([campaign])
            ms.send()
            deliver_mail()
            self.assertEqual(len(smtp.messages), 10)
            subjects = [email.message_from_bytes(m.original_content,
                    policy=default_policy)['Subject'] for m in smtp.messages]
            self.assertEqual(sum(s.startswith('B for') for s in subjects), 5)
            b_sample = Member.search([('campaign', '=', campaign.id),
                    ('variant', '=', 'b')])
            Member.mark(b_sample[:3], 'opened')
            a_sample = Member.search([('campaign', '=', campaign.id),
                    ('variant', '=', 'a')])
            Member.mark(a_sample[:1], 'opened')
            # Too early: nothing chosen
            Campaign.choose_winners()
            self.assertIsNone(Campaign(campaign.id).ab_winner)
            Campaign.choose_winners(
                now=dt.datetime.now() + dt.timedelta(hours=3))
            self.assertEqual(Campaign(campaign.id).ab_winner, 'b')
            smtp.messages.clear()
            ms.send()
            deliver_mail()
        subjects = [email.message_from_bytes(m.original_content,
                policy=default_policy)['Subject'] for m in smtp.messages]
        self.assertEqual(len(subjects), 10)
        self.assertTrue(all(s.startswith('B for') for s in subjects))

    @with_transaction()
    def test_lead_scoring_qualifies_and_decays(self):
        """Attribute and behaviour points make the score; at the threshold
        the lead goes to the sales team with an activity for its owner;
        behaviour loses weight with time"""
        pool = Pool()
        Configuration = pool.get('crm.configuration')
        Rule = pool.get('crm.lead.scoring.rule')
        Lead = pool.get('crm.lead')
        Campaign = pool.get('marketing.campaign')
        Member = pool.get('marketing.campaign.member')
        Activity = pool.get('crm.activity')
        ms = MarketingSetup()
        with ms.company_context():
            config = Configuration(1)
            config.mql_threshold = 25
            config.mql_team = ms.north
            config.scoring_half_life = 10
            config.save()
            Rule.create([
                    {'name': "Germany", 'criterion': 'country',
                        'country': ms.de.id, 'points': 10,
                        'company': ms.company.id},
                    {'name': "Opened", 'criterion': 'opened',
                        'points': 20, 'company': ms.company.id}])
            anna = create_party("Anna", emails=['anna@example.com'],
                owner=ms.carol.id)
            lead, = Lead.create([{'name': "Anna's interest",
                        'party': anna.id, 'company': ms.company.id,
                        'country': ms.de.id, 'owner': None,
                        'expected_revenue': Decimal(0)}])
            lead = Lead(lead.id)
            self.assertEqual(lead.marketing_score, 10)
            self.assertIsNone(lead.marketing_qualified)
            segment = ms.segment(owners=[('add', [ms.carol.id])])
            campaign = ms.email_campaign(segment)
            Campaign.run([campaign])
            ms.send()
            Member.mark([members(campaign)['Anna']], 'opened')
            lead = Lead(lead.id)
            self.assertEqual(lead.marketing_score, 30)
            self.assertIn("Opened", lead.marketing_score_reasons)
            self.assertTrue(lead.marketing_qualified)
            self.assertEqual(lead.team, ms.north)
            self.assertIn(lead.owner, [ms.alice, ms.bob])
            follow_up, = Activity.search([('origin', '=', str(lead))])
            self.assertEqual((follow_up.user, follow_up.state),
                (lead.owner, 'planned'))
            # Ten days later the opening weighs half
            Lead.update_scores([lead],
                now=dt.datetime.now() + dt.timedelta(days=10))
            self.assertEqual(Lead(lead.id).marketing_score, 20)
            # Qualified once: no second hand-over
            Member.mark([members(campaign)['Anna']], 'opened')
            self.assertEqual(len(Activity.search(
                        [('origin', '=', str(lead))])), 1)

    @with_transaction()
    def test_erase_removes_marketing_data(self):
        "party.erase removes consents, scoring and memberships' addresses"
        pool = Pool()
        Party = pool.get('party.party')
        Consent = pool.get('marketing.consent')
        Campaign = pool.get('marketing.campaign')
        Erase = pool.get('party.erase', type='wizard')
        ms = MarketingSetup()
        with ms.company_context():
            anna = create_party("Anna", emails=['anna@example.com'],
                owner=ms.alice.id)
            Consent.record(['anna@example.com'], 'opted_in', 'form')
            segment = ms.segment(owners=[('add', [ms.alice.id])])
            campaign = ms.email_campaign(segment)
            Campaign.run([campaign])
            member = members(campaign)['Anna']
            Party.write([anna], {'active': False})
            session_id, _, _ = Erase.create()
            erase = Erase(session_id)
            erase.ask.party = anna
            erase.transition_erase()
            self.assertEqual(Consent.search([]), [])
            self.assertIsNone(member.__class__(member.id).email)

    @with_transaction()
    def test_salesperson_reads_results_but_cannot_send(self):
        "Salespeople see campaign results; only marketing starts campaigns"
        pool = Pool()
        Campaign = pool.get('marketing.campaign')
        ms = MarketingSetup()
        with ms.company_context():
            create_party("Anna", emails=['anna@example.com'],
                owner=ms.alice.id)
            segment = ms.segment(owners=[('add', [ms.alice.id])])
            campaign = ms.email_campaign(segment)
        with ms.as_user(ms.alice):
            self.assertEqual(Campaign(campaign.id).targeted, 0)
            with self.assertRaises(AccessButtonError):
                Campaign.run([Campaign(campaign.id)])
            with self.assertRaises(AccessError):
                Campaign.write([Campaign(campaign.id)], {'budget': 1})
        with ms.as_user(ms.marketer):
            Campaign.run([Campaign(campaign.id)])
            self.assertEqual(Campaign(campaign.id).targeted, 1)

    @with_transaction()
    def test_analyses_match_the_records(self):
        """Results by campaign and medium (ROI) and leads by source per
        month count what the leads and costs say"""
        pool = Pool()
        Lead = pool.get('crm.lead')
        Campaign = pool.get('marketing.campaign')
        Medium = pool.get('marketing.medium')
        Source = pool.get('marketing.source')
        ByMedium = pool.get('marketing.analysis.campaign_medium')
        BySource = pool.get('marketing.analysis.source_month')
        ms = MarketingSetup()
        with ms.company_context():
            party = create_party("Anna")
            spring, = Campaign.create([{'name': "Spring",
                        'currency': ms.company.currency.id}])
            email_, ads = Medium.create([{'name': 'email'}, {'name': 'cpc'}])
            web, = Source.create([{'name': 'newsletter'}])
            Campaign.write([spring], {'costs': [('create', [
                                {'description': "Mailing",
                                    'amount': Decimal(100),
                                    'medium': email_.id},
                                {'description': "Ads", 'amount': Decimal(400),
                                    'medium': ads.id}])]})
            leads = Lead.create([{
                        'name': f"Lead {i}", 'party': party.id,
                        'company': ms.company.id,
                        'marketing_campaign': spring.id,
                        'marketing_medium': medium.id,
                        'marketing_source': web.id if i < 2 else None,
                        'expected_revenue': Decimal(amount)}
                    for i, (medium, amount) in enumerate([
                            (email_, 500), (email_, 700), (ads, 300)])])
            Lead.won([leads[0], leads[2]])
            with Transaction().set_context(company=ms.company.id):
                rows = {r.medium.name: r for r in ByMedium.search([])}
                self.assertEqual(
                    (rows['email'].leads, rows['email'].won,
                        rows['email'].won_revenue, rows['email'].cost),
                    (2, 1, Decimal(500), Decimal(100)))
                self.assertEqual(rows['email'].roi, 4.0)
                self.assertEqual(rows['cpc'].roi, -0.25)
                months = BySource.search([])
                self.assertEqual(sorted(
                        (r.source.name if r.source else "", r.leads, r.won)
                        for r in months),
                    [("", 1, 1), ("newsletter", 2, 1)])
                self.assertEqual({r.month for r in months},
                    {dt.date.today().replace(day=1)})

    @with_transaction()
    def test_analyses_count_the_readable_leads(self):
        """The analyses count the leads the reader may read: a salesperson
        their own and their team's, a manager all of them"""
        pool = Pool()
        Lead = pool.get('crm.lead')
        Campaign = pool.get('marketing.campaign')
        Medium = pool.get('marketing.medium')
        Source = pool.get('marketing.source')
        ByMedium = pool.get('marketing.analysis.campaign_medium')
        BySource = pool.get('marketing.analysis.source_month')
        ms = MarketingSetup()
        with ms.company_context():
            party = create_party("Anna")
            spring, = Campaign.create([{'name': "Spring",
                        'currency': ms.company.currency.id}])
            email_, = Medium.create([{'name': 'email'}])
            web, = Source.create([{'name': 'newsletter'}])
            Campaign.write([spring], {'costs': [('create', [
                                {'description': "Mailing",
                                    'amount': Decimal(100),
                                    'medium': email_.id}])]})
            leads = Lead.create([{
                        'name': f"Lead {i}", 'party': party.id,
                        'company': ms.company.id,
                        'team': team.id, 'owner': owner.id,
                        'marketing_campaign': spring.id,
                        'marketing_medium': email_.id,
                        'marketing_source': web.id,
                        'expected_revenue': Decimal(amount)}
                    for i, (team, owner, amount) in enumerate([
                            (ms.north, ms.alice, 500),
                            (ms.north, ms.bob, 700),
                            (ms.south, ms.carol, 300)])])
            Lead.won([leads[0], leads[2]])

        def figures(user):
            with ms.as_user(user):
                return ([(r.medium.id, r.leads, r.won, r.won_revenue, r.cost)
                        for r in ByMedium.search([])],
                    [(r.source.id, r.leads, r.won)
                        for r in BySource.search([])])
        self.assertEqual(figures(ms.manager), (
                [(email_.id, 3, 2, Decimal(800), Decimal(100))],
                [(web.id, 3, 2)]))
        # alice and bob (North) read the North team's leads, carol (South)
        # her own: the costs are the campaign's, whoever reads them
        for user in [ms.alice, ms.bob]:
            with self.subTest(user=user.login):
                self.assertEqual(figures(user), (
                        [(email_.id, 2, 1, Decimal(500), Decimal(100))],
                        [(web.id, 2, 1)]))
        self.assertEqual(figures(ms.carol), (
                [(email_.id, 1, 1, Decimal(300), Decimal(100))],
                [(web.id, 1, 1)]))

    @with_transaction()
    def test_segment_quality_deals_and_responses(self):
        "Quality score range, won deals and responses to campaigns"
        pool = Pool()
        Party = pool.get('party.party')
        Lead = pool.get('crm.lead')
        Campaign = pool.get('marketing.campaign')
        Member = pool.get('marketing.campaign.member')
        ms = MarketingSetup()
        with ms.company_context():
            rich = create_party("Rich", emails=['rich@example.com'],
                countries=[ms.de], owner=ms.alice.id)
            poor = create_party("Poor")
            clicker = create_party("Clicker", emails=['c@example.com'],
                owner=ms.alice.id)
            deal, = Lead.create([{'name': "Deal", 'party': rich.id,
                        'company': ms.company.id,
                        'expected_revenue': Decimal(10)}])
            Lead.won([deal])
            good = ms.segment(name="Good data",
                quality_min=Party(rich.id).quality_score)
            self.assertIn(rich, Party.search(
                    [('crm_segments', '=', good.id)]))
            self.assertNotIn(poor, Party.search(
                    [('crm_segments', '=', good.id)]))
            won = ms.segment(name="Won", won_opportunities='with')
            self.assertEqual(Party.search([('crm_segments', '=', won.id)]),
                [rich])
            campaign = ms.email_campaign(ms.segment(name="Alice's",
                    owners=[('add', [ms.alice.id])]))
            Campaign.run([campaign])
            Member.mark([members(campaign)['Clicker']], 'clicked')
            responders = ms.segment(name="Responders",
                responded_campaigns=[('add', [campaign.id])])
            self.assertEqual(
                Party.search([('crm_segments', '=', responders.id)]),
                [clicker])

    @with_transaction()
    def test_complaint_opts_out(self):
        "A spam complaint (feedback report) suppresses and opts out"
        pool = Pool()
        Inbox = pool.get('inbound.email.inbox')
        InboundEmail = pool.get('inbound.email')
        Consent = pool.get('marketing.consent')
        Suppression = pool.get('marketing.suppression')
        ms = MarketingSetup()
        report = (
            'From: abuse@isp.example\nTo: news@example.com\n'
            'Subject: Complaint\nMIME-Version: 1.0\n'
            'Content-Type: multipart/report; report-type=feedback-report;'
            ' boundary="b"\n\n--b\nContent-Type: text/plain\n\nSpam.\n'
            '--b\nContent-Type: message/feedback-report\n\n'
            'Feedback-Type: abuse\nUser-Agent: isp/1.0\nVersion: 1\n'
            'Original-Rcpt-To: <Zoe@Example.com>\n--b--\n')
        with ms.company_context():
            inbox, = Inbox.create([{'name': "Feedback", 'rules': [
                            ('create', [{'action':
                                        'marketing.suppression'
                                        '|from_inbound_email'}])]}])
            complaint, = InboundEmail.create([{'inbox': inbox.id,
                        'data': report.encode(), 'data_type': 'raw'}])
            InboundEmail.process([complaint])
            suppression, = Suppression.search([])
            self.assertEqual((suppression.email, suppression.reason),
                ('zoe@example.com', 'complaint'))
            consent, = Consent.search([])
            self.assertEqual((consent.status, consent.method),
                ('opted_out', 'complaint'))

    @with_transaction()
    def test_double_opt_in_and_opt_in_required(self):
        """Confirming a mailing list subscription is an opt-in; when the
        configuration requires opt-ins only those addresses get
        marketing"""
        pool = Pool()
        Lang = pool.get('ir.lang')
        EmailList = pool.get('marketing.email.list')
        ListEmail = pool.get('marketing.email')
        Consent = pool.get('marketing.consent')
        Configuration = pool.get('crm.configuration')
        ms = MarketingSetup()
        smtp_server(self)
        with ms.company_context():
            en, = Lang.search([('code', '=', 'en')], limit=1)
            news, = EmailList.create([{'name': "News", 'language': en.id}])
            news.request_subscribe('anna@example.com')
            anna, = ListEmail.search([('email', '=', 'anna@example.com'),
                    ('active', '=', False)])
            self.assertEqual(Consent.search([]), [])
            ListEmail.subscribe([anna.email_token])
            consent, = Consent.search([])
            self.assertEqual((consent.email, consent.status, consent.method,
                    consent.source), ('anna@example.com', 'opted_in',
                    'double_opt_in', "News"))
            self.assertEqual(Consent.blocked(
                    ['anna@example.com', 'bert@example.com']), set())
            config = Configuration(1)
            config.marketing_opt_in_required = True
            config.save()
            self.assertEqual(Consent.blocked(
                    ['anna@example.com', 'bert@example.com']),
                {'bert@example.com'})
