"With crm_bpm: a process started for every member of a segment"
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_core.tests.tools import CrmDatabaseTestCase, CrmSetup, create_party

from . import WITH_EXTRAS

# Start, one task for a person, end
WELCOME = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<bpmn:definitions'
    ' xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"'
    ' id="d" targetNamespace="http://bpmn.io/schema/bpmn">'
    '<bpmn:process id="welcome" isExecutable="true">'
    '<bpmn:startEvent id="start"/>'
    '<bpmn:userTask id="call" name="Welcome call"/>'
    '<bpmn:endEvent id="end"/>'
    '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call"/>'
    '<bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end"/>'
    '</bpmn:process></bpmn:definitions>')


class BpmBridgeTestCase(CrmDatabaseTestCase):
    "Test processes started from segments"
    modules = WITH_EXTRAS

    @with_transaction()
    def test_start_process_for_every_member(self):
        "Start Process on a segment starts one instance per member party"
        pool = Pool()
        Process = pool.get('bpm.process')
        Version = pool.get('bpm.process.version')
        Instance = pool.get('bpm.instance')
        IrModel = pool.get('ir.model')
        Segment = pool.get('crm.segment')
        Start = pool.get('bpm.instance.start', type='wizard')
        crm = CrmSetup()
        with crm.company_context():
            anna = create_party("Anna", owner=crm.alice.id)
            bert = create_party("Bert", owner=crm.alice.id)
            create_party("Carl", owner=crm.carol.id)
            party_model, = IrModel.search([('name', '=', 'party.party')])
            process, = Process.create([{'name': "Welcome",
                        'model': party_model.id, 'start': 'manual'}])
            version, = Version.create([{'process': process.id,
                        'xml': WELCOME}])
            Version.activate([version])
            segment, = Segment.create([{'name': "Alice's",
                        'owners': [('add', [crm.alice.id])]}])
            with Transaction().set_context(active_model='crm.segment',
                    active_ids=[segment.id], active_id=segment.id):
                session_id, _, _ = Start.create()
                wizard = Start(session_id)
                self.assertEqual(
                    wizard.default_start(['model'])['model'], 'party.party')
                wizard.start.process = process
                wizard.do_start_process({})
            self.assertEqual(
                sorted(i.record for i in Instance.search([])),
                sorted([anna, bert]))
