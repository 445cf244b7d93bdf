import * as api from '../api';
import { canSchedule, type PageContext } from '../app';
import { append, h, uid } from '../dom';
import {
  classificationBadge,
  localTimeZone,
  meetingPhase,
  roleBadge,
  statusBadge,
  timeRange,
} from '../format';

/** "My meetings": what the caller hosts or is invited to, upcoming first. */
export async function meetingsPage(ctx: PageContext): Promise<void> {
  ctx.setTitle('My meetings');
  const heading = h('h1', null, 'My meetings');
  const status = h('p', { class: 'loading', role: 'status' }, 'Loading your meetings…');
  ctx.main.append(
    h(
      'div',
      { class: 'page-header' },
      heading,
      h('p', { class: 'page-header__sub' }, `Times are shown in your time zone (${localTimeZone()}).`),
    ),
    status,
  );

  const meetings = await api.listMeetings();
  if (!ctx.isCurrent()) return;
  status.remove();

  const now = Date.now();
  const upcoming = meetings
    .filter((m) => Date.parse(m.ends_at) > now)
    .sort((a, b) => Date.parse(a.starts_at) - Date.parse(b.starts_at));
  const past = meetings
    .filter((m) => Date.parse(m.ends_at) <= now)
    .sort((a, b) => Date.parse(b.starts_at) - Date.parse(a.starts_at));

  append(ctx.main, [
    section(
      'Upcoming',
      upcoming,
      now,
      canSchedule(ctx.session)
        ? 'You have no upcoming meetings. Use “Schedule a meeting” at the top of the page to plan one.'
        : 'You have no upcoming meetings. Meetings you are invited to will appear here.',
    ),
    past.length > 0 ? section('Past', past, now, '') : null,
  ]);
}

function section(
  title: string,
  meetings: api.MeetingSummary[],
  now: number,
  emptyText: string,
): HTMLElement {
  const headingId = uid('section');
  return h(
    'section',
    { class: 'section', 'aria-labelledby': headingId },
    h('h2', { id: headingId, class: 'section__title' }, title, ' ', h('span', { class: 'count' }, `(${meetings.length})`)),
    meetings.length === 0
      ? h('p', { class: 'empty' }, emptyText)
      : h('ul', { class: 'meeting-list', 'aria-label': `${title} meetings` }, meetings.map((m) => item(m, now))),
  );
}

function item(m: api.MeetingSummary, now: number): HTMLLIElement {
  const phase = meetingPhase(m, now);
  return h(
    'li',
    { class: `meeting-card${phase === 'cancelled' ? ' meeting-card--cancelled' : ''}` },
    h(
      'div',
      { class: 'meeting-card__main' },
      h('h3', { class: 'meeting-card__title' }, h('a', { href: `/meetings/${m.id}` }, m.title)),
      h('p', { class: 'meeting-card__time' }, timeRange(m.starts_at, m.ends_at)),
    ),
    h(
      'div',
      { class: 'meeting-card__badges' },
      statusBadge(phase),
      classificationBadge(m.classification),
      roleBadge(m.your_role),
    ),
  );
}
