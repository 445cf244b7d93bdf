// Taking part in a call from this browser: asking the policy to join, the signalling
// WebSocket (docs/protocol.md, version 3), the MLS member (the wasm `Member`, the same Rust
// as the native participant's) and, once admitted, audio and video (./media.ts) under
// the member's SFrame keys.
// No DOM here: pages/call.ts shows a `CallSession`'s state and calls its actions.
//
// This follows crates/conclave-client's `Participant`: every server message is counted
// (for heartbeats and resumption), MLS inputs go to the member in the order they arrive,
// and what the member outputs goes back to the delivery service, a commit together with
// the Welcome it produced.

import * as api from './api';
import { fromBase64, toBase64, toBase64Url } from './base64';
import { ensureDevice, refreshCredential, withDeviceSeed, type Device } from './device';
import { CallMedia } from './media';
import { loadWasm, type ConclaveWasm } from './wasm';

type Member = InstanceType<ConclaveWasm['Member']>;

export const PROTOCOL_VERSION = 3;

// ---- asking to join ----------------------------------------------------------------

/** The policy's answer to this browser's join request. */
export interface JoinRequest {
  readonly answer: api.JoinAnswer;
  readonly device: Device;
  /** `performance.now()` when the user pressed Join, for the join-to-first-frame figure. */
  readonly pressedAt?: number;
}

/**
 * Asks to join meeting `meetingId` as this browser's device: a fresh challenge, signed
 * with the device key, and the current credential. Throws `DeviceGone` if the device is
 * revoked or unknown, an `ApiError` if the server refuses the request itself.
 */
export async function askToJoin(meetingId: string, userId: string): Promise<JoinRequest> {
  let device = await ensureDevice(userId);
  const attempt = async (): Promise<api.JoinAnswer> => {
    const { challenge } = await api.joinChallenge(meetingId);
    const bytes = fromBase64(challenge);
    const wasm = await loadWasm();
    const signature = await withDeviceSeed(userId, (seed) =>
      wasm.sign_join_challenge(seed, meetingId, bytes),
    );
    return api.joinMeeting(meetingId, device.credential, challenge, toBase64Url(signature));
  };
  try {
    return { answer: await attempt(), device };
  } catch (e) {
    // The device's trust changed since its credential was issued: take one that carries it.
    if (!(e instanceof api.ApiError && e.status === 409)) throw e;
    device = await refreshCredential(userId);
    return { answer: await attempt(), device };
  }
}

/** A join the meeting page asked for, handed to the call page that runs it. */
let handoff: { meetingId: string; request: JoinRequest } | null = null;

export function handOver(meetingId: string, request: JoinRequest): void {
  handoff = { meetingId, request };
}

/** The join the meeting page asked for, if it was for this meeting (once). */
export function takeHandoff(meetingId: string): JoinRequest | null {
  const found = handoff !== null && handoff.meetingId === meetingId ? handoff.request : null;
  handoff = null;
  return found;
}

// ---- the protocol's messages (docs/protocol.md) --------------------------------------

export interface Network {
  trusted: boolean;
  name?: string;
  /** Hosts only. */
  address?: string;
}

export interface RosterEntry {
  participant: string;
  user_id: string;
  user_name: string;
  display_name: string;
  device_id: string;
  device_trust: string;
  network: Network;
  media: string;
  joined_at: string;
  host: boolean;
}

export interface LobbyEntry {
  participant: string;
  user_name: string;
  display_name: string;
  device_trust: string;
  network: Network;
  reasons: string[];
  since: string;
}

export interface Alert {
  at: string;
  kind: string;
  who?: string | undefined;
  text: string;
}

