"""The pages of crm_bpm in Chromium, logged in to sao: the BPMN modeler
(web/bpm/modeler.html), the process card (web/bpm/card.html) and the
heatmap of a version (web/bpm/heatmap.html).

Fixtures from conftest.py: crm_server (demo data), page, login().
The pages use sao's session cookie: each test logs in to sao as manager
(whom the demo data put in crm_bpm's group Process Manager), then opens
the page in the same browser context, and talks JSON-RPC from the page as
the pages do.
"""
import re
import uuid

import pytest
from playwright.sync_api import expect

from conftest import DEMO_PASSWORD, login, rpc

MANAGER = 'manager'
TASK_NAME = "Call the customer"

# start -> user task "Call the customer" -> end, with its diagram
CALL_BPMN = '''<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
    xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
    xmlns:di="http://www.omg.org/spec/DD/20100524/DI"
    id="call_definitions" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="call_process" name="Call back" isExecutable="true">
    <bpmn:startEvent id="start" name="New lead">
      <bpmn:outgoing>to_call</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:userTask id="call" name="Call the customer">
      <bpmn:incoming>to_call</bpmn:incoming>
      <bpmn:outgoing>to_end</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end" name="Done">
      <bpmn:incoming>to_end</bpmn:incoming>
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="to_call" sourceRef="start" targetRef="call"/>
    <bpmn:sequenceFlow id="to_end" sourceRef="call" targetRef="end"/>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="call_diagram">
    <bpmndi:BPMNPlane id="call_plane" bpmnElement="call_process">
      <bpmndi:BPMNShape id="start_di" bpmnElement="start">
        <dc:Bounds x="152" y="142" width="36" height="36"/>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="call_di" bpmnElement="call">
        <dc:Bounds x="250" y="120" width="100" height="80"/>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="end_di" bpmnElement="end">
        <dc:Bounds x="412" y="142" width="36" height="36"/>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="to_call_di" bpmnElement="to_call">
        <di:waypoint x="188" y="160"/>
        <di:waypoint x="250" y="160"/>
      </bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="to_end_di" bpmnElement="to_end">
        <di:waypoint x="350" y="160"/>
        <di:waypoint x="412" y="160"/>
      </bpmndi:BPMNEdge>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
'''

# Drawn elsewhere (other ids, a SpiffWorkflow extension): a service task
# calling an operation the CRM does not have, which the server refuses
BROKEN_BPMN = '''<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
    xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
    xmlns:di="http://www.omg.org/spec/DD/20100524/DI"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
    id="tell_definitions" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="tell_process" isExecutable="true">
    <bpmn:startEvent id="tell_start">
      <bpmn:outgoing>to_tell</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:serviceTask id="tell_team" name="Tell the team">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="crm/no_such_operation">
          <spiffworkflow:parameters>
            <spiffworkflow:parameter id="message" type="str"
                value="'Hello'"/>
          </spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
      <bpmn:incoming>to_tell</bpmn:incoming>
      <bpmn:outgoing>to_done</bpmn:outgoing>
    </bpmn:serviceTask>
    <bpmn:endEvent id="tell_end">
      <bpmn:incoming>to_done</bpmn:incoming>
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="to_tell" sourceRef="tell_start" targetRef="tell_team"/>
    <bpmn:sequenceFlow id="to_done" sourceRef="tell_team" targetRef="tell_end"/>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="tell_diagram">
    <bpmndi:BPMNPlane id="tell_plane" bpmnElement="tell_process">
      <bpmndi:BPMNShape id="tell_start_di" bpmnElement="tell_start">
        <dc:Bounds x="152" y="82" width="36" height="36"/>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="tell_team_di" bpmnElement="tell_team">
        <dc:Bounds x="240" y="60" width="100" height="80"/>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="tell_end_di" bpmnElement="tell_end">
        <dc:Bounds x="392" y="82" width="36" height="36"/>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="to_tell_di" bpmnElement="to_tell">
        <di:waypoint x="188" y="100"/>
        <di:waypoint x="240" y="100"/>
      </bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="to_done_di" bpmnElement="to_done">
        <di:waypoint x="340" y="100"/>
        <di:waypoint x="392" y="100"/>
      </bpmndi:BPMNEdge>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
'''


# --- JSON-RPC ----------------------------------------------------------------

