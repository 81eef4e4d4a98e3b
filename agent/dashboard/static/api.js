/**
 * The agent's REST API, same origin, with the dashboard's session cookie.
 *
 * Every failure becomes an {@link ApiError} carrying what the agent said: `status`, `code`,
 * `message` (the whole sentence), `what`, `subject`, `hint` (what to do) and `field` (for a
 * 422: the setting at fault, like `groups[main].video.width`). A 401 also tells the page that
 * its session is gone, so it can show the sign-in form.
 */

export const PREFIX = '/api/v1';

export class ApiError extends Error {
  constructor({ status, code, message, what, subject, hint, field }) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.what = what || message;
    this.subject = subject || null;
    this.hint = hint || null;
    this.field = field || null;
  }
}

let unauthorized = () => {};

/** Called with the error whenever a request answers 401 (unless the caller expects one). */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

/**
 * One request. `body` is sent as JSON; the answer's JSON is returned (null for 204).
 * `expect401: true` keeps a 401 from signing the page out (the sign-in form itself).
 */
export async function request(method, path, body, { expect401 = false } = {}) {
  const init = {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { Accept: 'application/json' },
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError({
      status: 0,
      code: 'unreachable',
      message: 'The Cascade agent did not answer',
      hint: 'Check that Cascade is running (its tray icon), then try again',
    });
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const e = data && typeof data.error === 'object' && data.error ? data.error : {};
    const error = new ApiError({
      status: response.status,
      code: e.code || 'error',
      message: e.message || `The agent answered ${response.status} ${response.statusText}`.trim(),
      what: e.what,
      subject: e.subject,
      hint: e.hint,
      field: e.field,
    });
    if (response.status === 401 && !expect401) unauthorized(error);
    throw error;
  }
  return data;
}

export const get = (path, options) => request('GET', path, undefined, options);
export const post = (path, body, options) => request('POST', path, body, options);
export const put = (path, body, options) => request('PUT', path, body, options);
export const patch = (path, body, options) => request('PATCH', path, body, options);
export const del = (path, options) => request('DELETE', path, undefined, options);

/** A path segment from an id a person typed (ids are slugs, but never trust that). */
export const seg = (id) => encodeURIComponent(id);

/** The API path of a group, target or profile: `api.path('groups', 'main', 'start')`. */
export function path(...parts) {
  return [PREFIX, ...parts.map((p) => seg(String(p)))].join('/');
}
