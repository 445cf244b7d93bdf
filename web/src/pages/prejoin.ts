// "Joining from this browser": the pre-join check on a meeting's page. It shows the camera
// and microphone this browser would use, this browser's device and its trust, and what the
// server's policy would decide for joining now from here (POST /api/meetings/{id}/preview,
// which grants nothing and is not audited). The first visit registers the browser as a
// device of the account (src/device.ts). When the verdict is admit or lobby, Join asks for
// real (signed challenge, POST /api/meetings/{id}/join: audited) and hands the answer to
// the call page (./call.ts); a refusal is shown here with its reasons.

import * as api from '../api';
import { navigate } from '../app';
import { askToJoin, handOver } from '../call';
import { chosenDevices, transformSupport, UNSUPPORTED } from '../media';
import { DeviceGone, ensureDevice, refreshCredential, registerAgain, type Device } from '../device';
import { append, h, replaceChildren, sentence, uid } from '../dom';
import { capitalise } from '../format';

export function prejoinPanel(meeting: api.MeetingInfo, session: api.SessionInfo): HTMLElement {
  const titleId = uid('panel');
  const media = mediaPreview();
  const check = joinCheck(meeting, session.user.id);
  const panel = h(
    'section',
    { class: 'panel prejoin', 'aria-labelledby': titleId },
    h('h2', { id: titleId, class: 'panel__title' }, 'Joining from this browser'),
    h('div', { class: 'prejoin__grid' }, media.element, check.element),
  );
  // Browsers start audio only after a gesture: any click in the panel lets the meter run.
  panel.addEventListener('click', () => media.wake());
  // Runs once the panel is on the page (the media loop stops when it leaves).
  queueMicrotask(() => {
    void media.start(panel);
    void check.run();
  });
  return panel;
}

// ---- the server's verdict ------------------------------------------------------

function joinCheck(meeting: api.MeetingInfo, userId: string): { element: HTMLElement; run(): Promise<void> } {
  const deviceInfo = h('dl', { class: 'summary-list prejoin__device' });
  const verdict = h('div', { class: 'prejoin__verdict', role: 'status', 'aria-live': 'polite' });
  const again = h('button', { type: 'button', class: 'button button--secondary' }, 'Check again');
  const join = h('button', { type: 'button', class: 'button button--primary', disabled: true }, 'Join');
  let running = false;
  /** Whether the last check said admit or lobby. */
  let joinable = false;
  // a browser that cannot encrypt media end to end cannot join at all
  const supported = transformSupport() !== null;

  const showDevice = (device: Device | null): void => {
    if (device === null) {
      replaceChildren(deviceInfo);
      return;
    }
    replaceChildren(
      deviceInfo,
      h('div', null, h('dt', null, 'This browser'), h('dd', null, device.name)),
      h(
        'div',
        null,
        h('dt', null, 'Device trust'),
        h('dd', null, h('span', { class: `badge badge--trust badge--trust-${device.trust}` }, capitalise(device.trust)), ' ', h('span', { class: 'muted' }, trustHint(device.trust))),
      ),
    );
  };

  const run = async (mode: 'check' | 'register-again' = 'check'): Promise<void> => {
    if (running) return;
    running = true;
    again.disabled = true;
    join.disabled = true;
    joinable = false;
    verdict.className = 'prejoin__verdict';
    replaceChildren(verdict, h('p', { class: 'loading' }, 'Checking whether you can join from here…'));
    try {
      let device = mode === 'register-again' ? await registerAgain(userId) : await ensureDevice(userId);
      let decision: api.JoinDecision;
      try {
        decision = await api.previewJoin(meeting.id, device.credential);
      } catch (e) {
        // The trust changed since the credential was issued: fetch one that carries it.
        if (!(e instanceof api.ApiError && e.status === 409)) throw e;
        device = await refreshCredential(userId);
        decision = await api.previewJoin(meeting.id, device.credential);
      }
      showDevice({ ...device, trust: decision.device_trust });
      showDecision(verdict, decision, device);
      joinable = (decision.outcome === 'admit' || decision.outcome === 'lobby') && supported;
    } catch (e) {
      if (e instanceof api.SessionEnded) return;
      showDevice(null);
      if (e instanceof DeviceGone || (e instanceof api.ApiError && e.status === 403 && /revoked|does not have/.test(e.message))) {
        showGone(verdict, e instanceof DeviceGone ? e.message : sentence(e.message), () => void run('register-again'));
      } else {
        verdict.className = 'prejoin__verdict prejoin__verdict--error';
        replaceChildren(
          verdict,
          h('p', null, 'The check could not be done: ', e instanceof Error ? sentence(e.message) : String(e)),
        );
      }
    } finally {
      running = false;
      again.disabled = false;
      join.disabled = !joinable;
    }
  };
  again.addEventListener('click', () => void run());

  // Join for real: a signed challenge, then the policy decides again (and audits it).
  const doJoin = async (): Promise<void> => {
    if (running) return;
    running = true;
    again.disabled = true;
    join.disabled = true;
    replaceChildren(verdict, h('p', { class: 'loading' }, 'Asking to join…'));
    verdict.className = 'prejoin__verdict';
    const pressedAt = performance.now();
    try {
      const request = { ...(await askToJoin(meeting.id, userId)), pressedAt };
      const { answer } = request;
      if ((answer.outcome === 'admit' || answer.outcome === 'lobby') && answer.ticket !== null) {
        handOver(meeting.id, request);
        navigate(`/meetings/${meeting.id}/call`);
        return;
      }
      joinable = false;
      showDecision(verdict, answer, request.device);
    } catch (e) {
      if (e instanceof api.SessionEnded) return;
      verdict.className = 'prejoin__verdict prejoin__verdict--error';
      replaceChildren(
        verdict,
        h('p', null, 'Joining did not work: ', e instanceof Error ? sentence(e.message) : String(e)),
      );
    } finally {
      running = false;
      again.disabled = false;
      join.disabled = !joinable;
    }
  };
  join.addEventListener('click', () => void doJoin());

  const element = h(
    'div',
    { class: 'prejoin__check' },
    deviceInfo,
    verdict,
    supported ? null : h('p', { class: 'notice notice--error prejoin__unsupported', role: 'alert' }, UNSUPPORTED),
    h('div', { class: 'actions' }, join, again),
  );
  return { element, run: () => run() };
}

