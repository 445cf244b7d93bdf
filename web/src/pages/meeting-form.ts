// Scheduling a meeting and editing one: the same form, filled in or not.

import * as api from '../api';
import { canSchedule, navigate, sessionLost, type PageContext } from '../app';
import { h, sentence } from '../dom';
import { busy, field, FormErrors, type Field } from '../form';
import { capitalise, fromLocalInput, localTimeZone, toLocalInput } from '../format';

const MAX_TITLE = 200;
const MAX_AGENDA = 10_000;
const HOUR_MS = 3_600_000;

export async function scheduleMeetingPage(ctx: PageContext): Promise<void> {
  ctx.setTitle('Schedule a meeting');
  ctx.main.append(h('div', { class: 'page-header' }, h('h1', null, 'Schedule a meeting')));
  if (!canSchedule(ctx.session)) {
    ctx.main.append(
      h('p', { class: 'notice notice--info' }, 'Only organisers and administrators can schedule meetings. Ask one of them to schedule it for you.'),
    );
    return;
  }
  const classifications = await loadClassifications(ctx);
  if (!classifications) return;

  const start = new Date();
  start.setMinutes(0, 0, 0);
  start.setTime(start.getTime() + HOUR_MS);
  const form = meetingForm({
    classifications,
    initial: {
      title: '',
      agenda: '',
      classification: preferredClassification(classifications),
      starts: start,
      ends: new Date(start.getTime() + HOUR_MS),
    },
    submitLabel: 'Schedule',
    cancelHref: '/',
    cancelLabel: 'Discard',
    members: 'new',
    async submit(values) {
      const created = await api.createMeeting({
        title: values.title,
        agenda: values.agenda,
        classification: values.classification,
        starts_at: values.startsAt,
        ends_at: values.endsAt,
        hosts: values.hosts ?? [],
        invitees: values.invitees ?? [],
      });
      navigate(`/meetings/${created.id}`, { flash: 'The meeting is scheduled. Hosts and invitees now see it in their list.' });
    },
  });
  ctx.main.append(form);
}

export async function editMeetingPage(ctx: PageContext): Promise<void> {
  const id = ctx.params[0] ?? '';
  ctx.setTitle('Edit meeting');
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
  ctx.setTitle(`Edit: ${meeting.title}`);
  ctx.main.append(
    h('div', { class: 'page-header' }, h('h1', null, 'Edit meeting'), h('p', { class: 'page-header__sub' }, meeting.title)),
  );
  const back = h('p', null, h('a', { href: `/meetings/${meeting.id}` }, 'Return to the meeting'));
  if (meeting.your_role !== 'host') {
    ctx.main.append(h('p', { class: 'notice notice--info' }, 'Only the hosts of this meeting can change it.'), back);
    return;
  }
  if (meeting.cancelled) {
    ctx.main.append(h('p', { class: 'notice notice--info' }, 'This meeting is cancelled and can no longer be changed.'), back);
    return;
  }

  const original = meeting;
  const form = meetingForm({
    classifications,
    initial: {
      title: meeting.title,
      agenda: meeting.agenda,
      classification: meeting.classification,
      starts: new Date(meeting.starts_at),
      ends: new Date(meeting.ends_at),
    },
    submitLabel: 'Save changes',
    cancelHref: `/meetings/${meeting.id}`,
    cancelLabel: 'Discard changes',
    members: { hosts: meeting.hosts, invitees: meeting.invitees },
    async submit(values) {
      const update: api.MeetingUpdate = {};
      if (values.title !== original.title) update.title = values.title;
      if (values.agenda !== original.agenda) update.agenda = values.agenda;
      if (values.classification !== original.classification) update.classification = values.classification;
      if (Date.parse(values.startsAt) !== Date.parse(original.starts_at)) update.starts_at = values.startsAt;
      if (Date.parse(values.endsAt) !== Date.parse(original.ends_at)) update.ends_at = values.endsAt;
      if (values.hosts) update.hosts = values.hosts;
      if (values.invitees) update.invitees = values.invitees;
      if (Object.keys(update).length === 0) {
        navigate(`/meetings/${original.id}`, { flash: 'Nothing was changed.', flashTone: 'info' });
        return;
      }
      await api.updateMeeting(original.id, update);
      navigate(`/meetings/${original.id}`, { flash: 'Your changes are saved.' });
    },
  });
  ctx.main.append(form);
}

/** The same words as for a meeting that does not exist: the server tells us no more. */
export async function noSuchMeeting(ctx: PageContext): Promise<void> {
  // A meeting answers "no such meeting" also when the session has ended; find out which.
  const session = await api.getSession();
  if (!ctx.isCurrent()) return;
  if (session === null) {
    sessionLost();
    throw new api.SessionEnded();
  }
  ctx.setTitle('Meeting not found');
  ctx.main.append(
    h('h1', null, 'Meeting not found'),
    h('p', null, 'There is no such meeting, or you are neither a host nor invited to it.'),
    h('p', null, h('a', { href: '/' }, 'Go to my meetings')),
  );
}

