// An invitee in the browser: first alone (the browser creates the call's MLS group and the
// host, a native participant run by browser.rs, joins it through the browser's commit),
// then from an untrusted network in a second browser, waiting in the lobby until the host
// admits them.
//
// 1. From 127.0.0.1 with nobody in the call: Join creates the group; one participant and
//    a security code.                                                   STEP started
//    browser.rs has the host (native) join and answers with the host's code; the page
//    shows two participants and the same code.
// 2. Another browser profile at [::1], one that only has createEncodedStreams (the older
//    encoded-transform API): the preview says lobby; Join shows "Waiting for a
//    host to let you in" with the reason.                               STEP waiting
//    browser.rs admits the waiting seat.
// 3. In the group: three participants, no mismatch; each page plays the video of both
//    others (named by their credentials) and hears them; a screen shared from the second
//    browser shows on the first as that participant's screen, and goes when stopped; its
//    camera off and microphone muted, the first shows and opens only the host's media.
//                                                                       STEP in-call
//    browser.rs checks the host opens both browsers' frames and that the SFU forwarded
//    only ciphertext, and answers with the host's code; the page shows the same.
// 4. The host removes the guest (browser.rs): the guest's page says a host removed them;
//    the first page is back to two, with a new code.                    STEP remove-guest

import { check, env, run } from './browser.mjs';
import { CODE, joinFromMeetingPage, LONG, loudestVoice, otherBrowser, seesVideo, settled, showsCode, step } from './calls.mjs';

const url = env('CONCLAVE_URL');
const urlV6 = env('CONCLAVE_URL_V6');
const user = env('CONCLAVE_USER');
const password = env('CONCLAVE_PASSWORD');
const meetingId = env('CONCLAVE_MEETING');
const title = env('CONCLAVE_MEETING_TITLE');
const shots = process.env.CONCLAVE_SCREENSHOTS;

await run(async (context) => {
  // 1. alone: the browser creates the group, the native host joins it
  const first = await joinFromMeetingPage(context, { url, user, password, meetingId, title });
  const alone = await settled(first, 1, '');
  check(alone.problems === '', `nothing went wrong creating the group: ${alone.problems}`);
  const hostCode = await step('started');
  check(CODE.test(hostCode), `browser.rs sent a code: ${hostCode}`);
  const together = await settled(first, 2, alone.code);
  check(together.code === hostCode, `the same code as the host: ${together.code} / ${hostCode}`);

  // 2. from an untrusted network: the lobby
  const other = await otherBrowser();
  // this one encrypts through the older API, as browsers without RTCRtpScriptTransform do
  await other.context.addInitScript(() => {
    delete window.RTCRtpScriptTransform;
  });
  try {
    const page = await joinFromMeetingPage(other.context, {
      url: urlV6,
      user,
      password,
      meetingId,
      title,
      verdict: 'lobby',
    });
    const waiting = page.locator('.call__state--waiting');
    await waiting.waitFor(LONG);
    const text = await waiting.innerText();
    check(/Waiting for a host to let you in/.test(text), `the guest is told to wait: ${text}`);
    check(/untrusted network/i.test(text), `with the reason: ${text}`);
    check((await page.locator('.roster__item').count()) === 0, 'the lobby is not the call');
    if (shots) await page.screenshot({ path: `${shots}/call-waiting.png`, fullPage: true });
    await step('waiting');

    // 3. admitted: in the group
    const view = await settled(page, 3, '');
    check(view.problems === '', `nothing went wrong on the way: ${view.problems}`);
    const names = view.roster.map((r) => r.name).sort();
    check(
      JSON.stringify(names) === '["IVAN","IVAN","OLGA"]',
      `the roster: ${JSON.stringify(view.roster)}`,
    );
    check(
      (await page.getByRole('group', { name: 'Host controls' }).isVisible()) === false,
      'no host controls for an invitee',
    );
    for (const [p, api] of [
      [first, 'RTCRtpScriptTransform'],
      [page, 'createEncodedStreams'],
    ]) {
      await p.locator('.stage__details summary').click();
      const how = await p.locator('.stage__numbers dd[data-name="Frame encryption"]').innerText();
      check(how.includes(api), `frames go through ${api}: ${how}`);
      const tiles = await seesVideo(p, 2);
      const names = tiles.map((t) => t.name).sort();
      check(
        JSON.stringify(names) === '["IVAN","OLGA"]',
        `video from the other browser and the host, named by their credentials: ${JSON.stringify(tiles)}`,
      );
      const voice = await loudestVoice(p);
      check(voice.voices >= 2 && voice.rms > 0.01, `the others are heard: ${JSON.stringify(voice)}`);
      const failing = await p.locator('.stage__failure').count();
      check(failing === 0, `every frame opened: ${await p.locator('.stage__failures').innerText()}`);
    }
    // a screen shared from the second browser: a video of its own, named as a screen
    await page.getByRole('button', { name: 'Share screen' }).click();
    await page.getByRole('button', { name: 'Stop sharing' }).waitFor();
    const shared = (await seesVideo(first, 3)).filter((t) => t.screen);
    check(
      shared.length === 1 && shared[0].name === 'IVAN’s screen' && shared[0].width >= 640,
      `the screen is seen as IVAN's screen: ${JSON.stringify(shared)}`,
    );
    if (shots) await first.screenshot({ path: `${shots}/call-three.png`, fullPage: true });
    await page.getByRole('button', { name: 'Stop sharing' }).click();
    await first.waitForFunction(() => document.querySelector('.tile--screen:not([hidden])') === null, null, LONG);

    // camera off and muted: the second browser sends nothing, so the first shows only the
    // host's video and opens one voice (the host's) instead of two
    await page.getByRole('button', { name: 'Camera off' }).click();
    await page.getByRole('button', { name: 'Mute your microphone' }).click();
    await page.getByRole('button', { name: 'Unmute your microphone' }).waitFor();
    await first.waitForFunction(
      () => {
        const tiles = [...document.querySelectorAll('.tile[data-slot]:not([hidden]) .tile__name')];
        const audio = document.querySelector('.stage__numbers dd[data-name="Opened audio"]')?.textContent ?? '';
        const perSecond = Number(/^(\d+) frames/.exec(audio)?.[1] ?? '999');
        return tiles.length === 1 && tiles[0].textContent === 'OLGA' && perSecond <= 60;
      },
      null,
      LONG,
    );
    // and back
    await page.getByRole('button', { name: 'Camera on' }).click();
    await page.getByRole('button', { name: 'Unmute your microphone' }).click();
    await seesVideo(first, 2);
    const hostCode = await step('in-call');
    check(CODE.test(hostCode), `browser.rs sent a code: ${hostCode}`);
    await showsCode(page, hostCode);

    // 4. the host removes the guest: the page says so, media stops, the first page goes on
    await step('remove-guest');
    const ended = page.locator('.call__ended-text');
    await ended.waitFor(LONG);
    check((await ended.innerText()) === 'A host removed you from the call.', await ended.innerText());
    check((await page.locator('.stage').isVisible()) === false, 'no media after removal');
    await settled(first, 2, hostCode);
  } finally {
    await other.close();
  }
});