function trustHint(trust: string): string {
  switch (trust) {
    case 'managed':
      return 'Your organisation manages this device.';
    case 'personal':
      return 'Meetings that need a managed device stay closed to it until an admin marks it as managed.';
    default:
      return '';
  }
}

function showDecision(verdict: HTMLElement, decision: api.JoinDecision, device: Device): void {
  const reasons = decision.reasons.map((r) => h('li', { 'data-code': r.code }, sentence(r.message)));
  const trust = decision.device_trust === 'managed' || decision.device_trust === 'personal' ? `${decision.device_trust} device` : `device trust ${decision.device_trust}`;
  const network = decision.network.trusted
    ? `trusted network ${decision.network.name ?? ''}`.trim()
    : 'untrusted network';
  switch (decision.outcome) {
    case 'admit':
      verdict.className = 'prejoin__verdict prejoin__verdict--admit';
      replaceChildren(verdict, h('p', { class: 'prejoin__outcome' }, `You can join: ${network}, ${trust}.`));
      break;
    case 'lobby':
      verdict.className = 'prejoin__verdict prejoin__verdict--lobby';
      replaceChildren(
        verdict,
        h('p', { class: 'prejoin__outcome' }, 'You will wait in the lobby until a host lets you in.'),
        reasons.length > 0 ? h('ul', { class: 'prejoin__reasons' }, reasons) : null,
        h('p', { class: 'muted' }, `Connecting from: ${network}, ${trust}.`),
      );
      break;
    default:
      verdict.className = 'prejoin__verdict prejoin__verdict--deny';
      replaceChildren(
        verdict,
        h('p', { class: 'prejoin__outcome' }, 'You cannot join from here:'),
        h('ul', { class: 'prejoin__reasons' }, reasons),
      );
  }
  if (device.justRegistered) {
    append(verdict, [h('p', { class: 'muted' }, `This browser is now registered as a device of your account (“${device.name}”).`)]);
  }
}

function showGone(verdict: HTMLElement, message: string, registerAgainNow: () => void): void {
  verdict.className = 'prejoin__verdict prejoin__verdict--deny';
  const button = h('button', { type: 'button', class: 'button button--primary' }, 'Register this browser again');
  button.addEventListener('click', registerAgainNow);
  replaceChildren(
    verdict,
    h('p', { class: 'prejoin__outcome' }, message),
    h(
      'p',
      null,
      'You can register this browser as a new device of your account. It starts as a personal device; an admin decides whether it becomes managed.',
    ),
    button,
  );
}

// ---- camera and microphone -------------------------------------------------------

