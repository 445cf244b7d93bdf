// /meetings/{id}/call: this browser in a meeting's call. It runs a `CallSession` (../call.ts)
// and shows: where the join stands (lobby, joining, reconnecting, ended, in words), audio and
// video (./call-stage.ts), the security code everyone compares, the roster checked against the MLS group, chat, and the host's controls
// (lobby, remove, lock). The meeting page's Join button hands its join answer over; opened
// directly (a reload), the page asks to join itself.

import * as api from '../api';
import { navigate, type PageContext } from '../app';
import { askToJoin, CallSession, takeHandoff, type JoinRequest, type RosterEntry } from '../call';
import { DeviceGone } from '../device';
import { h, replaceChildren, sentence, srOnly, uid } from '../dom';
import { capitalise } from '../format';
import { transformSupport, UNSUPPORTED } from '../media';
import { stageView } from './call-stage';
import { isVerified, markVerified } from '../verified';

const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

export async function callPage(ctx: PageContext): Promise<void> {
  const id = ctx.params[0] ?? '';
  ctx.setTitle('Call');
  // No encrypted media, no call: refuse before even asking to join.
  if (transformSupport() === null) {
    ctx.main.append(
      h('h1', null, 'Call'),
      h('p', { class: 'notice notice--error call__unsupported', role: 'alert' }, UNSUPPORTED),
      h('p', null, h('a', { href: `/meetings/${id}` }, 'Back to the meeting')),
    );
    return;
  }
  const status = h('p', { class: 'loading', role: 'status' }, 'Joining the call…');
  ctx.main.append(status);

  let meeting: api.MeetingInfo;
  let request: JoinRequest | null = takeHandoff(id);
  try {
    meeting = await api.getMeeting(id);
    if (request === null) request = await askToJoin(id, ctx.session.user.id);
  } catch (e) {
    if (!ctx.isCurrent()) return;
    if (e instanceof api.ApiError && e.status === 404) throw e;
    if (e instanceof DeviceGone) {
      status.remove();
      ctx.main.append(
        h('h1', null, 'Call'),
        h('p', { class: 'notice notice--error', role: 'alert' }, e.message),
        h('p', null, h('a', { href: `/meetings/${id}` }, 'Back to the meeting')),
      );
      return;
    }
    throw e;
  }
  if (!ctx.isCurrent()) return;
  status.remove();
  ctx.setTitle(`Call: ${meeting.title}`);

  const { answer } = request;
  if (answer.ticket === null || (answer.outcome !== 'admit' && answer.outcome !== 'lobby')) {
    ctx.main.append(
      h('h1', null, meeting.title),
      h(
        'div',
        { class: 'notice notice--error', role: 'alert' },
        h('p', { class: 'call__refused' }, 'You cannot join this call from here:'),
        h('ul', null, answer.reasons.map((r) => h('li', { 'data-code': r.code }, sentence(r.message)))),
      ),
      h('p', null, h('a', { href: `/meetings/${id}` }, 'Back to the meeting')),
    );
    return;
  }

  const session = new CallSession(id, ctx.session.user.id, request);
  const view = callView(meeting, session, ctx.session.user.id);
  ctx.main.append(view.element);

  // Leaving the page leaves the call: the MLS state lives in this page only.
  const onPageHide = (): void => session.leave();
  window.addEventListener('pagehide', onPageHide);
  const unsubscribe = session.subscribe(() => {
    if (!ctx.isCurrent() || !view.element.isConnected) {
      // The user went elsewhere in the app.
      cleanup();
      session.leave();
      window.setTimeout(() => session.destroy(), 6000);
      return;
    }
    view.update();
    if (session.phase === 'ended' && session.ended?.left) {
      cleanup();
      session.destroy();
      navigate(`/meetings/${id}`, { flash: 'You left the call.', flashTone: 'info' });
    }
  });
  const watch = window.setInterval(() => {
    if (!ctx.isCurrent() || !view.element.isConnected) {
      cleanup();
      session.leave();
      window.setTimeout(() => session.destroy(), 6000);
    }
  }, 1000);
  const cleanup = (): void => {
    unsubscribe();
    window.clearInterval(watch);
    window.removeEventListener('pagehide', onPageHide);
  };
  view.update();
  await session.start(answer.ticket);
}

