// Figures, not a check (docs/BENCHMARKS.md): from pressing Join to the first remote video
// frame shown, and what the encryption costs per frame in the worker. One browser joins the
// call of a native participant (browser.rs runs it, sending video) RUNS times, each time
// from the meeting page, and leaves again. Prints one line per run and the medians.

import { check, env, run } from './browser.mjs';
import { LONG } from './calls.mjs';

const url = env('CONCLAVE_URL');
const user = env('CONCLAVE_USER');
const password = env('CONCLAVE_PASSWORD');
const meetingId = env('CONCLAVE_MEETING');
const runs = Number(env('RUNS'));

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

await run(async (context) => {
  const page = await context.newPage();
  await page.goto(url);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'My meetings' }).waitFor();
  // cross-origin isolated pages (and their workers) get a 5 µs clock instead of 100 µs
  console.log(`cross-origin isolated: ${await page.evaluate(() => globalThis.crossOriginIsolated)}`);
  const firsts = [];
  const costs = { 'Sealed video': [], 'Opened video': [], 'Sealed audio': [], 'Opened audio': [] };
  for (let i = 0; i < runs; i++) {
    await page.goto(`${url}/meetings/${meetingId}`);
    await page
      .locator('.prejoin__verdict--admit')
      .waitFor(LONG)
      .catch(async (e) => {
        throw new Error(`no admit verdict: ${await page.locator('main').innerText()}\n${e}`);
      });
    const join = page.getByRole('button', { name: 'Join', exact: true });
    await page.waitForFunction(() => {
      const b = [...document.querySelectorAll('button')].find((x) => x.textContent === 'Join');
      return b !== undefined && !b.disabled;
    });
    await join.click();
    const stage = page.locator('.stage[data-first-frame-ms]');
    await stage.waitFor({ state: 'attached', ...LONG });
    const ms = Number(await stage.getAttribute('data-first-frame-ms'));
    check(ms > 0, `a figure: ${ms}`);
    firsts.push(ms);
    // the worker reports once a second; take a report from the steady state
    await page.waitForTimeout(4000);
    await page.locator('.stage__details summary').click();
    const line = [`run ${i + 1}: join to first frame ${ms} ms`];
    for (const name of Object.keys(costs)) {
      const text = await page.locator(`.stage__numbers dd[data-name="${name}"]`).innerText();
      const each = /([\d.]+) µs each/.exec(text);
      if (each) costs[name].push(Number(each[1]));
      line.push(`${name.toLowerCase()}: ${text}`);
    }
    console.log(line.join('; '));
    await page.getByRole('button', { name: 'Leave the call' }).click();
    await page.waitForURL(`**/meetings/${meetingId}`, LONG);
  }
  console.log(`median join to first frame: ${median(firsts)} ms over ${runs} runs (min ${Math.min(...firsts)}, max ${Math.max(...firsts)})`);
  for (const [name, xs] of Object.entries(costs)) {
    if (xs.length > 0) console.log(`median ${name.toLowerCase()}: ${median(xs).toFixed(1)} µs per frame`);
  }
});