type ServerMessage =
  | { type: 'joined'; participant: string; resume_token: string; heartbeat_interval_ms: number; resume_grace_ms: number; host: boolean }
  | { type: 'create_group' }
  | { type: 'roster'; participants: RosterEntry[]; locked: boolean }
  | { type: 'roster_update'; changed: RosterEntry[]; left: string[]; locked: boolean }
  | { type: 'admitted'; device: string }
  | { type: 'revoked'; device: string }
  | { type: 'mls'; message: string }
  | { type: 'commit_pending' }
  | { type: 'commit_rejected'; epoch: number }
  | { type: 'media_answer'; sdp: string }
  | { type: 'lobby'; waiting: LobbyEntry[] }
  | { type: 'waiting'; reasons: string[] }
  | ({ type: 'alert' } & Alert)
  | { type: 'speaker'; participant: string }
  | { type: 'pong'; nonce: number }
  | { type: 'refused'; reason: string };

// ---- the MLS member's view -----------------------------------------------------------

/** A member of the MLS group, as its organisation-signed credential says (verified in wasm). */
export interface GroupMember {
  leaf: number;
  device_id: string;
  /** The device's public key (unpadded URL-safe base64). */
  device_key: string;
  user_id: string;
  user_name: string;
  display_name: string;
  organisation: string;
  trust: string;
}

export interface ChatMessage {
  /** The sender's display name from their MLS credential, not from the server. */
  from: string;
  fromDevice: string | null;
  text: string;
  at: Date;
  own: boolean;
}

/** Roster and MLS group disagree: someone is in one and not the other. */
export type Mismatch =
  | { kind: 'not_in_group'; entry: RosterEntry }
  | { kind: 'hidden_member'; member: GroupMember };

export type Phase =
  /** Opening the WebSocket, waiting for `joined`. */
  | 'connecting'
  /** In the lobby until a host lets us in. */
  | 'waiting'
  /** Seated, not yet in the MLS group (the Welcome has not come yet). */
  | 'joining'
  /** In the MLS group. */
  | 'in_call'
  /** The connection dropped; resuming the seat or joining again. */
  | 'reconnecting'
  /** Over: `ended` says why. */
  | 'ended';

export interface Ended {
  /** The close code, or 0 when the call ended for another reason. */
  code: number;
  /** In plain words. */
  text: string;
  /** The user left: go back to the meeting's page. */
  left: boolean;
  /** Asking to join again may help. */
  canRejoin: boolean;
}

/** What a close code means, in words (docs/protocol.md, "Close codes"). */
export function closeReason(code: number, reason: string): string {
  switch (code) {
    case 1001:
      return 'The server is restarting.';
    case 1006:
      return 'The connection to the server was lost.';
    case 4000:
    case 4003:
      return 'This browser and the server did not understand each other (a protocol error). Reload the page and join again.';
    case 4001:
      return 'This browser speaks another version of the call protocol than the server. Reload the page to get the current app.';
    case 4002:
      return 'The permission to join was no longer valid (expired, already used, or the server restarted).';
    case 4004:
      return 'This browser sent too many messages, so the server closed the connection.';
    case 4005:
      return 'The server did not hear from this browser for too long.';
    case 4006:
      return 'You joined this call again from elsewhere, so this page was disconnected.';
    case 4007:
      return 'The connection could not keep up with the call.';
    case 4008:
      return 'No media reached the server for 15 seconds, so your seat was given up.';
    case 4010:
      return 'A host removed you from the call.';
    case 4011:
      return 'A host denied your request to join.';
    case 4012:
      return 'This browser’s device has been revoked, so it can no longer take part in calls.';
    case 4013:
      return 'The meeting’s rules no longer allow you in the call (for example, the meeting has ended).';
    case 4014:
      return 'You left the call.';
    case 4015:
      return 'You are now connected from another network than when you asked to join.';
    default:
      return reason !== '' ? `The connection closed: ${reason}` : `The connection closed (code ${code}).`;
  }
}

/** Codes after which the seat can be taken back with the resume token. */
function resumable(code: number): boolean {
  return code === 1001 || code === 1006 || code === 4005;
}

/** Codes after which asking to join again (fresh challenge and ticket) is the way back. */
function joinAgain(code: number): boolean {
  return code === 4002 || code === 4007 || code === 4008 || code === 4015;
}

/** How long to keep trying to get back into the call after losing the connection. */
const RECONNECT_FOR_MS = 60_000;

interface Organisation {
  publicKey: string;
  senderKey: Uint8Array;
  senderIdentity: Uint8Array;
}