async function loadClassifications(ctx: PageContext): Promise<api.ClassificationInfo[] | null> {
  const status = h('p', { class: 'loading', role: 'status' }, 'Loading…');
  ctx.main.append(status);
  const list = await api.listClassifications();
  if (!ctx.isCurrent()) return null;
  status.remove();
  if (list.length === 0) {
    ctx.main.append(h('p', { class: 'notice notice--error', role: 'alert' }, 'The server has no classifications configured, so no meeting can be scheduled. Ask your administrator.'));
    return null;
  }
  return list;
}

/** "internal" when the server has it (the everyday choice), else the first. */
function preferredClassification(list: api.ClassificationInfo[]): string {
  return list.find((c) => c.name === 'internal')?.name ?? list[0]?.name ?? '';
}

interface FormValues {
  title: string;
  agenda: string;
  classification: string;
  startsAt: string;
  endsAt: string;
  /** Absent when the lists are left as they are (editing). */
  hosts?: string[];
  invitees?: string[];
}

interface MeetingFormOptions {
  classifications: api.ClassificationInfo[];
  initial: { title: string; agenda: string; classification: string; starts: Date; ends: Date };
  submitLabel: string;
  cancelHref: string;
  cancelLabel: string;
  /** 'new' to enter hosts and invitees; the current lists when editing. */
  members: 'new' | { hosts: api.MemberInfo[]; invitees: api.MemberInfo[] };
  submit(values: FormValues): Promise<void>;
}

/** Account names typed with commas, semicolons, spaces or new lines between them. */
export function parseNames(text: string): string[] {
  const names = text
    .split(/[\s,;]+/)
    .map((n) => n.trim())
    .filter((n) => n !== '');
  return [...new Set(names)];
}

