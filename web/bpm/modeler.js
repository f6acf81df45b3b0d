// BPMN modeler of crm_bpm: a page served by trytond at
// /<db>/bpm/modeler?version=<id> that edits the BPMN file of a
// bpm.process.version with bpmn-js, through JSON-RPC with the sao session.
// Server API: bpm.process.version read and save_xml (addons/crm_bpm).

// The page plumbing shared with the card (texts, JSON-RPC, messages)
import {$, ServerError, createPage, idFromUrl} from './page.js';

// The modeler's own texts (page.js has the common ones).
// {name} placeholders are filled by t().
const STRINGS = {
    title: 'Process modeler',
    pageTitle: '{version} – Process modeler',
    actions: 'Modeler actions',
    save: 'Save',
    saving: 'Saving…',
    download: 'Download .bpmn',
    open: 'Open file…',
    close: 'Close',
    notDraft: 'This version is not a draft ({state}): saving creates a ' +
        'new draft version and leaves this one as it is.',
    saved: 'Saved.',
    savedAsNew: 'Saved as new draft version {number}.',
    opened: '"{name}" is open in the modeler: save to keep it.',
    noVersion: 'No process version is given: open the modeler from a ' +
        'version of a process in Tryton.',
    notFound: 'The process version {id} does not exist or you may not ' +
        'read it.',
    importFailed: 'This file cannot be shown: {message}',
    importWarnings: 'The file was opened with {count} warnings: {first}',
    exportFailed: 'The diagram cannot be written as BPMN: {message}',
    fileUnreadable: 'The file "{name}" cannot be read.',
    unsaved: 'The diagram has unsaved changes.',
    replaceUnsaved: 'The diagram has unsaved changes: replace it with ' +
        '"{name}" all the same?',
};

const {t, rpc, showMessage, handleError, translatePage, loadPreferences} =
    createPage(STRINGS);

// state:string is the state's label, translated by the server
const VERSION_FIELDS = ['rec_name', 'state', 'state:string', 'number'];

const state = {
    version: null,   // {id, rec_name, state, number}
    dirty: false,
    busy: false,
    modeler: null,
};

// --- Messages (showMessage is page.js's) ----------------------------------

function hideMessage() {
    $('message').hidden = true;
}

function showNotice(text) {
    $('notice').textContent = text;
    $('notice').hidden = false;
}

function hideNotice() {
    $('notice').hidden = true;
}

// --- Version and page state -----------------------------------------------

function setVersion(version) {
    state.version = version;
    $('title').textContent = version.rec_name;
    document.title = t('pageTitle', {version: version.rec_name});
    const label = version['state:string'] || version.state;
    const badge = $('state');
    badge.textContent = label;
    badge.dataset.state = version.state;
    badge.hidden = false;
    // A saved active or retired version is never changed in place
    const hint = $('hint');
    hint.hidden = version.state === 'draft';
    hint.textContent = t('notDraft', {state: label});
    const url = new URL(window.location.href);
    if (url.searchParams.get('version') !== String(version.id)) {
        url.searchParams.set('version', String(version.id));
        window.history.replaceState(null, '', url);
    }
}

function setDirty(dirty) {
    state.dirty = dirty;
    document.body.classList.toggle('dirty', dirty);
}

function setEnabled(enabled) {
    for (const id of ['save', 'download', 'open-file']) {
        $(id).disabled = !enabled;
    }
    $('open-label').classList.toggle('disabled', !enabled);
}

async function readVersion(id, fields = VERSION_FIELDS) {
    const records = await rpc(
        'model.bpm.process.version.read', [id], fields);
    if (!records.length) {
        throw new ServerError(t('notFound', {id}));
    }
    return records[0];
}

// --- Diagram --------------------------------------------------------------

// Show xml in the canvas; the returned warnings name what bpmn-js skipped
async function showXml(xml) {
    try {
        const {warnings} = await state.modeler.importXML(xml);
        state.modeler.get('canvas').zoom('fit-viewport', 'auto');
        return warnings || [];
    } catch (error) {
        throw new ServerError(t('importFailed', {message: error.message}));
    }
}

async function currentXml() {
    try {
        const {xml} = await state.modeler.saveXML({format: true});
        return xml;
    } catch (error) {
        throw new ServerError(t('exportFailed', {message: error.message}));
    }
}

