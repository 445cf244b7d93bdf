// A host joins a call from the browser and shares its end-to-end encrypted group with a
// native participant (conclave-client, run by browser.rs, which joined first; call-guest.mjs
// has the browser start the group). browser.rs drives it in steps; at a step it may answer
// `go <value>`.
//
// 1. From 127.0.0.1 (trusted), the meeting page's Join button leads to the call: two
//    participants, both verified against their MLS credentials, no mismatch, a security
//    code.                                                              STEP in-call
//    browser.rs answers with the native participant's code; the page shows the same, and
//    "mark all verified" marks the native participant verified on the roster.
// 2. A chat message from the browser.                                   STEP chat-sent
//    browser.rs checks it arrived intact and sends one back; the page shows it with the
//    sender's name.
// 3. The page's script is paused long enough for the server to close its silent
//    connection (4005), not so long that the seat is given up.         STEP dropped
//    browser.rs sends a chat meanwhile. Running again, the page resumes its seat: the
//    message is replayed, the code is the same.                        STEP resumed
// 4. browser.rs makes the native participant seal under keys nobody else has
//    (desync_media_keys): its tile goes and the page says it cannot decrypt its audio and
//    video.                                                             STEP garbled
// 5. browser.rs lets the native participant leave: one participant, a new code.
//                                                                       STEP native-leaves
// 6. "Leave the call" leads back to the meeting's page.                 STEP left
// 7. The same page in a browser without encoded transforms: no Join, and the call's address
//    says why without asking the server to join.

import { check, env, run } from './browser.mjs';
import { CODE, joinFromMeetingPage, LONG, seesVideo, settled, showsCode, step } from './calls.mjs';

const url = env('CONCLAVE_URL');
const user = env('CONCLAVE_USER');
const password = env('CONCLAVE_PASSWORD');
const meetingId = env('CONCLAVE_MEETING');
const title = env('CONCLAVE_MEETING_TITLE');
const shots = process.env.CONCLAVE_SCREENSHOTS;