function meetingForm(opts: MeetingFormOptions): HTMLFormElement {
  const errors = new FormErrors();
  const zone = localTimeZone();

  const title = field(
    'Title',
    h('input', { type: 'text', name: 'title', required: true, maxlength: MAX_TITLE, autocomplete: 'off', value: opts.initial.title }),
  );
  const agendaControl = h('textarea', { name: 'agenda', rows: 6, maxlength: MAX_AGENDA });
  agendaControl.value = opts.initial.agenda;
  const agenda = field('Agenda', agendaControl, 'Optional. Hosts and invitees see it on the meeting page.');

  const starts = field(
    'Starts',
    h('input', { type: 'datetime-local', name: 'starts', required: true, value: toLocalInput(opts.initial.starts) }),
    `In your time zone (${zone}).`,
  );
  const ends = field(
    'Ends',
    h('input', { type: 'datetime-local', name: 'ends', required: true, value: toLocalInput(opts.initial.ends) }),
    'A meeting lasts at most 7 days.',
  );
  // Moving the start keeps the meeting's length, as calendars do.
  let lastStart = starts.control.value;
  starts.control.addEventListener('change', () => {
    const before = Date.parse(fromLocalInput(lastStart) ?? '');
    const after = Date.parse(fromLocalInput(starts.control.value) ?? '');
    const end = Date.parse(fromLocalInput(ends.control.value) ?? '');
    if (!Number.isNaN(before) && !Number.isNaN(after) && !Number.isNaN(end) && end > before) {
      ends.control.value = toLocalInput(new Date(after + (end - before)));
    }
    lastStart = starts.control.value;
  });

  const select = h('select', { name: 'classification', required: true });
  for (const c of opts.classifications) {
    select.append(h('option', { value: c.name }, capitalise(c.name)));
  }
  if (!opts.classifications.some((c) => c.name === opts.initial.classification)) {
    // A meeting whose classification is no longer configured: show it, so nothing
    // changes silently; the server will ask for a configured one on saving.
    select.append(h('option', { value: opts.initial.classification }, `${capitalise(opts.initial.classification)} (no longer configured)`));
  }
  select.value = opts.initial.classification;
  const explanation = h('div', { class: 'cls-explain', 'aria-live': 'polite' });
  const showExplanation = (): void => {
    const info = opts.classifications.find((c) => c.name === select.value);
    explanation.replaceChildren(
      ...(info
        ? [
            h('p', { class: 'cls-explain__lead' }, `${capitalise(info.name)} means:`),
            h('ul', { class: 'cls-explain__rules' }, info.description.map((line) => h('li', null, sentence(line)))),
          ]
        : [h('p', null, 'This classification is not configured on the server.')]),
    );
  };
  select.addEventListener('change', showExplanation);
  showExplanation();
  const classification = field(
    'Classification',
    select,
    'Decides who may join, from which devices and networks.',
    explanation,
  );

  const namesHint = 'Account names, separated by commas or new lines.';
  const hosts = field(
    'Hosts',
    h('textarea', { name: 'hosts', rows: 2, autocapitalize: 'none', spellcheck: 'false' }),
    `${namesHint} ${opts.members === 'new' ? 'You are a host in any case' : 'The organiser stays a host in any case'}; hosts can change and cancel the meeting.`,
  );
  const invitees = field(
    'Invitees',
    h('textarea', { name: 'invitees', rows: 3, autocapitalize: 'none', spellcheck: 'false' }),
    namesHint,
  );

  let participants: HTMLElement;
  let replaceMembers: HTMLInputElement | null = null;
  if (opts.members === 'new') {
    participants = h(
      'fieldset',
      { class: 'fieldset' },
      h('legend', { class: 'fieldset__legend' }, 'People'),
      hosts.element,
      invitees.element,
    );
  } else {
    const { hosts: currentHosts, invitees: currentInvitees } = opts.members;
    const toggle = h('input', { type: 'checkbox', name: 'replace-members', id: 'replace-members' });
    replaceMembers = toggle;
    const editors = h('div', { class: 'members-edit', hidden: true },
      h('p', { class: 'field__hint' }, 'Enter the complete new lists: they replace the current ones. Leave a list empty to remove everyone from it.'),
      hosts.element,
      invitees.element,
    );
    toggle.addEventListener('change', () => {
      editors.hidden = !toggle.checked;
      if (toggle.checked) hosts.control.focus();
    });
    const names = (list: api.MemberInfo[]): string => (list.length === 0 ? 'nobody' : list.map((m) => m.display_name).join(', '));
    participants = h(
      'fieldset',
      { class: 'fieldset' },
      h('legend', { class: 'fieldset__legend' }, 'People'),
      h('dl', { class: 'summary-list' },
        h('div', null, h('dt', null, 'Current hosts'), h('dd', null, names(currentHosts))),
        h('div', null, h('dt', null, 'Currently invited'), h('dd', null, names(currentInvitees))),
      ),
      h('div', { class: 'checkbox' }, toggle, h('label', { for: toggle.id }, 'Change the people in this meeting')),
      editors,
    );
  }

  const form = h(
    'form',
    { class: 'form form--meeting', novalidate: true },
    errors.element,
    title.element,
    agenda.element,
    h('div', { class: 'field-row' }, starts.element, ends.element),
    classification.element,
    participants,
    h(
      'div',
      { class: 'form__actions' },
      h('button', { type: 'submit', class: 'button button--primary' }, opts.submitLabel),
      h('a', { href: opts.cancelHref, class: 'button button--quiet' }, opts.cancelLabel),
    ),
  );

  const fieldsFor = (message: string): Field<HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement>[] => {
    const m = message.toLowerCase();
    if (m.startsWith('title')) return [title];
    if (m.startsWith('agenda')) return [agenda];
    if (m.startsWith('classification')) return [classification];
    if (m.includes('ends_at') || m.includes('at most 7 days')) return [ends];
    if (m.includes('starts_at')) return [starts];
    const named = /no account is named `([^`]*)`/.exec(message)?.[1];
    if (named !== undefined) {
      return [hosts, invitees].filter((f) => parseNames(f.control.value).includes(named));
    }
    if (m.includes('hosts and invitees')) return [hosts, invitees];
    return [];
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void submit();
  });

  async function submit(): Promise<void> {
    const titleText = title.control.value.trim();
    const startsAt = fromLocalInput(starts.control.value);
    const endsAt = fromLocalInput(ends.control.value);
    if (titleText === '') return errors.show('Enter a title for the meeting.', [title]);
    if (startsAt === null) return errors.show('Enter the date and time the meeting starts.', [starts]);
    if (endsAt === null) return errors.show('Enter the date and time the meeting ends.', [ends]);
    if (Date.parse(endsAt) <= Date.parse(startsAt)) {
      return errors.show('The meeting must end after it starts.', [ends]);
    }
    if (select.value === '') return errors.show('Choose a classification.', [classification]);

    const values: FormValues = {
      title: titleText,
      agenda: agenda.control.value,
      classification: select.value,
      startsAt,
      endsAt,
    };
    if (opts.members === 'new' || replaceMembers?.checked) {
      values.hosts = parseNames(hosts.control.value);
      values.invitees = parseNames(invitees.control.value);
    }

    errors.clear();
    const done = busy(form);
    try {
      await opts.submit(values);
    } catch (e) {
      done();
      if (e instanceof api.SessionEnded) return;
      if (e instanceof api.ApiError && e.status >= 400 && e.status < 500 && e.status !== 429) {
        errors.show(humanise(e.message), fieldsFor(e.message));
      } else {
        errors.showProblem(e instanceof Error ? sentence(e.message) : String(e));
      }
    }
  }

  return form;
}

/** The server names fields as the API does; say them as the form does. */
function humanise(message: string): string {
  return sentence(
    message
      .replace(/\bends_at must be after starts_at\b/, 'the meeting must end after it starts')
      .replace(/\bstarts_at\b/g, 'start time')
      .replace(/\bends_at\b/g, 'end time'),
  );
}
