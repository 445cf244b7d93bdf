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

/** Who a slot's frames come from: the Key ID's leaf, and whether from their screen. */
export interface SlotSender {
  leaf: number;
  screen: boolean;
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

/** Frames of one kind through one direction, and the time spent on them in the cipher. */
export interface Work {
  frames: number;
  /** The median frame's time in the cipher, in microseconds (the median, because a thread
   * preempted in the middle of one frame would otherwise dominate a mean). */
  micros: number;
}

/** What the worker did in the last second. */
export interface TransformStats {
  sealed: { audio: Work; video: Work };
  opened: { audio: Work; video: Work };
  /** Outgoing frames dropped because they could not be sealed (no keys yet). */
  unsealed: number;
  /** Incoming frames dropped because no keys came yet (media connects while the seat joins
   * the group): not a failure of their sender. */
  unopened: number;
  /** By slot ("video:3"). */
  failed: Record<string, Failures>;
  /** Whose frames each slot opened (by slot, as `failed`). */
  active: Record<string, SlotSender>;
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
  | { type: 'slot'; kind: 'audio' | 'video'; slot: number; sender: SlotSender }
  | { type: 'stats'; stats: TransformStats }
  | { type: 'problem'; text: string };
