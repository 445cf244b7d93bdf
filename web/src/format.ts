// How times, roles and classifications read on screen. Times are shown in the browser's
// time zone, with the zone named, since participants of one meeting may sit in several.

import { h, srOnly } from './dom';

const dayAndTime = new Intl.DateTimeFormat(undefined, {
  weekday: 'short',
  day: 'numeric',
  month: 'short',
  year: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  timeZoneName: 'short',
});

/** "Tue, 24 Nov 2026, 09:30 – 10:30 CET", or both dates when they differ. */
export function formatRange(startsAt: string, endsAt: string): string {
  const start = new Date(startsAt);
  const end = new Date(endsAt);
  if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) {
    return `${startsAt} – ${endsAt}`;
  }
  return dayAndTime.formatRange(start, end);
}

/** A `<time>` element for a meeting's span. */
export function timeRange(startsAt: string, endsAt: string): HTMLTimeElement {
  return h('time', { datetime: startsAt }, formatRange(startsAt, endsAt));
}

/** The browser's time zone, e.g. "Europe/Berlin". */
export function localTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** "2026-11-24T09:30" in local time, for `<input type="datetime-local">`. */
export function toLocalInput(date: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}

/** A `datetime-local` value as an RFC 3339 instant, or null when empty or invalid. */
export function fromLocalInput(value: string): string | null {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(value)) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

export function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Classification names that have their own badge colour. */
const KNOWN_CLASSIFICATIONS = new Set(['open', 'internal', 'confidential', 'secret']);

/** The classification as a badge; the label is read out as "Classification: Secret". */
export function classificationBadge(name: string): HTMLSpanElement {
  const tone = KNOWN_CLASSIFICATIONS.has(name) ? name : 'other';
  return h(
    'span',
    { class: `badge badge--cls badge--cls-${tone}` },
    srOnly('Classification: '),
    capitalise(name),
  );
}

/** The caller's place in a meeting, in words. */
export function roleLabel(role: string): string {
  switch (role) {
    case 'host':
      return 'Host';
    case 'invitee':
      return 'Invited';
    default:
      return capitalise(role);
  }
}

export function roleBadge(role: string): HTMLSpanElement {
  return h(
    'span',
    { class: `badge badge--role${role === 'host' ? ' badge--host' : ''}` },
    srOnly('Your role: '),
    roleLabel(role),
  );
}

/** Where a meeting stands in time, relative to `now`. */
export type MeetingPhase = 'cancelled' | 'upcoming' | 'now' | 'past';

export function meetingPhase(
  m: { starts_at: string; ends_at: string; cancelled: boolean },
  now: number,
): MeetingPhase {
  if (m.cancelled) return 'cancelled';
  const starts = Date.parse(m.starts_at);
  const ends = Date.parse(m.ends_at);
  if (ends <= now) return 'past';
  if (starts <= now) return 'now';
  return 'upcoming';
}

export function statusBadge(phase: MeetingPhase): HTMLSpanElement | null {
  switch (phase) {
    case 'cancelled':
      return h('span', { class: 'badge badge--cancelled' }, 'Cancelled');
    case 'now':
      return h('span', { class: 'badge badge--now' }, 'In progress');
    default:
      return null;
  }
}