def create_version(page, xml=CALL_BPMN):
    "A new process on crm.lead with a draft version of xml: its id"
    model_id, = rpc(page, 'model.ir.model.search', [['name', '=', 'crm.lead']])
    process_id, = rpc(page, 'model.bpm.process.create', [{
                'name': f"Browser call back {uuid.uuid4().hex[:8]}",
                'model': model_id,
                'start': 'manual',
                }])
    version_id, = rpc(page, 'model.bpm.process.version.create', [{
                'process': process_id,
                'xml': xml,
                }])
    return version_id


def read_version(page, version_id):
    version, = rpc(
        page, 'model.bpm.process.version.read', [version_id],
        ['xml', 'state', 'number', 'rec_name', 'process'])
    return version


# --- Modeler -----------------------------------------------------------------

def open_modeler(page, crm_server, version_id):
    page.goto(
        f"{crm_server.url}/{crm_server.db}/bpm/modeler?version={version_id}")
    expect(page.locator('#canvas')).to_have_attribute('aria-busy', 'false')
    expect(page.locator('#message')).to_be_hidden()
    expect(page.locator('#save')).to_be_enabled()


def rename_task(page, element_id, name):
    "Through bpmn-js's direct editing: double-click, type, Enter"
    shape = page.locator(f'.djs-shape[data-element-id="{element_id}"]')
    shape.dblclick()
    editor = page.locator('.djs-direct-editing-parent')
    expect(editor).to_be_visible()
    editor.press('ControlOrMeta+a')
    page.keyboard.type(name)
    page.keyboard.press('Enter')
    expect(editor).to_be_hidden()


def element_name(page, element_id):
    return page.evaluate("""id => window.crmBpm.modeler.get('elementRegistry')
        .get(id).businessObject.name""", element_id)


def test_modeler_edit_and_save(page, crm_server):
    "A task renamed in the modeler is saved in the draft version's XML"
    login(page, crm_server, MANAGER, DEMO_PASSWORD)
    version_id = create_version(page)
    version = read_version(page, version_id)
    open_modeler(page, crm_server, version_id)

    expect(page.locator('#title')).to_have_text(version['rec_name'])
    expect(page.locator('#state')).to_have_text('Draft')
    expect(page.locator('#hint')).to_be_hidden()
    expect(page.locator('.djs-shape[data-element-id="call"]')).to_be_visible()
    # bpmn-js's licence asks for its logo to stay visible
    expect(page.locator('.bjs-powered-by')).to_be_visible()

    new_name = "Call the customer back"
    rename_task(page, 'call', new_name)
    assert element_name(page, 'call') == new_name
    expect(page.locator('body')).to_have_class(re.compile(r'\bdirty\b'))

    page.locator('#save').click()
    expect(page.locator('#notice')).to_have_text('Saved.')
    expect(page.locator('body')).not_to_have_class(re.compile(r'\bdirty\b'))
    expect(page.locator('#message')).to_be_hidden()
    assert f'?version={version_id}' in page.url

    saved = read_version(page, version_id)
    assert saved['state'] == 'draft'
    assert f'name="{new_name}"' in saved['xml']
    assert f'name="{TASK_NAME}"' not in saved['xml']

    # Download .bpmn gives the same diagram
    with page.expect_download() as download:
        page.locator('#download').click()
    assert download.value.suggested_filename.endswith('.bpmn')
    with open(download.value.path(), encoding='utf-8') as file:
        assert f'name="{new_name}"' in file.read()


def test_modeler_refused_file(page, crm_server):
    """A file opened from disk that the server refuses: its message names
    the element, the version keeps its XML, and leaving the page warns"""
    login(page, crm_server, MANAGER, DEMO_PASSWORD)
    version_id = create_version(page)
    open_modeler(page, crm_server, version_id)

    page.locator('#open-file').set_input_files(files=[{
                'name': 'tell-the-team.bpmn',
                'mimeType': 'application/xml',
                'buffer': BROKEN_BPMN.encode('utf-8'),
                }])
    # Shown as it is, the version's diagram is replaced in the canvas
    expect(page.locator(
            '.djs-shape[data-element-id="tell_team"]')).to_be_visible()
    expect(page.locator('.djs-shape[data-element-id="call"]')).to_have_count(0)
    expect(page.locator('#notice')).to_contain_text('tell-the-team.bpmn')
    expect(page.locator('body')).to_have_class(re.compile(r'\bdirty\b'))

    page.locator('#save').click()
    message = page.locator('#message')
    expect(message).to_be_visible()
    expect(message).to_have_attribute('role', 'alert')
    expect(message).to_contain_text('tell_team')
    expect(message).to_contain_text('Tell the team')
    expect(message).to_contain_text('crm/no_such_operation')
    # Not a session problem: no invitation to log in again
    expect(page.locator('#message-link')).to_be_hidden()
    expect(page.locator('#notice')).to_be_hidden()
    # Still unsaved: the canvas keeps the file for the user to fix
    expect(page.locator('body')).to_have_class(re.compile(r'\bdirty\b'))
    assert 'tell_team' not in read_version(page, version_id)['xml']

    # Leaving with unsaved changes asks first; staying keeps the page
    dialogs = []

    def on_dialog(dialog):
        dialogs.append(dialog.type)
        dialog.dismiss()
    page.on('dialog', on_dialog)
    page.close(run_before_unload=True)
    page.wait_for_timeout(500)
    assert dialogs == ['beforeunload']
    assert not page.is_closed()


