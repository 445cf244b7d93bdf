// This browser's audio and video in a call: one RTCPeerConnection to the SFU inside the
// conclave server (docs/protocol.md, "Media"), every frame through the encoded-transform
// worker (media-worker.ts) that seals and opens it with the call's MLS-derived SFrame keys.
//
// Like the native participant, the page offers once: its microphone, camera and screen as
// `sendonly` m-lines and a fixed number of `recvonly` *slots* the SFU fills with the others'
// tracks (who spoke last first). The server never says who is on a slot; the worker reads it
// from the Key ID of the frames it opens, so a name on a tile is the one MLS vouches for.
//
// No DOM here beyond the media objects: pages/call.ts shows the slots' streams.

import type { Failures, FromWorker, ToWorker, TransformOptions, TransformStats } from './media-protocol';

/** Slots offered: voices played at once, and a 3x3 grid of videos. As the native default. */
export const SLOTS = { audio: 5, video: 9 } as const;

/** How long a slot shows its sender after its last frame. */
const ACTIVE_FOR_MS = 2500;

/** How long a sender stays flagged after frames from them last failed to open. */
const FAILURE_SHOWN_MS = 5000;

/** Seconds in a row with failures before a sender is flagged: around a membership change a
 * sender already under the new epoch's keys is unreadable until this member has processed
 * the commit, which is normal and brief. */
const FAILING_FOR_REPORTS = 3;

/** What a shared screen is sent at, at most. */
const SCREEN_MAX_FPS = 15;
const SCREEN_MAX_BPS = 1_500_000;

/** The camera and microphone picked before joining (pre-join panel); empty: the default. */
export const chosenDevices = { camera: '', microphone: '' };

/** How frames reach the worker in this browser, or `null` if they cannot: then no call. */
export function transformSupport(): 'script' | 'streams' | null {
  if (typeof window.RTCPeerConnection !== 'function') return null;
  if (typeof (window as unknown as { RTCRtpScriptTransform?: unknown }).RTCRtpScriptTransform === 'function') {
    return 'script';
  }
  if ('createEncodedStreams' in RTCRtpSender.prototype) return 'streams';
  return null;
}

export const UNSUPPORTED =
  'This browser cannot encrypt audio and video end to end (it lacks WebRTC encoded transforms), so it cannot take part in calls. Use a current Chromium, Chrome or Edge.';

export interface Slot {
  kind: 'audio' | 'video';
  index: number;
  /** What the slot plays: the receiving track. */
  stream: MediaStream;
  /** Whose frames the slot carries (the leaf that sealed the last frame that opened). */
  leaf: number | null;
  /** Whether those are the frames of their shared screen. */
  screen: boolean;
  /** `performance.now()` of the last second in which frames opened on it. */
  activeAt: number;
}

/** Frames from one sender that would not open, lately. */
export interface Undecryptable {
  leaf: number;
  kinds: Set<'audio' | 'video'>;
  count: number;
  reason: string;
  at: number;
  /** Consecutive worker reports (seconds) with failures from this sender. */
  streak: number;
}

type Transformable = RTCRtpSender | RTCRtpReceiver;

interface ScriptTransformConstructor {
  new (worker: Worker, options: TransformOptions): unknown;
}

export class CallMedia {
  readonly slots: Slot[] = [];
  /** Our own camera (or nothing): the self view. */
  readonly local = new MediaStream();
  microphoneOn = false;
  cameraOn = false;
  screen: MediaStreamTrack | null = null;
  /** Why camera, microphone or screen are not available, in words. */
  deviceProblem: string | null = null;
  /** Problems with keys or the connection, newest last. */
  problems: string[] = [];
  /** The worker's last report. */
  stats: TransformStats | null = null;
  undecryptable = new Map<number, Undecryptable>();
  connection: RTCPeerConnectionState = 'new';

