// JSON-RPC client of the CRM's custom pages (pipeline board, BPM modeler
// and card), served at /<db>/crm/static/crm/rpc.js. The pages run under
// sao's origin: the sao session cookie authenticates every call.
//
// The texts stay in each page's STRINGS (a page words them its own way):
// rpc() asks the page's t() for networkError, loginNeeded,
// serverError {status} and unexpectedError {message}.

// No session, or an ended one: the page shows its login link
export class AuthError extends Error {}

// detail: the description trytond adds to a UserError or UserWarning
export class ServerError extends Error {
    constructor(message, detail = '') {
        super(message);
        this.detail = detail;
    }

    // For the pages that show both as one text
    get text() {
        return this.detail ? `${this.message} ${this.detail}` : this.message;
    }
}

let rpcId = 0;

// A rpc(method, ...params) of database, worded by t; context() is read at
// each call since a page sets its context once the preferences are loaded.
export function rpcClient(database, t, context) {
    return async function rpc(method, ...params) {
        let response;
        try {
            response = await fetch(`/${encodeURIComponent(database)}/rpc/`, {
                method: 'POST',
                credentials: 'same-origin',
                headers: {
                    'Content-Type': 'application/json',
                    'Accept': 'application/json',
                    // No Basic authentication prompt on 401
                    'X-Requested-With': 'XMLHttpRequest',
                },
                // trytond takes the context as the last parameter
                body: JSON.stringify({
                    id: ++rpcId, method, params: [...params, context()]}),
            });
        } catch (error) {
            throw new ServerError(t('networkError'));
        }
        if (response.status === 401 || response.status === 403) {
            throw new AuthError(t('loginNeeded'));
        }
        if (!response.ok) {
            throw new ServerError(t('serverError', {status: response.status}));
        }
        const data = await response.json();
        if (data.error) {
            throw errorOf(data.error, t);
        }
        return data.result;
    };
}

// trytond answers {error: [type, args]} for its exceptions (UserError and
// ValidationError: [message, description, domain]; UserWarning: [name,
// message, description]; ConcurrencyException: message), [message,
// traceback] for the others.
function errorOf(error, t) {
    const [kind, args] = error;
    switch (kind) {
        case 'UserError':
            return new ServerError(args[0], args[1]);
        case 'UserWarning':
            return new ServerError(args[1], args[2]);
        case 'ConcurrencyException':
            return new ServerError(args);
        default:
            return new ServerError(t('unexpectedError', {message: kind}));
    }
}