/** One seat of this browser in one meeting's call. */
export class CallSession {
  phase: Phase = 'connecting';
  ended: Ended | null = null;
  /** This seat, once joined. */
  me: string | null = null;
  host = false;
  roster: RosterEntry[] = [];
  locked = false;
  lobby: LobbyEntry[] = [];
  alerts: Alert[] = [];
  waitingReasons: string[] = [];
  speaker: string | null = null;
  /** MLS members by leaf. */
  members = new Map<number, GroupMember>();
  epoch: bigint | null = null;
  securityCode: string | null = null;
  chat: ChatMessage[] = [];
  /** Server refusals and MLS messages that could not be applied, newest last. */
  problems: string[] = [];
  /** Adds the MLS member refused (ghosts, bad credentials). */
  refusals: string[] = [];
  /** Why the connection is being re-established, while it is. */
  reconnecting: string | null = null;
  /** Audio and video, once in the group. */
  media: CallMedia | null = null;
  /** Why audio and video could not start, if they could not. */
  mediaProblem: string | null = null;
  /** `performance.now()` of Join, and of the first remote video frame shown after it. */
  readonly pressedAt: number;
  firstFrameAt: number | null = null;

  private member: Member | null = null;
  private device: Device;
  private ws: WebSocket | null = null;
  private resumeToken: string | null = null;
  private heartbeatMs = 5000;
  private heartbeat: number | undefined;
  private nonce = 0;
  private received = 0;
  private org: Organisation | null = null;
  private listeners = new Set<() => void>();
  private leaving = false;
  private closedForGood = false;
  private reconnectDeadline = 0;
  /** The current connection resumes a seat (sent `hello` with the resume token). */
  private resuming = false;
  /** Where the seat stood when the connection dropped. */
  private phaseBeforeDrop: Phase = 'joining';
  /** The current epoch's SFrame keys, for media that starts after they came. */
  private keys: { epoch: bigint; secret: Uint8Array; ownLeaf: number } | null = null;
  /** Camera, microphone and the offer, prepared while the seat joins the group. */
  private preparing: Promise<{ media: CallMedia; sdp: string }> | null = null;
  /** The offer, until it is sent (once in the call: the server takes none from the lobby). */
  private offer: string | null = null;

  constructor(
    readonly meetingId: string,
    private readonly userId: string,
    request: JoinRequest,
  ) {
    this.device = request.device;
    this.pressedAt = request.pressedAt ?? performance.now();
  }

  /** Calls `listener` after every change. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Starts with the ticket of an admit or lobby answer. */
  async start(ticket: string): Promise<void> {
    try {
      await this.newMember();
      this.open({ type: 'hello', version: PROTOCOL_VERSION, ticket, key_package: toBase64(this.keyPackage()) });
      this.prepareMedia();
    } catch (e) {
      this.end({ code: 0, text: `This browser could not start its part of the call: ${message(e)}`, left: false, canRejoin: true });
    }
  }

  // ---- actions ---------------------------------------------------------------------

  /** Sends a chat message to everyone in the group, end-to-end encrypted. */
  sendChat(text: string): void {
    const member = this.member;
    if (member === null || this.phase !== 'in_call') return;
    try {
      member.send_application(new TextEncoder().encode(text), Date.now());
    } catch (e) {
      this.problems.push(`Your message could not be encrypted: ${message(e)}`);
      this.changed();
      return;
    }
    this.chat.push({ from: this.ownName(), fromDevice: this.device.id, text, at: new Date(), own: true });
    this.drain();
    this.changed();
  }

  admit(participant: string): void {
    this.send({ type: 'admit', participant });
  }

  deny(participant: string): void {
    this.send({ type: 'deny', participant });
  }

  remove(participant: string): void {
    this.send({ type: 'remove', participant });
  }

  setLocked(locked: boolean): void {
    this.send({ type: 'lock', locked });
  }