function reportWarnings(warnings) {
    if (warnings.length) {
        showNotice(t('importWarnings', {
            count: warnings.length, first: warnings[0].message}));
    }
}

// --- Actions --------------------------------------------------------------

async function save() {
    if (state.busy || !state.version) {
        return;
    }
    state.busy = true;
    $('save').disabled = true;
    $('save').textContent = t('saving');
    hideMessage();
    hideNotice();
    try {
        const xml = await currentXml();
        const previous = state.version.id;
        const id = await rpc(
            'model.bpm.process.version.save_xml', [previous], xml);
        const version = await readVersion(id);
        setVersion(version);
        setDirty(false);
        showNotice(id === previous ?
            t('saved') : t('savedAsNew', {number: version.number}));
    } catch (error) {
        // The server names the element at fault: the diagram stays as it is
        handleError(error);
    } finally {
        state.busy = false;
        $('save').disabled = false;
        $('save').textContent = t('save');
    }
}

function fileName() {
    const name = (state.version?.rec_name || 'process')
        .replace(/[^\p{L}\p{N}._-]+/gu, '_').replace(/^_+|_+$/g, '');
    return (name || 'process') + '.bpmn';
}

async function download() {
    try {
        const xml = await currentXml();
        const url = URL.createObjectURL(
            new Blob([xml], {type: 'application/xml'}));
        const link = document.createElement('a');
        link.href = url;
        link.download = fileName();
        document.body.append(link);
        link.click();
        link.remove();
        // Once the browser has taken the download
        window.setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (error) {
        handleError(error);
    }
}

// A file drawn elsewhere goes into the canvas as it is; it replaces the
// version's diagram only when saved.
async function openXml(xml, name) {
    hideMessage();
    hideNotice();
    const warnings = await showXml(xml);
    setDirty(true);
    showNotice(t('opened', {name}));
    reportWarnings(warnings);
}

async function openFile(event) {
    const input = event.target;
    const file = input.files[0];
    // The same file may be chosen again later
    input.value = '';
    if (!file) {
        return;
    }
    // An import cannot be undone: the changes would be lost
    if (state.dirty
            && !window.confirm(t('replaceUnsaved', {name: file.name}))) {
        return;
    }
    let xml;
    try {
        xml = await file.text();
    } catch (error) {
        showMessage(t('fileUnreadable', {name: file.name}));
        return;
    }
    try {
        await openXml(xml, file.name);
    } catch (error) {
        handleError(error);
    }
}

function bindActions() {
    $('save').addEventListener('click', save);
    $('download').addEventListener('click', download);
    $('open-file').addEventListener('change', openFile);
    $('message-close').addEventListener('click', hideMessage);
    // Ctrl+S (Cmd+S) saves instead of saving the HTML page; bpmn-js's own
    // shortcuts (undo, redo, delete...) work when the canvas has the focus.
    document.addEventListener('keydown', event => {
        if ((event.ctrlKey || event.metaKey) && !event.altKey
                && event.key.toLowerCase() === 's') {
            event.preventDefault();
            if (!$('save').disabled) {
                save();
            }
        }
    });
    window.addEventListener('beforeunload', event => {
        if (state.dirty) {
            event.preventDefault();
            // Older browsers need a returnValue; none shows its text
            event.returnValue = t('unsaved');
        }
    });
}

// --- Start ----------------------------------------------------------------

async function start() {
    translatePage();
    bindActions();
    state.modeler = new window.BpmnJS({container: $('canvas')});
    state.modeler.on('commandStack.changed', () => setDirty(true));
    // For the browser tests and the curious: the modeler and the import
    window.crmBpm = {modeler: state.modeler, openXml, save};
    const id = idFromUrl('version');
    try {
        if (id === null) {
            throw new ServerError(t('noVersion'));
        }
        await loadPreferences();
        const version = await readVersion(id, [...VERSION_FIELDS, 'xml']);
        setVersion(version);
        reportWarnings(await showXml(version.xml));
        setDirty(false);
        setEnabled(true);
    } catch (error) {
        handleError(error);
    } finally {
        $('canvas').setAttribute('aria-busy', 'false');
    }
}

start();
