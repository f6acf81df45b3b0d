// Process card of crm_bpm: a page served by trytond at
// /<db>/bpm/card?instance=<id> that shows where a bpm.instance stands on
// the diagram of its version (bpmn-js NavigatedViewer), through JSON-RPC
// with the sao session. Server API: bpm.instance read (addons/crm_bpm).

// The page plumbing shared with the modeler (texts, JSON-RPC, messages)
import {$, ServerError, createPage} from './page.js';

// The card's own texts (page.js has the common ones).
// {name} placeholders are filled by t().
const STRINGS = {
    title: 'Process card',
    pageTitle: '{instance} – Process card',
    legend: 'Legend',
    legendActive: 'Waiting now',
    legendCompleted: 'Done',
    waitingAt: 'Waiting at: {names}.',
    waitingNowhere: 'Not waiting at any step.',
    noInstance: 'No process instance is given: open the card from a ' +
        'process instance in Tryton.',
    notFound: 'The process instance {id} does not exist or you may not ' +
        'read it.',
};

const {t, rpc, startViewer} = createPage(STRINGS);

// Class names the CSS (bpm.css) colours; tests look for them too
const ACTIVE = 'crm-bpm-active';
const COMPLETED = 'crm-bpm-completed';
// version.xml is read through the Many2One: one call for the whole card;
// state:string is the state's label, translated by the server
const INSTANCE_FIELDS = [
    'rec_name', 'state', 'state:string', 'active_elements',
    'completed_elements', 'version', 'version.xml'];

// --- Card -----------------------------------------------------------------

// "a b c" -> ['a', 'b', 'c'] (the server's format of element ids)
function ids(text) {
    return (text || '').split(/\s+/).filter(Boolean);
}

function showHeader(instance) {
    $('title').textContent = instance.rec_name;
    document.title = t('pageTitle', {instance: instance.rec_name});
    const badge = $('state');
    badge.textContent = instance['state:string'] || instance.state;
    badge.dataset.state = instance.state;
    badge.hidden = false;
}

// Colour the elements passed, then those waiting (a loop may have passed
// a step that waits again: it shows as waiting). Ids the diagram does not
// draw (a process without diagram for them) are left out.
function mark(viewer, instance) {
    const registry = viewer.get('elementRegistry');
    const canvas = viewer.get('canvas');
    const drawn = list => list.map(id => registry.get(id)).filter(Boolean);
    for (const element of drawn(ids(instance.completed_elements))) {
        canvas.addMarker(element, COMPLETED);
    }
    const active = drawn(ids(instance.active_elements));
    for (const element of active) {
        canvas.addMarker(element, ACTIVE);
    }
    // The diagram says nothing to a screen reader: say it in words
    const names = active.map(e => e.businessObject.name || e.id);
    $('summary').textContent = names.length ?
        t('waitingAt', {names: names.join(', ')}) : t('waitingNowhere');
    $('summary').hidden = false;
}

// --- Start ----------------------------------------------------------------

startViewer('instance', 'noInstance', async id => {
    const records = await rpc(
        'model.bpm.instance.read', [id], INSTANCE_FIELDS);
    if (!records.length) {
        throw new ServerError(t('notFound', {id}));
    }
    const instance = records[0];
    showHeader(instance);
    return {
        xml: instance['version.'].xml,
        draw: viewer => mark(viewer, instance),
    };
});