  /** Leaves for good; the server closes the connection (4014). */
  leave(): void {
    if (this.phase === 'ended' || this.leaving) return;
    this.leaving = true;
    if (this.ws !== null && this.ws.readyState === WebSocket.OPEN) {
      this.send({ type: 'leave' });
      // If the server does not close within a few seconds, close from here.
      window.setTimeout(() => this.ws?.close(1000), 5000);
    } else {
      this.end({ code: 4014, text: closeReason(4014, ''), left: true, canRejoin: false });
    }
  }

  /** Stops everything without a word to the server (the page went away). */
  destroy(): void {
    this.closedForGood = true;
    this.stopHeartbeat();
    if (this.ws !== null) {
      this.ws.onclose = null;
      this.ws.close(1000);
      this.ws = null;
    }
    this.member?.free();
    this.member = null;
    this.stopMedia();
    this.listeners.clear();
  }

  // ---- what the view reads ---------------------------------------------------------

  /** The MLS member with this device id (from its verified credential), if any. */
  memberOf(deviceId: string): GroupMember | undefined {
    for (const m of this.members.values()) if (m.device_id === deviceId) return m;
    return undefined;
  }

  /** Differences between roster and group, as conclave-client's `mismatches`: only while
   * in the group; someone just admitted shows as not in the group until the commit. */
  mismatches(): Mismatch[] {
    if (this.epoch === null) return [];
    const onRoster = new Set(this.roster.map((e) => e.device_id));
    const inGroup = new Set([...this.members.values()].map((m) => m.device_id));
    const out: Mismatch[] = [];
    for (const m of this.members.values()) {
      if (!onRoster.has(m.device_id)) out.push({ kind: 'hidden_member', member: m });
    }
    for (const e of this.roster) {
      if (!inGroup.has(e.device_id)) out.push({ kind: 'not_in_group', entry: e });
    }
    return out;
  }

  get deviceId(): string {
    return this.device.id;
  }

  // ---- the connection --------------------------------------------------------------

  private async newMember(): Promise<void> {
    const wasm = await loadWasm();
    if (this.org === null) {
      const org = await api.getOrganisation();
      this.org = {
        publicKey: org.public_key,
        senderKey: fromBase64(org.mls_external_sender_key),
        senderIdentity: fromBase64(org.mls_external_sender_identity),
      };
    }
    const org = this.org;
    const credential = fromBase64(this.device.credential);
    const member = await withDeviceSeed(
      this.userId,
      (seed) => new wasm.Member(credential, seed, org.publicKey, org.senderKey, org.senderIdentity, Date.now()),
    );
    this.member?.free();
    this.member = member;
    this.members.clear();
    this.epoch = null;
    this.securityCode = null;
    // a new member is a new seat: its media starts afresh under the new member's keys
    this.stopMedia();
  }

  private keyPackage(): Uint8Array {
    if (this.member === null) throw new Error('no MLS member');
    return this.member.key_package();
  }

