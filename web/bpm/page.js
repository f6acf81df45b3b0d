// What the pages of crm_bpm (modeler, card, heatmap) share: their common
// texts, t(), JSON-RPC with the sao context, the message box and the
// start-up, served at /<db>/bpm/static/bpm/page.js. It works on the
// markup both pages have: #tryton-link, #message (#message-text,
// #message-link) and the data-text / data-label attributes.

// The pages' shared JSON-RPC client is crm_core's, served at
// /<db>/crm/static/crm/rpc.js
import {AuthError, ServerError, rpcClient} from
    '../../../crm/static/crm/rpc.js';

// The pages throw it for the messages they word themselves
export {ServerError};

// The texts both pages word alike; each page's STRINGS add its own.
// {name} placeholders are filled by t().
const STRINGS = {
    canvas: 'Process diagram',
    backToTryton: 'Back to Tryton',
    loginNeeded: 'Your Tryton session has ended or you are not logged in. ' +
        'Log in, then reload this page.',
    login: 'Log in to Tryton',
    networkError: 'The server cannot be reached. Check your connection ' +
        'and try again.',
    serverError: 'The server answered with an error ({status}).',
    unexpectedError: 'Something went wrong: {message}',
    importFailed: 'The diagram of this process cannot be shown: {message}',
};

// The database is the first segment of /<db>/bpm/<page>
const DB = decodeURIComponent(window.location.pathname.split('/')[1] || '');
const SAO_URL = '/#' + DB;

export const $ = id => document.getElementById(id);

// The positive integer of the URL's parameter name, or null
export function idFromUrl(name) {
    const id = Number(new URLSearchParams(window.location.search).get(name));
    return Number.isInteger(id) && id > 0 ? id : null;
}

// The plumbing of one page, worded by its strings
export function createPage(pageStrings) {
    const strings = {...STRINGS, ...pageStrings};
    // Set by loadPreferences(); rpc() reads it at each call
    let context = {};

    function t(key, values = {}) {
        const text = strings[key] ?? key;
        return String(text).replace(
            /\{(\w+)\}/g, (match, name) => values[name] ?? match);
    }

    const rpc = rpcClient(DB, t, () => context);

    function showMessage(text, withLogin = false) {
        $('message-text').textContent = text;
        $('message-link').hidden = !withLogin;
        $('message').hidden = false;
        // The modeler's notice tells of the last action: a message replaces
        // it (the card has no #notice)
        const notice = $('notice');
        if (notice) {
            notice.hidden = true;
        }
    }

    function handleError(error) {
        if (error instanceof AuthError) {
            showMessage(error.message, true);
        } else if (error instanceof ServerError) {
            showMessage(error.text);
        } else {
            console.error(error);
            showMessage(t('unexpectedError', {message: error.message}));
        }
    }

    function translatePage() {
        for (const element of document.querySelectorAll('[data-text]')) {
            element.textContent = t(element.dataset.text);
        }
        for (const element of document.querySelectorAll('[data-label]')) {
            element.setAttribute('aria-label', t(element.dataset.label));
        }
        $('tryton-link').href = SAO_URL;
        $('message-link').href = SAO_URL;
        $('message-link').textContent = t('login');
        document.title = t('title');
    }

    async function loadPreferences() {
        // The same context as sao: language, company...
        const preferences = await rpc('model.res.user.get_preferences', true);
        context = Object.fromEntries(Object.entries(preferences).filter(
            ([key]) => key !== 'locale' && !key.endsWith('.rec_name')));
        if (preferences.language) {
            document.documentElement.lang =
                preferences.language.replace('_', '-');
        }
    }

    // The start of the pages that show a diagram (card, heatmap): the
    // viewer, the id of the URL's parameter (its absence worded by the
    // page's text missingKey), load(id) returning {xml, draw} where
    // draw(viewer) marks the diagram once shown (not "then": await would
    // take the object for a promise)
    async function startViewer(parameter, missingKey, load) {
        translatePage();
        const viewer = new window.BpmnJS({container: $('canvas')});
        // For the browser tests and the curious
        window.crmBpm = {viewer};
        try {
            const id = idFromUrl(parameter);
            if (id === null) {
                throw new ServerError(t(missingKey));
            }
            await loadPreferences();
            const {xml, draw} = await load(id);
            try {
                await viewer.importXML(xml);
            } catch (error) {
                throw new ServerError(
                    t('importFailed', {message: error.message}));
            }
            viewer.get('canvas').zoom('fit-viewport', 'auto');
            draw(viewer);
        } catch (error) {
            handleError(error);
        } finally {
            $('canvas').setAttribute('aria-busy', 'false');
        }
    }

    return {
        t, rpc, showMessage, handleError, translatePage, loadPreferences,
        startViewer};
}
