// The server's JSON API under /api, as the app uses it. Types mirror the OpenAPI
// description (crates/conclave-server/src/api/*.rs).
//
// The session lives in an HttpOnly cookie the app never sees. Every state-changing
// request (POST, PATCH, DELETE) must echo the session's CSRF token, which the sign-in
// answer and GET /api/session carry, in the X-CSRF-Token header.

export type Role = 'admin' | 'organiser' | 'member' | 'auditor';

export interface UserInfo {
  id: string;
  /** Account name, used to sign in and to name hosts and invitees. */
  name: string;
  display_name: string;
  role: Role | string;
  disabled: boolean;
}

export interface SessionInfo {
  user: UserInfo;
  csrf_token: string;
  /** RFC 3339. */
  expires_at: string;
}

export interface OrganisationInfo {
  name: string;
  /** The organisation's Ed25519 public key, 43 characters of URL-safe base64. */
  public_key: string;
  /** The server's MLS external-sender signature key, standard base64. */
  mls_external_sender_key: string;
  /** The server's MLS external-sender credential identity, standard base64. */
  mls_external_sender_identity: string;
}

export interface ClassificationInfo {
  name: string;
  audience: string;
  lobby: string;
  device_trust: string;
  trusted_networks: string[];
  untrusted_network: string;
  join_opens_minutes_before_start: number | null;
  join_closes_minutes_after_end: number | null;
  lock_minutes_after_start: number | null;
  max_participants: number | null;
  /** The rules in plain words, one sentence each. */
  description: string[];
}

/** The caller's place in a meeting. */
export type MeetingRole = 'host' | 'invitee';

export interface MeetingSummary {
  id: string;
  title: string;
  classification: string;
  starts_at: string;
  ends_at: string;
  cancelled: boolean;
  your_role: MeetingRole | string;
}

export interface MemberInfo {
  user_id: string;
  display_name: string;
}

export interface MeetingInfo extends MeetingSummary {
  agenda: string;
  locked: boolean;
  organiser_id: string;
  hosts: MemberInfo[];
  invitees: MemberInfo[];
}

export interface NewMeeting {
  title: string;
  agenda: string;
  classification: string;
  starts_at: string;
  ends_at: string;
  /** Account names of further hosts; the organiser always is one. */
  hosts: string[];
  /** Account names. */
  invitees: string[];
}

/** Omitted fields stay as they are; lists replace the old lists. */
export interface MeetingUpdate {
  title?: string;
  agenda?: string;
  classification?: string;
  starts_at?: string;
  ends_at?: string;
  hosts?: string[];
  invitees?: string[];
}

/** A failed request: the server's `{error, message}`, or what went wrong on the way. */
export class ApiError extends Error {
  constructor(
    /** HTTP status, 0 when the server could not be reached. */
    readonly status: number,
    /** The server's stable code, e.g. `bad_request`, or `network` / `unexpected`. */
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Thrown after the app has handled a lost session (gone back to sign-in); callers stop. */
export class SessionEnded extends Error {
  constructor() {
    super('the session has ended');
    this.name = 'SessionEnded';
  }
}

let csrfToken: string | null = null;
let onSessionLost: () => void = () => {};

/** Remembers the CSRF token of the current session (null when signed out). */
export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** What to do when a request finds the session gone (401). */
export function setSessionLostHandler(handler: () => void): void {
  onSessionLost = handler;
}

interface RequestOptions {
  body?: unknown;
  /** For sign-in and the session probe: a 401 is an answer, not a lost session. */
  expectUnauthenticated?: boolean;
  /** Set on the one retry after a CSRF refusal. */
  retried?: boolean;
  /** Error statuses whose JSON body is an answer (returned), not an error (thrown). */
  answers?: readonly number[];
}

async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  const init: RequestInit = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(opts.body);
  }
  if (method !== 'GET' && method !== 'HEAD' && csrfToken !== null) {
    headers['X-CSRF-Token'] = csrfToken;
  }

  let response: Response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(
      0,
      'network',
      'The server cannot be reached. Check your network connection and try again.',
    );
  }

  if (response.ok) {
    if (response.status === 204) return undefined as T;
    try {
      return (await response.json()) as T;
    } catch {
      throw new ApiError(response.status, 'unexpected', 'The server sent an answer the app cannot read.');
    }
  }

  if (opts.answers?.includes(response.status)) {
    // An answer, unless it is the usual `{error, message}` (CSRF, a revoked device, ...).
    const body: unknown = await response.clone().json().catch(() => null);
    if (typeof body === 'object' && body !== null && !('error' in body)) return body as T;
  }
  const error = await readError(response);
  if (response.status === 401 && !opts.expectUnauthenticated) {
    csrfToken = null;
    onSessionLost();
    throw new SessionEnded();
  }
  // The token no longer matches the cookie, e.g. after signing in again in another tab:
  // learn the current session's token and try once more.
  if (response.status === 403 && error.code === 'csrf' && !opts.retried) {
    const session = await getSession();
    if (session === null) {
      onSessionLost();
      throw new SessionEnded();
    }
    return request<T>(method, path, { ...opts, retried: true });
  }
  throw error;
}

