// Wallboard of the call center's supervisors: a page served by trytond at
// /<db>/callcenter/wallboard that uses the sao session (cookie) to call
// the server through JSON-RPC every REFRESH ms. Server API:
// callcenter.queue.wallboard_data in addons/crm_callcenter/console.py.
import {AuthError, ServerError, rpcClient} from
    '../../crm/static/crm/rpc.js';

// Every text the user sees, in one place to be translated.
// {name} placeholders are filled by t().
const STRINGS = {
    title: 'Wallboard',
    backToTryton: 'Back to Tryton',
    loading: 'Loading…',
    queues: 'Queues',
    noQueues: 'There is no queue to show.',
    waiting: 'Waiting',
    longestWait: 'Longest wait',
    answered: 'Answered today',
    abandoned: 'Abandoned',
    serviceLevel: 'Service level',
    serviceTarget: 'target {target} % in {seconds} s',
    averageHandle: 'Average handle time',
    none: '–',
    percent: '{value} %',
    agents: 'Agents',
    agent: 'Agent',
    extension: 'Extension',
    status: 'Status',
    since: 'For',
    noAgents: 'No agent.',
    queueAgents: '{status}: {count}',
    updated: 'Updated {time}',
    stale: 'Not updated since {time}',
    loginNeeded: 'Your Tryton session has ended or you are not logged in. ' +
        'Log in, then reload this page.',
    login: 'Log in to Tryton',
    networkError: 'The server cannot be reached. Check your connection ' +
        'and try again.',
    serverError: 'The server answered with an error ({status}).',
    unexpectedError: 'Something went wrong on the server: {message}',
};

function t(key, values = {}) {
    const text = STRINGS[key] ?? key;
    return String(text).replace(
        /\{(\w+)\}/g, (match, name) => values[name] ?? match);
}

const DB = decodeURIComponent(window.location.pathname.split('/')[1] || '');
const SAO_URL = '/#' + DB;
const REFRESH = 2000;
const RETRY = 5000;
// The order of the statuses on the board
const STATUS_ORDER = [
    'available', 'ringing', 'on_call', 'wrap_up', 'paused', 'offline'];

const board = {
    context: {},
    language: document.documentElement.lang || 'en',
    data: null,
    offset: 0,
    updated: null,
    timer: null,
};

const $ = id => document.getElementById(id);
const rpc = rpcClient(DB, t, () => board.context);

function locale() {
    return (board.language || 'en').replace('_', '-');
}

function formatDuration(seconds) {
    if (seconds === null || seconds === undefined) {
        return t('none');
    }
    seconds = Math.max(0, Math.round(seconds));
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = String(seconds % 60).padStart(2, '0');
    return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

function formatClock(date, seconds = false) {
    return new Intl.DateTimeFormat(locale(), seconds ?
        {timeStyle: 'medium'} : {timeStyle: 'short'}).format(date);
}

function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
        node.className = className;
    }
    if (text !== undefined && text !== null) {
        node.textContent = text;
    }
    return node;
}

function showError(message) {
    $('alert-text').textContent = message;
    $('alert').hidden = false;
}

function handleError(error) {
    if (error instanceof AuthError) {
        window.clearTimeout(board.timer);
        board.timer = null;
        $('login-text').textContent = t('loginNeeded');
        $('login-link').textContent = t('login');
        $('login-link').href = SAO_URL;
        $('login').hidden = false;
        $('wallboard').hidden = true;
        return false;
    }
    showError(error instanceof ServerError ? error.text :
        t('unexpectedError', {message: error.message}));
    return true;
}

// --- Rendering ------------------------------------------------------------

function figure(key, value, label, state = '') {
    const box = element('div', `wb-figure wb-${key}`);
    box.dataset.figure = key;
    if (state) {
        box.dataset.state = state;
    }
    box.append(element('span', 'wb-value', value),
        element('span', 'wb-label', label));
    return box;
}

