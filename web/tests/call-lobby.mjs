// A host in the browser runs the call's door: lock and unlock, and lets a guest in from the
// lobby. browser.rs has a native participant (IVAN) create the group first, and a second
// one (MAX) ask to join a confidential meeting from [::1], an untrusted network, which
// seats them in the lobby.
//
// 1. OLGA joins from 127.0.0.1 in a browser that denies the page camera and microphone: in
//    the call all the same, told why, seeing IVAN; two participants. She locks the call.
//                                                                       STEP locked
// 2. She unlocks it.                                                   STEP unlocked
//    browser.rs seats MAX in the lobby.
// 3. The lobby shows MAX with the policy's reason; "Admit MAX" lets them in: three
//    participants, no mismatch.                                        STEP admitted
//    browser.rs answers with MAX's security code; the page shows the same.
// 4. DANA waits in the lobby (browser.rs seats her); "Deny DANA" turns her away.
//                                                    STEP dana-waits, STEP denied
// 5. OLGA removes MAX (confirming the dialog): two participants and a new code, the one
//    browser.rs reads from IVAN.                                        STEP removed

import { check, env, run } from './browser.mjs';
import { CODE, joinFromMeetingPage, LONG, seesVideo, settled, showsCode, step } from './calls.mjs';

const url = env('CONCLAVE_URL');
const user = env('CONCLAVE_USER');
const password = env('CONCLAVE_PASSWORD');
const meetingId = env('CONCLAVE_MEETING');
const title = env('CONCLAVE_MEETING_TITLE');
const shots = process.env.CONCLAVE_SCREENSHOTS;

await run(async (context) => {
  // this browser refuses the page its camera and microphone, as a user who said no would
  await context.addInitScript(() => {
    navigator.mediaDevices.getUserMedia = () =>
      Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  });
  const page = await joinFromMeetingPage(context, { url, user, password, meetingId, title });
  await settled(page, 2, '');
  // in the call all the same: the page says why nobody sees or hears her, and she sees IVAN
  const denied = await page.locator('.stage__status').innerText();
  check(/Microphone: permission was denied/.test(denied) && /Camera: permission was denied/.test(denied), denied);
  await seesVideo(page, 1);

  // 1. lock and unlock
  const controls = page.getByRole('group', { name: 'Host controls' });
  await controls.getByRole('button', { name: 'Lock the call' }).click();
  await controls.getByRole('button', { name: 'Unlock the call' }).waitFor(LONG);
  await step('locked');
  await controls.getByRole('button', { name: 'Unlock the call' }).click();
  await controls.getByRole('button', { name: 'Lock the call' }).waitFor(LONG);
  await step('unlocked');

  // 2. MAX waits in the lobby, with the policy's reason in words
  const waiting = page.locator('.lobby__item', { hasText: 'MAX' });
  await waiting.waitFor(LONG);
  const text = await waiting.innerText();
  check(/untrusted network/i.test(text), `the lobby says why MAX waits: ${text}`);
  check(/::1/.test(text), `hosts see where MAX connects from: ${text}`);
  if (shots) await page.screenshot({ path: `${shots}/call-lobby.png`, fullPage: true });
  await page.getByRole('button', { name: 'Admit MAX' }).click();

  // 3. three in one group
  const three = await settled(page, 3, '');
  check(three.problems === '', `nothing went wrong on the way: ${three.problems}`);
  const names = three.roster.map((r) => r.name).sort();
  check(JSON.stringify(names) === '["IVAN","MAX","OLGA"]', `the roster: ${JSON.stringify(three.roster)}`);
  const max = three.roster.find((r) => r.name === 'MAX');
  check(/Untrusted network/.test(max.text), `MAX's network is untrusted: ${max.text}`);
  check(!(await page.locator('.call__lobby').isVisible()), 'the lobby is empty again');
  const maxCode = await step('admitted');
  check(CODE.test(maxCode), `browser.rs sent a code: ${maxCode}`);
  await showsCode(page, maxCode);

  // 4. DANA is turned away
  await step('dana-waits');
  await page.locator('.lobby__item', { hasText: 'DANA' }).waitFor(LONG);
  await page.getByRole('button', { name: 'Deny DANA' }).click();
  await page.waitForFunction(() => !document.querySelector('.call__lobby') || document.querySelector('.call__lobby').hidden, null, LONG);
  await step('denied');

  // 5. MAX is removed, after the host confirms
  page.once('dialog', (dialog) => void dialog.accept());
  await page.getByRole('button', { name: 'Remove MAX from the call' }).click();
  const two = await settled(page, 2, maxCode);
  const ivanCode = await step('removed');
  check(two.code === ivanCode, `the same new code as IVAN: ${two.code} / ${ivanCode}`);
});
