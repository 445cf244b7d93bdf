// The call's audio and video: the grid of who is on camera (the active speaker outlined),
// our own self view, the voices, the microphone / camera / screen buttons, and what went
// wrong with media in words ("cannot decrypt video from Dana"). Reads a `CallSession`'s
// `CallMedia` (../media.ts); names come from the MLS credentials of the frames' senders.

import type { CallSession } from '../call';
import { h, replaceChildren, sentence } from '../dom';

interface Tile {
  element: HTMLElement;
  video: HTMLVideoElement;
  label: HTMLElement;
}

export function stageView(session: CallSession): { element: HTMLElement; update(): void } {
  const grid = h('div', { class: 'stage__grid', role: 'list', 'aria-label': 'Video' });
  const voices = h('div', { class: 'stage__voices', hidden: true });
  const status = h('div', { class: 'stage__status', role: 'status', 'aria-live': 'polite' });
  const failures = h('div', { class: 'stage__failures', role: 'alert' });

  const micButton = h('button', { type: 'button', class: 'button button--secondary stage__mic', 'aria-pressed': 'false' }, 'Mute');
  const camButton = h('button', { type: 'button', class: 'button button--secondary stage__camera', 'aria-pressed': 'false' }, 'Camera off');
  const screenButton = h('button', { type: 'button', class: 'button button--secondary stage__screen', 'aria-pressed': 'false' }, 'Share screen');
  micButton.addEventListener('click', () => {
    const media = session.media;
    if (media !== null) void media.setMicrophone(!media.microphoneOn);
  });
  camButton.addEventListener('click', () => {
    const media = session.media;
    if (media !== null) void media.setCamera(!media.cameraOn);
  });
  screenButton.addEventListener('click', () => {
    const media = session.media;
    if (media === null) return;
    void (media.screen !== null ? media.stopScreen() : media.shareScreen());
  });
  const controls = h('div', { class: 'stage__controls actions', role: 'group', 'aria-label': 'Your audio and video' }, micButton, camButton, screenButton);

  // what the encryption does, for the curious and for support: per second, from the worker
  const details = h('dl', { class: 'stage__numbers' });
  const detailsBox = h('details', { class: 'stage__details' }, h('summary', null, 'Media details'), details);

  const element = h('section', { class: 'stage', 'aria-label': 'Audio and video' }, status, failures, grid, controls, detailsBox, voices);

  const own = tile('You', true);
  own.element.classList.add('tile--own');
  let shownMedia: typeof session.media = null;
  const tiles = new Map<number, Tile>();
  const audios: HTMLAudioElement[] = [];

  /** Builds the slots' elements for new media, once. */
  const attach = (): void => {
    const media = session.media;
    shownMedia = media;
    tiles.clear();
    audios.length = 0;
    replaceChildren(grid);
    replaceChildren(voices);
    if (media === null) return;
    own.video.srcObject = media.local;
    grid.append(own.element);
    for (const slot of media.slots) {
      if (slot.kind === 'audio') {
        const audio = h('audio', { autoplay: true, class: 'stage__audio', 'data-slot': slot.index });
        audio.srcObject = slot.stream;
        audios.push(audio);
        voices.append(audio);
        continue;
      }
      const t = tile('', false);
      t.element.dataset.slot = String(slot.index);
      t.video.srcObject = slot.stream;
      watchFirstFrame(t.video, session);
      tiles.set(slot.index, t);
      grid.append(t.element);
    }
  };

  const update = (): void => {
    const media = session.media;
    if (media !== shownMedia) attach();
    element.hidden = session.phase !== 'in_call' && session.phase !== 'reconnecting';

    // how media stands
    const lines: string[] = [];
    if (session.mediaProblem !== null) lines.push(session.mediaProblem);
    if (media === null && session.mediaProblem === null) lines.push('Starting audio and video…');
    if (media !== null) {
      if (media.connection === 'new' || media.connection === 'connecting') lines.push('Connecting audio and video…');
      if (media.connection === 'failed') lines.push('Audio and video could not reach the server. The call’s UDP port may be blocked on this network.');
      if (media.connection === 'disconnected') lines.push('Audio and video were interrupted; reconnecting…');
      if (media.deviceProblem !== null) lines.push(media.deviceProblem);
      lines.push(...media.problems);
    }
    replaceChildren(status, lines.map((l) => h('p', null, sentence(l))));
    status.dataset.connection = media?.connection ?? 'none';
    if (session.firstFrameAt !== null) {
      element.dataset.firstFrameMs = String(Math.round(session.firstFrameAt - session.pressedAt));
    }

    // frames from someone that do not open: dropped, and said
    const failing = media?.failing() ?? [];
    replaceChildren(
      failures,
      failing.map((f) => {
        const who = session.members.get(f.leaf)?.display_name ?? `an unknown sender (leaf ${f.leaf})`;
        const what = [...f.kinds].sort().join(' and ');
        return h('p', { class: 'notice notice--warning stage__failure', 'data-leaf': f.leaf }, `Cannot decrypt ${what} from ${who}: ${f.reason}. Those frames are dropped.`);
      }),
    );

    // controls
    const on = media !== null;
    micButton.disabled = camButton.disabled = screenButton.disabled = !on;
    const mic = media?.microphoneOn ?? false;
    micButton.textContent = mic ? 'Mute' : 'Unmute';
    micButton.setAttribute('aria-pressed', String(!mic));
    micButton.setAttribute('aria-label', mic ? 'Mute your microphone' : 'Unmute your microphone');
    const cam = media?.cameraOn ?? false;
    camButton.textContent = cam ? 'Camera off' : 'Camera on';
    camButton.setAttribute('aria-pressed', String(!cam));
    const sharing = media?.screen != null;
    screenButton.textContent = sharing ? 'Stop sharing' : 'Share screen';
    screenButton.setAttribute('aria-pressed', String(sharing));
    if (media === null) return;
    const numbers: [string, string][] = [
      ['Connection', media.connection],
      ['Frame encryption', media.mode === 'script' ? 'worker (RTCRtpScriptTransform)' : 'worker (createEncodedStreams)'],
    ];
    const stats = media.stats;
    if (stats !== null) {
      for (const [what, side] of [['Sealed', stats.sealed], ['Opened', stats.opened]] as const) {
        for (const kind of ['audio', 'video'] as const) {
          const w = side[kind];
          const each = w.frames > 0 ? w.micros.toFixed(1) : '–';
          numbers.push([`${what} ${kind}`, `${w.frames} frames/s, ${each} µs each`]);
        }
      }
      numbers.push(['Not sent (no key yet)', String(stats.unsealed)]);
    }
    replaceChildren(
      details,
      numbers.flatMap(([k, v]) => [h('dt', null, k), h('dd', { 'data-name': k }, v)]),
    );

    // the grid: who is on which slot, by the Key ID of the frames that opened there
    own.element.hidden = !cam;
    const speakerDevice = session.roster.find((e) => e.participant === session.speaker)?.device_id;
    const active = new Set(media.activeSlots('video').map((s) => s.index));
    for (const slot of media.slots) {
      if (slot.kind !== 'video') continue;
      const t = tiles.get(slot.index);
      if (t === undefined) continue;
      const shown = active.has(slot.index) && slot.leaf !== null;
      t.element.hidden = !shown;
      if (!shown || slot.leaf === null) continue;
      const member = session.members.get(slot.leaf);
      const who = member?.display_name ?? 'Someone not in the group';
      t.label.textContent = slot.screen ? `${who}’s screen` : who;
      t.element.classList.toggle('tile--screen', slot.screen);
      t.element.dataset.leaf = String(slot.leaf);
      t.element.dataset.device = member?.device_id ?? '';
      t.element.classList.toggle('tile--speaking', member !== undefined && member.device_id === speakerDevice);
    }
    for (const audio of audios) {
      const slot = media.slots.find((s) => s.kind === 'audio' && s.index === Number(audio.dataset.slot));
      audio.dataset.leaf = slot?.leaf !== null && slot !== undefined ? String(slot.leaf) : '';
    }
  };

  return { element, update };
}

function tile(name: string, own: boolean): Tile {
  const video = h('video', { class: 'tile__video', autoplay: true, playsinline: true, muted: true });
  video.muted = true;
  const label = h('span', { class: 'tile__name' }, name);
  const element = h('div', { class: `tile${own ? ' tile--mirror' : ''}`, role: 'listitem' }, video, label);
  if (own) video.setAttribute('aria-label', 'Your camera');
  return { element, video, label };
}

/** Tells the session when the first frame of a remote video is shown. */
function watchFirstFrame(video: HTMLVideoElement, session: CallSession): void {
  const withCallback = video as HTMLVideoElement & {
    requestVideoFrameCallback?(callback: () => void): number;
  };
  if (typeof withCallback.requestVideoFrameCallback === 'function') {
    withCallback.requestVideoFrameCallback(() => session.frameShown());
  } else {
    video.addEventListener('loadeddata', () => session.frameShown(), { once: true });
  }
}
