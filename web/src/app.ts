// The app shell and the router. Paths are real URLs (History API); the server answers
// every non-API path with index.html, so reloading or sharing a link lands on the same page.

import * as api from './api';
import { h, replaceChildren, srOnly } from './dom';
import { capitalise } from './format';
import { signInPage } from './pages/sign-in';
import { meetingsPage } from './pages/meetings';
import { scheduleMeetingPage, editMeetingPage } from './pages/meeting-form';
import { meetingPage } from './pages/meeting';
import { callPage } from './pages/call';
import { notFoundPage } from './pages/not-found';

/** What a page gets to render itself. */
export interface PageContext {
  /** The container to fill. */
  readonly main: HTMLElement;
  /** The path's captured parts, e.g. the meeting id. */
  readonly params: readonly string[];
  /** The signed-in user's session (pages that need no session get it as null). */
  readonly session: api.SessionInfo;
  /** False once the user has moved on; a page stops updating the screen then. */
  isCurrent(): boolean;
  /** Sets the document title ("… · Conclave"). */
  setTitle(title: string): void;
}

export type Page = (ctx: PageContext) => Promise<void>;

interface Route {
  readonly pattern: RegExp;
  readonly page: Page;
}

const MEETING_ID = '([A-Za-z0-9_-]{1,64})';

const routes: readonly Route[] = [
  { pattern: /^\/$/, page: meetingsPage },
  { pattern: /^\/meetings\/new$/, page: scheduleMeetingPage },
  { pattern: new RegExp(`^/meetings/${MEETING_ID}$`), page: meetingPage },
  { pattern: new RegExp(`^/meetings/${MEETING_ID}/edit$`), page: editMeetingPage },
  { pattern: new RegExp(`^/meetings/${MEETING_ID}/call$`), page: callPage },
];

export const SIGN_IN_PATH = '/sign-in';

interface AppState {
  session: api.SessionInfo | null;
  organisation: string | null;
  /** Where to go after signing in. */
  returnTo: string;
  /** A one-time message for the next page, e.g. "Meeting scheduled." */
  flash: { text: string; tone: 'success' | 'info' } | null;
  /** Counts navigations, so that a slow page does not draw over a newer one. */
  generation: number;
}

const state: AppState = {
  session: null,
  organisation: null,
  returnTo: '/',
  flash: null,
  generation: 0,
};

let root: HTMLElement;

export interface NavigateOptions {
  replace?: boolean;
  flash?: string;
  flashTone?: 'success' | 'info';
}

