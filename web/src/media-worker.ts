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

import type { FromWorker, ToWorker, TransformOptions, TransformStats } from './media-protocol';
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

/** Per receiving slot: whose frames it carries now (the Key ID's leaf, once one opened). */
const slotLeaf = new Map<string, number>();

const stats: TransformStats = {
  sealed: 0,
  sealMicros: 0,
  unsealed: 0,
  opened: 0,
  openMicros: 0,
  failed: {},
  active: {},
};

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
    const sealed = cipher.seal(codecOf(frame, options.kind), new Uint8Array(frame.data));
    frame.data = sealed.buffer as ArrayBuffer;
  } catch {
    // too short for its codec's clear prefix, or no key: never send it in the clear
    stats.unsealed += 1;
    return;
  }
  stats.sealMicros += (performance.now() - started) * 1000;
  stats.sealed += 1;
  out.enqueue(frame);
}

function open(frame: EncodedFrame, options: TransformOptions, out: TransformStreamDefaultController<EncodedFrame>): void {
  const key = slotKey(options);
  if (cipher === null) {
    fail(key, options, null, 'no keys yet');
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
  const leaf = opened.sender_leaf;
  frame.data = opened.frame.buffer as ArrayBuffer;
  opened.free();
  stats.openMicros += (performance.now() - started) * 1000;
  stats.opened += 1;
  stats.active[key] = leaf;
  if (slotLeaf.get(key) !== leaf) {
    slotLeaf.set(key, leaf);
    scope.postMessage({ type: 'slot', kind: options.kind, slot: options.slot, leaf });
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
  scope.postMessage({ type: 'stats', stats: { ...stats, failed: { ...stats.failed }, active: { ...stats.active } } });
  stats.sealed = stats.sealMicros = stats.unsealed = stats.opened = stats.openMicros = 0;
  stats.failed = {};
  stats.active = {};
}, 1000);