async function readError(response: Response): Promise<ApiError> {
  try {
    const body: unknown = await response.json();
    if (typeof body === 'object' && body !== null) {
      const { error, message } = body as { error?: unknown; message?: unknown };
      if (typeof message === 'string' && message !== '') {
        return new ApiError(response.status, typeof error === 'string' ? error : 'unknown', message);
      }
    }
  } catch {
    // Not JSON: a proxy's page, for instance. Fall through to a generic message.
  }
  return new ApiError(
    response.status,
    'unexpected',
    `The server answered with an error (HTTP ${response.status}). Please try again later.`,
  );
}

// ---- session ---------------------------------------------------------------

/** The current session, or null when signed out. */
export async function getSession(): Promise<SessionInfo | null> {
  try {
    const session = await request<SessionInfo>('GET', '/api/session', { expectUnauthenticated: true });
    csrfToken = session.csrf_token;
    return session;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      csrfToken = null;
      return null;
    }
    throw e;
  }
}

export async function signIn(name: string, password: string): Promise<SessionInfo> {
  const session = await request<SessionInfo>('POST', '/api/session', {
    body: { name, password },
    expectUnauthenticated: true,
  });
  csrfToken = session.csrf_token;
  return session;
}

export async function signOut(): Promise<void> {
  try {
    await request<void>('DELETE', '/api/session', { expectUnauthenticated: true });
  } finally {
    csrfToken = null;
  }
}

export function getOrganisation(): Promise<OrganisationInfo> {
  return request<OrganisationInfo>('GET', '/api/organisation');
}

// ---- meetings --------------------------------------------------------------

export function listClassifications(): Promise<ClassificationInfo[]> {
  return request<ClassificationInfo[]>('GET', '/api/classifications');
}

export function listMeetings(): Promise<MeetingSummary[]> {
  return request<MeetingSummary[]>('GET', '/api/meetings');
}

export function getMeeting(id: string): Promise<MeetingInfo> {
  return request<MeetingInfo>('GET', `/api/meetings/${encodeURIComponent(id)}`);
}

export function createMeeting(meeting: NewMeeting): Promise<MeetingInfo> {
  return request<MeetingInfo>('POST', '/api/meetings', { body: meeting });
}

export function updateMeeting(id: string, update: MeetingUpdate): Promise<MeetingInfo> {
  return request<MeetingInfo>('PATCH', `/api/meetings/${encodeURIComponent(id)}`, { body: update });
}

export function cancelMeeting(id: string): Promise<void> {
  return request<void>('DELETE', `/api/meetings/${encodeURIComponent(id)}`);
}

// ---- devices and the pre-join check ------------------------------------------

export type DeviceTrust = 'managed' | 'personal';

export interface DeviceInfo {
  id: string;
  user_id: string;
  name: string;
  /** Ed25519 public key, unpadded URL-safe base64. */
  public_key: string;
  trust: DeviceTrust | string;
  created_at: string;
  revoked_at: string | null;
}

/** A device with its current organisation-signed credential. */
export interface DeviceWithCredential {
  device: DeviceInfo;
  /** Unpadded URL-safe base64. */
  credential: string;
  credential_expires_at: string;
}

export function registerDevice(name: string, publicKey: string): Promise<DeviceWithCredential> {
  return request<DeviceWithCredential>('POST', '/api/devices', {
    body: { name, public_key: publicKey },
  });
}

/** A fresh credential carrying the device's current trust (403 revoked, 404 unknown). */
export function deviceCredential(deviceId: string): Promise<DeviceWithCredential> {
  return request<DeviceWithCredential>(
    'GET',
    `/api/devices/${encodeURIComponent(deviceId)}/credential`,
  );
}

export interface ReasonInfo {
  /** Stable code, e.g. `untrusted_network_denied`. */
  code: string;
  /** The reason in plain words. */
  message: string;
}

export interface JoinDecision {
  outcome: 'admit' | 'lobby' | 'deny' | string;
  reasons: ReasonInfo[];
  network: { trusted: boolean; name: string | null };
  device_trust: DeviceTrust | string;
}

/** What joining meeting `id` with this credential from here would decide now; grants nothing. */
export function previewJoin(id: string, credential: string): Promise<JoinDecision> {
  return request<JoinDecision>('POST', `/api/meetings/${encodeURIComponent(id)}/preview`, {
    body: { credential },
  });
}

// ---- joining a call --------------------------------------------------------------

export interface JoinChallenge {
  /** 32 bytes, unpadded URL-safe base64; single use, bound to the user and the meeting. */
  challenge: string;
  expires_at: string;
}

export function joinChallenge(id: string): Promise<JoinChallenge> {
  return request<JoinChallenge>('POST', `/api/meetings/${encodeURIComponent(id)}/challenge`, { body: {} });
}

/** The policy's decision on a real join request; admit and lobby carry a ticket. */
export interface JoinAnswer extends JoinDecision {
  ticket: string | null;
  ticket_expires_at: string | null;
}

/**
 * Asks to join meeting `id` (200 admit, 202 lobby, 403 deny: all three are answers).
 * `signature` is the device key's signature over the challenge, unpadded URL-safe base64.
 */
export async function joinMeeting(
  id: string,
  credential: string,
  challenge: string,
  signature: string,
): Promise<JoinAnswer> {
  return request<JoinAnswer>('POST', `/api/meetings/${encodeURIComponent(id)}/join`, {
    body: { credential, challenge, signature },
    answers: [403],
  });
}