  private readonly pc: RTCPeerConnection;
  private readonly worker: Worker;
  private readonly audioSender: RTCRtpSender;
  private readonly videoSender: RTCRtpSender;
  private readonly screenSender: RTCRtpSender;
  private microphone: MediaStreamTrack | null = null;
  private camera: MediaStreamTrack | null = null;
  private closed = false;

  private constructor(
    /** How frames reach the worker in this browser. */
    readonly mode: 'script' | 'streams',
    private readonly onChange: () => void,
  ) {
    const config: RTCConfiguration & { encodedInsertableStreams?: boolean } = {
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
    };
    if (mode === 'streams') config.encodedInsertableStreams = true;
    this.pc = new RTCPeerConnection(config);
    this.worker = new Worker(new URL('./media-worker.ts', import.meta.url), { type: 'module', name: 'conclave-media' });
    this.worker.onmessage = (event: MessageEvent<FromWorker>) => this.fromWorker(event.data);
    this.pc.onconnectionstatechange = () => {
      this.connection = this.pc.connectionState;
      this.onChange();
    };

    const send = (kind: 'audio' | 'video', slot: number): RTCRtpSender => {
      const t = this.pc.addTransceiver(kind, { direction: 'sendonly' });
      this.preferCodecs(t, kind);
      this.attach(t.sender, { side: 'send', kind, slot });
      return t.sender;
    };
    this.audioSender = send('audio', 0);
    this.videoSender = send('video', 0);
    this.screenSender = send('video', 1);
    for (const kind of ['audio', 'video'] as const) {
      for (let index = 0; index < SLOTS[kind]; index++) {
        const t = this.pc.addTransceiver(kind, { direction: 'recvonly' });
        this.preferCodecs(t, kind);
        this.attach(t.receiver, { side: 'recv', kind, slot: index });
        this.slots.push({ kind, index, stream: new MediaStream([t.receiver.track]), leaf: null, screen: false, activeAt: 0 });
      }
    }
  }

  /**
   * Opens camera and microphone (those chosen before joining) and prepares the connection.
   * Throws if this browser cannot encrypt media (see `transformSupport`). A camera or
   * microphone that cannot be opened is not fatal: the call goes on without it, and
   * `deviceProblem` says why.
   */
  static async start(onChange: () => void): Promise<CallMedia> {
    const mode = transformSupport();
    if (mode === null) throw new Error(UNSUPPORTED);
    const media = new CallMedia(mode, onChange);
    await media.openDevices();
    return media;
  }

  /** The offer for the SFU (`media_offer`). */
  async offer(): Promise<string> {
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    return this.pc.localDescription?.sdp ?? offer.sdp ?? '';
  }

  /** The SFU's answer (`media_answer`). */
  async answer(sdp: string): Promise<void> {
    if (this.closed) return;
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
  }

  /** A new MLS epoch's SFrame keys: frames are sealed under them from now on. */
  setKeys(epoch: bigint, secret: Uint8Array, ownLeaf: number, members: number[]): void {
    this.post({ type: 'epoch', epoch, secret, ownLeaf, members });
  }

  /** Slots showing someone now. */
  activeSlots(kind: 'audio' | 'video'): Slot[] {
    const now = performance.now();
    return this.slots.filter((s) => s.kind === kind && s.leaf !== null && now - s.activeAt < ACTIVE_FOR_MS);
  }

  /** Senders whose frames fail to open, lately. */
  failing(): Undecryptable[] {
    const now = performance.now();
    return [...this.undecryptable.values()].filter(
      (u) => u.streak >= FAILING_FOR_REPORTS && now - u.at < FAILURE_SHOWN_MS,
    );
  }

  async setMicrophone(on: boolean): Promise<void> {
    if (on && this.microphone === null) {
      await this.openDevices('audio');
    }
    if (this.microphone !== null) this.microphone.enabled = on;
    // Muted sends nothing at all, so the SFU gives the slot to someone else.
    await this.audioSender.replaceTrack(on ? this.microphone : null);
    this.microphoneOn = on && this.microphone !== null;
    this.onChange();
  }

