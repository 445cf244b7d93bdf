// Shared by the call scenarios (call.mjs, call-lobby.mjs): steps with browser.rs, signing
// in and joining from the meeting's page, and reading what the call page shows.

import { createInterface } from 'node:readline';
import { check, launch } from './browser.mjs';

/** Generous: the call settles in rounds, and CI machines are slow. */
export const LONG = { timeout: 60_000 };
export const CODE = /^\d{5} \d{5} \d{5} \d{5}$/;

const answers = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Tells browser.rs a step is reached and waits for its `go`; returns what follows it. */
export async function step(name) {
  process.stdout.write(`STEP ${name}\n`);
  const { value, done } = await answers.next();
  const line = done ? '' : value.trim();
  check(line === 'go' || line.startsWith('go '), `the test stopped after step ${name}`);
  return line.slice(3).trim();
}

/** What the call page shows: roster names, mismatch flags, the security code. */
export async function callView(page) {
  return page.evaluate(() => ({
    roster: [...document.querySelectorAll('.roster__item')].map((li) => ({
      name: li.querySelector('.roster__name')?.textContent ?? '',
      text: li.textContent ?? '',
    })),
    mismatch: document.querySelectorAll('.call__mismatch, .call__mismatch-flag').length,
    code: document.querySelector('.call__code')?.textContent ?? '',
    state: document.querySelector('.call__state')?.textContent ?? '',
    problems: document.querySelector('.call__problems')?.textContent ?? '',
  }));
}

/** Waits until the page shows `n` participants, no mismatch and a code other than `not`. */
export async function settled(page, n, not) {
  try {
    await page.waitForFunction(
      ([n, not]) => {
        const code = document.querySelector('.call__code')?.textContent ?? '';
        return (
          document.querySelectorAll('.roster__item').length === n &&
          document.querySelectorAll('.call__mismatch, .call__mismatch-flag').length === 0 &&
          /^\d{5} \d{5} \d{5} \d{5}$/.test(code) &&
          code !== not
        );
      },
      [n, not],
      LONG,
    );
  } catch (e) {
    throw new Error(`the call did not settle with ${n}: ${JSON.stringify(await callView(page))}\n${e}`);
  }
  return callView(page);
}

/** Signs in at `url`, opens the meeting `title` and presses Join once the preview says
 * `verdict` (admit or lobby). */
export async function joinFromMeetingPage(context, { url, user, password, meetingId, title, verdict = 'admit' }) {
  const page = await context.newPage();
  // the call's WebSockets, as the browser's network stack sees them (page.sockets)
  page.sockets = [];
  page.on('websocket', (ws) => page.sockets.push(ws));
  await page.goto(url);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'My meetings' }).waitFor();
  await page.getByRole('link', { name: new RegExp(title) }).click();
  await page.getByRole('heading', { name: 'Joining from this browser' }).waitFor();
  await page.locator(`.prejoin__verdict--${verdict}`).waitFor(LONG);
  await page.waitForFunction(() => {
    const b = [...document.querySelectorAll('button')].find((x) => x.textContent === 'Join');
    return b !== undefined && !b.disabled;
  });
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await page.waitForURL(`**/meetings/${meetingId}/call`);
  await page.getByRole('heading', { name: 'Security code' }).waitFor();
  return page;
}

/** A second browser profile (another device), with page errors reported like the first. */
export async function otherBrowser() {
  const other = await launch();
  other.context.on('page', (p) => p.on('pageerror', (err) => console.error(`page error: ${err.message}`)));
  return other;
}

/** Waits until the page plays video from `n` others (a tile with a name, frames decoded and a
 * real size) and returns the tiles: name, leaf, size, frames decoded. */
export async function seesVideo(page, n) {
  const tiles = () =>
    page.evaluate(() =>
      [...document.querySelectorAll('.tile[data-slot]:not([hidden])')].map((t) => {
        const v = t.querySelector('video');
        return {
          name: t.querySelector('.tile__name')?.textContent ?? '',
          leaf: t.dataset.leaf ?? '',
          width: v?.videoWidth ?? 0,
          height: v?.videoHeight ?? 0,
          frames: v?.getVideoPlaybackQuality().totalVideoFrames ?? 0,
          screen: t.classList.contains('tile--screen'),
        };
      }),
    );
  try {
    await page.waitForFunction(
      (n) =>
        [...document.querySelectorAll('.tile[data-slot]:not([hidden])')].filter((t) => {
          const v = t.querySelector('video');
          return v !== null && v.videoWidth > 16 && v.getVideoPlaybackQuality().totalVideoFrames > 5;
        }).length >= n,
      n,
      LONG,
    );
  } catch (e) {
    const stage = await page.evaluate(() => document.querySelector('.stage')?.textContent ?? '');
    throw new Error(`no video from ${n} others: ${JSON.stringify(await tiles())} ${stage}\n${e}`);
  }
  return tiles();
}

/** The loudest of the page's remote voices over a few seconds, by a WebAudio analyser on the
 * audio slots that carry someone (headless Chromium reports no audio energy in getStats). */
export async function loudestVoice(page) {
  return page.evaluate(async () => {
    const audios = [...document.querySelectorAll('audio.stage__audio')].filter((a) => a.dataset.leaf);
    const ctx = new AudioContext();
    await ctx.resume();
    const analysers = audios.map((a) => {
      const analyser = ctx.createAnalyser();
      ctx.createMediaStreamSource(a.srcObject).connect(analyser);
      return analyser;
    });
    let loudest = 0;
    const samples = new Float32Array(2048);
    for (let i = 0; i < 30; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      for (const analyser of analysers) {
        analyser.getFloatTimeDomainData(samples);
        let sum = 0;
        for (const x of samples) sum += x * x;
        loudest = Math.max(loudest, Math.sqrt(sum / samples.length));
      }
    }
    await ctx.close();
    return { voices: audios.length, rms: loudest };
  });
}

/** Waits until the page shows security code `expected`. */
export async function showsCode(page, expected) {
  await page.waitForFunction(
    (expected) => document.querySelector('.call__code')?.textContent === expected,
    expected,
    LONG,
  );
}
