/** The part of unix-dgram (an optional native dependency, no types of its own) that Outpost and its tests use. */
declare module 'unix-dgram' {
  interface UnixDgramSocket {
    bind(path: string): void;
    send(buf: Buffer, offset: number, length: number, path: string, cb?: (err?: Error) => void): void;
    on(event: 'error', listener: (error: Error) => void): void;
    close(): void;
  }
  function createSocket(type: 'unix_dgram', onMessage?: (data: Buffer) => void): UnixDgramSocket;
  const unix: { createSocket: typeof createSocket };
  export default unix;
  export { createSocket, type UnixDgramSocket };
}
