// The encoded-transform worker: every frame this browser sends is sealed here, and every
// frame it receives opened here, by the wasm `FrameCipher` (crates/conclave-frame, SFrame with
// keys from the call's MLS epochs). Nothing leaves this browser unencrypted: a frame that
// cannot be sealed (no key yet) is dropped, and a frame that does not open is dropped and
// counted for the page ("cannot decrypt video from Dana"), never passed to the decoder.
//
// Frames arrive here in one of two ways, whichever the browser offers (media.ts picks):
// - `RTCRtpScriptTransform`: the browser fires `rtctransform` with the transformer's streams
//   and the options the page gave;
// - `createEncodedStreams` (older Chromium): the page transfers the streams in a `streams`
//   message.
// Either way one cipher seals all of this member's tracks, so SFrame counters never repeat.

import type { FromWorker, SlotSender, ToWorker, TransformOptions, TransformStats } from './media-protocol';
import { loadWasm, type ConclaveWasm } from './wasm';

type FrameCipher = InstanceType<ConclaveWasm['FrameCipher']>;

/** What the browser hands the transform (RTCEncodedVideoFrame / RTCEncodedAudioFrame). */
interface EncodedFrame {
  data: ArrayBuffer;
  getMetadata?(): { mimeType?: string };
}

interface Transformer {
  readable: ReadableStream<EncodedFrame>;
  writable: WritableStream<EncodedFrame>;
  options: TransformOptions;
}

interface WorkerScope {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  onrtctransform: ((event: { transformer: Transformer }) => void) | null;
  postMessage(message: FromWorker): void;
}

const scope = self as unknown as WorkerScope;

let cipher: FrameCipher | null = null;
/** The epoch sealed under, once keys arrived; before that outgoing frames are dropped. */
let epoch: bigint | null = null;
const ready: Promise<void> = loadWasm().then((wasm) => {
  cipher = new wasm.FrameCipher(2000);
});

/** Per receiving slot: whose frames it carries now (the Key ID's leaf and source, once one
 * opened). */
const slotSender = new Map<string, SlotSender>();

/** The sending transform of the screen (`TransformOptions.slot`). */
const SCREEN = 1;

const fresh = (): TransformStats => ({
  sealed: { audio: { frames: 0, micros: 0 }, video: { frames: 0, micros: 0 } },
  opened: { audio: { frames: 0, micros: 0 }, video: { frames: 0, micros: 0 } },
  unsealed: 0,
  unopened: 0,
  failed: {},
  active: {},
});
let stats = fresh();
/** This second's per-frame times, by direction and kind ("sealed audio"). */
let times = new Map<string, number[]>();

function timed(direction: 'sealed' | 'opened', kind: 'audio' | 'video', started: number): void {
  stats[direction][kind].frames += 1;
  const key = `${direction} ${kind}`;
  const list = times.get(key) ?? [];
  list.push((performance.now() - started) * 1000);
  times.set(key, list);
}

function slotKey(o: TransformOptions): string {
  return `${o.kind}:${o.slot}`;
}

/** The codec the SFrame clear prefix follows: from the frame's metadata, else the kind's
 * default (the page negotiates VP8 for video and Opus for audio). */
function codecOf(frame: EncodedFrame, kind: 'audio' | 'video'): string {
  const mime = frame.getMetadata?.().mimeType;
  const sub = typeof mime === 'string' ? mime.split('/')[1]?.toLowerCase() : undefined;
  return sub ?? (kind === 'audio' ? 'opus' : 'vp8');
}

function seal(frame: EncodedFrame, options: TransformOptions, out: TransformStreamDefaultController<EncodedFrame>): void {
  if (cipher === null || epoch === null) {
    stats.unsealed += 1;
    return;
  }
  const started = performance.now();
  try {
    const codec = codecOf(frame, options.kind);
    const data = new Uint8Array(frame.data);
    // the screen is a stream of its own (its own key and counter); receivers learn which
    const sealed = options.slot === SCREEN ? cipher.seal_screen(codec, data) : cipher.seal(codec, data);
    frame.data = sealed.buffer as ArrayBuffer;
  } catch {
    // too short for its codec's clear prefix, or no key: never send it in the clear
    stats.unsealed += 1;
    return;
  }
  timed('sealed', options.kind, started);
  out.enqueue(frame);
}

function open(frame: EncodedFrame, options: TransformOptions, out: TransformStreamDefaultController<EncodedFrame>): void {
  const key = slotKey(options);
  if (cipher === null) {
    stats.unopened += 1;
    return;
  }
  const started = performance.now();
  let opened: ConclaveWasm['OpenedFrame']['prototype'];
  try {
    opened = cipher.open(codecOf(frame, options.kind), new Uint8Array(frame.data), performance.now());
  } catch (e) {
    const claimed = cipher.claimed_sender(codecOf(frame, options.kind), new Uint8Array(frame.data));
    fail(key, options, claimed ?? null, e instanceof Error ? e.message : String(e));
    return;
  }
  const sender: SlotSender = { leaf: opened.sender_leaf, screen: opened.screen };
  frame.data = opened.frame.buffer as ArrayBuffer;
  opened.free();
  timed('opened', options.kind, started);
  stats.active[key] = sender;
  const before = slotSender.get(key);
  if (before?.leaf !== sender.leaf || before.screen !== sender.screen) {
    slotSender.set(key, sender);
    scope.postMessage({ type: 'slot', kind: options.kind, slot: options.slot, sender });
  }
  out.enqueue(frame);
}

function fail(key: string, options: TransformOptions, leaf: number | null, reason: string): void {
  const entry = (stats.failed[key] ??= { kind: options.kind, slot: options.slot, leaf, count: 0, reason });
  entry.count += 1;
  entry.leaf = leaf ?? entry.leaf;
  entry.reason = reason;
}

function pipe(transformer: Transformer): void {
  const { options } = transformer;
  const step = options.side === 'send' ? seal : open;
  transformer.readable
    .pipeThrough(
      new TransformStream<EncodedFrame, EncodedFrame>({
        async start() {
          await ready;
        },
        transform(frame, controller) {
          step(frame, options, controller);
        },
      }),
    )
    .pipeTo(transformer.writable)
    .catch(() => {
      // the track ended or the connection closed
    });
}

scope.onrtctransform = (event) => pipe(event.transformer);

scope.onmessage = (event) => {
  const message = event.data;
  switch (message.type) {
    case 'streams':
      pipe({ readable: message.readable, writable: message.writable, options: message.options });
      break;
    case 'epoch':
      void ready.then(() => {
        if (cipher === null) return;
        try {
          cipher.set_epoch(message.epoch, message.secret, message.ownLeaf, Uint32Array.from(message.members), performance.now());
          epoch = message.epoch;
        } catch (e) {
          scope.postMessage({ type: 'problem', text: `New media keys could not be installed: ${e instanceof Error ? e.message : String(e)}` });
        }
      });
      break;
  }
};

// Once a second: what happened since the last report.
setInterval(() => {
  for (const direction of ['sealed', 'opened'] as const) {
    for (const kind of ['audio', 'video'] as const) {
      const list = (times.get(`${direction} ${kind}`) ?? []).sort((a, b) => a - b);
      stats[direction][kind].micros = list[Math.floor(list.length / 2)] ?? 0;
    }
  }
  scope.postMessage({ type: 'stats', stats });
  stats = fresh();
  times = new Map();
}, 1000);
