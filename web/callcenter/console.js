// Agent console of the call center: a page served by trytond at
// /<db>/callcenter/console that uses the sao session (cookie) to call the
// server through JSON-RPC. Server API: callcenter.agent.console_state and
// its actions in addons/crm_callcenter/console.py.
//
// The page asks the whole state in one call, every POLL_FAST ms while a
// call may ring or is on the line (available, ringing, on call, wrap-up),
// every POLL_SLOW ms when paused or offline; each action answers the new
// state.
import {AuthError, ServerError, rpcClient} from
    '../../crm/static/crm/rpc.js';

// Every text the user sees, in one place to be translated.
// {name} placeholders are filled by t().
const STRINGS = {
    title: 'Agent Console',
    ringingTitle: '☎ {caller} – Agent Console',
    agentName: '{name} (extension {extension})',
    myStatus: 'My status',
    goAvailable: 'Available',
    goPaused: 'Pause…',
    goOffline: 'Offline',
    pausedBecause: '{status}: {reason}',
    statusFollowsCall: 'Your status follows the call until it ends.',
    wrapUpFirst: 'Send the wrap-up first: the queue requires it.',
    backToTryton: 'Back to Tryton',
    loading: 'Loading…',
    currentCall: 'Current call',
    noCallAvailable: 'Waiting for the next call.',
    noCallPaused: 'You are paused: no call is routed to you.',
    noCallOffline: 'You are offline: choose Available to take calls.',
    noCallWrapUp: 'Wrap-up time.',
    noAgent: 'You are not an agent of the call center: ask a supervisor ' +
        'to create your agent.',
    number: 'Number',
    queue: 'Queue',
    noQueue: 'Direct call',
    unknownNumber: 'Unknown number',
    disposition: 'Disposition',
    ringingFor: 'ringing for {time}',
    talkingFor: '{time}',
    talked: 'talked {time}',
    newLead: 'New lead',
    newTicket: 'New ticket',
    leadCreated: 'Lead created: {link}',
    ticketCreated: 'Ticket created: {link}',
    openInTryton: 'open it in Tryton',
    caller: 'Caller',
    phone: 'Phone',
    qualityScore: 'Data quality',
    qualityValue: '{score} / 100',
    owner: 'Owner',
    noOwner: 'Nobody',
    openLeads: 'Open opportunities and leads',
    openTickets: 'Open tickets',
    lastActivities: 'Last activities',
    noLeads: 'No open opportunity or lead.',
    noTickets: 'No open ticket.',
    noActivities: 'No activity yet.',
    notReadable: 'You may not see these.',
    leadLine: '{name} – {type}, {stage} ({probability} %)',
    ticketLine: '{number} {subject} – {stage}',
    activityLine: '{type}: {subject}',
    activityBy: '{date}, {user}',
    severalMatches: 'Several contacts have this number: who is calling?',
    choose: 'This one',
    chosen: 'Caller: {name}',
    unknownCaller: 'Nobody has this number yet.',
    createContact: 'Create contact',
    contactCreated: 'Contact created: {name}',
    wrapUp: 'Wrap-up',
    wrapUpOf: 'Call with {caller} ({time}).',
    wrapUpRequired: 'The queue requires the wrap-up before your next call.',
    notes: 'Notes',
    followUp: 'Follow-up call (optional)',
    wrapUpSubmit: 'Finish wrap-up',
    chooseDisposition: 'Choose…',
    wrappedUp: 'The call is wrapped up.',
    callbacks: 'Callbacks due',
    noCallbacks: 'No callback due today.',
    overdue: 'Overdue',
    callbackLine: '{subject}',
    pauseTitle: 'Pause',
    pauseReason: 'Reason',
    pauseReasons: ['Break', 'Lunch', 'Meeting', 'Training', 'Back office'],
    pauseConfirm: 'Pause',
    cancel: 'Cancel',
    close: 'Close',
    statusChanged: 'Your status: {status}',
    incoming: 'Incoming call from {caller}',
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

// The database is the first segment of /<db>/callcenter/console
const DB = decodeURIComponent(window.location.pathname.split('/')[1] || '');
const SAO_URL = '/#' + DB;
// While a call may ring or is on the line, the screen pop must show
// within a second (a poll starts every POLL_FAST ms, its answer takes a few
// dozen ms); paused or offline, less often.
const POLL_FAST = 800;
const POLL_SLOW = 3000;
const POLL_RETRY = 5000;
const FAST_STATUSES = new Set(['available', 'ringing', 'on_call', 'wrap_up']);
// The call-driven statuses: shown, not chosen
const ON_LINE = new Set(['ringing', 'on_call']);

const page = {
    context: {},
    language: document.documentElement.lang || 'en',
    data: null,
    offset: 0,          // server clock - client clock, in ms
    request: 0,
    acting: false,
    stopped: false,
    rendered: {},       // what each part shows, to redraw only changes
    wrapUpCall: null,   // the call the wrap-up form is for
    lastCall: null,
};

const $ = id => document.getElementById(id);

const rpc = rpcClient(DB, t, () => page.context);

// --- Formatting -----------------------------------------------------------

function locale() {
    return (page.language || 'en').replace('_', '-');
}

function formatDate(iso, withTime = true) {
    const options = withTime ?
        {dateStyle: 'medium', timeStyle: 'short'} : {dateStyle: 'medium'};
    return new Intl.DateTimeFormat(locale(), options).format(new Date(iso));
}

function formatTime(iso) {
    return new Intl.DateTimeFormat(locale(), {timeStyle: 'short'}).format(
        new Date(iso));
}

function formatDuration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = String(seconds % 60).padStart(2, '0');
    return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

function serverNow() {
    return Date.now() + page.offset;
}

function saoUrl(model, id) {
    return `${SAO_URL}/model/${model}/${id}`;
}

function link(model, id, text) {
    const a = document.createElement('a');
    a.href = saoUrl(model, id);
    a.target = '_blank';
    a.rel = 'noopener';
    a.textContent = text;
    return a;
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

// --- Messages -------------------------------------------------------------

function announce(text) {
    const status = $('announce');
    status.textContent = '';
    // A new text node so that screen readers read it again
    window.setTimeout(() => { status.textContent = text; }, 50);
}

function showError(message, detail = '') {
    $('alert-text').textContent = detail ? `${message} ${detail}` : message;
    $('alert').hidden = false;
}

function hideError() {
    $('alert').hidden = true;
}

// A notice of the last action, with an optional link node
function showNotice(text, node = null) {
    const notice = $('notice');
    notice.replaceChildren();
    if (node) {
        const [before, after] = text.split('{link}');
        notice.append(before, node, after ?? '');
    } else {
        notice.textContent = text;
    }
    notice.hidden = false;
}

function showLogin() {
    page.stopped = true;
    pollTimer.clear();
    $('login-text').textContent = t('loginNeeded');
    $('login-link').textContent = t('login');
    $('login-link').href = SAO_URL;
    $('login').hidden = false;
    $('console').hidden = true;
    $('status-switch').hidden = true;
    hideError();
}

function handleError(error) {
    if (error instanceof AuthError) {
        showLogin();
    } else if (error instanceof ServerError) {
        showError(error.message, error.detail);
    } else {
        console.error(error);
        showError(t('unexpectedError', {message: error.message}));
    }
}

// --- Polling --------------------------------------------------------------

function pollDelay() {
    const status = page.data?.agent?.status;
    return FAST_STATUSES.has(status) ? POLL_FAST : POLL_SLOW;
}

// The agent works in sao while the console waits in another tab: Chrome
// runs the timers of a hidden tab once a minute after a while, not those
// of a worker. The poll's timer runs in a worker when the browser allows.
const pollTimer = (() => {
    try {
        const source = 'let timer = null; onmessage = event => {' +
            ' clearTimeout(timer);' +
            ' if (event.data !== null) {' +
            ' timer = setTimeout(() => postMessage(0), event.data); } };';
        const worker = new Worker(URL.createObjectURL(
            new Blob([source], {type: 'text/javascript'})));
        worker.onmessage = () => refresh();
        return {
            set: delay => worker.postMessage(delay),
            clear: () => worker.postMessage(null),
        };
    } catch (error) {
        let timer = null;
        return {
            set: delay => { timer = window.setTimeout(refresh, delay); },
            clear: () => window.clearTimeout(timer),
        };
    }
})();

function schedule(delay) {
    pollTimer.clear();
    if (!page.stopped) {
        pollTimer.set(delay);
    }
}

async function refresh() {
    if (page.acting) {
        return schedule(pollDelay());
    }
    const request = ++page.request;
    const started = Date.now();
    try {
        const data = await rpc('model.callcenter.agent.console_state');
        if (request === page.request && !page.acting) {
            show(data);
        }
        // Counted from the start of this poll: one every delay
        schedule(Math.max(0, pollDelay() - (Date.now() - started)));
    } catch (error) {
        handleError(error);
        schedule(POLL_RETRY);
    }
}

// Run an action (an RPC answering the new state, or anything else with
// its own handling): no poll meanwhile, the state it answers shown
async function act(button, action) {
    if (page.acting) {
        return;
    }
    page.acting = true;
    ++page.request;
    pollTimer.clear();
    if (button) {
        button.disabled = true;
    }
    hideError();
    try {
        const data = await action();
        if (data && data.statuses) {
            show(data);
        }
        return data;
    } catch (error) {
        handleError(error);
        return null;
    } finally {
        page.acting = false;
        if (button) {
            button.disabled = false;
        }
        if (page.data?.agent) {
            renderStatus(page.data);
        }
        schedule(pollDelay());
    }
}

// --- Rendering ------------------------------------------------------------

// Redraw a part only when what it shows changed (keeps the focus, the
// scroll and what is being typed)
function changed(part, value) {
    const key = JSON.stringify(value);
    if (page.rendered[part] === key) {
        return false;
    }
    page.rendered[part] = key;
    return true;
}

function show(data) {
    const previous = page.data;
    page.data = data;
    page.offset = Date.parse(data.now) - Date.now();
    $('console').setAttribute('aria-busy', 'false');
    if (!data.agent) {
        $('status-switch').hidden = true;
        $('agent-name').textContent = '';
        $('call-panel').hidden = true;
        $('caller-panel').hidden = true;
        $('wrap-up-panel').hidden = true;
        if (changed('noAgent', true)) {
            showError(t('noAgent'));
        }
        renderCallbacks(data.callbacks);
        return;
    }
    $('call-panel').hidden = false;
    renderStatus(data);
    renderCall(data);
    renderCaller(data);
    renderWrapUp(data);
    renderCallbacks(data.callbacks);
    if (previous?.agent && previous.agent.status !== data.agent.status) {
        announce(t('statusChanged', {
            status: data.statuses[data.agent.status]}));
    }
}

function callerName(data) {
    return data.caller?.name || data.call?.number || t('unknownNumber');
}

function renderStatus(data) {
    const agent = data.agent;
    $('agent-name').textContent = t('agentName', {
        name: agent.name, extension: agent.extension});
    $('status-switch').hidden = false;
    const badge = $('status-badge');
    const label = data.statuses[agent.status] ?? agent.status;
    badge.textContent = agent.status === 'paused' && agent.pause_reason ?
        t('pausedBecause', {status: label, reason: agent.pause_reason}) :
        label;
    badge.dataset.status = agent.status;
    const onLine = ON_LINE.has(agent.status);
    const blocked = Boolean(data.wrap_up?.required);
    for (const button of document.querySelectorAll('.status-choice')) {
        const choice = button.dataset.choose;
        button.setAttribute('aria-pressed',
            String(choice === agent.status));
        button.disabled = page.acting || onLine ||
            (choice === 'available' && blocked) ||
            (choice === agent.status && choice !== 'paused');
        button.title = onLine ? t('statusFollowsCall') :
            (choice === 'available' && blocked ? t('wrapUpFirst') : '');
    }
    document.title = agent.status === 'ringing' ?
        t('ringingTitle', {caller: callerName(data)}) : t('title');
}

function renderCall(data) {
    const call = data.call;
    const agent = data.agent;
    if (!call) {
        page.lastCall = null;
        $('call').hidden = true;
        $('no-call').hidden = false;
        $('no-call').textContent = t({
            paused: 'noCallPaused',
            offline: 'noCallOffline',
            wrap_up: 'noCallWrapUp',
        }[agent.status] ?? 'noCallAvailable');
        return;
    }
    if (call.state === 'ringing' &&
            (page.lastCall?.id !== call.id ||
                page.lastCall?.state !== 'ringing')) {
        announce(t('incoming', {caller: callerName(data)}));
    }
    page.lastCall = call;
    $('no-call').hidden = true;
    $('call').hidden = false;
    const state = $('call-state');
    state.textContent = call.state_string;
    state.dataset.state = call.state;
    $('call-number').textContent = call.number || t('unknownNumber');
    $('call-queue').textContent = call.queue ?
        `${call.queue.name} (${call.queue.number})` : t('noQueue');
    $('call-disposition-row').hidden = !call.disposition;
    $('call-disposition').textContent = call.disposition ?? '';
    $('new-lead').hidden = !data.can.lead;
    $('new-ticket').hidden = !data.can.ticket;
    tick();
}

// The running timer of the call: ringing since it came, talking since it
// was answered, the talk time once over
function tick() {
    const call = page.data?.call;
    if (!call) {
        return;
    }
    let text;
    if (call.state === 'ringing') {
        text = t('ringingFor', {time: formatDuration(
            (serverNow() - Date.parse(call.created)) / 1000)});
    } else if (call.state === 'answered') {
        text = t('talkingFor', {time: formatDuration(
            (serverNow() - Date.parse(call.answered)) / 1000)});
    } else if (call.talk_seconds !== null) {
        text = t('talked', {time: formatDuration(call.talk_seconds)});
    } else {
        text = '';
    }
    $('call-timer').textContent = text;
}

function renderCaller(data) {
    const panel = $('caller-panel');
    if (!data.call) {
        panel.hidden = true;
        page.rendered.caller = null;
        return;
    }
    panel.hidden = false;
    if (!changed('caller', [data.call.id, data.caller, data.matches])) {
        return;
    }
    const caller = data.caller;
    $('caller-card').hidden = !caller;
    $('matches').hidden = Boolean(caller) || !data.matches.length;
    $('unknown').hidden = Boolean(caller) || data.matches.length > 0;
    if (caller) {
        renderCard(caller);
    } else {
        $('match-list').replaceChildren(...data.matches.map(match => {
            const item = element('li', 'match');
            const name = link('party.party', match.id, match.name);
            const status = element('span', 'badge',
                match.lifecycle_status_string);
            const choose = element('button', 'button', t('choose'));
            choose.type = 'button';
            choose.dataset.party = match.id;
            choose.setAttribute('aria-label',
                `${t('choose')}: ${match.name}`);
            choose.addEventListener('click', () => chooseParty(
                choose, data.call.id, match));
            item.append(name, ' ', status, ' ', choose);
            return item;
        }));
    }
}

function renderCard(caller) {
    const name = $('caller-name');
    name.textContent = caller.name;
    name.href = saoUrl('party.party', caller.id);
    $('caller-lifecycle').textContent = caller.lifecycle_status_string;
    $('caller-lifecycle').dataset.status = caller.lifecycle_status;
    $('caller-number').textContent = caller.number || t('unknownNumber');
    $('caller-quality').value = caller.quality_score ?? 0;
    $('caller-quality-text').textContent = caller.quality_score === null ?
        '' : t('qualityValue', {score: caller.quality_score});
    $('caller-owner').textContent = caller.owner ?? t('noOwner');

    fillList($('caller-leads'), caller.leads, 'noLeads', lead => link(
        'crm.lead', lead.id, t('leadLine', {
            name: lead.name, type: lead.type_string, stage: lead.stage,
            probability: lead.probability})));
    $('caller-tickets-section').hidden = caller.tickets === null;
    fillList($('caller-tickets'), caller.tickets, 'noTickets',
        ticket => link('helpdesk.ticket', ticket.id, t('ticketLine', {
            number: ticket.number ?? '', subject: ticket.subject,
            stage: ticket.stage})));
    fillList($('caller-activities'), caller.activities, 'noActivities',
        activity => {
            const item = document.createDocumentFragment();
            item.append(link('crm.activity', activity.id, t(
                'activityLine', {type: activity.type_string,
                    subject: activity.subject})));
            const when = element('span', 'list-meta', t('activityBy', {
                date: formatDate(activity.start), user: activity.user}));
            item.append(' ', when);
            if (activity.outcome) {
                item.append(element('span', 'list-note', activity.outcome));
            }
            return item;
        });
}

// items null: the user may not read them
function fillList(list, items, emptyKey, render) {
    if (items === null) {
        list.replaceChildren(element('li', 'empty', t('notReadable')));
    } else if (!items.length) {
        list.replaceChildren(element('li', 'empty', t(emptyKey)));
    } else {
        list.replaceChildren(...items.map(item => {
            const li = document.createElement('li');
            li.append(render(item));
            return li;
        }));
    }
}

function option(value, label) {
    const node = document.createElement('option');
    node.value = value;
    node.textContent = label;
    return node;
}

function renderWrapUp(data) {
    const wrapUp = data.wrap_up;
    const panel = $('wrap-up-panel');
    if (!wrapUp) {
        panel.hidden = true;
        page.wrapUpCall = null;
        return;
    }
    const call = data.call;
    $('wrap-up-hint').textContent = [
        t('wrapUpOf', {caller: callerName(data),
            time: formatTime(call.created)}),
        wrapUp.required ? t('wrapUpRequired') : '',
    ].filter(Boolean).join(' ');
    const select = $('disposition');
    if (page.wrapUpCall !== wrapUp.call) {
        // A new call to wrap up: an empty form
        page.wrapUpCall = wrapUp.call;
        $('wrap-up-form').reset();
        page.rendered.dispositions = null;
    }
    if (changed('dispositions', wrapUp.dispositions)) {
        const selected = select.value;
        select.replaceChildren(option('', t('chooseDisposition')),
            ...wrapUp.dispositions.map(d => option(String(d.id), d.name)));
        select.value = selected;
    }
    if (panel.hidden) {
        panel.hidden = false;
        if (!document.activeElement ||
                document.activeElement === document.body) {
            select.focus();
        }
    }
}

function renderCallbacks(callbacks) {
    if (!changed('callbacks', callbacks)) {
        return;
    }
    const list = $('callbacks');
    if (!callbacks.length) {
        list.replaceChildren(element('li', 'empty', t('noCallbacks')));
        return;
    }
    list.replaceChildren(...callbacks.map(callback => {
        const item = element('li', 'callback');
        const when = element('time', 'list-meta',
            formatDate(callback.start));
        when.dateTime = callback.start;
        if (callback.overdue) {
            item.classList.add('overdue');
            when.title = t('overdue');
        }
        item.append(when, ' ', link('crm.activity', callback.id,
            t('callbackLine', {subject: callback.subject})));
        if (callback.party) {
            item.append(' ', link('party.party', callback.party.id,
                callback.party.name));
        }
        return item;
    }));
}

// --- Actions --------------------------------------------------------------

function setStatus(button, status, reason = null) {
    return act(button, () => rpc(
        'model.callcenter.agent.set_my_status', status, reason));
}

function askPauseReason() {
    const dialog = $('pause-dialog');
    const form = $('pause-form');
    const input = $('pause-reason');
    input.value = '';
    return new Promise(resolve => {
        let answer = null;
        const submit = event => {
            event.preventDefault();
            if (!form.reportValidity()) {
                return;
            }
            answer = input.value.trim();
            dialog.close();
        };
        const cancel = () => dialog.close();
        form.addEventListener('submit', submit);
        $('pause-cancel').addEventListener('click', cancel);
        // Escape closes the dialog too
        dialog.addEventListener('close', () => {
            form.removeEventListener('submit', submit);
            $('pause-cancel').removeEventListener('click', cancel);
            resolve(answer || null);
        }, {once: true});
        dialog.showModal();
        input.focus();
    });
}

function chooseParty(button, callId, match) {
    return act(button, async () => {
        const data = await rpc(
            'model.callcenter.agent.choose_party', callId, match.id);
        announce(t('chosen', {name: match.name}));
        return data;
    });
}

// Create a lead or a ticket of the call and open it in sao, in a tab
// opened on the click (a tab opened after the answer would be blocked)
function createAndOpen(button, method, model, noticeKey) {
    const callId = page.data?.call?.id;
    if (!callId) {
        return;
    }
    const tab = window.open('', '_blank');
    return act(button, async () => {
        try {
            const result = await rpc(method, callId);
            const url = saoUrl(model, result.id);
            if (tab) {
                tab.opener = null;
                tab.location.href = url;
            }
            showNotice(t(noticeKey), link(model, result.id,
                t('openInTryton')));
        } catch (error) {
            tab?.close();
            throw error;
        }
    });
}

function bind() {
    for (const button of document.querySelectorAll('.status-choice')) {
        button.addEventListener('click', async () => {
            const status = button.dataset.choose;
            if (status === 'paused') {
                const reason = await askPauseReason();
                if (reason) {
                    await setStatus(button, status, reason);
                }
            } else {
                await setStatus(button, status);
            }
        });
    }
    $('create-contact').addEventListener('click', event => act(
        event.currentTarget, async () => {
            const data = await rpc('model.callcenter.agent.create_contact',
                page.data.call.id);
            if (data.caller) {
                showNotice(t('contactCreated', {name: data.caller.name}));
            }
            return data;
        }));
    $('new-lead').addEventListener('click', event => createAndOpen(
        event.currentTarget, 'model.callcenter.agent.create_lead',
        'crm.lead', 'leadCreated'));
    $('new-ticket').addEventListener('click', event => createAndOpen(
        event.currentTarget, 'model.callcenter.agent.create_ticket',
        'helpdesk.ticket', 'ticketCreated'));
    $('wrap-up-form').addEventListener('submit', async event => {
        event.preventDefault();
        const form = event.currentTarget;
        if (!form.reportValidity() || !page.wrapUpCall) {
            return;
        }
        const followUp = $('follow-up').value;
        const data = await act($('wrap-up-submit'), () => rpc(
            'model.callcenter.agent.wrap_up', page.wrapUpCall,
            Number($('disposition').value),
            $('notes').value.trim() || null,
            // datetime-local is the browser's local time: sent in UTC
            followUp ? new Date(followUp).toISOString() : null));
        if (data) {
            form.reset();
            showNotice(t('wrappedUp'));
            announce(t('wrappedUp'));
        }
    });
    $('alert-close').addEventListener('click', hideError);
    document.addEventListener('visibilitychange', () => {
        if (!document.hidden && !page.stopped) {
            schedule(0);
        }
    });
}

// --- Start ----------------------------------------------------------------

function translatePage() {
    for (const node of document.querySelectorAll('[data-text]')) {
        node.textContent = t(node.dataset.text);
    }
    for (const node of document.querySelectorAll('[data-label]')) {
        node.setAttribute('aria-label', t(node.dataset.label));
    }
    $('pause-reasons').replaceChildren(
        ...STRINGS.pauseReasons.map(reason => option(reason, reason)));
    $('tryton-link').href = SAO_URL;
    document.title = t('title');
}

async function start() {
    translatePage();
    bind();
    window.setInterval(tick, 500);
    try {
        // The same context as sao: language, company, timezone...
        const preferences = await rpc('model.res.user.get_preferences', true);
        page.context = Object.fromEntries(Object.entries(preferences).filter(
            ([key]) => key !== 'locale' && !key.endsWith('.rec_name')));
        if (preferences.language) {
            page.language = preferences.language;
            document.documentElement.lang = locale();
        }
    } catch (error) {
        handleError(error);
        if (error instanceof AuthError) {
            return;
        }
    }
    await refresh();
}

start();
