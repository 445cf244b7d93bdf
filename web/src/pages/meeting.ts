// One meeting: what it is, when, under which rules, and who takes part. Hosts can edit
// or cancel it from here. Hosts and invitees of a meeting that is not cancelled also see
// "Joining from this browser" (./prejoin.ts): camera, microphone, the server's verdict and
// the Join button, which leads to the call (./call.ts).

import * as api from '../api';
import { navigate, type PageContext } from '../app';
import { append, h, sentence, uid, type Child } from '../dom';
import {
  capitalise,
  classificationBadge,
  localTimeZone,
  meetingPhase,
  roleBadge,
  roleLabel,
  statusBadge,
  timeRange,
} from '../format';
import { noSuchMeeting } from './meeting-form';
import { prejoinPanel } from './prejoin';

export async function meetingPage(ctx: PageContext): Promise<void> {
  const id = ctx.params[0] ?? '';
  ctx.setTitle('Meeting');
  const status = h('p', { class: 'loading', role: 'status' }, 'Loading the meeting…');
  ctx.main.append(status);

  let meeting: api.MeetingInfo;
  let classifications: api.ClassificationInfo[];
  try {
    [meeting, classifications] = await Promise.all([api.getMeeting(id), api.listClassifications()]);
  } catch (e) {
    if (!ctx.isCurrent()) return;
    status.remove();
    if (e instanceof api.ApiError && e.status === 404) {
      await noSuchMeeting(ctx);
      return;
    }
    throw e;
  }
  if (!ctx.isCurrent()) return;
  status.remove();
  ctx.setTitle(meeting.title);

  const phase = meetingPhase(meeting, Date.now());
  const isHost = meeting.your_role === 'host';
  const info = classifications.find((c) => c.name === meeting.classification);
  const organiser = meeting.hosts.find((m) => m.user_id === meeting.organiser_id);

  append(ctx.main, [
    h(
      'div',
      { class: 'page-header page-header--meeting' },
      h('h1', null, meeting.title),
      h(
        'div',
        { class: 'badges' },
        statusBadge(phase),
        classificationBadge(meeting.classification),
        roleBadge(meeting.your_role),
        meeting.locked ? h('span', { class: 'badge badge--locked' }, 'Locked') : null,
      ),
    ),
    meeting.cancelled
      ? h('p', { class: 'notice notice--warning' }, 'This meeting is cancelled. Nobody can join it.')
      : null,
    isHost && !meeting.cancelled ? hostActions(meeting) : null,
    !meeting.cancelled && (isHost || meeting.your_role === 'invitee') ? prejoinPanel(meeting, ctx.session) : null,
    h(
      'div',
      { class: 'meeting-layout' },
      h(
        'div',
        { class: 'meeting-layout__main' },
        h(
          'dl',
          { class: 'summary-list summary-list--wide' },
          row('When', [timeRange(meeting.starts_at, meeting.ends_at), h('span', { class: 'muted' }, ` (your time zone: ${localTimeZone()})`)]),
          row('Organiser', organiser ? organiser.display_name : 'Unknown'),
          row('Your role', roleLabel(meeting.your_role)),
        ),
        panel('Agenda', meeting.agenda.trim() === ''
          ? h('p', { class: 'muted' }, 'No agenda was given.')
          : h('p', { class: 'agenda' }, meeting.agenda)),
        panel(
          `Classification: ${capitalise(meeting.classification)}`,
          info
            ? h('ul', { class: 'rules' }, info.description.map((line) => h('li', null, sentence(line))))
            : h('p', { class: 'muted' }, 'This classification is no longer configured on the server, so nobody can join until a host chooses another.'),
        ),
      ),
      h(
        'div',
        { class: 'meeting-layout__side' },
        panel(`Hosts (${meeting.hosts.length})`, people(meeting.hosts, meeting.organiser_id, 'No hosts.')),
        panel(`Invitees (${meeting.invitees.length})`, people(meeting.invitees, meeting.organiser_id, 'Nobody else is invited.')),
      ),
    ),
  ]);
}

function row(term: string, value: Child): HTMLDivElement {
  return h('div', null, h('dt', null, term), h('dd', null, value));
}

function panel(title: string, body: Child): HTMLElement {
  const id = uid('panel');
  return h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id, class: 'panel__title' }, title), body);
}

function people(list: api.MemberInfo[], organiserId: string, empty: string): HTMLElement {
  if (list.length === 0) return h('p', { class: 'muted' }, empty);
  return h(
    'ul',
    { class: 'people' },
    list.map((m) =>
      h(
        'li',
        { class: 'people__item' },
        h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials(m.display_name)),
        h('span', null, m.display_name),
        m.user_id === organiserId ? h('span', { class: 'muted' }, '(organiser)') : null,
      ),
    ),
  );
}

function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter((p) => p !== '');
  const letters = parts.length > 1 ? [parts[0], parts[parts.length - 1]] : parts;
  return letters.map((p) => (p ? Array.from(p)[0] ?? '' : '')).join('').toUpperCase();
}

function hostActions(meeting: api.MeetingInfo): HTMLElement {
  const cancelButton = h('button', { type: 'button', class: 'button button--danger-quiet' }, 'Cancel meeting');
  const dialog = cancelDialog(meeting, cancelButton);
  cancelButton.addEventListener('click', () => dialog.showModal());
  return h(
    'div',
    { class: 'actions', role: 'group', 'aria-label': 'Host actions' },
    h('a', { href: `/meetings/${meeting.id}/edit`, class: 'button button--secondary' }, 'Edit meeting'),
    cancelButton,
    dialog,
  );
}

function cancelDialog(meeting: api.MeetingInfo, opener: HTMLButtonElement): HTMLDialogElement {
  const titleId = uid('dialog-title');
  const textId = uid('dialog-text');
  const error = h('p', { class: 'notice notice--error', role: 'alert', hidden: true });
  const keep = h('button', { type: 'button', class: 'button button--secondary', autofocus: true }, 'Keep the meeting');
  const confirm = h('button', { type: 'button', class: 'button button--danger' }, 'Yes, cancel the meeting');
  const dialog = h(
    'dialog',
    { class: 'dialog', 'aria-labelledby': titleId, 'aria-describedby': textId },
    h('h2', { id: titleId, class: 'dialog__title' }, 'Cancel this meeting?'),
    h(
      'p',
      { id: textId },
      `“${meeting.title}” will stay in everyone's list, marked as cancelled, and nobody will be able to join it. This cannot be undone.`,
    ),
    error,
    h('div', { class: 'dialog__actions' }, keep, confirm),
  );
  keep.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => opener.focus());
  confirm.addEventListener('click', () => {
    void (async () => {
      confirm.disabled = true;
      keep.disabled = true;
      error.hidden = true;
      try {
        await api.cancelMeeting(meeting.id);
        dialog.close();
        navigate(`/meetings/${meeting.id}`, { replace: true, flash: 'The meeting is cancelled.' });
      } catch (e) {
        if (e instanceof api.SessionEnded) return;
        confirm.disabled = false;
        keep.disabled = false;
        error.textContent = e instanceof Error ? sentence(e.message) : String(e);
        error.hidden = false;
      }
    })();
  });
  return dialog;
}
