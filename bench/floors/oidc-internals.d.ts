// oidc-provider's in-memory adapter keeps its state in an LRU of 1000 entries; the floor swaps in
// a larger one through the module's own setStorage (no type definitions ship for these paths).
declare module 'oidc-provider/lib/adapters/memory_adapter.js' {
  export function setStorage(store: unknown): void;
}
declare module 'oidc-provider/lib/helpers/lru.js' {
  export default class LRU {
    constructor(options: { maxSize: number });
    get(key: string): unknown;
  }
}
