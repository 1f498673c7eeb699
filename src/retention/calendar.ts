/**
 * Calendar periods for retention: which hour, day, week, month and year a
 * snapshot belongs to, given the anchors (the hour a day begins, the
 * weekday a week begins) and the time zone (the host's local time, as
 * btrbk, or UTC).
 *
 * Owns: period arithmetic only. Pure: the caller passes every instant; no
 * clock is read here. Days are numbered by calendar date (days since
 * 1970-01-01 of the wall-clock date), so a DST change never makes a day 23
 * or 25 "days" long.
 */

export type TimeZone = 'local' | 'utc';

/** 0 = sunday ... 6 = saturday (as Date.getDay). */
export type Weekday = 0 | 1 | 2 | 3 | 4 | 5 | 6;

export const WEEKDAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'] as const;

export interface Anchors {
  /** The weekday a week begins on. */
  weekStart: Weekday;
  /** The hour (0–23) a day begins at; a snapshot at 02:00 with dayStart 3 belongs to the day before. */
  dayStart: number;
  timezone: TimeZone;
}

const DAY_MS = 86_400_000;

interface Wall {
  y: number;
  mo: number;
  d: number;
  h: number;
}

function wall(t: Date, tz: TimeZone): Wall {
  return tz === 'utc'
    ? { y: t.getUTCFullYear(), mo: t.getUTCMonth(), d: t.getUTCDate(), h: t.getUTCHours() }
    : { y: t.getFullYear(), mo: t.getMonth(), d: t.getDate(), h: t.getHours() };
}

const dayNumber = (y: number, mo: number, d: number) => Math.round(Date.UTC(y, mo, d) / DAY_MS);

/** Calendar date (YYYY-MM-DD) of a day number. */
export function dayText(dn: number): string {
  return new Date(dn * DAY_MS).toISOString().slice(0, 10);
}

/** Weekday of a day number (1970-01-01 was a thursday). */
export function weekdayOf(dn: number): Weekday {
  return ((((dn + 4) % 7) + 7) % 7) as Weekday;
}

export interface Periods {
  /** Wall-clock hour number (not shifted by dayStart). */
  hour: number;
  /** The day, as a day number, after shifting by dayStart. */
  day: number;
  /** Day number of the first day of the week the day is in. */
  week: number;
  /** year * 12 + month (0-based) of the day. */
  month: number;
  year: number;
}

/** The periods instant `t` falls in. */
export function periodsOf(t: Date, a: Anchors): Periods {
  const w = wall(t, a.timezone);
  const calendarDay = dayNumber(w.y, w.mo, w.d);
  const day = w.h < a.dayStart ? calendarDay - 1 : calendarDay;
  const week = day - ((weekdayOf(day) - a.weekStart + 7) % 7);
  const date = new Date(day * DAY_MS);
  return {
    hour: calendarDay * 24 + w.h,
    day,
    week,
    month: date.getUTCFullYear() * 12 + date.getUTCMonth(),
    year: date.getUTCFullYear(),
  };
}

export function hourText(hour: number): string {
  return `${dayText(Math.floor(hour / 24))}T${String(hour % 24).padStart(2, '0')}`;
}

export function monthText(month: number): string {
  return `${Math.floor(month / 12)}-${String((month % 12) + 1).padStart(2, '0')}`;
}
