// fuse-native ships no types. This covers the surface the fs adapter uses.
declare module 'fuse-native' {
  type Cb = (...args: any[]) => void;
  interface FuseOps { [op: string]: ((...args: any[]) => void) | undefined }
  interface FuseOpts {
    force?: boolean; mkdir?: boolean; debug?: boolean; allowOther?: boolean; allowRoot?: boolean;
    autoUnmount?: boolean; defaultPermissions?: boolean; fsname?: string; subtype?: string;
    kernelCache?: boolean; autoCache?: boolean; uid?: number; gid?: number; umask?: number;
    entryTimeout?: number; attrTimeout?: number; acAttrTimeout?: number; maxRead?: number;
    timeout?: number | Record<string, number>; useIno?: boolean; [k: string]: unknown;
  }
  class Fuse {
    constructor(mnt: string, ops: FuseOps, opts?: FuseOpts);
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    static isConfigured(cb: (err: Error | null, configured: boolean) => void): void;
    static configure(cb: Cb): void;
    static [errno: string]: any;
  }
  export = Fuse;
}
