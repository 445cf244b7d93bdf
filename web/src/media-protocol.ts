// Messages between the call page (media.ts) and its encoded-transform worker
// (media-worker.ts).

/** What one transform does: seal our `kind` frames, or open those of a receiving slot. */
export interface TransformOptions {
  side: 'send' | 'recv';
  kind: 'audio' | 'video';
  /** Receiving: the slot's index among the slots of its kind. Sending: 0 for the microphone
   * and camera, 1 for the screen. */
  slot: number;
}

/** Frames a slot could not open since the last report. */
export interface Failures {
  kind: 'audio' | 'video';
  slot: number;
  /** The leaf the frames claim to come from (their Key ID; unauthenticated), if readable. */
  leaf: number | null;
  count: number;
  /** The last reason, in the cipher's words. */
  reason: string;
}

/** What the worker did in the last second. */
export interface TransformStats {
  sealed: number;
  /** Time spent sealing, summed, in microseconds. */
  sealMicros: number;
  /** Outgoing frames dropped because they could not be sealed (no keys yet). */
  unsealed: number;
  opened: number;
  openMicros: number;
  /** By slot ("video:3"). */
  failed: Record<string, Failures>;
  /** The leaf each slot opened frames from (by slot, as `failed`). */
  active: Record<string, number>;
}

export type ToWorker =
  | { type: 'epoch'; epoch: bigint; secret: Uint8Array; ownLeaf: number; members: number[] }
  | {
      type: 'streams';
      readable: ReadableStream<never>;
      writable: WritableStream<never>;
      options: TransformOptions;
    };

export type FromWorker =
  | { type: 'slot'; kind: 'audio' | 'video'; slot: number; leaf: number }
  | { type: 'stats'; stats: TransformStats }
  | { type: 'problem'; text: string };
