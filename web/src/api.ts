/**
 * The dashboard's HTTP client. The browser's session cookie is what signs
 * every request in (same-origin fetches and the WebSocket upgrade send it);
 * requests that change something also carry the session's CSRF token from
 * `GET /api/session`. A 401 anywhere means the session is gone: the page
 * goes to the login page, which brings the user back here.
 */

/** What `GET /api/session` says of this browser. */
export interface SessionInfo {
  /** `session` for a signed-in user; `loopback` where the service trusts local clients. */
  kind: string;
  user?: string;
  csrfToken?: string;
  /** When the session ends, ms. */
  expiresAt?: number;
}

/** An answer: its status (0 when the request failed or was aborted) and its JSON body, if any. */
export interface ApiResult<T> {
  status: number;
  body: T | undefined;
}

let csrfToken: string | undefined;

/** The login page, with the way back to where the user is now. */
export function loginUrl(where: { pathname: string; search: string } = location): string {
  return `/login?next=${encodeURIComponent(where.pathname + where.search)}`;
}

/** How the page leaves for the login page (tests replace it). */
export const navigation = { assign: (url: string) => location.assign(url) };
let leaving = false;

/** Sends the user to sign in again (once, however many requests noticed). */
export function goToLogin(): void {
  if (leaving) return;
  leaving = true;
  navigation.assign(loginUrl());
}

/** Forgets the session (tests). */
export function resetSession(): void {
  csrfToken = undefined;
  leaving = false;
}

const SAFE = new Set(['GET', 'HEAD']);

/**
 * One request to the service. JSON in and out; the CSRF token on anything
 * but GET; a 401 sends the user to sign in.
 *
 * @example
 * const { status, body } = await request<ThresholdsBody>('PUT', '/api/thresholds', { body: { thresholds } });
 */
export async function request<T>(method: string, path: string, options: { body?: unknown; signal?: AbortSignal } = {}): Promise<ApiResult<T>> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (!SAFE.has(method) && csrfToken) headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      // a change must carry this page's Origin (the service refuses others); under no-referrer it would be "null"
      referrerPolicy: 'same-origin',
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch {
    return { status: 0, body: undefined };
  }
  if (res.status === 401) {
    goToLogin();
    return { status: 401, body: undefined };
  }
  let body: T | undefined;
  if ((res.headers.get('content-type') ?? '').includes('json')) body = (await res.json().catch(() => undefined)) as T | undefined;
  return { status: res.status, body };
}

/** GET a JSON resource of the service; undefined on any failure. */
export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T | undefined> {
  const { status, body } = await request<T>('GET', path, signal ? { signal } : {});
  return status >= 200 && status < 300 ? body : undefined;
}

/** Who is signed in; keeps the session's CSRF token for the requests that need it. */
export async function loadSession(signal?: AbortSignal): Promise<SessionInfo | undefined> {
  const session = await getJson<SessionInfo>('/api/session', signal);
  if (session) csrfToken = session.csrfToken;
  return session;
}

/** The service did not answer, or answered with an error that is not about the resource: keep what is shown. */
export class Unavailable extends Error {}

/**
 * GET a resource that this service may not have (a route of a newer
 * version): its body, or undefined on 404. Any other failure throws
 * {@link Unavailable}, so that a poller keeps the value it has.
 */
export async function getIfPresent<T>(path: string, signal?: AbortSignal): Promise<T | undefined> {
  const { status, body } = await request<T>('GET', path, signal ? { signal } : {});
  if (status === 404) return undefined;
  if (status < 200 || status >= 300 || body === undefined) throw new Unavailable(`${path}: ${status || 'no answer'}`);
  return body;
}
