import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DigestTable, Flag, PackedList, UintColumn } from '../../src/storage/digestTable.js';
import type { Digest } from '../../src/model.js';

const digestOf = (i: number): Digest => `sha256:${createHash('sha256').update(String(i)).digest('hex')}`;

describe('DigestTable', () => {
  it('gives each digest one id across growth, and reads digests, sizes and flags back', () => {
    const table = new DigestTable();
    const n = 50_000; // several chunks and many rehashes
    for (let i = 0; i < n; i++) expect(table.id(digestOf(i))).toBe(i);
    expect(table.count).toBe(n);
    for (let i = 0; i < n; i += 997) {
      expect(table.id(digestOf(i))).toBe(i);
      expect(table.find(digestOf(i))).toBe(i);
      expect(table.digest(i)).toBe(digestOf(i));
    }
    expect(table.count).toBe(n);
    expect(table.find(digestOf(n))).toBe(-1);
    expect(table.count).toBe(n);

    table.setSize(7, 2 ** 40 + 3); // beyond 32 bits: layers can be large
    table.set(7, Flag.blob);
    table.set(7, Flag.marked);
    expect(table.size(7)).toBe(2 ** 40 + 3);
    expect(table.has(7, Flag.blob) && table.has(7, Flag.marked)).toBe(true);
    expect(table.has(7, Flag.recent)).toBe(false);
    expect(table.has(8, Flag.blob)).toBe(false);
  });

  it('keeps sizes on either side of 4 GiB exactly', () => {
    const table = new DigestTable();
    const sizes = [0, 1, 2 ** 32 - 2, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1];
    sizes.forEach((size, i) => table.setSize(table.id(digestOf(i)), size));
    expect(sizes.map((_, i) => table.size(i))).toEqual(sizes);
  });

  it('tells apart digests that share their first bytes (the hash)', () => {
    const table = new DigestTable();
    const a = `sha256:${'ab'.repeat(16)}${'0'.repeat(64 - 32)}` as Digest;
    const b = `sha256:${'ab'.repeat(16)}${'0'.repeat(63 - 32)}1` as Digest;
    expect(table.id(a)).not.toBe(table.id(b));
    expect(table.digest(table.find(b))).toBe(b);
  });

  it('takes digests as raw bytes too', () => {
    const table = new DigestTable();
    const d = digestOf(1);
    const bytes = new Uint8Array(40);
    bytes.set(Buffer.from(d.slice(7), 'hex'), 8);
    expect(table.idOfBytes(bytes, 8)).toBe(table.id(d));
  });
});

describe('UintColumn', () => {
  it('reads back every value as it widens from 1 to 2 to 4 bytes, across chunks, 0 where never set', () => {
    const column = new UintColumn();
    const values = new Map<number, number>();
    const put = (index: number, value: number): void => {
      column.set(index, value);
      values.set(index, value);
    };
    for (let i = 0; i < 40_000; i += 3) put(i, i % 256);
    put(50_000, 300);
    put(7, 65_535);
    put(70_000, 65_536);
    put(3, 2 ** 32 - 1);
    for (const [index, value] of values) expect(column.get(index)).toBe(value);
    expect([column.get(1), column.get(39_998), column.get(1_000_000)]).toEqual([0, 0, 0]);
    expect(() => column.set(0, 2 ** 32)).toThrow(RangeError);
  });
});

describe('PackedList', () => {
  it('gives back the objects pushed, key order kept, and writes JSON as an array', () => {
    const list = new PackedList<{ repository: string; tag: string; digest: Digest; reason: string }>(['repository', 'tag', 'digest', 'reason'], 'digest');
    const items = Array.from({ length: 40_000 }, (_, i) => ({ repository: `repo${i % 7}`, tag: `v${i % 3}`, digest: digestOf(i), reason: i % 2 ? 'untagged' : 'history' }));
    for (const item of items) list.push(item);
    expect(list.length).toBe(items.length);
    expect([...list]).toEqual(items);
    expect(list.at(123)).toEqual(items[123]);
    expect(Object.keys(list.at(0) as object)).toEqual(['repository', 'tag', 'digest', 'reason']);
    expect(list.at(-1)).toBeUndefined();
    expect(list.at(items.length)).toBeUndefined();
    expect(JSON.parse(JSON.stringify({ list }))).toEqual({ list: items });
  });
});