  private open(hello: Record<string, unknown>): void {
    const url = `wss://${location.host}/api/meetings/${encodeURIComponent(this.meetingId)}/signal`;
    const ws = new WebSocket(url);
    this.ws = ws;
    const resuming = typeof hello.resume === 'string';
    this.resuming = resuming;
    ws.onopen = () => {
      ws.send(JSON.stringify(hello));
      if (resuming) {
        // A resumed seat gets no `joined`, only what it missed: heartbeats start now, and
        // the first answer (the replay, or the pong to this ping) says the seat is back.
        this.startHeartbeat();
        this.nonce = (this.nonce + 1) >>> 0;
        ws.send(JSON.stringify({ type: 'ping', nonce: this.nonce, received: this.received }));
      }
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws || typeof event.data !== 'string') return;
      let msg: ServerMessage;
      try {
        msg = JSON.parse(event.data) as ServerMessage;
      } catch {
        this.problems.push('The server sent a message this browser cannot read.');
        this.changed();
        return;
      }
      this.handle(msg);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopHeartbeat();
      this.closed(event.code, event.reason);
    };
  }

  private send(msg: Record<string, unknown>): void {
    if (this.ws !== null && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
    }
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    // Twice per interval, so that a late timer (a background tab) does not cost the seat.
    const every = Math.max(500, Math.floor(this.heartbeatMs / 2));
    this.heartbeat = window.setInterval(() => {
      this.nonce = (this.nonce + 1) >>> 0;
      this.send({ type: 'ping', nonce: this.nonce, received: this.received });
    }, every);
  }

  private stopHeartbeat(): void {
    if (this.heartbeat !== undefined) window.clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  private closed(code: number, reason: string): void {
    if (this.closedForGood) return;
    if (this.leaving || code === 4014) {
      this.end({ code: 4014, text: closeReason(4014, ''), left: true, canRejoin: false });
      return;
    }
    const now = Date.now();
    if (this.phase !== 'reconnecting') this.reconnectDeadline = now + RECONNECT_FOR_MS;
    const withinTime = now < this.reconnectDeadline;
    if (resumable(code) && this.resumeToken !== null && withinTime) {
      this.reconnect(code, 'resume');
    } else if ((joinAgain(code) || resumable(code)) && withinTime && this.me !== null) {
      this.reconnect(code, 'rejoin');
    } else {
      this.end({ code, text: closeReason(code, reason), left: false, canRejoin: code !== 4012 });
    }
  }

  private reconnectAttempt = 0;

  /** Resumes the seat (same MLS member) or joins afresh (new member, new seat), with backoff. */
  private reconnect(code: number, how: 'resume' | 'rejoin'): void {
    if (this.phase !== 'reconnecting' && this.phase !== 'ended') this.phaseBeforeDrop = this.phase;
    this.phase = 'reconnecting';
    this.reconnecting = `${closeReason(code, '')} Reconnecting…`;
    this.changed();
    const delay = Math.min(8000, 500 * 2 ** this.reconnectAttempt);
    this.reconnectAttempt += 1;
    window.setTimeout(() => {
      if (this.closedForGood || this.phase === 'ended') return;
      if (how === 'resume' && this.resumeToken !== null) {
        this.open({
          type: 'hello',
          version: PROTOCOL_VERSION,
          ticket: '',
          resume: this.resumeToken,
          received: this.received,
        });
        return;
      }
      void this.rejoin();
    }, delay);
  }

  private async rejoin(): Promise<void> {
    try {
      const request = await askToJoin(this.meetingId, this.userId);
      this.device = request.device;
      const { answer } = request;
      if (answer.ticket === null || answer.outcome === 'deny') {
        const reasons = answer.reasons.map((r) => r.message).join(' ');
        this.end({ code: 0, text: `You can no longer join this call. ${reasons}`.trim(), left: false, canRejoin: true });
        return;
      }
      // A new seat: the old one's leaf is gone with it.
      this.me = null;
      this.resumeToken = null;
      this.roster = [];
      await this.newMember();
      this.open({ type: 'hello', version: PROTOCOL_VERSION, ticket: answer.ticket, key_package: toBase64(this.keyPackage()) });
      this.prepareMedia();
    } catch (e) {
      if (e instanceof api.SessionEnded) {
        this.destroy();
        return;
      }
      if (Date.now() < this.reconnectDeadline) {
        this.reconnect(1006, 'rejoin');
      } else {
        this.end({ code: 0, text: `Joining the call again failed: ${message(e)}`, left: false, canRejoin: true });
      }
    }
  }

  private end(ended: Ended): void {
    this.phase = 'ended';
    this.ended = ended;
    this.reconnecting = null;
    this.stopHeartbeat();
    this.closedForGood = true;
    this.member?.free();
    this.member = null;
    this.stopMedia();
    this.changed();
  }

  // ---- server messages -------------------------------------------------------------

  private handle(msg: ServerMessage): void {
    if (msg.type === 'joined' && this.me === null) this.received = 0;
    this.received += 1;
    if (this.resuming) {
      this.resuming = false;
      this.reconnecting = null;
      this.reconnectAttempt = 0;
      this.phase = this.epoch !== null ? 'in_call' : this.phaseBeforeDrop;
    }
    const member = this.member;
    const now = Date.now();
    try {
      switch (msg.type) {
        case 'joined':
          this.me = msg.participant;
          this.resumeToken = msg.resume_token;
          this.host = msg.host;
          this.heartbeatMs = msg.heartbeat_interval_ms;
          this.reconnecting = null;
          this.reconnectAttempt = 0;
          this.phase = this.epoch !== null ? 'in_call' : 'joining';
          this.startHeartbeat();
          break;
        case 'create_group':
          // Nobody is in the group: this browser creates it, with the server as its only
          // external sender, and uploads its public state for the delivery service.
          if (member === null) break;
          member.create_group(now);
          this.send({ type: 'group_created', group_info: toBase64(member.group_info()) });
          break;
        case 'roster':
          this.roster = msg.participants;
          this.locked = msg.locked;
          this.sendOffer();
          break;
        case 'roster_update': {
          // as conclave-protocol's `update_roster`: drop who left, replace or append the rest
          const roster = this.roster.filter((e) => !msg.left.includes(e.participant));
          for (const entry of msg.changed) {
            const at = roster.findIndex((e) => e.participant === entry.participant);
            if (at >= 0) roster[at] = entry;
            else roster.push(entry);
          }
          this.roster = roster;
          this.locked = msg.locked;
          this.sendOffer();
          break;
        }
        case 'admitted':
          member?.admitted(msg.device);
          break;
        case 'revoked':
          member?.revoked(msg.device);
          break;
        case 'mls':
          member?.delivered(fromBase64(msg.message), now);
          break;
        case 'commit_pending':
          member?.commit_pending(now);
          break;
        case 'commit_rejected':
          member?.commit_rejected(now);
          break;
        case 'lobby':
          this.lobby = msg.waiting;
          break;
        case 'waiting':
          this.waitingReasons = msg.reasons;
          if (this.epoch === null) this.phase = 'waiting';
          break;
        case 'alert':
          this.alerts.push({ at: msg.at, kind: msg.kind, who: msg.who, text: msg.text });
          if (this.alerts.length > 50) this.alerts.shift();
          break;
        case 'refused':
          this.problems.push(`The server refused: ${msg.reason}`);
          break;
        case 'speaker':
          this.speaker = msg.participant;
          break;
        case 'media_answer':
          this.media?.answer(msg.sdp).catch((e: unknown) => {
            this.mediaProblem = `The server's media answer was refused: ${message(e)}`;
            this.changed();
          });
          break;
        case 'pong':
          break;
      }
    } catch (e) {
      this.problems.push(`A call message could not be applied: ${message(e)}`);
    }
    if (this.problems.length > 20) this.problems.splice(0, this.problems.length - 20);
    this.drain();
    this.changed();
  }

  /** Takes everything the member has to say: MLS messages to send (a commit with its
   * Welcome, which the session puts right after it) and events into this state. */
  private drain(): void {
    const member = this.member;
    if (member === null) return;
    const outgoing: { message: Uint8Array; welcome?: Uint8Array }[] = [];
    for (;;) {
      const output = member.poll_output() as MemberOutput | undefined;
      if (output === undefined) break;
      if (output.kind === 'send') {
        outgoing.push({ message: output.bytes });
      } else if (output.kind === 'welcome') {
        const last = outgoing[outgoing.length - 1];
        if (last !== undefined) last.welcome = output.bytes;
      } else if (output.kind === 'event') {
        this.event(output.event);
      }
    }
    for (const o of outgoing) {
      const msg: Record<string, unknown> = { type: 'mls', message: toBase64(o.message) };
      if (o.welcome !== undefined) msg.welcome = toBase64(o.welcome);
      this.send(msg);
    }
  }

  private event(event: MemberEvent): void {
    switch (event.type) {
      case 'joined':
        this.epoch = event.epoch;
        this.phase = 'in_call';
        this.waitingReasons = [];
        break;
      case 'epoch_changed':
        this.epoch = event.epoch;
        this.securityCode = event.security_code;
        break;
      case 'member_added':
        this.members.set(event.leaf, {
          leaf: event.leaf,
          device_id: event.device_id,
          device_key: event.device_key,
          user_id: event.user_id,
          user_name: event.user_name,
          display_name: event.display_name,
          organisation: event.organisation,
          trust: event.trust,
        });
        break;
      case 'member_removed':
        this.members.delete(event.leaf);
        break;
      case 'key_material':
        this.keys = { epoch: event.epoch, secret: event.sframe_epoch_secret, ownLeaf: event.own_leaf };
        this.installKeys();
        break;
      case 'application': {
        const sender = this.members.get(event.sender_leaf);
        this.chat.push({
          from: sender?.display_name ?? 'Someone not in the group',
          fromDevice: sender?.device_id ?? null,
          text: new TextDecoder().decode(event.data),
          at: new Date(),
          own: false,
        });
        if (this.chat.length > 500) this.chat.shift();
        break;
      }
      case 'refused':
        this.refusals.push(event.reason);
        break;
      default:
        break;
    }
  }

  // ---- media -----------------------------------------------------------------------

  /** Hands the current epoch's keys to the media. */
  private installKeys(): void {
    const keys = this.keys;
    const member = this.member;
    if (keys === null || member === null) return;
    if (this.media === null) {
      this.prepareMedia();
      return;
    }
    this.media.setKeys(keys.epoch, keys.secret, keys.ownLeaf, Array.from(member.member_leaves()));
  }

  /** Sends the offer to the SFU once this seat is in the call (on the roster: admitted,
   * whether or not its Welcome has come), so that media connects while the seat joins the
   * group. The server takes no offer from the lobby. */
  private sendOffer(): void {
    const me = this.me;
    if (this.offer === null || me === null) return;
    if (!this.roster.some((e) => e.participant === me)) return;
    this.send({ type: 'media_offer', sdp: this.offer });
    this.offer = null;
  }

  /** Opens camera and microphone and makes the offer, in parallel with joining the group
   * (the camera alone can take a few hundred milliseconds to start). */
  private prepareMedia(): void {
    if (this.preparing !== null || this.media !== null) return;
    const preparing = (async () => {
      const media = await CallMedia.start(() => this.changed());
      try {
        return { media, sdp: await media.offer() };
      } catch (e) {
        media.close();
        throw e;
      }
    })();
    this.preparing = preparing;
    preparing.then(
      ({ media, sdp }) => {
        if (this.preparing !== preparing || this.closedForGood) {
          media.close();
          return;
        }
        this.preparing = null;
        this.media = media;
        this.offer = sdp;
        this.mediaProblem = null;
        this.installKeys();
        this.sendOffer();
        this.changed();
      },
      (e: unknown) => {
        if (this.preparing !== preparing) return;
        this.preparing = null;
        this.mediaProblem = `Audio and video could not start: ${message(e)}`;
        this.changed();
      },
    );
  }

  private stopMedia(): void {
    this.media?.close();
    this.media = null;
    // a preparation under way is for a seat that is gone: it closes what it opened
    this.preparing = null;
    this.offer = null;
    this.keys = null;
  }

  /** The page showed the first remote video frame. */
  frameShown(): void {
    if (this.firstFrameAt === null) {
      this.firstFrameAt = performance.now();
      this.changed();
    }
  }

  private ownName(): string {
    for (const m of this.members.values()) if (m.device_id === this.device.id) return m.display_name;
    return 'You';
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}

/** What `Member.poll_output` returns (crates/conclave-wasm). */
type MemberOutput =
  | { kind: 'send'; bytes: Uint8Array }
  | { kind: 'welcome'; bytes: Uint8Array }
  | { kind: 'event'; event: MemberEvent }
  | { kind: 'other' };

type MemberEvent =
  | { type: 'joined'; epoch: bigint }
  | { type: 'epoch_changed'; epoch: bigint; security_code: string }
  | ({ type: 'member_added' } & GroupMember)
  | { type: 'member_removed'; leaf: number }
  | { type: 'key_material'; epoch: bigint; sframe_epoch_secret: Uint8Array; own_leaf: number }
  | { type: 'application'; sender_leaf: number; data: Uint8Array }
  | { type: 'refused'; reason: string }
  | { type: 'other' };

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
