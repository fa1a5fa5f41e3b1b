// A JetStream message of a chain holds a batch of commits (jetstream-chain.ts publishes everything
// validated while the previous publish was in flight as one message): [u32 length][commit bytes]
// repeated, nothing else; the header Ate-Seq names the chain seq of the first.
/** Batch framing: [u32 length][commit bytes] repeated. */
export function frameCommits(commits: Buffer[]): Buffer {
  const out = Buffer.allocUnsafe(commits.reduce((n, c) => n + 4 + c.length, 0));
  let o = 0;
  for (const c of commits) {
    out.writeUInt32BE(c.length, o);
    c.copy(out, o + 4);
    o += 4 + c.length;
  }
  return out;
}

export function unframeCommits(data: Uint8Array): Buffer[] {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const out: Buffer[] = [];
  let o = 0;
  while (o < b.length) {
    if (o + 4 > b.length) throw new Error('truncated batch framing');
    const n = b.readUInt32BE(o);
    if (o + 4 + n > b.length) throw new Error('truncated commit in a batch');
    out.push(Buffer.from(b.subarray(o + 4, o + 4 + n)));
    o += 4 + n;
  }
  return out;
}
