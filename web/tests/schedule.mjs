// An organiser signs in (after one wrong password), schedules an internal meeting with an
// invitee, and finds it in "My meetings". browser.rs checks the result on the server.

import { check, env, run } from './browser.mjs';

const url = env('CONCLAVE_URL');
const user = env('CONCLAVE_USER');
const password = env('CONCLAVE_PASSWORD');
const invitee = env('CONCLAVE_INVITEE');
const shots = process.env.CONCLAVE_SCREENSHOTS;

/** `datetime-local` input value for `hours` from now, in the browser's time zone. */
function localInput(hours) {
  const d = new Date(Date.now() + hours * 3600_000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

await run(async (context) => {
  const page = await context.newPage();
  await page.goto(url);

  // a wrong password is refused with a message, and the form stays usable
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').waitFor();
  check(
    /password|sign/i.test(await page.getByRole('alert').innerText()),
    'a refused sign-in says why',
  );
  if (shots) await page.screenshot({ path: `${shots}/sign-in.png` });

  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'My meetings' }).waitFor();

  await page.getByRole('link', { name: 'Schedule a meeting' }).click();
  await page.getByLabel('Title').fill('Budget review');
  await page.getByLabel('Agenda').fill('1. Figures for Q3\n2. Next steps');
  await page.getByLabel('Starts').fill(localInput(24));
  await page.getByLabel('Ends').fill(localInput(25));
  await page.getByLabel('Classification').selectOption('internal');
  await page.getByLabel('Invitees').fill(invitee);
  if (shots) await page.screenshot({ path: `${shots}/schedule.png`, fullPage: true });
  await page.getByRole('button', { name: 'Schedule', exact: true }).click();

  // the meeting's page, then the list
  await page.getByRole('heading', { name: 'Budget review' }).waitFor();
  await page.getByRole('link', { name: 'My meetings' }).click();
  await page.getByRole('heading', { name: 'My meetings' }).waitFor();
  const listed = page.getByRole('link', { name: /Budget review/ });
  await listed.waitFor();
  check((await listed.count()) === 1, 'the meeting is listed once');
  if (shots) await page.screenshot({ path: `${shots}/my-meetings.png`, fullPage: true });

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
});
