export { ChainStore, type ChainStoreOptions } from './chain-store.js';
export { openLocalChain, defaultDataDir, resolveChainDir, readPins, LOCAL_CHAIN_ID, type LocalChain, type OpenLocalChainOptions } from './open-local.js';
