export { ChainStore, type ChainStoreOptions } from './chain-store.js';
export { openLocalChain, defaultDataDir, resolveChainDir, readPins, findPin, checkUnpinnedChain, LOCAL_CHAIN_ID, TRUST_HINT, ACCEPT_HINT, type LocalChain, type OpenLocalChainOptions } from './open-local.js';
