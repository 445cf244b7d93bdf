// Whom this user has verified: after reading the security code aloud and finding it the same
// on every screen, "Mark verified" records every current member of the call's group. Kept in
// this browser per signed-in user, by the member's device id and device key from their
// organisation-signed MLS credential, so a device that re-registers with a new key is not
// verified any more. Nothing of it goes to the server.

/** One member as their MLS credential names them. */
export interface Verifiable {
  device_id: string;
  device_key: string;
}

function storageKey(userId: string): string {
  return `conclave.verified.${userId}`;
}

function load(userId: string): Set<string> {
  try {
    const raw = localStorage.getItem(storageKey(userId));
    const list: unknown = raw === null ? [] : JSON.parse(raw);
    return new Set(Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string') : []);
  } catch {
    return new Set();
  }
}

function entry(member: Verifiable): string {
  return `${member.device_id}:${member.device_key}`;
}

export function isVerified(userId: string, member: Verifiable): boolean {
  return load(userId).has(entry(member));
}

/** Records these members as verified by `userId`. */
export function markVerified(userId: string, members: Verifiable[]): void {
  const set = load(userId);
  for (const m of members) set.add(entry(m));
  try {
    localStorage.setItem(storageKey(userId), JSON.stringify([...set]));
  } catch {
    // storage full or disabled: the mark lasts for this page only
  }
}
