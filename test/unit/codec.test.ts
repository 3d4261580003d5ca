// Unit: the AES-256-GCM payload codec and its key configuration.
import crypto from 'node:crypto';
import { METADATA_ENCODING_KEY, type Payload } from '@temporalio/common';
import { EncryptionCodec, codecKeysFromEnv, newKeyEntry, parseCodecKeys } from '../../common/codec';

const key = (id: string) => ({ id, key: crypto.randomBytes(32) });
const payload = (text: string): Payload => ({
  metadata: { [METADATA_ENCODING_KEY]: new TextEncoder().encode('json/plain') },
  data: new TextEncoder().encode(text),
});
const textOf = (p: Payload) => Buffer.from(p.data!).toString('utf8');

test('encrypts the whole payload (data and metadata) and decrypts it back', async () => {
  const codec = new EncryptionCodec([key('k1')]);
  const [sealed] = await codec.encode([payload('{"password":"hunter2"}')]);
  expect(Buffer.from(sealed!.metadata![METADATA_ENCODING_KEY]!).toString()).toBe('binary/encrypted');
  expect(Buffer.from(sealed!.metadata!['encryption-key-id']!).toString()).toBe('k1');
  expect(Buffer.from(sealed!.data!).toString('latin1')).not.toContain('hunter2');
  expect(Buffer.from(sealed!.data!).toString('latin1')).not.toContain('json/plain');
  const [back] = await codec.decode([sealed!]);
  expect(textOf(back!)).toBe('{"password":"hunter2"}');
  expect(Buffer.from(back!.metadata![METADATA_ENCODING_KEY]!).toString()).toBe('json/plain');
});

test('the same value encrypts differently each time (random IV)', async () => {
  const codec = new EncryptionCodec([key('k1')]);
  const [a, b] = await codec.encode([payload('x'), payload('x')]);
  expect(Buffer.from(a!.data!).equals(Buffer.from(b!.data!))).toBe(false);
});

test('rotation: a new first key encrypts, the old one still decrypts old payloads', async () => {
  const k1 = key('k1');
  const k2 = key('k2');
  const [old] = await new EncryptionCodec([k1]).encode([payload('old')]);
  const rotated = new EncryptionCodec([k2, k1]);
  expect(textOf((await rotated.decode([old!]))[0]!)).toBe('old');
  const [fresh] = await rotated.encode([payload('new')]);
  expect(Buffer.from(fresh!.metadata!['encryption-key-id']!).toString()).toBe('k2');
  await expect(new EncryptionCodec([k1]).decode([fresh!])).rejects.toThrow(
    'A payload is encrypted with key id "k2", which is not among the configured keys (k1)',
  );
});

test('altered ciphertext or a swapped key id fails authentication', async () => {
  const k1 = key('k1');
  const codec = new EncryptionCodec([k1, { id: 'k9', key: k1.key }]);
  const [sealed] = await codec.encode([payload('value')]);
  const flipped = Buffer.from(sealed!.data!);
  flipped[20] = flipped[20]! ^ 1;
  await expect(codec.decode([{ ...sealed!, data: flipped }])).rejects.toThrow(/failed authentication with key "k1"/);
  const swapped = {
    ...sealed!,
    metadata: { ...sealed!.metadata, 'encryption-key-id': new TextEncoder().encode('k9') },
  };
  await expect(codec.decode([swapped])).rejects.toThrow(/failed authentication with key "k9"/);
});

test('plain payloads pass through decode (runs started before encryption was on)', async () => {
  const codec = new EncryptionCodec([key('k1')]);
  expect(textOf((await codec.decode([payload('plain')]))[0]!)).toBe('plain');
});

test('key configuration: entries, comments, errors that never show key material', () => {
  const a = newKeyEntry('a');
  const b = newKeyEntry('b.2');
  expect(parseCodecKeys(`# keys\n${a}\n${b} # old\n`, 'file').map((k) => k.id)).toEqual(['a', 'b.2']);
  expect(codecKeysFromEnv({ RUNBOOK_CODEC_KEYS: `${b},${a}` }).map((k) => k.id)).toEqual(['b.2', 'a']);
  expect(codecKeysFromEnv({})).toEqual([]);
  const short = `short:${crypto.randomBytes(16).toString('base64')}`;
  expect(() => parseCodecKeys(short, 'RUNBOOK_CODEC_KEYS')).toThrow(
    'RUNBOOK_CODEC_KEYS: key "short" is 16 bytes; AES-256 needs 32',
  );
  try {
    parseCodecKeys(short, 'RUNBOOK_CODEC_KEYS');
  } catch (err) {
    expect((err as Error).message).not.toContain(short.split(':')[1]);
  }
  expect(() => parseCodecKeys('no-separator', 'X')).toThrow('X: entry 1 is not ID:BASE64KEY');
  expect(() => parseCodecKeys(`${a},${a}`, 'X')).toThrow('X: key id "a" appears twice');
  expect(() => codecKeysFromEnv({ RUNBOOK_CODEC_KEYS_FILE: '/nonexistent/keys' })).toThrow(
    /RUNBOOK_CODEC_KEYS_FILE \/nonexistent\/keys cannot be read: ENOENT/,
  );
});
