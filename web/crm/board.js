// Pipeline board of the CRM: a page served by trytond at /<db>/crm/board
// that uses the sao session (cookie) to call the server through JSON-RPC.
// Server API: crm.lead.board in addons/crm_core/board.py.
import Sortable from '../lib/sortablejs/sortable.esm.js';
import {AuthError, ServerError, rpcClient} from './rpc.js';

// Every text the user sees, in one place to be translated later.
// {name} placeholders are filled by t().
const STRINGS = {
    title: 'Pipeline',
    pageTitle: 'Pipeline – {team}',
    team: 'Team',
    noTeam: 'No team',
    owner: 'Owner',
    allOwners: 'All owners',
    mine: 'My pipeline',
    search: 'Search',
    searchPlaceholder: 'Search title, customer, contact…',
    filters: 'Filters',
    backToTryton: 'Back to Tryton',
    loading: 'Loading…',
    loadingMore: 'Loading more…',
    shown: '{shown} of {count} shown',
    noCards: 'Nothing here',
    noTeams: 'There is no team to show.',
    count: '{count} opportunities',
    countOne: '1 opportunity',
    expected: 'Expected: {amount}',
    weighted: 'Weighted: {amount}',
    probability: '{probability}% probability',
    closedSince: 'Closed since {date}',
    stageList: '{stage}: opportunities',
    cardLabel: '{name}, {party}, {amount}',
    owner_: 'Owner: {owner}',
    noOwner: 'No owner',
    nextActivity: 'Next activity: {date}',
    overdue: 'Overdue: {date}',
    priority: ['Low priority', 'Normal priority', 'High priority',
        'Very high priority'],
    moveHint: 'Drag to another column, or press Shift+Arrow keys to move',
    moved: '{name} moved to {stage}',
    moveRefused: 'The move of "{name}" was refused: {message}',
    lostTitle: 'Mark as lost',
    lostLead: 'Why was "{name}" lost?',
    lostReason: 'Lost reason',
    lostNote: 'Note',
    lostConfirm: 'Mark as lost',
    cancel: 'Cancel',
    close: 'Close',
    chooseReason: 'Choose a reason…',
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

// The database is the first segment of /<db>/crm/board
const DB = decodeURIComponent(window.location.pathname.split('/')[1] || '');
const SAO_URL = '/#' + DB;
const SEARCH_DELAY = 300;
const NO_TEAM = 'none';

const state = {
    context: {},
    language: document.documentElement.lang || 'en',
    teams: [],
    board: null,
    filters: {team: null, owner: null, mine: false, search: ''},
    columns: new Map(),  // stage id -> column state
    request: 0,
    sortables: [],
};

const $ = id => document.getElementById(id);

// --- JSON-RPC -------------------------------------------------------------

const rpc = rpcClient(DB, t, () => state.context);

// --- Formatting -----------------------------------------------------------

function locale() {
    return (state.language || 'en').replace('_', '-');
}

function amountFormat(options = {}) {
    const currency = state.board?.currency;
    const digits = currency?.digits ?? 2;
    const base = {
        minimumFractionDigits: options.compact ? 0 : digits,
        maximumFractionDigits: options.compact ? 1 : digits,
    };
    if (options.compact) {
        base.notation = 'compact';
    }
    if (currency?.code) {
        try {
            return new Intl.NumberFormat(locale(), {
                ...base, style: 'currency', currency: currency.code});
        } catch (error) {
            // Not an ISO code: fall back on the symbol
        }
    }
    const number = new Intl.NumberFormat(locale(), base);
    return {
        format: value => (currency?.symbol ? currency.symbol + ' ' : '') +
            number.format(value),
    };
}

function formatAmount(value, compact = false) {
    return amountFormat({compact}).format(Number(value || 0));
}

// trytond sends naive UTC datetimes as ISO strings ending with Z
function formatDate(iso, withTime = false) {
    const date = new Date(iso);
    const options = withTime ?
        {dateStyle: 'medium', timeStyle: 'short'} : {dateStyle: 'medium'};
    return new Intl.DateTimeFormat(locale(), options).format(date);
}

function isToday(iso) {
    return new Date(iso).toDateString() === new Date().toDateString();
}

// --- Messages -------------------------------------------------------------

function announce(text) {
    const status = $('status');
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

function showLogin() {
    $('login-text').textContent = t('loginNeeded');
    $('login-link').textContent = t('login');
    $('login-link').href = SAO_URL;
    $('login').hidden = false;
    $('filters').hidden = true;
    hideError();
    $('board').replaceChildren();
    $('board').setAttribute('aria-busy', 'false');
    setFiltersDisabled(true);
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

// --- Filters and URL ------------------------------------------------------

function readUrl() {
    const params = new URLSearchParams(window.location.search);
    const filters = state.filters;
    if (params.has('team')) {
        filters.team = params.get('team');
    }
    filters.owner = params.get('owner') || null;
    filters.mine = params.get('mine') === '1';
    filters.search = params.get('q') || '';
}

function writeUrl() {
    const params = new URLSearchParams();
    const filters = state.filters;
    if (filters.team !== null) {
        params.set('team', filters.team);
    }
    if (filters.owner) {
        params.set('owner', filters.owner);
    }
    if (filters.mine) {
        params.set('mine', '1');
    }
    if (filters.search) {
        params.set('q', filters.search);
    }
    const query = params.toString();
    window.history.replaceState(
        null, '', window.location.pathname + (query ? '?' + query : ''));
}

function teamId() {
    const team = state.filters.team;
    return (team === null || team === NO_TEAM) ? null : Number(team);
}

function serverFilters() {
    const filters = state.filters;
    return {
        owner: filters.owner ? Number(filters.owner) : null,
        mine: filters.mine,
        search: filters.search,
    };
}

function setFiltersDisabled(disabled) {
    for (const id of ['team', 'owner', 'mine', 'search']) {
        $(id).disabled = disabled;
    }
    if (!disabled) {
        $('owner').disabled = state.filters.mine;
    }
}

function option(value, label, selected = false) {
    const element = document.createElement('option');
    element.value = value;
    element.textContent = label;
    element.selected = selected;
    return element;
}

function renderTeams() {
    const select = $('team');
    select.replaceChildren(...state.teams.map(team => {
        const value = team.id === null ? NO_TEAM : String(team.id);
        return option(
            value, team.name ?? t('noTeam'), value === state.filters.team);
    }));
}

function renderOwners() {
    const select = $('owner');
    const owners = state.board?.owners ?? [];
    const selected = state.filters.owner;
    const options = [option('', t('allOwners'), !selected)];
    for (const owner of owners) {
        options.push(option(
            String(owner.id), owner.name, String(owner.id) === selected));
    }
    if (selected && !owners.some(o => String(o.id) === selected)) {
        // Keep a filter from the URL on a user who left the team
        options.push(option(selected, '#' + selected, true));
    }
    select.replaceChildren(...options);
    $('mine').checked = state.filters.mine;
    $('owner').disabled = state.filters.mine;
}

function bindFilters() {
    $('team').addEventListener('change', event => {
        state.filters.team = event.target.value;
        state.filters.owner = null;
        loadBoard();
    });
    $('owner').addEventListener('change', event => {
        state.filters.owner = event.target.value || null;
        loadBoard();
    });
    $('mine').addEventListener('change', event => {
        state.filters.mine = event.target.checked;
        $('owner').disabled = state.filters.mine;
        loadBoard();
    });
    let timer = null;
    $('search').addEventListener('input', event => {
        window.clearTimeout(timer);
        timer = window.setTimeout(() => {
            const value = event.target.value.trim();
            if (value !== state.filters.search) {
                state.filters.search = value;
                loadBoard();
            }
        }, SEARCH_DELAY);
    });
    $('filters').addEventListener('submit', event => event.preventDefault());
    $('alert-close').addEventListener('click', hideError);
}

// --- Board ----------------------------------------------------------------

async function loadBoard() {
    const request = ++state.request;
    writeUrl();
    hideError();
    const board = $('board');
    board.setAttribute('aria-busy', 'true');
    try {
        const result = await rpc(
            'model.crm.lead.board.get_board', teamId(), serverFilters());
        if (request !== state.request) {
            return;  // A newer request is on its way
        }
        state.board = result;
        renderOwners();
        renderBoard();
        document.title = t('pageTitle', {
            team: result.team.name ?? t('noTeam')});
    } catch (error) {
        if (request === state.request) {
            handleError(error);
        }
    } finally {
        if (request === state.request) {
            board.setAttribute('aria-busy', 'false');
        }
    }
}

function renderBoard() {
    const board = $('board');
    const scroll = board.scrollLeft;
    for (const sortable of state.sortables) {
        sortable.destroy();
    }
    state.sortables = [];
    for (const column of state.columns.values()) {
        column.observer?.disconnect();
    }
    state.columns.clear();
    const columns = state.board.stages.map(renderColumn);
    board.replaceChildren(...columns);
    board.scrollLeft = scroll;
}

function renderColumn(stage) {
    const column = {
        stage: stage,
        offset: stage.cards.length,
        ids: new Set(stage.cards.map(c => c.id)),
        loading: false,
    };
    state.columns.set(stage.id, column);

    const section = document.createElement('section');
    section.className = `column column-${stage.kind}`;
    section.dataset.stage = stage.id;
    section.dataset.kind = stage.kind;
    const headingId = `stage-${stage.id}`;
    section.setAttribute('aria-labelledby', headingId);

    const header = document.createElement('header');
    header.className = 'column-header';
    const heading = document.createElement('h2');
    heading.id = headingId;
    heading.className = 'column-title';
    const name = document.createElement('span');
    name.textContent = stage.name;
    const count = document.createElement('span');
    count.className = 'column-count';
    heading.append(name, ' ', count);
    const sums = document.createElement('p');
    sums.className = 'column-sums';
    const expected = document.createElement('span');
    expected.className = 'column-expected';
    const weighted = document.createElement('span');
    weighted.className = 'column-weighted';
    sums.append(expected, weighted);
    const meta = document.createElement('p');
    meta.className = 'column-meta';
    meta.textContent = stage.kind === 'open' ?
        t('probability', {probability: stage.probability}) :
        t('closedSince', {date: formatDate(state.board.closed_since)});
    header.append(heading, sums, meta);

    const body = document.createElement('div');
    body.className = 'column-body';
    const list = document.createElement('ol');
    list.className = 'cards';
    list.dataset.stage = stage.id;
    list.dataset.empty = t('noCards');
    list.setAttribute('aria-label', t('stageList', {stage: stage.name}));
    list.append(...stage.cards.map(renderCard));
    const more = document.createElement('p');
    more.className = 'column-more';
    body.append(list, more);
    section.append(header, body);

    column.section = section;
    column.list = list;
    column.more = more;
    updateHeader(column);
    makeSortable(list);
    observeEnd(column, body);
    return section;
}

function updateHeader(column) {
    const stage = column.stage;
    const section = column.section;
    const count = section.querySelector('.column-count');
    count.textContent = stage.count;
    count.title = stage.count === 1 ?
        t('countOne') : t('count', {count: stage.count});
    const expected = section.querySelector('.column-expected');
    expected.textContent = formatAmount(stage.expected, true);
    expected.title = t('expected', {amount: formatAmount(stage.expected)});
    expected.setAttribute('aria-label', expected.title);
    const weighted = section.querySelector('.column-weighted');
    weighted.hidden = stage.kind !== 'open';
    weighted.textContent = formatAmount(stage.weighted, true);
    weighted.title = t('weighted', {amount: formatAmount(stage.weighted)});
    weighted.setAttribute('aria-label', weighted.title);
    updateMore(column);
}

function updateMore(column) {
    const shown = column.list.querySelectorAll('.card').length;
    const count = column.stage.count;
    column.more.textContent = column.loading ? t('loadingMore') :
        (shown < count ? t('shown', {shown, count}) : '');
}

function cardUrl(id) {
    return `${SAO_URL}/model/crm.lead/${id}`;
}

function renderCard(card) {
    const item = document.createElement('li');
    item.className = 'card';
    item.dataset.id = card.id;
    item.dataset.priority = card.priority;
    item._card = card;

    const link = document.createElement('a');
    link.className = 'card-link';
    link.href = cardUrl(card.id);
    link.title = t('moveHint');
    link.setAttribute('aria-keyshortcuts', 'Shift+ArrowLeft Shift+ArrowRight');
    link.setAttribute('aria-label', t('cardLabel', {
        name: card.name,
        party: card.party ?? '',
        amount: formatAmount(card.expected_revenue),
    }));

    const title = document.createElement('span');
    title.className = 'card-title';
    title.textContent = card.name;
    const priority = Number(card.priority);
    if (priority >= 2) {
        const stars = document.createElement('span');
        stars.className = 'card-priority';
        stars.textContent = '★'.repeat(priority - 1);
        stars.title = STRINGS.priority[priority];
        stars.setAttribute('role', 'img');
        stars.setAttribute('aria-label', STRINGS.priority[priority]);
        title.prepend(stars, ' ');
    }
    const party = document.createElement('span');
    party.className = 'card-party';
    party.textContent = card.party ?? '';

    const footer = document.createElement('span');
    footer.className = 'card-footer';
    const amount = document.createElement('span');
    amount.className = 'card-amount';
    amount.textContent = formatAmount(card.expected_revenue);
    const owner = document.createElement('span');
    owner.className = 'card-owner';
    owner.textContent = card.owner ?? t('noOwner');
    owner.title = t('owner_', {owner: card.owner ?? t('noOwner')});
    footer.append(amount, owner);

    link.append(title, party, footer);
    if (card.next_activity_date) {
        const time = document.createElement('time');
        time.className = 'card-activity';
        time.dateTime = card.next_activity_date;
        const date = formatDate(
            card.next_activity_date, isToday(card.next_activity_date));
        time.textContent = date;
        if (card.next_activity_overdue) {
            time.classList.add('overdue');
            time.title = t('overdue', {date});
        } else {
            time.title = t('nextActivity', {date});
        }
        time.setAttribute('aria-label', time.title);
        link.append(time);
    }
    item.append(link);
    return item;
}

// --- Infinite scroll ------------------------------------------------------

function observeEnd(column, body) {
    column.observer = new IntersectionObserver(entries => {
        if (entries.some(e => e.isIntersecting)) {
            loadMore(column);
        }
    }, {root: body, rootMargin: '0px 0px 200px 0px'});
    column.observer.observe(column.more);
}

async function loadMore(column) {
    const shown = column.list.querySelectorAll('.card').length;
    if (column.loading || shown >= column.stage.count) {
        return;
    }
    const request = state.request;
    column.loading = true;
    updateMore(column);
    try {
        const cards = await rpc(
            'model.crm.lead.board.get_cards', teamId(), column.stage.id,
            serverFilters(), column.offset);
        if (request !== state.request) {
            return;
        }
        column.offset += cards.length;
        const fresh = cards.filter(c => !column.ids.has(c.id));
        for (const card of fresh) {
            column.ids.add(card.id);
        }
        column.list.append(...fresh.map(renderCard));
        if (!cards.length) {
            // The column shrank meanwhile: stop asking
            column.stage.count = column.list.querySelectorAll('.card').length;
        }
    } catch (error) {
        handleError(error);
    } finally {
        column.loading = false;
        if (request === state.request) {
            updateMore(column);
            // Still at the end (tall screen): ask again
            const body = column.more.parentElement;
            if (column.more.offsetTop - body.scrollTop <
                    body.clientHeight + 200) {
                window.requestAnimationFrame(() => loadMore(column));
            }
        }
    }
}

// --- Moves ----------------------------------------------------------------

function makeSortable(list) {
    state.sortables.push(Sortable.create(list, {
        group: 'pipeline',
        sort: false,  // The server orders the cards of a column
        draggable: '.card',
        filter: '.pending',
        preventOnFilter: false,
        // The same pointer events for mouse, touch and pen
        forceFallback: true,
        fallbackOnBody: true,
        fallbackTolerance: 4,
        // On touch screens a long press drags, a swipe scrolls
        delay: 200,
        delayOnTouchOnly: true,
        animation: 150,
        ghostClass: 'card-ghost',
        chosenClass: 'card-chosen',
        dragClass: 'card-drag',
        onEnd: event => {
            if (event.from !== event.to) {
                moveCard(event.item, event.from, event.oldIndex);
            }
        },
    }));
}

function columnOf(list) {
    return state.columns.get(Number(list.dataset.stage));
}

function putBack(item, from, oldIndex) {
    const cards = [...from.children].filter(c => c !== item);
    from.insertBefore(item, cards[oldIndex] ?? null);
}

async function moveCard(item, from, oldIndex) {
    const card = item._card;
    const source = columnOf(from);
    const target = columnOf(item.parentElement);
    const values = {stage: target.stage.id};
    if (target.stage.kind === 'lost') {
        const lost = await askLost(card);
        if (!lost) {
            putBack(item, from, oldIndex);
            item.querySelector('a').focus();
            return;
        }
        values.lost_reason = lost.reason;
        values.lost_note = lost.note;
    }
    item.classList.add('pending');
    item.setAttribute('aria-busy', 'true');
    try {
        await rpc('model.crm.lead.write', [card.id], values);
    } catch (error) {
        item.classList.remove('pending');
        item.removeAttribute('aria-busy');
        putBack(item, from, oldIndex);
        if (error instanceof ServerError) {
            showError(t('moveRefused', {
                name: card.name,
                message: [error.message, error.detail].filter(Boolean).join(
                    ' '),
            }));
        } else {
            handleError(error);
        }
        return;
    }
    item.classList.remove('pending');
    item.removeAttribute('aria-busy');
    card.stage = target.stage.id;
    source.ids.delete(card.id);
    source.offset = Math.max(source.offset - 1, 0);
    target.ids.add(card.id);
    target.offset += 1;
    announce(t('moved', {name: card.name, stage: target.stage.name}));
    await refreshTotals();
}

async function refreshTotals() {
    const request = state.request;
    try {
        const totals = await rpc(
            'model.crm.lead.board.get_totals', teamId(), serverFilters());
        if (request !== state.request) {
            return;
        }
        for (const total of totals) {
            const column = state.columns.get(total.id);
            if (column) {
                Object.assign(column.stage, {
                    count: total.count,
                    expected: total.expected,
                    weighted: total.weighted,
                });
                updateHeader(column);
            }
        }
    } catch (error) {
        handleError(error);
    }
}

// Keyboard: Shift+Left/Right moves the focused card to the previous/next
// column, the arrows alone move the focus between cards and columns.
function bindKeyboard() {
    $('board').addEventListener('keydown', event => {
        const link = event.target.closest?.('.card-link');
        if (!link || event.altKey || event.ctrlKey || event.metaKey) {
            return;
        }
        const item = link.parentElement;
        const list = item.parentElement;
        const lists = [...$('board').querySelectorAll('.cards')];
        const index = lists.indexOf(list);
        const direction = {ArrowLeft: -1, ArrowRight: 1}[event.key];
        if (event.shiftKey && direction) {
            event.preventDefault();
            const to = lists[index + direction];
            if (!to || item.classList.contains('pending')) {
                return;
            }
            const oldIndex = [...list.children].indexOf(item);
            to.prepend(item);
            link.focus();
            item.scrollIntoView({block: 'nearest', inline: 'nearest'});
            moveCard(item, list, oldIndex);
        } else if (!event.shiftKey) {
            let next = null;
            if (event.key === 'ArrowDown') {
                next = item.nextElementSibling;
            } else if (event.key === 'ArrowUp') {
                next = item.previousElementSibling;
            } else if (direction) {
                let i = index + direction;
                while (lists[i] && !lists[i].querySelector('.card')) {
                    i += direction;
                }
                next = lists[i]?.querySelector('.card');
            }
            if (next) {
                event.preventDefault();
                next.querySelector('.card-link').focus();
            }
        }
    });
}

// --- Lost dialog ----------------------------------------------------------

function askLost(card) {
    const dialog = $('lost-dialog');
    const form = $('lost-form');
    const select = $('lost-reason');
    $('lost-lead').textContent = t('lostLead', {name: card.name});
    select.replaceChildren(
        option('', t('chooseReason'), true),
        ...state.board.lost_reasons.map(r => option(String(r.id), r.name)));
    $('lost-note').value = '';
    return new Promise(resolve => {
        let answer = null;
        const submit = event => {
            event.preventDefault();
            if (!form.reportValidity()) {
                return;
            }
            answer = {
                reason: Number(select.value),
                note: $('lost-note').value.trim() || null,
            };
            dialog.close();
        };
        const cancel = () => dialog.close();
        const closed = () => {
            form.removeEventListener('submit', submit);
            $('lost-cancel').removeEventListener('click', cancel);
            resolve(answer);
        };
        form.addEventListener('submit', submit);
        $('lost-cancel').addEventListener('click', cancel);
        // Escape closes the dialog too
        dialog.addEventListener('close', closed, {once: true});
        dialog.showModal();
        select.focus();
    });
}

// --- Start ----------------------------------------------------------------

function translatePage() {
    for (const element of document.querySelectorAll('[data-text]')) {
        element.textContent = t(element.dataset.text);
    }
    for (const element of document.querySelectorAll('[data-label]')) {
        element.setAttribute('aria-label', t(element.dataset.label));
    }
    $('search').placeholder = t('searchPlaceholder');
    $('tryton-link').href = SAO_URL;
    document.title = t('title');
}

async function start() {
    translatePage();
    bindFilters();
    bindKeyboard();
    readUrl();
    $('search').value = state.filters.search;
    try {
        // The same context as sao: language, company...
        const preferences = await rpc('model.res.user.get_preferences', true);
        state.context = Object.fromEntries(Object.entries(preferences).filter(
            ([key]) => key !== 'locale' && !key.endsWith('.rec_name')));
        if (preferences.language) {
            state.language = preferences.language;
            document.documentElement.lang = locale();
        }
        const teams = await rpc('model.crm.lead.board.get_teams');
        state.teams = teams.teams;
        const known = new Set(state.teams.map(
            team => team.id === null ? NO_TEAM : String(team.id)));
        if (state.filters.team === null || !known.has(state.filters.team)) {
            state.filters.team = teams.default === null ?
                (known.has(NO_TEAM) ? NO_TEAM : null) : String(teams.default);
        }
        if (state.filters.team === null) {
            $('board').replaceChildren();
            $('board').setAttribute('aria-busy', 'false');
            showError(t('noTeams'));
            return;
        }
        renderTeams();
        setFiltersDisabled(false);
        await loadBoard();
    } catch (error) {
        $('board').replaceChildren();
        $('board').setAttribute('aria-busy', 'false');
        handleError(error);
    }
}

start();