function mediaPreview(): { element: HTMLElement; start(panel: HTMLElement): Promise<void>; wake(): void } {
  const video = h('video', { class: 'prejoin__video', autoplay: true, muted: true, playsinline: true, 'aria-label': 'Your camera' });
  video.muted = true;
  const status = h('p', { class: 'prejoin__media-status', role: 'status', hidden: true });
  const levelId = uid('level');
  const level = h('meter', { id: levelId, class: 'prejoin__level', min: 0, max: 1, value: 0 });
  const camera = h('select', { id: uid('camera') });
  const microphone = h('select', { id: uid('microphone') });
  const element = h(
    'div',
    { class: 'prejoin__media' },
    h('div', { class: 'prejoin__video-frame' }, video),
    status,
    h('div', { class: 'prejoin__level-row' }, h('label', { for: levelId }, 'Microphone level'), level),
    h('div', { class: 'field' }, h('label', { for: camera.id, class: 'field__label' }, 'Camera'), camera),
    h('div', { class: 'field' }, h('label', { for: microphone.id, class: 'field__label' }, 'Microphone'), microphone),
  );

  let stream: MediaStream | null = null;
  let audio: { ctx: AudioContext; analyser: AnalyserNode; samples: Float32Array<ArrayBuffer> } | null = null;
  let loop = 0;
  let host: HTMLElement | null = null;

  const stop = (): void => {
    stream?.getTracks().forEach((t) => t.stop());
    stream = null;
    video.srcObject = null;
    if (audio) void audio.ctx.close().catch(() => {});
    audio = null;
    level.value = 0;
  };

  const tick = (): void => {
    if (host && !host.isConnected) {
      stop();
      return;
    }
    if (audio) {
      audio.analyser.getFloatTimeDomainData(audio.samples);
      let sum = 0;
      for (const s of audio.samples) sum += s * s;
      level.value = Math.min(1, Math.sqrt(sum / audio.samples.length) * 4);
    }
    loop = requestAnimationFrame(tick);
  };

  const say = (text: string | null): void => {
    status.hidden = text === null;
    status.textContent = text ?? '';
  };

  const open = async (): Promise<void> => {
    stop();
    if (!navigator.mediaDevices?.getUserMedia) {
      say('This browser offers no camera or microphone to this page.');
      camera.disabled = microphone.disabled = true;
      return;
    }
    const video_: MediaTrackConstraints | boolean = camera.value ? { deviceId: { exact: camera.value } } : true;
    const audio_: MediaTrackConstraints | boolean = microphone.value ? { deviceId: { exact: microphone.value } } : true;
    let got: MediaStream | null = null;
    let failure: unknown = null;
    try {
      got = await navigator.mediaDevices.getUserMedia({ video: video_, audio: audio_ });
    } catch (e) {
      failure = e;
      // One of the two may be missing: take what there is.
      if (!(e instanceof DOMException && e.name === 'NotAllowedError')) {
        const tracks: MediaStreamTrack[] = [];
        for (const c of [{ video: video_ }, { audio: audio_ }]) {
          try {
            tracks.push(...(await navigator.mediaDevices.getUserMedia(c)).getTracks());
          } catch {
            // reported below
          }
        }
        if (tracks.length > 0) got = new MediaStream(tracks);
      }
    }
    if (host && !host.isConnected) {
      got?.getTracks().forEach((t) => t.stop());
      return;
    }
    stream = got;
    const hasVideo = (got?.getVideoTracks().length ?? 0) > 0;
    const hasAudio = (got?.getAudioTracks().length ?? 0) > 0;
    if (got === null) {
      say(mediaError(failure));
    } else if (!hasVideo) {
      say('No camera was found. Others will not see you.');
    } else if (!hasAudio) {
      say('No microphone was found. Others will not hear you.');
    } else {
      say(null);
    }
    video.hidden = !hasVideo;
    if (got && hasVideo) {
      video.srcObject = got;
      void video.play().catch(() => {});
    }
    if (got && hasAudio) {
      const ctx = new AudioContext();
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 1024;
      ctx.createMediaStreamSource(got).connect(analyser);
      audio = { ctx, analyser, samples: new Float32Array(analyser.fftSize) };
      void ctx.resume().catch(() => {});
    }
    await listDevices(got);
    if (loop === 0) loop = requestAnimationFrame(tick);
  };

  const listDevices = async (current: MediaStream | null): Promise<void> => {
    let devices: MediaDeviceInfo[] = [];
    try {
      devices = await navigator.mediaDevices.enumerateDevices();
    } catch {
      // keep the lists empty
    }
    const inUse = (kind: 'video' | 'audio'): string | undefined =>
      current?.getTracks().find((t) => t.kind === kind)?.getSettings().deviceId;
    fill(camera, devices.filter((d) => d.kind === 'videoinput'), inUse('video'), 'Camera');
    fill(microphone, devices.filter((d) => d.kind === 'audioinput'), inUse('audio'), 'Microphone');
  };

  // the call opens what was picked here
  const choose = (): void => {
    chosenDevices.camera = camera.value;
    chosenDevices.microphone = microphone.value;
  };
  camera.addEventListener('change', () => {
    choose();
    void open();
  });
  microphone.addEventListener('change', () => {
    choose();
    void open();
  });

  return {
    element,
    async start(panel) {
      host = panel;
      await open();
    },
    wake() {
      if (audio?.ctx.state === 'suspended') void audio.ctx.resume().catch(() => {});
    },
  };
}

function fill(select: HTMLSelectElement, devices: MediaDeviceInfo[], current: string | undefined, noun: string): void {
  const options = devices
    .filter((d) => d.deviceId !== '')
    .map((d, i) => h('option', { value: d.deviceId, selected: d.deviceId === current }, d.label || `${noun} ${i + 1}`));
  replaceChildren(select, options.length > 0 ? options : h('option', { value: '' }, `No ${noun.toLowerCase()} found`));
  select.disabled = options.length === 0;
}

function mediaError(e: unknown): string {
  const name = e instanceof DOMException ? e.name : '';
  switch (name) {
    case 'NotAllowedError':
      return 'This page may not use your camera and microphone. Allow them in the browser’s site settings, then reload the page.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No camera or microphone was found. Connect one, then reload the page.';
    case 'NotReadableError':
      return 'The camera or microphone is in use by another program, or the system blocks it.';
    default:
      return 'The camera and microphone could not be started.';
  }
}
