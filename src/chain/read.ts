// Reading payloads back: unwrap the data key through the session's cache, then open the AEAD with
// the event's context. No key -> NoReadKey (EACCES); a tampered or moved payload -> DecryptError.
import { type DataKeyCache, openPayload, payloadAad } from './confidentiality.js';
import type { AuthorityStateReader } from './state.js';
import type { EventMeta } from './types.js';

/**
 * Plaintext of an event's payload (null when the event has none). `state` must know the data key
 * (the chain's current authority state does; data keys are never dropped).
 */
export function openEventPayload(
  state: AuthorityStateReader,
  keys: DataKeyCache,
  event: { meta: EventMeta; payload: Buffer | null },
): Buffer | null {
  if (event.payload === null || event.meta.payloadKey === null) return null;
  const g = state.getGenesis();
  if (!g) throw new TypeError('the chain has no genesis');
  const dk = keys.get(state, event.meta.payloadKey);
  return openPayload(dk, event.payload, payloadAad(g.hash, event.meta.key, event.meta.version));
}