/** Goes to `path` inside the app. */
export function navigate(path: string, opts: NavigateOptions = {}): void {
  if (opts.flash) state.flash = { text: opts.flash, tone: opts.flashTone ?? 'success' };
  if (opts.replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  void render();
}

/** The session after signing in: remember it and go where the user wanted. */
export function signedIn(session: api.SessionInfo): void {
  state.session = session;
  const target = state.returnTo;
  state.returnTo = '/';
  navigate(target, { replace: true });
}

/** Back to sign-in, with a message saying why. */
export function signedOut(message: string): void {
  state.session = null;
  api.setCsrfToken(null);
  state.flash = { text: message, tone: 'info' };
  history.pushState(null, '', SIGN_IN_PATH);
  void render();
}

/** The server no longer knows the session (expired, signed out elsewhere): sign in again. */
export function sessionLost(): void {
  if (!state.session) return;
  state.returnTo = location.pathname + location.search;
  signedOut('Your session has ended. Please sign in again.');
}

export function organisationName(): string | null {
  return state.organisation;
}

/** Takes the pending one-time message, if any. */
export function takeFlash(): AppState['flash'] {
  const f = state.flash;
  state.flash = null;
  return f;
}

function canSchedule(session: api.SessionInfo): boolean {
  return session.user.role === 'organiser' || session.user.role === 'admin';
}

export { canSchedule };

async function render(): Promise<void> {
  state.generation += 1;
  const generation = state.generation;
  const isCurrent = (): boolean => generation === state.generation;
  const path = location.pathname.replace(/\/+$/, '') || '/';

  if (path === SIGN_IN_PATH) {
    if (state.session) {
      history.replaceState(null, '', '/');
      return render();
    }
    return renderPage(signInPage, [], null, isCurrent);
  }
  if (!state.session) {
    // Remember the page so sign-in can lead there.
    state.returnTo = path + location.search;
    history.replaceState(null, '', SIGN_IN_PATH);
    return renderPage(signInPage, [], null, isCurrent);
  }

  for (const route of routes) {
    const match = route.pattern.exec(path);
    if (match) return renderPage(route.page, match.slice(1).map((p) => p ?? ''), state.session, isCurrent);
  }
  return renderPage(notFoundPage, [], state.session, isCurrent);
}

async function renderPage(
  page: Page,
  params: string[],
  session: api.SessionInfo | null,
  isCurrent: () => boolean,
): Promise<void> {
  const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  // The sign-in page shows its own message (why the user is there).
  const flash = session ? takeFlash() : null;
  if (session) {
    replaceChildren(root, skipLink(), header(session), main);
  } else {
    replaceChildren(root, skipLink(), main);
  }
  const content = h('div', { class: 'page' });
  if (flash) {
    main.append(
      h('div', { class: `notice notice--${flash.tone}`, role: 'status' }, flash.text),
    );
  }
  main.append(content);
  const ctx: PageContext = {
    main: content,
    params,
    // Only the sign-in page runs without a session, and it does not read it.
    session: session as api.SessionInfo,
    isCurrent,
    setTitle(title) {
      if (isCurrent()) document.title = `${title} · Conclave`;
    },
  };
  try {
    await page(ctx);
  } catch (e) {
    if (e instanceof api.SessionEnded || !isCurrent()) return;
    const message = e instanceof Error ? e.message : String(e);
    replaceChildren(
      content,
      h('h1', { tabindex: '-1' }, 'Something went wrong'),
      h('p', { class: 'notice notice--error', role: 'alert' }, message),
      h('p', null, h('a', { href: '/' }, 'Go to my meetings')),
    );
  }
  if (isCurrent()) focusHeading(main);
}

/** After a navigation, screen reader and keyboard users start at the page's heading. */
function focusHeading(main: HTMLElement): void {
  if (main.contains(document.activeElement) && document.activeElement !== document.body) return;
  const heading = main.querySelector<HTMLElement>('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
  window.scrollTo(0, 0);
}

function skipLink(): HTMLAnchorElement {
  return h('a', { class: 'skip-link', href: '#main' }, 'Skip to main content');
}

function brand(): HTMLElement {
  return h(
    'span',
    { class: 'brand' },
    h('img', { class: 'brand__mark', src: '/favicon.svg', alt: '', width: 28, height: 28 }),
    h('span', { class: 'brand__name' }, 'Conclave'),
    state.organisation ? h('span', { class: 'brand__org' }, state.organisation) : null,
  );
}

export { brand };

function header(session: api.SessionInfo): HTMLElement {
  const path = location.pathname;
  const navLink = (href: string, label: string, current: boolean): HTMLAnchorElement =>
    h('a', { href, class: 'nav__link', 'aria-current': current ? 'page' : null }, label);
  const signOut = h(
    'button',
    { type: 'button', class: 'button button--quiet', onclick: () => void doSignOut(signOut) },
    'Sign out',
  );
  return h(
    'header',
    { class: 'topbar' },
    h(
      'div',
      { class: 'topbar__inner' },
      h('a', { href: '/', class: 'brand-link', 'aria-label': 'Conclave home' }, brand()),
      h(
        'nav',
        { class: 'nav', 'aria-label': 'Main' },
        navLink('/', 'My meetings', path === '/'),
        canSchedule(session) ? navLink('/meetings/new', 'Schedule a meeting', path === '/meetings/new') : null,
      ),
      h(
        'div',
        { class: 'account' },
        h(
          'p',
          { class: 'account__who' },
          srOnly('Signed in as '),
          h('span', { class: 'account__name' }, session.user.display_name),
          h('span', { class: 'account__meta' }, `${session.user.name} · ${capitalise(session.user.role)}`),
        ),
        signOut,
      ),
    ),
  );
}

async function doSignOut(button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  try {
    await api.signOut();
  } catch (e) {
    // Already signed out (401) is what we wanted; anything else the user must know.
    if (!(e instanceof api.ApiError && e.status === 401)) {
      button.disabled = false;
      const message = e instanceof Error ? e.message : String(e);
      window.alert(`Signing out failed: ${message}`);
      return;
    }
  }
  signedOut('You have signed out.');
}

/** Follows in-app links without reloading the page. */
function interceptLinks(event: MouseEvent): void {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const target = event.target instanceof Element ? event.target.closest('a') : null;
  if (!target || target.target || target.hasAttribute('download')) return;
  const url = new URL(target.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return;
  if (url.hash && url.pathname === location.pathname) return;
  event.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) {
    navigate(url.pathname + url.search);
  }
}

/** Starts the app in `element`. */
export async function start(element: HTMLElement): Promise<void> {
  root = element;
  document.addEventListener('click', interceptLinks);
  window.addEventListener('popstate', () => void render());
  api.setSessionLostHandler(sessionLost);
  replaceChildren(root, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  try {
    const [session, organisation] = await Promise.all([
      api.getSession(),
      api.getOrganisation().catch(() => null),
    ]);
    state.session = session;
    state.organisation = organisation?.name ?? null;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    replaceChildren(
      root,
      h(
        'main',
        { id: 'main', class: 'main' },
        h('div', { class: 'page' }, h('h1', null, 'Conclave is not available'), h('p', { class: 'notice notice--error', role: 'alert' }, message)),
      ),
    );
    return;
  }
  await render();
}
