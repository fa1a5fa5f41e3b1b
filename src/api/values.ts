// Values of typed DAOs: msgpack without records (the durable format of every chain record), so a
// value written by one program reads back in any other msgpack implementation.
import { Packr } from 'msgpackr';
import { ValueDecodeError } from './errors.js';

const packr = new Packr({ useRecords: false, moreTypes: false });

export function encodeValue(v: unknown): Buffer {
  return packr.pack(v);
}

export function decodeValue<T>(key: string, b: Buffer | null): T {
  if (b === null) return null as T;
  try {
    return packr.unpack(b) as T;
  } catch (e) {
    throw new ValueDecodeError(key, e);
  }
}
