import datetime as dt
from decimal import Decimal
from urllib.parse import quote

from trytond import backend
from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError
from trytond.modules.company.tests import CompanyTestMixin
from trytond.modules.party.tests import PartyCheckReplaceMixin
from trytond.pool import Pool
from trytond.tests.test_tryton import ModuleTestCase, with_transaction
from trytond.transaction import Transaction, inactive_records

from .tools import CrmSetup, count_queries, sao_unknown_list_columns


class CrmCoreTestCase(
        PartyCheckReplaceMixin, CompanyTestMixin, ModuleTestCase):
    "Test CRM Core module"
    module = 'crm_core'

    @with_transaction()
    def test_lists_open_in_sao(self):
        "Every list view has only columns that sao can show"
        self.assertEqual(sao_unknown_list_columns(self.module), [])

    def _lead(self, crm, **values):
        pool = Pool()
        Lead = pool.get('crm.lead')
        values.setdefault('name', "Website redesign")
        values.setdefault('team', crm.north.id)
        values.setdefault('owner', crm.alice.id)
        lead, = Lead.create([values])
        return lead

    def wizard_context(self, record):
        return Transaction().set_context(
            active_model=record.__name__, active_id=record.id,
            active_ids=[record.id])

    def _party(self, name, email=None, phone=None):
        pool = Pool()
        Party = pool.get('party.party')
        mechanisms = []
        if email:
            mechanisms.append({'type': 'email', 'value': email})
        if phone:
            mechanisms.append({'type': 'phone', 'value': phone})
        party, = Party.create([{
                    'name': name,
                    'contact_mechanisms': [('create', mechanisms)],
                    }])
        return party

    @with_transaction()
    def test_lead_defaults_and_normalisation(self):
        "A new lead starts in the first open stage with clean contact data"
        pool = Pool()
        Country = pool.get('country.country')
        crm = CrmSetup()
        france, = Country.create([{'name': "France", 'code': 'FR'}])
        with crm.company_context():
            lead = self._lead(crm,
                email=" Jane.Doe@Example.COM ", phone="01 42 68 53 00",
                country=france.id)
        self.assertEqual(lead.type, 'lead')
        self.assertEqual(lead.state, 'open')
        self.assertEqual(lead.stage, crm.stage("New"))
        self.assertEqual(lead.probability, 10)
        self.assertEqual(lead.email, "jane.doe@example.com")
        self.assertEqual(lead.phone, "+33142685300")

    @with_transaction()
    def test_lead_invalid_contact_data(self):
        "Invalid emails and phone numbers are refused with a clear error"
        crm = CrmSetup()
        with crm.company_context():
            with self.assertRaisesRegex(UserError, "not-an-email"):
                self._lead(crm, email="not-an-email")
            with self.assertRaisesRegex(UserError, "12"):
                self._lead(crm, phone="12")

    @with_transaction()
    def test_stage_drives_state_and_history(self):
        "Moving through stages closes, reopens and keeps a history"
        pool = Pool()
        Lead = pool.get('crm.lead')
        crm = CrmSetup()
        party = self._party("Acme")
        with crm.company_context():
            lead = self._lead(crm, party=party.id,
                expected_revenue=Decimal('1000'))
            Lead.write([lead], {'stage': crm.stage("Proposition").id})
            self.assertEqual(lead.probability, 60)
            self.assertEqual(lead.weighted_revenue, Decimal('600.00'))

            Lead.won([lead])
            self.assertEqual(lead.state, 'won')
            self.assertEqual(lead.stage, crm.stage("Won"))
            self.assertEqual(lead.probability, 100)
            self.assertTrue(lead.date_closed)
            self.assertEqual(lead.party.lifecycle_status, 'customer')

            Lead.reopen([lead])
            self.assertEqual(lead.state, 'open')
            self.assertEqual(lead.stage, crm.stage("Proposition"))
            self.assertIsNone(lead.date_closed)

        history = sorted(lead.history, key=lambda h: h.id)
        self.assertEqual(
            [(h.from_stage and h.from_stage.name, h.to_stage.name,
                    h.to_state) for h in history],
            [(None, "New", 'open'),
                ("New", "Proposition", 'open'),
                ("Proposition", "Won", 'won'),
                ("Won", "Proposition", 'open')])
        self.assertEqual(history[1].expected_revenue, Decimal('1000'))
        self.assertEqual(history[1].user.id, Transaction().user)

    @with_transaction()
    def test_lost_requires_reason(self):
        "A lead is lost only with a reason, through the wizard too"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Reason = pool.get('crm.lost_reason')
        LostWizard = pool.get('crm.lead.lost', type='wizard')
        crm = CrmSetup()
        competitor = self._party("Rival Inc")
        with crm.company_context():
            lead = self._lead(crm)
            with self.assertRaisesRegex(UserError, "lost reason"):
                Lead.write([lead], {'stage': crm.stage("Lost").id})
            self.assertEqual(Lead(lead.id).state, 'open')

            reason, = Reason.search([], limit=1)
            with self.wizard_context(lead):
                session_id, _, _ = LostWizard.create()
                wizard = LostWizard(session_id)
                wizard.start.reason = reason
                wizard.start.note = "Chose the cheaper offer"
                wizard.start.competitor = competitor
                wizard.transition_lost()
        lead = Lead(lead.id)
        self.assertEqual(lead.state, 'lost')
        self.assertEqual(lead.stage, crm.stage("Lost"))
        self.assertEqual(lead.lost_reason, reason)
        self.assertEqual(lead.competitor, competitor)
        self.assertEqual(lead.probability, 0)

    @with_transaction()
    def test_batch_of_mixed_leads_one_insert(self):
        "A batch of leads and deals in every stage is written at once"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Reason = pool.get('crm.lost_reason')
        if backend.name == 'sqlite':
            self.skipTest("trytond inserts one row at a time on SQLite")
        crm = CrmSetup()
        party = self._party("Acme")
        reason, = Reason.search([], limit=1)
        vlist = []
        for i, stage in enumerate(["New", "Won", "Lost", "Proposition"] * 5):
            values = {
                'name': f"Deal {i}", 'team': crm.north.id,
                'owner': crm.alice.id, 'stage': crm.stage(stage).id,
                'type': 'opportunity' if i % 2 else 'lead',
                'party': party.id,
                }
            if stage == "Lost":
                values['lost_reason'] = reason.id
            vlist.append(values)
        with crm.company_context(), count_queries() as queries:
            leads = Lead.create(vlist)
        inserts = [q for q in queries
            if q.lstrip().upper().startswith('INSERT INTO "CRM_LEAD" ')]
        self.assertEqual(len(inserts), 1, inserts)
        self.assertEqual(
            [l.state for l in leads[:4]], ['open', 'won', 'lost', 'open'])
        self.assertEqual(leads[2].lost_reason, reason)
        self.assertIsNone(leads[1].lost_reason)

    @with_transaction()
    def test_convert_creates_company_and_contact(self):
        "Converting a raw lead creates the company and its contact person"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Relation = pool.get('party.relation.all')
        crm = CrmSetup()
        with crm.company_context():
            lead = self._lead(crm, contact_name="Jane Doe",
                company_name="Globex GmbH", email="jane@globex.example",
                phone="+49 30 901820")
            Lead.convert([lead])
        self.assertEqual(lead.type, 'opportunity')
        self.assertTrue(lead.date_conversion)
        self.assertEqual(lead.party.name, "Globex GmbH")
        self.assertEqual(lead.contact.name, "Jane Doe")
        self.assertEqual(
            {(m.type, m.value_compact)
                for m in lead.contact.contact_mechanisms},
            {('email', 'jane@globex.example'), ('phone', '+4930901820')})
        relations = Relation.search([('from_', '=', lead.contact.id)])
        self.assertEqual([r.to for r in relations], [lead.party])

    @with_transaction()
    def test_convert_links_existing_party(self):
        "A lead whose email exists in any case is linked to that party"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Party = pool.get('party.party')
        crm = CrmSetup()
        party = self._party("Jane Doe", email="Jane@Example.com")
        with crm.company_context():
            lead = self._lead(crm, contact_name="J. Doe",
                email="JANE@example.COM")
            count = Party.search_count([])
            Lead.convert([lead])
        self.assertEqual(lead.party, party)
        self.assertEqual(Party.search_count([]), count)

    @with_transaction()
    def test_convert_without_contact_data(self):
        "A lead without any contact cannot be converted"
        pool = Pool()
        Lead = pool.get('crm.lead')
        crm = CrmSetup()
        with crm.company_context():
            lead = self._lead(crm)
            with self.assertRaises(UserError):
                Lead.convert([lead])
        self.assertEqual(lead.type, 'lead')

    @with_transaction()
    def test_lines_compute_expected_revenue(self):
        "Product lines set the expected revenue, also when removed"
        pool = Pool()
        Line = pool.get('crm.lead.line')
        Template = pool.get('product.template')
        Uom = pool.get('product.uom')
        crm = CrmSetup()
        unit, = Uom.search([('symbol', '=', 'u')], limit=1)
        with crm.company_context():
            template, = Template.create([{
                        'name': "Support contract",
                        'default_uom': unit.id,
                        'list_price': Decimal('1200'),
                        'products': [('create', [{}])],
                        }])
            product, = template.products
            lead = self._lead(crm, expected_revenue=Decimal('5'))
            line = Line(lead=lead, product=product, quantity=2)
            line.on_change_product()
            line.save()
            self.assertEqual(lead.expected_revenue, Decimal('2400'))
            other, = Line.create([{
                        'lead': lead.id, 'description': "Setup",
                        'quantity': 1, 'unit_price': Decimal('300'),
                        }])
            self.assertEqual(lead.expected_revenue, Decimal('2700'))
            Line.delete([other])
            self.assertEqual(lead.expected_revenue, Decimal('2400'))

    @with_transaction()
    def test_round_robin(self):
        "New leads without owner go to the team members in turn"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Team = pool.get('crm.team')
        crm = CrmSetup()
        Team.write([crm.north], {'round_robin': True})
        with crm.company_context():
            leads = Lead.create([
                    {'name': f"Lead {i}", 'team': crm.north.id,
                        'owner': None}
                    for i in range(4)])
        self.assertEqual(
            [l.owner for l in leads],
            [crm.alice, crm.bob, crm.alice, crm.bob])

    @with_transaction()
    def test_round_robin_does_not_lock_the_team(self):
        "Workers assigning leads of one team never wait on the team's row"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Team = pool.get('crm.team')
        if backend.name == 'sqlite':
            self.skipTest("SQLite has one writer at a time anyway")
        crm = CrmSetup()
        Team.write([crm.north], {'round_robin': True})
        with crm.company_context(), count_queries() as queries:
            leads = Lead.create([
                    {'name': f"Lead {i}", 'team': crm.north.id}
                    for i in range(3)])
            owners = Team(crm.north.id).next_owners(2)
        self.assertEqual(
            [l.owner.id for l in leads] + owners,
            [crm.alice.id, crm.bob.id, crm.alice.id, crm.bob.id,
                crm.alice.id])
        self.assertFalse([q for q in queries
                if 'UPDATE "CRM_TEAM"' in q.upper()
                or 'FROM "CRM_TEAM"' in q.upper() and 'FOR UPDATE' in q.upper()])

    @with_transaction()
    def test_next_activity(self):
        "The lead shows its first planned activity, flagged when overdue"
        pool = Pool()
        Activity = pool.get('crm.activity')
        Lead = pool.get('crm.lead')
        crm = CrmSetup()
        now = dt.datetime.now()
        with crm.company_context():
            lead = self._lead(crm)
            other = self._lead(crm)
            Activity.create([{
                        'subject': "Call back", 'origin': str(lead),
                        'start': now - dt.timedelta(days=1),
                        'user': crm.alice.id,
                        }, {
                        'subject': "Demo", 'origin': str(lead),
                        'start': now + dt.timedelta(days=2),
                        'user': crm.alice.id,
                        }, {
                        'subject': "Send offer", 'origin': str(other),
                        'start': now + dt.timedelta(days=3),
                        'user': crm.alice.id,
                        }])
        lead, other = Lead.browse([lead.id, other.id])
        self.assertEqual(lead.next_activity_subject, "Call back")
        self.assertTrue(lead.next_activity_overdue)
        self.assertEqual(other.next_activity_subject, "Send offer")
        self.assertFalse(other.next_activity_overdue)

    @with_transaction()
    def test_activity_party_from_origin_and_schedule(self):
        "Scheduling an activity on a lead puts it in the party's history"
        pool = Pool()
        Activity = pool.get('crm.activity')
        Party = pool.get('party.party')
        Schedule = pool.get('crm.activity.schedule', type='wizard')
        crm = CrmSetup()
        party = self._party("Initech")
        with crm.company_context():
            lead = self._lead(crm, party=party.id)
            with self.wizard_context(lead):
                session_id, _, _ = Schedule.create()
                wizard = Schedule(session_id)
                wizard.start.type = 'meeting'
                wizard.start.subject = "Kick-off"
                wizard.start.start = (
                    dt.datetime.now() + dt.timedelta(days=1))
                wizard.start.end = None
                wizard.start.user = crm.bob
                wizard.start.description = None
                wizard.transition_schedule()
        activity, = Activity.search([('origin', '=', str(lead))])
        self.assertEqual(activity.party, party)
        self.assertEqual(activity.user, crm.bob)
        self.assertEqual(activity.end - activity.start,
            dt.timedelta(minutes=30))
        party = Party(party.id)
        self.assertEqual(party.upcoming_activities, (activity,))
        Activity.do([activity])
        party = Party(party.id)
        self.assertEqual(party.upcoming_activities, ())
        self.assertEqual(party.activity_history, (activity,))

    @with_transaction()
    def test_activity_end_before_start(self):
        "An activity cannot end before it starts"
        pool = Pool()
        Activity = pool.get('crm.activity')
        crm = CrmSetup()
        now = dt.datetime.now()
        with crm.company_context():
            with self.assertRaises(UserError):
                Activity.create([{
                            'subject': "Meeting", 'start': now,
                            'end': now - dt.timedelta(hours=1),
                            'user': crm.alice.id,
                            }])

    @with_transaction()
    def test_activity_reminders(self):
        "Users are notified once of their activities that start soon"
        pool = Pool()
        Activity = pool.get('crm.activity')
        crm = CrmSetup()
        now = dt.datetime.now()
        with crm.company_context():
            soon, later = Activity.create([{
                        'subject': "Call Jane", 'user': crm.bob.id,
                        'start': now + dt.timedelta(minutes=10),
                        }, {
                        'subject': "Call John", 'user': crm.bob.id,
                        'start': now + dt.timedelta(hours=5),
                        }])
        Activity.send_reminders()
        Activity.send_reminders()
        notifications = self._notifications(crm.bob)
        self.assertEqual(len(notifications), 1)
        self.assertIn("Call Jane", notifications[0].label)
        self.assertTrue(Activity(soon.id).reminded)
        self.assertFalse(Activity(later.id).reminded)

    def _notifications(self, user):
        "Notifications sent to the user (stored when the transaction commits)"
        return [n for n in Transaction().user_notifications
            if getattr(n.user, 'id', n.user) == user.id]

    @with_transaction()
    def test_lifecycle_former(self):
        "Customers without a won deal for the configured time become former"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Party = pool.get('party.party')
        Configuration = pool.get('crm.configuration')
        crm = CrmSetup()
        Configuration.create([{
                    'former_after_days': 30, 'reminder_minutes': 15}])
        old, recent = self._party("Old Co"), self._party("New Co")
        with crm.company_context():
            old_deal = self._lead(crm, party=old.id)
            recent_deal = self._lead(crm, party=recent.id)
            Lead.won([old_deal, recent_deal])
        Lead.write([old_deal], {
                'date_closed': dt.datetime.now() - dt.timedelta(days=45)})
        Party.update_lifecycle_status()
        self.assertEqual(Party(old.id).lifecycle_status, 'former')
        self.assertEqual(Party(recent.id).lifecycle_status, 'customer')

    @with_transaction()
    def test_lifecycle_history(self):
        "Each change of a party's lifecycle status is kept, read-only"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Party = pool.get('party.party')
        Lifecycle = pool.get('crm.party.lifecycle')
        crm = CrmSetup()
        party = self._party("Initech")
        with crm.company_context():
            deal = self._lead(crm, party=party.id, owner=crm.alice.id)
            Lead.won([deal])
        with crm.as_user(crm.manager):
            Party.write([Party(party.id)], {'lifecycle_status': 'former'})
        changes = Lifecycle.search(
            [('party', '=', party.id)], order=[('id', 'ASC')])
        self.assertEqual(
            [(c.from_status, c.to_status) for c in changes],
            [(None, 'prospect'), ('prospect', 'customer'),
                ('customer', 'former')])
        self.assertEqual(changes[-1].user.id, crm.manager.id)
        with crm.as_user(crm.alice):
            self.assertEqual(len(Lifecycle.search(
                        [('party', '=', party.id)])), 3)
            with self.assertRaises(AccessError):
                Lifecycle.write(Lifecycle.search(
                        [('party', '=', party.id)]), {'to_status': 'customer'})
            with self.assertRaises(AccessError):
                Lifecycle.delete(Lifecycle.search(
                        [('party', '=', party.id)]))

    @with_transaction()
    def test_lifecycle_status_only_by_manager(self):
        "A salesperson cannot set a party's lifecycle status by hand"
        pool = Pool()
        Party = pool.get('party.party')
        crm = CrmSetup()
        party = self._party("Umbrella")
        with crm.as_user(crm.alice):
            with self.assertRaises(AccessError):
                Party.write([Party(party.id)],
                    {'lifecycle_status': 'former'})
        with crm.as_user(crm.manager):
            Party.write([Party(party.id)], {'lifecycle_status': 'former'})
        self.assertEqual(Party(party.id).lifecycle_status, 'former')

    @with_transaction()
    def test_lead_access_rules(self):
        "Salespeople see and change only their own and their team's leads"
        pool = Pool()
        Lead = pool.get('crm.lead')
        crm = CrmSetup()
        with crm.company_context():
            north = self._lead(crm, name="North deal",
                team=crm.north.id, owner=crm.bob.id)
            south = self._lead(crm, name="South deal",
                team=crm.south.id, owner=crm.carol.id)
            own = self._lead(crm, name="Alice's own",
                team=None, owner=crm.alice.id)

        with crm.as_user(crm.alice):
            self.assertEqual(
                {l.name for l in Lead.search([])},
                {"North deal", "Alice's own"})
            with self.assertRaises(AccessError):
                Lead.read([south.id], ['name'])
            with self.assertRaises(AccessError):
                Lead.write([Lead(south.id)], {'name': "Hijacked"})
            Lead.write([Lead(north.id)], {'name': "North deal (updated)"})
        with crm.as_user(crm.carol):
            self.assertEqual(
                {l.name for l in Lead.search([])}, {"South deal"})
            with self.assertRaises(AccessError):
                Lead.write([Lead(own.id)], {'name': "Hijacked"})
        with crm.as_user(crm.manager):
            self.assertEqual(Lead.search_count([]), 3)
        self.assertEqual(Lead(south.id).name, "South deal")

    @with_transaction()
    def test_lead_children_follow_lead_access(self):
        "Lines and history of another team's lead stay hidden"
        pool = Pool()
        History = pool.get('crm.lead.history')
        Line = pool.get('crm.lead.line')
        crm = CrmSetup()
        with crm.company_context():
            south = self._lead(crm, team=crm.south.id, owner=crm.carol.id)
            north = self._lead(crm, team=crm.north.id, owner=crm.bob.id)
            Line.create([{
                        'lead': l.id, 'description': "Setup",
                        'quantity': 1, 'unit_price': Decimal(10)}
                    for l in [south, north]])
        with crm.as_user(crm.alice):
            self.assertEqual(
                {h.lead.id for h in History.search([])}, {north.id})
            self.assertEqual(
                {l.lead.id for l in Line.search([])}, {north.id})

    @with_transaction()
    def test_configuration_access(self):
        "Only CRM managers change stages, teams and lost reasons"
        pool = Pool()
        Stage = pool.get('crm.stage')
        Team = pool.get('crm.team')
        Reason = pool.get('crm.lost_reason')
        crm = CrmSetup()
        with crm.as_user(crm.alice):
            self.assertTrue(Stage.search([]))
            with self.assertRaises(AccessError):
                Stage.create([{'name': "Demo", 'sequence': 25}])
            with self.assertRaises(AccessError):
                Team.write([Team(crm.north.id)], {'round_robin': True})
            with self.assertRaises(AccessError):
                Reason.create([{'name': "Timing"}])
        with crm.as_user(crm.manager):
            Stage.create([{'name': "Demo", 'sequence': 25}])
            Team.write([Team(crm.north.id)], {'round_robin': True})
            Reason.create([{'name': "Timing"}])

    @with_transaction()
    def test_party_phone_e164(self):
        "Party phone numbers are compared in E.164 form"
        pool = Pool()
        Party = pool.get('party.party')
        party = self._party("Jane", phone="+44 (0)20 7946 0018")
        mechanism, = party.contact_mechanisms
        self.assertEqual(mechanism.value_compact, '+442079460018')
        self.assertEqual(Party.find_by_contact(phone='+442079460018'), party)

    @with_transaction()
    def test_team_change_updates_access(self):
        "Joining a team gives access to its leads at once"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Team = pool.get('crm.team')
        crm = CrmSetup()
        with crm.company_context():
            self._lead(crm, name="South deal",
                team=crm.south.id, owner=crm.carol.id)
        with crm.as_user(crm.alice):
            self.assertEqual(Lead.search_count([]), 0)
        Team.write([crm.south], {'members': [('add', [crm.alice.id])]})
        with crm.as_user(crm.alice):
            self.assertEqual(Lead.search_count([]), 1)

    @with_transaction()
    def test_merge_parties_keeps_crm_records(self):
        "Merging duplicate parties moves their leads and activities"
        pool = Pool()
        Activity = pool.get('crm.activity')
        Lead = pool.get('crm.lead')
        Mechanism = pool.get('party.contact_mechanism')
        Replace = pool.get('party.replace', type='wizard')
        crm = CrmSetup()
        kept = self._party("Acme Ltd", email="info@acme.example")
        duplicate = self._party("Acme Ltd", phone="+44 20 7946 0000")
        with crm.company_context():
            self._lead(crm, party=duplicate.id)
            self._lead(crm, party=kept.id)
            Activity.create([{
                        'subject': "Call", 'origin': str(duplicate),
                        'user': crm.alice.id,
                        'start': dt.datetime.now(),
                        }])
        session_id, _, _ = Replace.create()
        replace = Replace(session_id)
        replace.ask.source = duplicate
        replace.ask.destination = kept
        replace.transition_replace()
        self.assertEqual(Lead.search_count([('party', '=', kept.id)]), 2)
        self.assertEqual(
            Activity.search_count([('party', '=', kept.id)]), 1)
        self.assertEqual(
            Activity.search_count([('origin', '=', str(kept))]), 1)
        # Tryton keeps the duplicate's mechanisms, deactivated, on the kept
        # party
        with inactive_records():
            self.assertEqual(
                Mechanism.search_count([('party', '=', kept.id)]), 2)

    @with_transaction()
    def test_erase_party_erases_lead_contact_data(self):
        "Erasing a party erases the personal data kept on its leads"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Party = pool.get('party.party')
        Erase = pool.get('party.erase', type='wizard')
        crm = CrmSetup()
        party = self._party("Jane Doe")
        with crm.company_context():
            lead = self._lead(crm, party=party.id, contact_name="Jane Doe",
                email="jane@example.com")
        Party.write([party], {'active': False})
        session_id, _, _ = Erase.create()
        erase = Erase(session_id)
        erase.ask.party = party
        erase.transition_erase()
        lead = Lead(lead.id)
        self.assertIsNone(lead.contact_name)
        self.assertIsNone(lead.email)

    @with_transaction()
    def test_quotation_report(self):
        "An opportunity with lines prints as a quotation"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Line = pool.get('crm.lead.line')
        Quotation = pool.get('crm.lead.quotation', type='report')
        crm = CrmSetup()
        party = self._party("Wayne Enterprises")
        with crm.company_context():
            lead = self._lead(crm, party=party.id, type='opportunity')
            Line.create([{
                        'lead': lead.id, 'description': "Consulting day",
                        'quantity': 3, 'unit_price': Decimal('800'),
                        }])
            oext, content, _, name = Quotation.execute([lead.id], {})
        self.assertEqual(oext, 'odt')
        self.assertIn("Quotation", name)
        self.assertTrue(content)
        # The first print dates the quotation; printing again keeps it
        quoted = Lead(lead.id).quotation_date
        self.assertTrue(quoted)
        with crm.company_context():
            Quotation.execute([lead.id], {})
        self.assertEqual(Lead(lead.id).quotation_date, quoted)
        self.assertIsNone(Lead.copy([Lead(lead.id)])[0].quotation_date)

    @with_transaction()
    def test_board_url_action(self):
        "The board menu opens the page of the current database"
        pool = Pool()
        Action = pool.get('ir.action')
        ModelData = pool.get('ir.model.data')
        action_id = ModelData.get_id('crm_core', 'url_pipeline_board')
        values, = Action.get_action_values(
            'ir.action.url', [Action.get_action_id(action_id)])
        database = quote(Transaction().database.name, safe='')
        self.assertEqual(values['url'], f'/{database}/crm/board')


del ModuleTestCase