function renderQueue(queue, statuses) {
    const tile = element('article', 'wb-queue');
    tile.dataset.queue = queue.id;
    const heading = element('h2', 'wb-queue-name', queue.name);
    heading.append(' ', element('span', 'wb-queue-number', queue.number));
    tile.setAttribute('aria-label', queue.name);

    const level = queue.service_level;
    const levelState = level === null ? '' :
        (level >= queue.service_level_target ? 'good' : 'bad');
    const waitState = queue.longest_wait > queue.service_level_seconds ?
        'bad' : (queue.waiting ? 'warn' : '');
    const levelBox = figure('service-level', level === null ? t('none') :
        t('percent', {value: level.toLocaleString(locale())}),
        t('serviceLevel'), levelState);
    levelBox.append(element('span', 'wb-target', t('serviceTarget', {
        target: queue.service_level_target,
        seconds: queue.service_level_seconds})));
    const figures = element('div', 'wb-figures');
    figures.append(
        figure('waiting', String(queue.waiting), t('waiting'),
            queue.waiting ? 'warn' : ''),
        figure('longest-wait', queue.waiting ?
            formatDuration(queue.longest_wait) : t('none'),
            t('longestWait'), waitState),
        figure('answered', String(queue.answered), t('answered')),
        figure('abandoned', String(queue.abandoned), t('abandoned'),
            queue.abandoned ? 'warn' : ''),
        levelBox,
        figure('average-handle', formatDuration(queue.average_handle),
            t('averageHandle')));
    const agents = element('ul', 'wb-queue-agents');
    for (const status of STATUS_ORDER) {
        const count = queue.agents[status];
        if (count) {
            const item = element('li', 'status-badge', t('queueAgents', {
                status: statuses[status], count}));
            item.dataset.status = status;
            agents.append(item);
        }
    }
    tile.append(heading, figures, agents);
    return tile;
}

function render(data) {
    const queues = $('queues');
    queues.replaceChildren(...(data.queues.length ?
        data.queues.map(q => renderQueue(q, data.statuses)) :
        [element('p', 'empty', t('noQueues'))]));

    $('totals').replaceChildren(...STATUS_ORDER.map(status => {
        const item = element('li', 'wb-total');
        item.dataset.status = status;
        item.append(element('span', 'wb-value',
            String(data.totals[status] ?? 0)),
            element('span', 'wb-label', data.statuses[status]));
        return item;
    }));

    const names = new Map(data.queues.map(q => [q.id, q.name]));
    const now = Date.now() + board.offset;
    const order = new Map(STATUS_ORDER.map((s, i) => [s, i]));
    const agents = [...data.agents].sort((a, b) =>
        (order.get(a.status) - order.get(b.status)) ||
        a.extension.localeCompare(b.extension));
    $('agents').replaceChildren(...(agents.length ? agents.map(agent => {
        const row = element('tr');
        row.dataset.status = agent.status;
        const status = element('span', 'status-badge',
            data.statuses[agent.status] + (agent.pause_reason ?
                ` (${agent.pause_reason})` : ''));
        status.dataset.status = agent.status;
        const cell = element('td');
        cell.append(status);
        row.append(element('td', '', agent.name),
            element('td', '', agent.extension), cell,
            element('td', 'wb-since', agent.status_since ? formatDuration(
                (now - Date.parse(agent.status_since)) / 1000) : t('none')),
            element('td', '', agent.queues.map(
                id => names.get(id)).filter(Boolean).join(', ')));
        return row;
    }) : [(() => {
        const row = element('tr');
        const cell = element('td', 'empty', t('noAgents'));
        cell.colSpan = 5;
        row.append(cell);
        return row;
    })()]));
}

function renderClock() {
    const now = new Date(Date.now() + board.offset);
    $('clock').textContent = formatClock(now);
    if (board.updated) {
        const stale = Date.now() - board.updated > 3 * REFRESH + RETRY;
        const text = t(stale ? 'stale' : 'updated', {
            time: formatClock(new Date(board.updated), true)});
        $('updated').textContent = text;
        $('updated').dataset.stale = String(stale);
    }
}

// --- Refresh --------------------------------------------------------------

async function refresh() {
    let again = true;
    try {
        const data = await rpc('model.callcenter.queue.wallboard_data');
        board.data = data;
        board.offset = Date.parse(data.now) - Date.now();
        board.updated = Date.now();
        $('alert').hidden = true;
        render(data);
        $('wallboard').setAttribute('aria-busy', 'false');
    } catch (error) {
        again = handleError(error);
    }
    renderClock();
    if (again) {
        board.timer = window.setTimeout(
            refresh, $('alert').hidden ? REFRESH : RETRY);
    }
}

function translatePage() {
    for (const node of document.querySelectorAll('[data-text]')) {
        node.textContent = t(node.dataset.text);
    }
    for (const node of document.querySelectorAll('[data-label]')) {
        node.setAttribute('aria-label', t(node.dataset.label));
    }
    $('tryton-link').href = SAO_URL;
    document.title = t('title');
}

async function start() {
    translatePage();
    window.setInterval(renderClock, 1000);
    try {
        const preferences = await rpc('model.res.user.get_preferences', true);
        board.context = Object.fromEntries(Object.entries(preferences).filter(
            ([key]) => key !== 'locale' && !key.endsWith('.rec_name')));
        if (preferences.language) {
            board.language = preferences.language;
            document.documentElement.lang = locale();
        }
    } catch (error) {
        if (!handleError(error)) {
            return;
        }
    }
    await refresh();
}

start();
