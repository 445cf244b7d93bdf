// This browser's device for the signed-in account.
//
// The device key is an Ed25519 seed of 32 random bytes. It has to exist as raw bytes,
// because the same key signs MLS messages inside the WebAssembly crypto, so WebCrypto
// cannot hold it as a non-extractable key. Instead the seed is kept in IndexedDB encrypted
// (AES-GCM) under a WebCrypto key generated as NON-extractable: script can ask the browser
// to decrypt with it but can never read the key itself, so a copy of the database alone
// does not reveal the seed. The seed is decrypted only for the moment it is used, never
// logged and never sent anywhere: the server learns only the public key.
//
// One record per account (user id) and browser profile: device id, the wrapped seed and
// its IV, the wrapping key, and the latest organisation-signed credential. The first use
// registers the device (POST /api/devices); later uses fetch a fresh credential, which
// carries the device's current trust (an admin may have made it managed).

import * as api from './api';
import { loadWasm } from './wasm';

const DB_NAME = 'conclave';
const DB_VERSION = 1;
const STORE = 'devices';

interface DeviceRecord {
  /** The key path: the account this device belongs to. */
  userId: string;
  deviceId: string;
  name: string;
  publicKey: string;
  /** AES-GCM, 256 bits, not extractable. */
  wrappingKey: CryptoKey;
  iv: Uint8Array<ArrayBuffer>;
  /** The seed encrypted under `wrappingKey`, with the account and public key as AAD. */
  wrappedSeed: ArrayBuffer;
  credential: string;
  credentialExpiresAt: string;
  trust: string;
}

/** This browser's device as the app shows and uses it (never the seed). */
export interface Device {
  readonly id: string;
  readonly name: string;
  readonly publicKey: string;
  readonly trust: api.DeviceTrust | string;
  /** The current credential, unpadded URL-safe base64. */
  readonly credential: string;
  readonly credentialExpiresAt: string;
  /** True when this call registered it. */
  readonly justRegistered: boolean;
}

/** The server no longer accepts this browser's device: revoked, or unknown to it. */
export class DeviceGone extends Error {
  constructor(
    readonly why: 'revoked' | 'unknown',
    message: string,
  ) {
    super(message);
    this.name = 'DeviceGone';
  }
}

/** This browser's device for `userId`: registers it on first use, else refreshes its credential. */
export function ensureDevice(userId: string): Promise<Device> {
  return exclusively(userId, async () => {
    const record = await load(userId);
    if (record === null) return register(userId);
    return refresh(record);
  });
}

/** Forgets a revoked or unknown device and registers this browser afresh. */
export function registerAgain(userId: string): Promise<Device> {
  return exclusively(userId, async () => {
    await remove(userId);
    return register(userId);
  });
}

/** Fetches a fresh credential for the stored device (e.g. after a 409 "out of date"). */
export function refreshCredential(userId: string): Promise<Device> {
  return exclusively(userId, async () => {
    const record = await load(userId);
    if (record === null) return register(userId);
    return refresh(record);
  });
}

/**
 * Runs `use` with the device's seed, decrypted for the occasion and wiped afterwards.
 * For the crypto that signs as this device (join challenges, MLS): never store or send it.
 */
export async function withDeviceSeed<T>(
  userId: string,
  use: (seed: Uint8Array) => T | Promise<T>,
): Promise<T> {
  const record = await load(userId);
  if (record === null) throw new Error('This browser has no device for this account yet.');
  const seed = new Uint8Array(
    await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: record.iv, additionalData: aad(userId, record.publicKey) },
      record.wrappingKey,
      record.wrappedSeed,
    ),
  );
  try {
    return await use(seed);
  } finally {
    seed.fill(0);
  }
}