await run(async (context) => {
  // 1. the preview says admit, so Join is offered
  const page = await joinFromMeetingPage(context, { url, user, password, meetingId, title });
  const first = await settled(page, 2, '');
  check(CODE.test(first.code), `a security code: ${first.code}`);
  check(first.problems === '', `nothing went wrong on the way: ${first.problems}`);
  const names = first.roster.map((r) => r.name).sort();
  check(JSON.stringify(names) === '["IVAN","OLGA"]', `the roster: ${JSON.stringify(first.roster)}`);
  for (const r of first.roster) {
    check(/Verified: /.test(r.text), `${r.name} is verified against their credential: ${r.text}`);
    check(/Trusted: office/.test(r.text), `${r.name}'s network is named: ${r.text}`);
    check(/Personal/.test(r.text), `${r.name}'s device trust is shown: ${r.text}`);
  }
  const olga = first.roster.find((r) => r.name === 'OLGA');
  check(/Host/.test(olga.text) && /\(you\)/.test(olga.text), `the host badge and "you": ${olga.text}`);
  check(
    (await page.getByRole('group', { name: 'Host controls' }).getByRole('button', { name: 'Lock the call' }).count()) === 1,
    'a host can lock the call',
  );
  const video = await seesVideo(page, 1);
  check(video[0].name === 'IVAN', `the native participant's video, named by its credential: ${JSON.stringify(video)}`);
  if (shots) await page.screenshot({ path: `${shots}/call.png`, fullPage: true });

  // the native participant's code, as browser.rs read it from its Call
  const nativeCode = await step('in-call');
  check(CODE.test(nativeCode), `browser.rs sent a code: ${nativeCode}`);
  await showsCode(page, nativeCode);

  // the codes matched: mark everyone verified; the roster remembers it
  const verifiedState = page.locator('.call__verified');
  check(/Not verified by you yet: IVAN/.test(await verifiedState.innerText()), await verifiedState.innerText());
  await page.getByRole('button', { name: 'Same code for everyone: mark all verified' }).click();
  await page.getByText('You have verified everyone in the call.').waitFor();
  const ivanItem = page.locator('.roster__item', { hasText: 'IVAN' });
  check((await ivanItem.locator('.badge--verified').count()) === 1, 'IVAN is marked verified by you');

  // 2. chat, end-to-end encrypted
  await page.getByRole('textbox', { name: 'Your message' }).fill('hello from the browser');
  await page.getByRole('button', { name: 'Send' }).click();
  await page.locator('.chat__message--own', { hasText: 'hello from the browser' }).waitFor();
  await step('chat-sent');
  const incoming = page.locator('.chat__message', { hasText: 'hello from the native participant' });
  await incoming.waitFor(LONG);
  const from = await incoming.locator('.chat__from').innerText();
  check(from === 'IVAN', `the sender's name from their credential: ${from}`);

  // 3. the connection drops: the page's script is paused, so its heartbeats stop. The
  //    server closes a connection silent for 3 heartbeat intervals (3 x 5 s) and keeps the
  //    seat for the resume grace (20 s) after that: resuming 26 s after the pause lands
  //    between the two with several seconds to spare either way. (The close itself cannot
  //    be watched: a paused page reports no WebSocket events.)
  check(page.sockets.length === 1, `one WebSocket so far: ${page.sockets.length}`);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Debugger.enable');
  await cdp.send('Debugger.pause');
  await new Promise((resolve) => setTimeout(resolve, 26_000));
  await step('dropped');
  await cdp.send('Debugger.resume');
  await cdp.send('Debugger.disable');
  await page.locator('.chat__message', { hasText: 'said while you were away' }).waitFor(LONG);
  await page.waitForFunction(() => document.querySelector('.call__state--in_call') !== null, null, LONG);
  check(page.sockets.length === 2, `a second WebSocket took the seat back: ${page.sockets.length}`);
  check(page.sockets[0].isClosed(), 'the first WebSocket is closed');
  const resumed = await settled(page, 2, '');
  check(resumed.code === nativeCode, `resuming keeps the group and its code: ${resumed.code} vs ${nativeCode}`);
  check(resumed.problems === '', `nothing went wrong resuming: ${resumed.problems}`);
  const replayed = await page.locator('.chat__message', { hasText: 'said while you were away' }).count();
  check(replayed === 1, `the missed message shows once: ${replayed}`);
  await step('resumed');

  // 4. the native participant's media keys go wrong: nothing of it plays, and the page
  //    says whose frames it cannot decrypt
  await step('garbled');
  const failure = page.locator('.stage__failure', { hasText: 'IVAN' });
  await failure.waitFor(LONG);
  const failureText = await failure.innerText();
  check(/Cannot decrypt audio and video from IVAN/.test(failureText), failureText);
  await page.waitForFunction(() => document.querySelector('.tile[data-slot]:not([hidden])') === null, null, LONG);

  // 5. the native participant leaves: the group rekeys
  await step('native-leaves');
  const alone = await settled(page, 1, nativeCode);
  check(alone.roster[0].name === 'OLGA', `only the host is left: ${JSON.stringify(alone.roster)}`);
  check(alone.code !== nativeCode, 'the security code changed');
  check(alone.problems === '', `nothing went wrong: ${alone.problems}`);

  // 6. leaving leads back to the meeting's page
  await page.getByRole('button', { name: 'Leave the call' }).click();
  await page.waitForURL(`**/meetings/${meetingId}`, LONG);
  await page.getByText('You left the call.').waitFor();
  await page.getByRole('heading', { name: 'Joining from this browser' }).waitFor();
  await step('left');

  // 7. a browser that cannot encrypt media end to end: Join is not offered, and the call's
  //    address refuses before asking the server anything
  await context.addInitScript(() => {
    delete window.RTCRtpScriptTransform;
    delete RTCRtpSender.prototype.createEncodedStreams;
  });
  const joins = [];
  page.on('request', (r) => {
    if (new URL(r.url()).pathname.startsWith(`/api/meetings/${meetingId}/join`)) joins.push(r.url());
  });
  await page.reload();
  await page.locator('.prejoin__unsupported').waitFor();
  check(
    await page.getByRole('button', { name: 'Join', exact: true }).isDisabled(),
    'no Join without encrypted media',
  );
  await page.goto(`${url}/meetings/${meetingId}/call`);
  const unsupported = await page.locator('.call__unsupported').innerText();
  check(/cannot encrypt audio and video end to end/.test(unsupported), unsupported);
  check(joins.length === 0 && page.sockets.length === 2, `nothing asked of the server: ${joins}`);
});