def test_modeler_active_version_saved_as_new_draft(
        page, crm_server):
    "Saving an active version makes a new draft version; the page follows"
    login(page, crm_server, MANAGER, DEMO_PASSWORD)
    version_id = create_version(page)
    rpc(page, 'model.bpm.process.version.activate', [version_id])
    active = read_version(page, version_id)
    assert active['state'] == 'active'
    open_modeler(page, crm_server, version_id)
    expect(page.locator('#state')).to_have_text('Active')
    expect(page.locator('#hint')).to_be_visible()

    rename_task(page, 'call', "Call the customer twice")
    # The keyboard shortcut of Save
    page.keyboard.press('ControlOrMeta+s')
    expect(page.locator('#notice')).to_have_text(
        'Saved as new draft version 2.')
    page.wait_for_url(re.compile(r'[?&]version=(?!%d\b)\d+' % version_id))
    new_id = int(re.search(r'version=(\d+)', page.url)[1])
    new = read_version(page, new_id)
    assert (new['state'], new['number']) == ('draft', 2)
    assert new['process'] == active['process']
    assert 'Call the customer twice' in new['xml']
    assert read_version(page, version_id)['xml'] == active['xml']
    expect(page.locator('#title')).to_have_text(new['rec_name'])
    expect(page.locator('#state')).to_have_text('Draft')
    expect(page.locator('#hint')).to_be_hidden()


# --- Card --------------------------------------------------------------------

def open_card(page, crm_server, instance_id):
    page.goto(
        f"{crm_server.url}/{crm_server.db}/bpm/card?instance={instance_id}")
    expect(page.locator('#canvas')).to_have_attribute('aria-busy', 'false')
    expect(page.locator('#message')).to_be_hidden()


def start_events(page):
    "Ids of the start events of the process (not of its sub-processes)"
    return page.evaluate("""() => window.crmBpm.viewer.get('elementRegistry')
        .filter(e => e.type === 'bpmn:StartEvent'
            && e.businessObject.$parent.$type === 'bpmn:Process')
        .map(e => e.id)""")


def has_marker(page, element_id, marker):
    shape = page.locator(f'.djs-element[data-element-id="{element_id}"]')
    expect(shape).to_have_class(re.compile(rf'(^|\s){marker}(\s|$)'))


def test_card_demo_lead_qualification(page, crm_server):
    "A running demo instance shows its waiting and its passed steps"
    login(page, crm_server, MANAGER, DEMO_PASSWORD)
    instances = rpc(
        page, 'model.bpm.instance.search_read', [
            ['state', '=', 'running'],
            ['process.name', '=', 'Lead qualification']],
        0, 1, None, ['rec_name', 'active_elements', 'completed_elements'])
    if not instances:
        pytest.skip(
            "the demo data have no running instance of the process "
            "\"Lead qualification\" yet: scripts/demo_data.py is to start "
            "them (test_card_started_from_lead covers the card meanwhile)")
    instance, = instances
    assert 'qualify' in instance['active_elements'].split()
    open_card(page, crm_server, instance['id'])

    expect(page.locator('#title')).to_have_text(instance['rec_name'])
    expect(page.locator('#state')).to_have_text('Running')
    has_marker(page, 'qualify', 'crm-bpm-active')
    starts = start_events(page)
    assert starts
    for start in starts:
        has_marker(page, start, 'crm-bpm-completed')
    expect(page.locator('.bjs-powered-by')).to_be_visible()