  async setCamera(on: boolean): Promise<void> {
    if (on) {
      if (this.camera === null) await this.openDevices('video');
    } else if (this.camera !== null) {
      // Off means off: the camera's light goes out.
      this.camera.stop();
      this.local.removeTrack(this.camera);
      this.camera = null;
    }
    await this.videoSender.replaceTrack(on ? this.camera : null);
    this.cameraOn = on && this.camera !== null;
    this.onChange();
  }

  /** Shares a screen, window or tab the user picks; resolves once sharing (or refused). */
  async shareScreen(): Promise<void> {
    if (this.screen !== null) return;
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (e) {
      this.deviceProblem = `Screen sharing did not start: ${describe(e)}`;
      this.onChange();
      return;
    }
    const track = stream.getVideoTracks()[0];
    if (track === undefined) return;
    track.contentHint = 'detail';
    track.onended = () => void this.stopScreen();
    this.screen = track;
    await this.screenSender.replaceTrack(track);
    // Screens change little from frame to frame: a sharp picture at a few frames a second
    // serves better than motion, and costs everyone less to encode, carry and decode.
    const parameters = this.screenSender.getParameters();
    for (const encoding of parameters.encodings) {
      encoding.maxFramerate = SCREEN_MAX_FPS;
      encoding.maxBitrate = SCREEN_MAX_BPS;
    }
    await this.screenSender.setParameters(parameters).catch(() => {
      // the browser keeps its own choice
    });
    this.onChange();
  }

