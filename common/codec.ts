// Node side. Encrypted workflow history: a payload codec (AES-256-GCM) that the worker, the client and the CLI
// all use, so params, step results and approval comments reach the Temporal server only as ciphertext. Keys
// carry ids: the first key encrypts, every key decrypts, so a key is rotated by putting a new one first.
import crypto from 'node:crypto';
import fs from 'node:fs';
import {
  METADATA_ENCODING_KEY,
  ValueError,
  type DataConverter,
  type Payload,
  type PayloadCodec,
} from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { UserError } from './errors';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface CodecKey {
  id: string;
  key: Buffer;
}

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString('utf8') : undefined);

export class EncryptionCodec implements PayloadCodec {
  private readonly byId: Map<string, Buffer>;

  /** `keys[0]` encrypts; all of them decrypt. */
  constructor(readonly keys: CodecKey[]) {
    if (keys.length === 0) throw new UserError('The payload codec needs at least one key.');
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  get activeKeyId(): string {
    return this.keys[0]!.id;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const { id, key } = this.keys[0]!;
    return payloads.map((p) => {
      const iv = crypto.randomBytes(IV_BYTES);
      const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(id)); // the key id cannot be swapped without failing authentication
      const plain = temporal.api.common.v1.Payload.encode(p).finish();
      const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: { [METADATA_ENCODING_KEY]: text(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: text(id) },
        data: sealed,
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      if (str(p.metadata?.[METADATA_ENCODING_KEY]) !== ENCRYPTED_ENCODING) return p;
      const id = str(p.metadata?.[KEY_ID_METADATA]);
      const key = id === undefined ? undefined : this.byId.get(id);
      if (!key) {
        throw new ValueError(
          `A payload is encrypted with key id "${id ?? '(none)'}", which is not among the configured keys ` +
            `(${[...this.byId.keys()].join(', ')}). Add it to RUNBOOK_CODEC_KEYS or RUNBOOK_CODEC_KEYS_FILE.`,
        );
      }
      const data = Buffer.from(p.data ?? []);
      if (data.length < IV_BYTES + TAG_BYTES) throw new ValueError('An encrypted payload is too short to be valid.');
      const decipher = crypto.createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(id!));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      let plain: Buffer;
      try {
        plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
      } catch {
        throw new ValueError(
          `An encrypted payload failed authentication with key "${id}": it was altered, or the key is wrong.`,
        );
      }
      return temporal.api.common.v1.Payload.decode(plain) as Payload;
    });
  }
}

/**
 * Parses `ID:BASE64KEY` entries (commas or new lines between them, `#` comments); each key is 32 bytes.
 * Errors name the entry by id or position, never the key material.
 */
export function parseCodecKeys(spec: string, source: string): CodecKey[] {
  const entries = spec
    .split(/[,\n]/)
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter(Boolean);
  const seen = new Set<string>();
  return entries.map((entry, i) => {
    const m = /^([A-Za-z0-9._-]+)\s*[:=\s]\s*([A-Za-z0-9+/=_-]+)$/.exec(entry);
    if (!m)
      throw new UserError(
        `${source}: entry ${i + 1} is not ID:BASE64KEY (ids use letters, digits, . _ -). Make one with: runbook codec keygen`,
      );
    const [, id, b64] = m as unknown as [string, string, string];
    const key = Buffer.from(b64, 'base64');
    if (key.length !== 32)
      throw new UserError(
        `${source}: key "${id}" is ${key.length} bytes; AES-256 needs 32 (base64 of 32 random bytes).`,
      );
    if (seen.has(id)) throw new UserError(`${source}: key id "${id}" appears twice.`);
    seen.add(id);
    return { id, key };
  });
}

/**
 * Keys from RUNBOOK_CODEC_KEYS, else the file RUNBOOK_CODEC_KEYS_FILE, of the environment given (the process's
 * is read in worker/config.ts and cli/ only); none means history is not encrypted.
 */
export function codecKeysFromEnv(env: NodeJS.ProcessEnv): CodecKey[] {
  if (env.RUNBOOK_CODEC_KEYS) return parseCodecKeys(env.RUNBOOK_CODEC_KEYS, 'RUNBOOK_CODEC_KEYS');
  const file = env.RUNBOOK_CODEC_KEYS_FILE;
  if (!file) return [];
  let content: string;
  try {
    content = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`RUNBOOK_CODEC_KEYS_FILE ${file} cannot be read: ${(err as Error).message}`, { cause: err });
  }
  return parseCodecKeys(content, `RUNBOOK_CODEC_KEYS_FILE ${file}`);
}

/** The failure converter module (messages of failures go into an encoded payload); workflow bundles include it. */
export const FAILURE_CONVERTER_PATH = require.resolve('./failure-converter');

/**
 * The data converter for clients and workers: failures' messages as payloads always, and the encryption codec
 * when there are keys (then those payloads are encrypted too).
 */
export function dataConverterFor(keys: CodecKey[]): DataConverter {
  return {
    failureConverterPath: FAILURE_CONVERTER_PATH,
    ...(keys.length ? { payloadCodecs: [new EncryptionCodec(keys)] } : {}),
  };
}

/** The data converter with the keys of an environment (see codecKeysFromEnv). */
export function dataConverterFromEnv(env: NodeJS.ProcessEnv): DataConverter {
  return dataConverterFor(codecKeysFromEnv(env));
}

/** A new key entry for RUNBOOK_CODEC_KEYS (or a line of the keys file). */
export function newKeyEntry(id = `k${new Date().toISOString().slice(0, 10).replace(/-/g, '')}`): string {
  return `${id}:${crypto.randomBytes(32).toString('base64')}`;
}
