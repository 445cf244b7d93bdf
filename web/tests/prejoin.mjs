// An invitee checks on a secret meeting's page whether they can join from this browser.
// browser.rs drives it in steps: at each `STEP <name>` it checks the server (and changes
// it: an admin promotes the device) and answers `go`.
//
// 1. At the 127.0.0.1 address (the trusted network "office"), opening the page registers
//    the browser as a personal device; the verdict refuses, naming the device's trust. The
//    fake camera plays in the preview.                                   STEP registered
// 2. After the promotion, "Check again" says they can join from the office on a managed
//    device; the preview answer carries no ticket.                       STEP admitted
// 3. A fresh browser profile at the [::1] address (untrusted) is a second device, and the
//    verdict names the untrusted network.                                STEP second
// 4. That device is revoked meanwhile: "Check again" says so, and "Register this browser
//    again" makes a new device.                                          STEP registered-again
//    browser.rs has an admin make the new device managed too, and a host (a native
//    participant on the office network) open the call.
// 5. Opening the call's address at [::1] is a real join attempt: refused for the untrusted
//    network alone, reason on screen, no call connection opened.       STEP refused
//    browser.rs checks the host was alerted and nobody was added to the call.
// 6. The first browser, on the office network, joins: in the call with the host, the same
//    security code.                                                     STEP joined

import { createInterface } from 'node:readline';
import { check, env, launch, run } from './browser.mjs';

const url = env('CONCLAVE_URL');
const urlV6 = env('CONCLAVE_URL_V6');
const user = env('CONCLAVE_USER');
const password = env('CONCLAVE_PASSWORD');
const meetingId = env('CONCLAVE_MEETING');
const title = env('CONCLAVE_MEETING_TITLE');
const shots = process.env.CONCLAVE_SCREENSHOTS;

const answers = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Tells browser.rs a step is reached and waits for its `go`. */
async function step(name) {
  process.stdout.write(`STEP ${name}\n`);
  const { value, done } = await answers.next();
  check(!done && value.trim() === 'go', `the test stopped after step ${name}`);
}

/** Signs in at `base` and opens the meeting from "My meetings"; returns the page and what
 * the app sent to register a device. */
async function openMeeting(context, base) {
  const page = await context.newPage();
  const registrations = [];
  page.on('request', (req) => {
    if (req.method() === 'POST' && new URL(req.url()).pathname === '/api/devices') {
      registrations.push(req.postDataJSON());
    }
  });
  await page.goto(base);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'My meetings' }).waitFor();
  await page.getByRole('link', { name: new RegExp(title) }).click();
  await page.getByRole('heading', { name: title }).waitFor();
  check(new URL(page.url()).pathname === `/meetings/${meetingId}`, `on the meeting's page, not ${page.url()}`);
  await page.getByRole('heading', { name: 'Joining from this browser' }).waitFor();
  return { page, registrations };
}

/** The verdict once the check is done: its headline and the reasons' codes and words. */
async function verdict(page) {
  const box = page.locator('.prejoin__verdict');
  await box.locator('.prejoin__outcome').waitFor();
  const outcome = await box.locator('.prejoin__outcome').innerText();
  const reasons = await box.locator('.prejoin__reasons li').evaluateAll((items) =>
    items.map((li) => ({ code: li.dataset.code, text: li.textContent })),
  );
  return { outcome, reasons, text: await box.innerText() };
}

/** The preview shows the fake camera: real dimensions, and frames keep coming. */
async function cameraPlays(page) {
  await page.waitForFunction(() => {
    const v = document.querySelector('video.prejoin__video');
    return v !== null && v.videoWidth > 16 && v.videoHeight > 16;
  });
  const seen = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const v = document.querySelector('video.prejoin__video');
        const start = v.currentTime;
        let frames = 0;
        const onFrame = (_now, meta) => {
          frames += 1;
          if (frames < 5) v.requestVideoFrameCallback(onFrame);
          else resolve({ frames, advanced: v.currentTime > start, width: meta.width, height: meta.height });
        };
        v.requestVideoFrameCallback(onFrame);
      }),
  );
  check(seen.frames === 5 && seen.advanced, `the camera preview does not play: ${JSON.stringify(seen)}`);
  check(seen.width > 16 && seen.height > 16, `the camera frames are ${seen.width}x${seen.height}`);
  // the camera and microphone can be chosen
  check((await page.getByLabel('Camera', { exact: true }).locator('option').count()) >= 1, 'a camera to choose');
  check((await page.getByLabel('Microphone', { exact: true }).locator('option').count()) >= 1, 'a microphone to choose');
  check(!(await page.locator('.prejoin__media-status').isVisible()), 'no media warning with a fake camera and microphone');
}