def test_card_started_from_lead(page, crm_server):
    """An instance started from a lead with the Start Process wizard (as a
    user does in sao) waits at its user task on the card"""
    login(page, crm_server, MANAGER, DEMO_PASSWORD)
    version_id = create_version(page)
    rpc(page, 'model.bpm.process.version.activate', [version_id])
    process_id = read_version(page, version_id)['process']
    lead_id, = rpc(page, 'model.crm.lead.search', [], 0, 1)
    session_id, _, _ = rpc(page, 'wizard.bpm.instance.start.create')
    rpc(page, 'wizard.bpm.instance.start.execute', session_id,
        {'start': {'process': process_id, 'model': 'crm.lead'}},
        'start_process', context={
            'active_model': 'crm.lead', 'active_id': lead_id,
            'active_ids': [lead_id]})
    instance_ids = rpc(page, 'model.bpm.instance.search', [
            ['version', '=', version_id]])
    assert len(instance_ids) == 1
    instance, = rpc(
        page, 'model.bpm.instance.read', instance_ids,
        ['rec_name', 'state', 'active_elements', 'completed_elements'])
    assert instance['state'] == 'running'
    assert instance['active_elements'].split() == ['call']

    open_card(page, crm_server, instance['id'])
    expect(page.locator('#title')).to_have_text(instance['rec_name'])
    expect(page.locator('#state')).to_have_text('Running')
    has_marker(page, 'call', 'crm-bpm-active')
    assert start_events(page) == ['start']
    has_marker(page, 'start', 'crm-bpm-completed')
    for element_id in ['end', 'to_end']:
        shape = page.locator(f'.djs-element[data-element-id="{element_id}"]')
        expect(shape).not_to_have_class(re.compile('crm-bpm-'))
    expect(page.locator('#summary')).to_have_text(f'Waiting at: {TASK_NAME}.')


# --- Heatmap -----------------------------------------------------------------

def test_heatmap_demo_lead_qualification(page, crm_server):
    """The heatmap of the active version of the demo process colours the
    element where its running instances wait the most, with its figures"""
    login(page, crm_server, MANAGER, DEMO_PASSWORD)
    version, = rpc(
        page, 'model.bpm.process.version.search_read', [
            ['state', '=', 'active'],
            ['process.name', '=', 'Lead qualification']],
        0, None, None, ['rec_name'])
    rows = rpc(
        page, 'model.bpm.element.statistics.search_read', [
            ['version', '=', version['id']]],
        0, None, None, ['element', 'waiting', 'passed'])
    waiting = {r['element']: r['waiting'] for r in rows}
    assert waiting.get('qualify', 0) > 0
    assert waiting['qualify'] == max(waiting.values())

    page.goto(f"{crm_server.url}/{crm_server.db}/bpm/heatmap"
        f"?version={version['id']}")
    expect(page.locator('#canvas')).to_have_attribute('aria-busy', 'false')
    expect(page.locator('#message')).to_be_hidden()
    expect(page.locator('#title')).to_have_text(version['rec_name'])
    expect(page.locator('#state')).to_have_text('Active')

    has_marker(page, 'qualify', 'crm-bpm-heat-4')
    overlay = page.locator(
        '.djs-overlays[data-container-id="qualify"] .crm-bpm-heat-overlay')
    expect(overlay).to_be_visible()
    expect(overlay.locator('.crm-bpm-heat-waiting')).to_have_text(
        f"{waiting['qualify']} waiting")
    # Nobody waits at the start event: it keeps its colours
    for start in start_events(page):
        if not waiting.get(start):
            shape = page.locator(f'.djs-element[data-element-id="{start}"]')
            expect(shape).not_to_have_class(re.compile(r'crm-bpm-heat-\d'))
    # The same figures in words, for screen readers
    item = page.locator('#figures li[data-element="qualify"]')
    expect(item).to_contain_text(f"{waiting['qualify']} waiting")
    expect(page.locator('#figures li')).to_have_count(len(rows))
    expect(page.locator('#summary')).to_contain_text(
        f"({waiting['qualify']}).")
    expect(page.locator('.bjs-powered-by')).to_be_visible()


def test_pages_without_session(page, crm_server):
    "Without a sao session the pages say so and link to sao's login"
    for path in ['modeler?version=1', 'card?instance=1', 'heatmap?version=1']:
        page.goto(f"{crm_server.url}/{crm_server.db}/bpm/{path}")
        message = page.locator('#message')
        expect(message).to_contain_text('not logged in')
        link = page.locator('#message-link')
        expect(link).to_be_visible()
        expect(link).to_have_attribute('href', f'/#{crm_server.db}')