function callView(meeting: api.MeetingInfo, session: CallSession, userId: string): { element: HTMLElement; update(): void } {
  const state = h('div', { class: 'call__state', role: 'status', 'aria-live': 'polite' });

  const codeTitle = uid('panel');
  const code = h('p', { class: 'call__code', 'aria-describedby': `${codeTitle}-hint` });
  // after comparing the code aloud: everyone now in the group is who their credential says
  const markButton = h('button', { type: 'button', class: 'button button--secondary call__mark' }, 'Same code for everyone: mark all verified');
  const markState = h('p', { class: 'call__verified muted', role: 'status' });
  markButton.addEventListener('click', () => {
    markVerified(userId, others());
    update();
  });
  const others = () => [...session.members.values()].filter((m) => m.device_id !== session.deviceId);
  const codePanel = h(
    'section',
    { class: 'panel call__code-panel', 'aria-labelledby': codeTitle },
    h('h2', { id: codeTitle, class: 'panel__title' }, 'Security code'),
    code,
    h(
      'p',
      { id: `${codeTitle}-hint`, class: 'muted' },
      'Everyone in the call sees the same code. Read it aloud and compare: a different code means someone is listening in. It changes whenever someone joins or leaves.',
    ),
    h('div', { class: 'actions' }, markButton),
    markState,
  );

  const rosterTitle = uid('panel');
  const rosterHeading = h('h2', { id: rosterTitle, class: 'panel__title' }, 'Participants');
  const mismatch = h('div', { class: 'call__mismatch-region' });
  const roster = h('ul', { class: 'roster' });
  const rosterEmpty = h('p', { class: 'muted' });
  const lockButton = h('button', { type: 'button', class: 'button button--secondary' }, 'Lock the call');
  lockButton.addEventListener('click', () => session.setLocked(!session.locked));
  const hostBar = h('div', { class: 'actions', role: 'group', 'aria-label': 'Host controls' }, lockButton);
  const rosterPanel = h(
    'section',
    { class: 'panel', 'aria-labelledby': rosterTitle },
    rosterHeading,
    hostBar,
    mismatch,
    rosterEmpty,
    roster,
  );

  const lobbyTitle = uid('panel');
  const lobby = h('ul', { class: 'lobby' });
  const lobbyPanel = h(
    'section',
    { class: 'panel call__lobby', 'aria-labelledby': lobbyTitle },
    h('h2', { id: lobbyTitle, class: 'panel__title' }, 'Waiting in the lobby'),
    lobby,
  );

  const alertsTitle = uid('panel');
  const alerts = h('ul', { class: 'call__alerts' });
  const alertsPanel = h(
    'section',
    { class: 'panel', 'aria-labelledby': alertsTitle },
    h('h2', { id: alertsTitle, class: 'panel__title' }, 'For hosts'),
    alerts,
  );

  const chatTitle = uid('panel');
  const chatLog = h('ol', { class: 'chat__log', role: 'log', 'aria-live': 'polite', 'aria-label': 'Chat messages' });
  const chatInput = h('input', { id: uid('chat'), type: 'text', class: 'chat__input', maxlength: 2000, autocomplete: 'off' });
  const chatSend = h('button', { type: 'submit', class: 'button button--primary' }, 'Send');
  const chatForm = h(
    'form',
    { class: 'chat__form' },
    h('label', { for: chatInput.id, class: 'visually-hidden' }, 'Your message'),
    chatInput,
    chatSend,
  );
  chatForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = chatInput.value.trim();
    if (text === '') return;
    session.sendChat(text);
    chatInput.value = '';
    chatInput.focus();
  });
  const chatPanel = h(
    'section',
    { class: 'panel chat', 'aria-labelledby': chatTitle },
    h('h2', { id: chatTitle, class: 'panel__title' }, 'Chat'),
    h('p', { class: 'muted' }, 'End-to-end encrypted: only the people in the call can read it.'),
    chatLog,
    chatForm,
  );

  const problems = h('div', { class: 'call__problems' });
  const stage = stageView(session);

  const leaveButton = h('button', { type: 'button', class: 'button button--danger' }, 'Leave the call');
  leaveButton.addEventListener('click', () => {
    leaveButton.disabled = true;
    session.leave();
  });
  const endedBox = h('div', { class: 'call__ended' });

  const element = h(
    'div',
    { class: 'call' },
    h(
      'div',
      { class: 'page-header page-header--meeting' },
      h('h1', null, meeting.title),
      h('div', { class: 'actions' }, leaveButton),
    ),
    state,
    endedBox,
    h(
      'div',
      { class: 'meeting-layout' },
      h('div', { class: 'meeting-layout__main' }, lobbyPanel, stage.element, codePanel, rosterPanel, problems),
      h('div', { class: 'meeting-layout__side' }, chatPanel, alertsPanel),
    ),
  );

  let shownChat = 0;
  let lastState = '';

  const update = (): void => {
    const phase = session.phase;

    // where the join stands
    let stateText: HTMLElement[];
    switch (phase) {
      case 'connecting':
        stateText = [h('p', null, 'Connecting to the call…')];
        break;
      case 'waiting':
        stateText = [
          h('p', { class: 'call__waiting' }, 'Waiting for a host to let you in.'),
          session.waitingReasons.length > 0
            ? h('ul', { class: 'prejoin__reasons' }, session.waitingReasons.map((r) => h('li', null, sentence(r))))
            : h('span'),
        ];
        break;
      case 'joining':
        stateText = [h('p', null, 'Joining the call’s end-to-end encrypted group…')];
        break;
      case 'in_call':
        stateText = [h('p', null, 'You are in the call.')];
        break;
      case 'reconnecting':
        stateText = [h('p', null, session.reconnecting ?? 'Reconnecting…')];
        break;
      case 'ended':
        stateText = [];
        break;
    }
    const key = `${phase}|${session.waitingReasons.join('|')}|${session.reconnecting ?? ''}`;
    if (key !== lastState) {
      lastState = key;
      state.className = `call__state call__state--${phase}`;
      replaceChildren(state, stateText);
    }

    if (phase === 'ended' && session.ended !== null && !session.ended.left) {
      const again = h('a', { href: `/meetings/${meeting.id}`, class: 'button button--primary' }, 'Back to the meeting');
      replaceChildren(
        endedBox,
        h(
          'div',
          { class: 'notice notice--error', role: 'alert' },
          h('p', { class: 'call__ended-text' }, session.ended.text),
          session.ended.canRejoin ? h('p', null, 'You can ask to join again from the meeting’s page.') : null,
        ),
        h('p', null, again),
      );
      leaveButton.hidden = true;
    }
    const ended = phase === 'ended';
    stage.update();
    chatInput.disabled = chatSend.disabled = phase !== 'in_call';

    // the security code
    const codeText = session.securityCode;
    code.textContent = codeText ?? (ended ? '—' : 'Not in the group yet');
    code.classList.toggle('call__code--none', codeText === null);
    code.dataset.epoch = session.epoch !== null ? String(session.epoch) : '';
    const unverified = others().filter((m) => !isVerified(userId, m));
    markButton.hidden = codeText === null || unverified.length === 0 || ended;
    markState.textContent =
      codeText === null || others().length === 0
        ? ''
        : unverified.length === 0
          ? 'You have verified everyone in the call.'
          : `Not verified by you yet: ${unverified.map((m) => m.display_name).join(', ')}.`;

    // the roster, checked against the group
    rosterHeading.textContent = `Participants (${session.roster.length})`;
    const mismatches = session.mismatches();
    const notInGroup = new Set(mismatches.flatMap((m) => (m.kind === 'not_in_group' ? [m.entry.device_id] : [])));
    const hidden = mismatches.flatMap((m) => (m.kind === 'hidden_member' ? [m.member] : []));
    if (mismatches.length > 0) {
      replaceChildren(
        mismatch,
        h(
          'div',
          { class: 'notice notice--warning call__mismatch', role: 'alert' },
          h('p', null, 'The participant list and the encrypted group do not match.'),
          notInGroup.size > 0
            ? h('p', null, `${notInGroup.size === 1 ? 'One participant is' : `${notInGroup.size} participants are`} on the list but not in the encrypted group (still joining, or something is wrong).`)
            : null,
          hidden.length > 0
            ? h(
                'p',
                null,
                'In the encrypted group but not on the list: ',
                hidden.map((m, i) => [i > 0 ? ', ' : '', `${m.display_name} (${m.user_name})`]),
                '. They can read everything said in the call.',
              )
            : null,
        ),
      );
    } else {
      replaceChildren(mismatch);
    }
    replaceChildren(
      roster,
      session.roster.map((entry) => rosterItem(entry, session, userId, notInGroup.has(entry.device_id), ended)),
    );
    rosterEmpty.hidden = session.roster.length > 0;
    rosterEmpty.textContent =
      phase === 'waiting' ? 'You will see who is in the call once a host lets you in.' : 'Nobody yet.';
    hostBar.hidden = !session.host || ended;
    lockButton.textContent = session.locked ? 'Unlock the call' : 'Lock the call';
    lockButton.disabled = ended;

    // the lobby (hosts)
    lobbyPanel.hidden = !session.host || session.lobby.length === 0 || ended;
    replaceChildren(
      lobby,
      session.lobby.map((w) => {
        const admit = h('button', { type: 'button', class: 'button button--primary' }, 'Admit');
        const deny = h('button', { type: 'button', class: 'button button--danger-quiet' }, 'Deny');
        admit.setAttribute('aria-label', `Admit ${w.display_name}`);
        deny.setAttribute('aria-label', `Deny ${w.display_name}`);
        admit.addEventListener('click', () => {
          admit.disabled = deny.disabled = true;
          session.admit(w.participant);
        });
        deny.addEventListener('click', () => {
          admit.disabled = deny.disabled = true;
          session.deny(w.participant);
        });
        return h(
          'li',
          { class: 'lobby__item', 'data-participant': w.participant },
          h('p', { class: 'lobby__who' }, h('strong', null, w.display_name), ' ', h('span', { class: 'muted' }, `(${w.user_name})`)),
          h('p', { class: 'muted' }, `${capitalise(w.device_trust)} device, ${networkText(w.network)}, waiting since ${timeOfDay.format(new Date(w.since))}`),
          w.reasons.length > 0 ? h('ul', { class: 'prejoin__reasons' }, w.reasons.map((r) => h('li', null, sentence(r)))) : null,
          h('div', { class: 'actions' }, admit, deny),
        );
      }),
    );

    // alerts (hosts)
    alertsPanel.hidden = !session.host || session.alerts.length === 0;
    replaceChildren(
      alerts,
      session.alerts
        .slice(-10)
        .reverse()
        .map((a) =>
          h(
            'li',
            { 'data-kind': a.kind },
            h('span', { class: 'muted' }, `${timeOfDay.format(new Date(a.at))} `),
            a.who ? h('strong', null, a.who) : null,
            // "lobby" texts continue the name ("is waiting in the lobby"); others stand alone.
            a.who ? (a.kind === 'lobby' ? ` ${a.text}.` : `: ${sentence(a.text)}`) : sentence(a.text),
          ),
        ),
    );

    // chat: appended, so that the log only announces new messages
    if (session.chat.length < shownChat) {
      replaceChildren(chatLog);
      shownChat = 0;
    }
    for (const m of session.chat.slice(shownChat)) {
      chatLog.append(
        h(
          'li',
          { class: `chat__message${m.own ? ' chat__message--own' : ''}` },
          h('span', { class: 'chat__from' }, m.own ? `${m.from} (you)` : m.from),
          ' ',
          h('time', { class: 'chat__time muted', datetime: m.at.toISOString() }, timeOfDay.format(m.at)),
          h('p', { class: 'chat__text' }, m.text),
        ),
      );
    }
    shownChat = session.chat.length;
    if (session.chat.length === 0 && chatLog.childElementCount === 0) {
      chatLog.setAttribute('data-empty', '');
    } else {
      chatLog.removeAttribute('data-empty');
    }

    // what went wrong on the way
    const list = [
      ...session.refusals.map((r) => `The encrypted group refused someone: ${r}`),
      ...session.problems,
    ];
    if (list.length > 0) {
      replaceChildren(
        problems,
        h(
          'div',
          { class: 'notice notice--warning' },
          h('p', null, 'Things that did not go as expected:'),
          h('ul', null, list.slice(-8).map((p) => h('li', null, sentence(p)))),
        ),
      );
    } else {
      replaceChildren(problems);
    }
  };

  return { element, update };
}