/** What this browser keeps: a non-extractable wrapping key and 32 bytes of seed, encrypted. */
async function storedDevice(page) {
  return page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const req = indexedDB.open('conclave');
        req.onerror = () => reject(req.error);
        req.onsuccess = () => {
          const db = req.result;
          const all = db.transaction('devices').objectStore('devices').getAll();
          all.onerror = () => reject(all.error);
          all.onsuccess = () => {
            db.close();
            resolve(
              all.result.map((r) => ({
                userId: r.userId,
                deviceId: r.deviceId,
                extractable: r.wrappingKey.extractable,
                algorithm: r.wrappingKey.algorithm.name,
                wrappedBytes: r.wrappedSeed.byteLength,
                fields: Object.keys(r).sort(),
              })),
            );
          };
        };
      }),
  );
}

await run(async (context) => {
  // 1. from the office, a personal device: refused because of the device
  const { page, registrations } = await openMeeting(context, url);
  const refused = await verdict(page);
  check(refused.outcome === 'You cannot join from here:', `refused: ${refused.text}`);
  check(
    refused.reasons.length === 1 && refused.reasons[0].code === 'device_not_trusted',
    `only the device's trust stands in the way: ${JSON.stringify(refused.reasons)}`,
  );
  check(/managed device/.test(refused.reasons[0].text), `the reason is in words: ${refused.reasons[0].text}`);
  check(/registered as a device of your account/.test(refused.text), 'the page says the browser was registered');
  await page.getByText('Personal', { exact: true }).waitFor();
  check(registrations.length === 1, `one registration, not ${registrations.length}`);
  check(
    JSON.stringify(Object.keys(registrations[0]).sort()) === '["name","public_key"]' &&
      /^[A-Za-z0-9_-]{43}$/.test(registrations[0].public_key) &&
      /Chrom/.test(registrations[0].name),
    `the registration sends a name and the public key only: ${JSON.stringify(registrations[0])}`,
  );
  const stored = await storedDevice(page);
  check(stored.length === 1, `one stored device: ${JSON.stringify(stored)}`);
  check(
    stored[0].extractable === false && stored[0].algorithm === 'AES-GCM' && stored[0].wrappedBytes === 32 + 16,
    `the seed is stored encrypted under a non-extractable key: ${JSON.stringify(stored[0])}`,
  );
  check(!stored[0].fields.some((f) => /^seed$/i.test(f)), `no plain seed is stored: ${stored[0].fields}`);
  await cameraPlays(page);
  if (shots) await page.screenshot({ path: `${shots}/prejoin-refused.png`, fullPage: true });
  await step('registered');

  // 2. the admin made the device managed: "Check again" lets them in, and grants nothing
  const previewed = page.waitForResponse(
    (r) => new URL(r.url()).pathname === `/api/meetings/${meetingId}/preview`,
  );
  await page.getByRole('button', { name: 'Check again' }).click();
  const answer = await previewed;
  const body = await answer.json();
  check(answer.status() === 200 && body.outcome === 'admit', `preview: ${answer.status()} ${JSON.stringify(body)}`);
  check(body.ticket == null && body.ticket_expires_at == null, 'a preview carries no ticket');
  await page.locator('.prejoin__verdict--admit').waitFor();
  const admitted = await verdict(page);
  check(
    admitted.outcome === 'You can join: trusted network office, managed device.',
    `admitted: ${admitted.text}`,
  );
  await page.getByText('Managed', { exact: true }).waitFor();
  check(registrations.length === 1, 'checking again registers nothing');
  // the fake microphone's tone reaches the level meter (the click let audio start)
  await page.waitForFunction(() => document.querySelector('meter.prejoin__level')?.value > 0);
  if (shots) await page.screenshot({ path: `${shots}/prejoin-admitted.png`, fullPage: true });
  await step('admitted');

  // 3. the same account in another browser profile, from an untrusted address
  const other = await launch();
  try {
    other.context.on('page', (p) => p.on('pageerror', (err) => console.error(`page error: ${err.message}`)));
    const second = await openMeeting(other.context, urlV6);
    const fromElsewhere = await verdict(second.page);
    check(fromElsewhere.outcome === 'You cannot join from here:', `from [::1]: ${fromElsewhere.text}`);
    const codes = fromElsewhere.reasons.map((r) => r.code);
    check(
      JSON.stringify(codes) === '["device_not_trusted","untrusted_network_denied"]',
      `a new personal device on an untrusted network: ${JSON.stringify(fromElsewhere.reasons)}`,
    );
    check(
      /untrusted network/.test(fromElsewhere.reasons[1].text),
      `the network reason is in words: ${fromElsewhere.reasons[1].text}`,
    );
    check(second.registrations.length === 1, 'the second browser registered its own device');
    const secondStored = await storedDevice(second.page);
    check(
      secondStored.length === 1 && secondStored[0].deviceId !== stored[0].deviceId,
      'the second profile keeps a device of its own',
    );
    await cameraPlays(second.page);
    if (shots) await second.page.screenshot({ path: `${shots}/prejoin-untrusted.png`, fullPage: true });
    await step('second');

    // 4. the device was revoked meanwhile: the page says so and registers the browser anew
    await second.page.getByRole('button', { name: 'Check again' }).click();
    await second.page.getByText('This browser’s device has been revoked').waitFor();
    check(
      (await second.page.getByRole('button', { name: 'Register this browser again' }).count()) === 1,
      'a revoked device is offered a new registration',
    );
    if (shots) await second.page.screenshot({ path: `${shots}/prejoin-revoked.png` });
    await second.page.getByRole('button', { name: 'Register this browser again' }).click();
    await second.page.getByText('This browser is now registered as a device of your account').waitFor();
    const again = await verdict(second.page);
    check(again.outcome === 'You cannot join from here:', `after registering again: ${again.text}`);
    check(second.registrations.length === 2, 'registering again sent one more registration');
    const renewed = await storedDevice(second.page);
    check(
      renewed.length === 1 && renewed[0].deviceId !== secondStored[0].deviceId,
      'the browser keeps the new device in place of the revoked one',
    );
    await step('registered-again');

    // 5. straight to the call from the untrusted network: refused before anything starts
    const sockets = [];
    second.page.on('websocket', (ws) => sockets.push(ws));
    await second.page.goto(`${urlV6}/meetings/${meetingId}/call`);
    await second.page.locator('.call__refused').waitFor({ timeout: 60_000 });
    const refusedFor = await second.page
      .locator('.notice--error li')
      .evaluateAll((items) => items.map((li) => ({ code: li.dataset.code, text: li.textContent })));
    check(
      JSON.stringify(refusedFor.map((r) => r.code)) === '["untrusted_network_denied"]',
      `only the network stands in the way: ${JSON.stringify(refusedFor)}`,
    );
    check(/untrusted network/.test(refusedFor[0].text), `the reason in words: ${refusedFor[0].text}`);
    check(sockets.length === 0, 'no call connection was opened');
    check((await second.page.locator('.stage').count()) === 0, 'no media was started');
    if (shots) await second.page.screenshot({ path: `${shots}/call-refused.png`, fullPage: true });
    await step('refused');
  } finally {
    await other.close();
  }

  // 6. from the office, on the managed device: admitted into the host's call
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await page.waitForURL(`**/meetings/${meetingId}/call`);
  await page.waitForFunction(
    () =>
      document.querySelectorAll('.roster__item').length === 2 &&
      /^\d{5} \d{5} \d{5} \d{5}$/.test(document.querySelector('.call__code')?.textContent ?? ''),
    null,
    { timeout: 60_000 },
  );
  const code = await page.locator('.call__code').innerText();
  process.stdout.write(`CODE ${code}\n`);
  await step('joined');
});
