export { ChainStore, type ChainStoreOptions } from './chain-store.js';
export { openLocalChain, defaultDataDir, type LocalChain, type OpenLocalChainOptions } from './open-local.js';