function networkText(network: { trusted: boolean; name?: string; address?: string }): string {
  const base = network.trusted ? `trusted network${network.name ? ` “${network.name}”` : ''}` : 'untrusted network';
  return network.address ? `${base} (${network.address})` : base;
}

function rosterItem(entry: RosterEntry, session: CallSession, userId: string, notInGroup: boolean, ended: boolean): HTMLLIElement {
  const member = session.memberOf(entry.device_id);
  const isMe = entry.participant === session.me;
  // What the organisation-signed credential in the member's MLS leaf says, against the roster.
  let identity: HTMLElement;
  if (member === undefined) {
    identity = h('span', { class: 'roster__identity roster__identity--unverified' }, 'Identity not verified yet');
  } else if (member.user_id !== entry.user_id || member.display_name !== entry.display_name || member.user_name !== entry.user_name) {
    identity = h(
      'span',
      { class: 'roster__identity roster__identity--conflict' },
      `The credential names ${member.display_name} (${member.user_name}), not who the server says`,
    );
  } else {
    identity = h(
      'span',
      { class: 'roster__identity roster__identity--verified' },
      `Verified: ${member.display_name} (${member.user_name}), ${member.organisation}`,
    );
  }
  const remove = h('button', { type: 'button', class: 'button button--danger-quiet' }, 'Remove');
  remove.setAttribute('aria-label', `Remove ${entry.display_name} from the call`);
  remove.addEventListener('click', () => {
    if (window.confirm(`Remove ${entry.display_name} from the call?`)) {
      remove.disabled = true;
      session.remove(entry.participant);
    }
  });
  return h(
    'li',
    {
      class: `roster__item${notInGroup ? ' roster__item--mismatch' : ''}${session.speaker === entry.participant ? ' roster__item--speaking' : ''}`,
      'data-participant': entry.participant,
      'data-device': entry.device_id,
    },
    h(
      'div',
      { class: 'roster__main' },
      h('span', { class: 'roster__name' }, entry.display_name),
      isMe ? h('span', { class: 'muted' }, ' (you)') : null,
      h(
        'span',
        { class: 'badges' },
        entry.host ? h('span', { class: 'badge badge--host' }, 'Host') : null,
        h('span', { class: `badge badge--trust badge--trust-${entry.device_trust}` }, srOnly('Device: '), capitalise(entry.device_trust)),
        h(
          'span',
          { class: `badge ${entry.network.trusted ? 'badge--net-trusted' : 'badge--net-untrusted'}` },
          srOnly('Network: '),
          entry.network.trusted ? `Trusted${entry.network.name ? `: ${entry.network.name}` : ''}` : 'Untrusted network',
        ),
        notInGroup ? h('span', { class: 'badge badge--mismatch call__mismatch-flag' }, 'Not in the encrypted group') : null,
        !isMe && member !== undefined && isVerified(userId, member)
          ? h('span', { class: 'badge badge--verified' }, 'Verified by you')
          : null,
        session.speaker === entry.participant ? h('span', { class: 'badge badge--now' }, 'Speaking') : null,
      ),
    ),
    h(
      'p',
      { class: 'roster__meta' },
      identity,
      h('span', { class: 'muted' }, ` · joined ${timeOfDay.format(new Date(entry.joined_at))}`),
      entry.network.address ? h('span', { class: 'muted' }, ` · from ${entry.network.address}`) : null,
    ),
    session.host && !isMe && !ended ? h('div', { class: 'roster__actions' }, remove) : null,
  );
}
