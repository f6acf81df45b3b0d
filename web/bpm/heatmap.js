// Process heatmap of crm_bpm: a page served by trytond at
// /<db>/bpm/heatmap?version=<id> that colours the diagram of a
// bpm.process.version (bpmn-js NavigatedViewer) by the number of instances
// waiting at each element, with the figures of bpm.element.statistics on
// each element, through JSON-RPC with the sao session. Server API:
// bpm.process.version read, bpm.element.statistics search_read
// (addons/crm_bpm).

// The page plumbing shared with the modeler and the card (texts, JSON-RPC,
// messages)
import {$, ServerError, createPage} from './page.js';

// The heatmap's own texts (page.js has the common ones).
// {name} placeholders are filled by t().
const STRINGS = {
    title: 'Process heatmap',
    pageTitle: '{version} – Process heatmap',
    legend: 'Legend',
    legendFewer: 'Fewer waiting',
    legendMore: 'Most waiting',
    figuresTitle: 'Figures per element',
    overlayWaiting: '{count} waiting',
    overlayPassed: '{count} passed',
    overlayAverage: 'avg {hours} h',
    overlayP90: 'p90 {hours} h',
    overlayOverdue: '{count} overdue',
    figure: '{name}: {waiting} waiting, {passed} passed, average ' +
        '{average} hours, 90th percentile {p90} hours, {overdue} overdue.',
    noHours: '–',
    waitingMost: 'Most instances wait at: {names} ({max}).',
    waitingNone: 'No instance of this version waits now.',
    noFigures: 'No instance of this version has run yet.',
    noVersion: 'No process version is given: open the heatmap from a ' +
        'process version in Tryton.',
    notFound: 'The process version {id} does not exist or you may not ' +
        'read it.',
};

const {t, rpc, startViewer} = createPage(STRINGS);

// Class names the CSS (bpm.css) colours, from 1 (fewest waiting) to
// LEVELS (most); tests look for them too
const HEAT = 'crm-bpm-heat-';
const LEVELS = 4;
// state:string is the state's label, translated by the server
const VERSION_FIELDS = ['rec_name', 'state', 'state:string', 'xml'];
const STATISTICS_FIELDS = [
    'element', 'name', 'element_type', 'waiting', 'passed',
    'average_hours', 'p90_hours', 'overdue'];

// --- Heatmap --------------------------------------------------------------

// 0 for nobody waiting, else 1..LEVELS relative to the maximum
function heatLevel(waiting, max) {
    if (!waiting || !max) {
        return 0;
    }
    return Math.min(LEVELS, Math.max(1, Math.ceil(LEVELS * waiting / max)));
}

function formatCount(value) {
    return (value || 0).toLocaleString(document.documentElement.lang);
}

function formatHours(value) {
    if (value === null || value === undefined) {
        return t('noHours');
    }
    return Number(value).toLocaleString(document.documentElement.lang, {
        minimumFractionDigits: 1, maximumFractionDigits: 2});
}

function showHeader(version) {
    $('title').textContent = version.rec_name;
    document.title = t('pageTitle', {version: version.rec_name});
    const badge = $('state');
    badge.textContent = version['state:string'] || version.state;
    badge.dataset.state = version.state;
    badge.hidden = false;
}

// Where the figures of element go: above a task or sub-process (its
// boundary events sit on its lower edge), under a smaller element (event,
// gateway) and its label. The CSS lifts or centres the box (side).
function placement(element) {
    if (element.waypoints || element.width >= 80) {
        return {side: 'above', position: {top: -6, left: 0}};
    }
    let bottom = element.height;
    if (element.label) {
        bottom = Math.max(
            bottom, element.label.y + element.label.height - element.y);
    }
    return {
        side: 'below', position: {top: bottom + 4, left: element.width / 2}};
}

// The figures of row as the HTML of its overlay: hidden from screen
// readers, which read the same in the list under the diagram
function overlayOf(row, level, side) {
    const box = document.createElement('div');
    box.className = `crm-bpm-heat-overlay crm-bpm-heat-overlay-${level} ` +
        `crm-bpm-heat-overlay-${side}`;
    box.setAttribute('aria-hidden', 'true');
    const lines = [
        ['waiting', t('overlayWaiting', {count: formatCount(row.waiting)})],
        ['passed', t('overlayPassed', {count: formatCount(row.passed)})],
        ['average', t('overlayAverage', {
            hours: formatHours(row.average_hours)})],
        ['p90', t('overlayP90', {hours: formatHours(row.p90_hours)})],
        ['overdue', t('overlayOverdue', {count: formatCount(row.overdue)})],
    ];
    for (const [kind, text] of lines) {
        const line = document.createElement('span');
        line.className = `crm-bpm-heat-${kind}`;
        if (kind === 'overdue' && row.overdue) {
            line.classList.add('crm-bpm-heat-late');
        }
        line.textContent = text;
        box.appendChild(line);
    }
    return box;
}

function listItem(row, name) {
    const item = document.createElement('li');
    item.dataset.element = row.element;
    item.textContent = t('figure', {
        name,
        waiting: formatCount(row.waiting),
        passed: formatCount(row.passed),
        average: formatHours(row.average_hours),
        p90: formatHours(row.p90_hours),
        overdue: formatCount(row.overdue),
    });
    return item;
}

// Colour each element drawn by its waiting instances, put its figures on
// it and in the list. Rows of elements the diagram does not draw are only
// in the list.
function paint(viewer, rows) {
    const registry = viewer.get('elementRegistry');
    const canvas = viewer.get('canvas');
    const overlays = viewer.get('overlays');
    const max = Math.max(0, ...rows.map(r => r.waiting || 0));
    const list = $('figures');
    list.replaceChildren();
    for (const row of rows) {
        const element = registry.get(row.element);
        const level = heatLevel(row.waiting, max);
        const name = (element && element.businessObject.name) ||
            row.name || row.element;
        if (element) {
            if (level) {
                canvas.addMarker(element, HEAT + level);
            }
            const {side, position} = placement(element);
            overlays.add(element, 'crm-bpm-heat', {
                position,
                // Never smaller than the page's text
                scale: {min: 1},
                html: overlayOf(row, level, side),
            });
        }
        list.appendChild(listItem(row, name));
    }
    $('figures-section').hidden = false;
    const summary = $('summary');
    if (!rows.length) {
        summary.textContent = t('noFigures');
    } else if (!max) {
        summary.textContent = t('waitingNone');
    } else {
        const names = rows.filter(r => r.waiting === max).map(r => {
            const element = registry.get(r.element);
            return (element && element.businessObject.name) ||
                r.name || r.element;
        });
        summary.textContent = t('waitingMost', {
            names: names.join(', '), max: formatCount(max)});
    }
    summary.hidden = false;
}

// --- Start ----------------------------------------------------------------

startViewer('version', 'noVersion', async id => {
    const [versions, rows] = await Promise.all([
        rpc('model.bpm.process.version.read', [id], VERSION_FIELDS),
        rpc('model.bpm.element.statistics.search_read',
            [['version', '=', id]], 0, null, null, STATISTICS_FIELDS),
    ]);
    if (!versions.length) {
        throw new ServerError(t('notFound', {id}));
    }
    const version = versions[0];
    showHeader(version);
    return {xml: version.xml, draw: viewer => paint(viewer, rows)};
});
