// Shared by the browser scenarios: headless Debian Chromium driven by playwright-core, as
// the Rust tests in crates/conclave-server/tests/browser.rs start them. Each scenario is a
// Node script that gets the server's address and accounts in its environment, exits 0 when
// everything it checks holds and prints the first thing that did not otherwise.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

/** Flags for Chromium in a container: fake camera and microphone, loopback ICE, no
 * background traffic to anywhere. */
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  // the test's pages play the call's audio without a click on them first
  '--autoplay-policy=no-user-gesture-required',
];

/** What the Rust side put in the environment. */
export function env(name) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new Error(`${name} is not set: run this scenario through cargo test (browser.rs)`);
  }
  return value;
}

/** A fresh browser with its own profile directory, removed on close. */
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'conclave-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: FLAGS,
    // the server's development certificate is self-signed
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 800 },
  });
  context.setDefaultTimeout(15_000);
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Runs `scenario`, then exits: 0 if it returned, 1 with the error if it threw. Console
 * errors of the pages are printed, so a failing run says what the app complained about. */
export async function run(scenario) {
  let browser;
  try {
    browser = await launch();
    browser.context.on('page', (page) => {
      page.on('console', (msg) => {
        if (msg.type() === 'error') console.error(`page console: ${msg.text()}`);
      });
      page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
    });
    await scenario(browser.context);
    await browser.close();
    process.exit(0);
  } catch (err) {
    console.error(err?.stack ?? String(err));
    if (browser) await browser.close().catch(() => {});
    process.exit(1);
  }
}

/** Fails the scenario with `message` unless `condition` holds. */
export function check(condition, message) {
  if (!condition) throw new Error(message);
}