/** "Chromium on Linux", from what the browser says about itself. */
export function browserDeviceName(): string {
  const uaData = (navigator as Navigator & {
    userAgentData?: { brands?: { brand: string }[]; platform?: string };
  }).userAgentData;
  const ua = navigator.userAgent;
  let browser: string | null = null;
  if (uaData?.brands) {
    const brands = uaData.brands.map((b) => b.brand).filter((b) => !/not.?a.?brand/i.test(b));
    browser = brands.find((b) => b !== 'Chromium') ?? brands[0] ?? null;
  }
  if (browser === null) {
    if (/Firefox\//.test(ua)) browser = 'Firefox';
    else if (/Edg\//.test(ua)) browser = 'Microsoft Edge';
    else if (/Chrome\//.test(ua)) browser = 'Chrome';
    else if (/Safari\//.test(ua)) browser = 'Safari';
    else browser = 'Browser';
  }
  let platform = uaData?.platform ?? '';
  if (platform === '') {
    if (/Android/.test(ua)) platform = 'Android';
    else if (/iPhone|iPad/.test(ua)) platform = 'iOS';
    else if (/Windows/.test(ua)) platform = 'Windows';
    else if (/Mac OS X/.test(ua)) platform = 'macOS';
    else if (/CrOS/.test(ua)) platform = 'ChromeOS';
    else if (/Linux/.test(ua)) platform = 'Linux';
  }
  const name = platform ? `${browser} on ${platform}` : browser;
  return name.slice(0, 64);
}

// ---- registration and refresh ------------------------------------------------

async function register(userId: string): Promise<Device> {
  const seed = crypto.getRandomValues(new Uint8Array(32));
  try {
    const wasm = await loadWasm();
    const publicKey = wasm.device_public_key(seed);
    const wrappingKey = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, [
      'encrypt',
      'decrypt',
    ]);
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const wrappedSeed = await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: aad(userId, publicKey) },
      wrappingKey,
      seed,
    );
    const answer = await api.registerDevice(browserDeviceName(), publicKey);
    const record: DeviceRecord = {
      userId,
      deviceId: answer.device.id,
      name: answer.device.name,
      publicKey,
      wrappingKey,
      iv,
      wrappedSeed,
      credential: answer.credential,
      credentialExpiresAt: answer.credential_expires_at,
      trust: answer.device.trust,
    };
    await save(record);
    return view(record, true);
  } finally {
    seed.fill(0);
  }
}

async function refresh(record: DeviceRecord): Promise<Device> {
  let answer: api.DeviceWithCredential;
  try {
    answer = await api.deviceCredential(record.deviceId);
  } catch (e) {
    if (e instanceof api.ApiError && e.status === 404) {
      throw new DeviceGone(
        'unknown',
        'The server does not know the device this browser registered before (it may have been removed).',
      );
    }
    if (e instanceof api.ApiError && e.status === 403) {
      throw new DeviceGone('revoked', 'This browser’s device has been revoked, so it can no longer join meetings.');
    }
    throw e;
  }
  const updated: DeviceRecord = {
    ...record,
    name: answer.device.name,
    credential: answer.credential,
    credentialExpiresAt: answer.credential_expires_at,
    trust: answer.device.trust,
  };
  await save(updated);
  return view(updated, false);
}

function view(record: DeviceRecord, justRegistered: boolean): Device {
  return {
    id: record.deviceId,
    name: record.name,
    publicKey: record.publicKey,
    trust: record.trust,
    credential: record.credential,
    credentialExpiresAt: record.credentialExpiresAt,
    justRegistered,
  };
}

/** Binds the wrapped seed to its account and public key. */
function aad(userId: string, publicKey: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`conclave device seed\n${userId}\n${publicKey}`);
}

/** One registration or refresh at a time per account, across this browser's tabs. */
function exclusively<T>(userId: string, task: () => Promise<T>): Promise<T> {
  if (typeof navigator.locks?.request === 'function') {
    return navigator.locks.request(`conclave-device-${userId}`, task);
  }
  return task();
}

// ---- IndexedDB ---------------------------------------------------------------

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    if (typeof indexedDB === 'undefined') {
      reject(new Error('This browser cannot store a device key (no IndexedDB, e.g. in a private window).'));
      return;
    }
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      if (!req.result.objectStoreNames.contains(STORE)) {
        req.result.createObjectStore(STORE, { keyPath: 'userId' });
      }
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(storageError(req.error));
    req.onblocked = () => reject(new Error('Close other Conclave tabs of an older version, then try again.'));
  });
}

function storageError(e: DOMException | null): Error {
  return new Error(`This browser could not store its device key${e ? ` (${e.message})` : ''}.`);
}

async function transact<T>(
  mode: IDBTransactionMode,
  work: (store: IDBObjectStore) => IDBRequest<T>,
): Promise<T> {
  const db = await open();
  try {
    return await new Promise<T>((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = work(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(storageError(tx.error));
      tx.onabort = () => reject(storageError(tx.error));
    });
  } finally {
    db.close();
  }
}

async function load(userId: string): Promise<DeviceRecord | null> {
  const found = await transact<DeviceRecord | undefined>('readonly', (s) => s.get(userId));
  return found ?? null;
}

async function save(record: DeviceRecord): Promise<void> {
  await transact('readwrite', (s) => s.put(record));
}

async function remove(userId: string): Promise<void> {
  await transact('readwrite', (s) => s.delete(userId));
}