  async stopScreen(): Promise<void> {
    const track = this.screen;
    if (track === null) return;
    this.screen = null;
    track.onended = null;
    track.stop();
    await this.screenSender.replaceTrack(null);
    this.onChange();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of [this.microphone, this.camera, this.screen]) t?.stop();
    this.pc.close();
    this.worker.terminate();
  }

  // ---- inside ----------------------------------------------------------------------

  /** Opens the chosen camera and/or microphone and puts them on their senders. */
  private async openDevices(only?: 'audio' | 'video'): Promise<void> {
    if (!navigator.mediaDevices?.getUserMedia) {
      this.deviceProblem = 'This browser gives the page no access to camera or microphone.';
      return;
    }
    const wanted = (kind: 'audio' | 'video'): MediaTrackConstraints | boolean => {
      if (only !== undefined && only !== kind) return false;
      const id = kind === 'audio' ? chosenDevices.microphone : chosenDevices.camera;
      return id !== '' ? { deviceId: { ideal: id } } : true;
    };
    const tracks: MediaStreamTrack[] = [];
    const problems: string[] = [];
    try {
      tracks.push(...(await navigator.mediaDevices.getUserMedia({ audio: wanted('audio'), video: wanted('video') })).getTracks());
    } catch {
      // One of the two may work on its own (a camera in use elsewhere, a denied microphone).
      for (const kind of ['audio', 'video'] as const) {
        const constraints = wanted(kind);
        if (constraints === false) continue;
        try {
          tracks.push(...(await navigator.mediaDevices.getUserMedia({ [kind]: constraints })).getTracks());
        } catch (e) {
          problems.push(`${kind === 'audio' ? 'Microphone' : 'Camera'}: ${describe(e)}`);
        }
      }
    }
    this.deviceProblem = problems.length > 0 ? problems.join(' ') : null;
    for (const track of tracks) {
      if (track.kind === 'audio') {
        this.microphone = track;
        this.microphoneOn = true;
        await this.audioSender.replaceTrack(track);
      } else {
        this.camera = track;
        this.cameraOn = true;
        this.local.addTrack(track);
        await this.videoSender.replaceTrack(track);
      }
    }
  }

  /** VP8 for video (what every participant, native or browser, decodes), Opus for audio. */
  private preferCodecs(transceiver: RTCRtpTransceiver, kind: 'audio' | 'video'): void {
    const capabilities = RTCRtpReceiver.getCapabilities(kind);
    if (capabilities === null || typeof transceiver.setCodecPreferences !== 'function') return;
    const keep = kind === 'video' ? ['video/vp8', 'video/rtx'] : ['audio/opus'];
    const codecs = capabilities.codecs.filter((c) => keep.includes(c.mimeType.toLowerCase()));
    if (codecs.length > 0) transceiver.setCodecPreferences(codecs);
  }

  private attach(target: Transformable, options: TransformOptions): void {
    if (this.mode === 'script') {
      const Transform = (window as unknown as { RTCRtpScriptTransform: ScriptTransformConstructor }).RTCRtpScriptTransform;
      (target as unknown as { transform: unknown }).transform = new Transform(this.worker, options);
      return;
    }
    const { readable, writable } = (
      target as unknown as { createEncodedStreams(): { readable: ReadableStream<never>; writable: WritableStream<never> } }
    ).createEncodedStreams();
    this.worker.postMessage({ type: 'streams', readable, writable, options } satisfies ToWorker, [readable, writable]);
  }

  private post(message: ToWorker): void {
    if (!this.closed) this.worker.postMessage(message);
  }

  private fromWorker(message: FromWorker): void {
    switch (message.type) {
      case 'slot': {
        const slot = this.slotOf(message.kind, message.slot);
        if (slot !== undefined) {
          slot.leaf = message.sender.leaf;
          slot.screen = message.sender.screen;
          slot.activeAt = performance.now();
        }
        break;
      }
      case 'stats': {
        this.stats = message.stats;
        const now = performance.now();
        for (const [key, sender] of Object.entries(message.stats.active)) {
          const [kind, index] = key.split(':');
          const slot = this.slotOf(kind === 'audio' ? 'audio' : 'video', Number(index));
          if (slot !== undefined) {
            slot.leaf = sender.leaf;
            slot.screen = sender.screen;
            slot.activeAt = now;
          }
        }
        const failedNow = new Set<number>();
        for (const f of Object.values(message.stats.failed)) {
          this.failed(f, now);
          if (f.leaf !== null) failedNow.add(f.leaf);
        }
        for (const [leaf, entry] of this.undecryptable) {
          if (failedNow.has(leaf)) {
            entry.streak += 1;
          } else if (entry.streak < FAILING_FOR_REPORTS || now - entry.at >= FAILURE_SHOWN_MS) {
            // a burst that ended by itself, or failures long over
            this.undecryptable.delete(leaf);
          }
        }
        break;
      }
      case 'problem':
        this.problems.push(message.text);
        if (this.problems.length > 10) this.problems.shift();
        break;
    }
    this.onChange();
  }

  private failed(f: Failures, now: number): void {
    if (f.leaf === null) return;
    const entry = this.undecryptable.get(f.leaf) ?? { leaf: f.leaf, kinds: new Set(), count: 0, reason: f.reason, at: now, streak: 0 };
    entry.kinds.add(f.kind);
    entry.count += f.count;
    entry.reason = f.reason;
    entry.at = now;
    this.undecryptable.set(f.leaf, entry);
  }

  private slotOf(kind: 'audio' | 'video', index: number): Slot | undefined {
    return this.slots.find((s) => s.kind === kind && s.index === index);
  }
}

function describe(e: unknown): string {
  if (e instanceof DOMException) {
    switch (e.name) {
      case 'NotAllowedError':
        return 'permission was denied.';
      case 'NotFoundError':
        return 'none was found.';
      case 'NotReadableError':
        return 'it is in use by another program or cannot be read.';
      case 'OverconstrainedError':
        return 'the chosen device is no longer available.';
      default:
        return e.message;
    }
  }
  return e instanceof Error ? e.message : String(e);
}
