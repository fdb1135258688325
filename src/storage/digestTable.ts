/**
 * Compact storage for sha256 digests, so a tree with millions of blobs fits in
 * a few hundred megabytes: a digest is 32 bytes in a typed array, not a
 * 71-character string (88 bytes of heap) in a Map.
 *
 * DigestTable gives each distinct digest a small integer id, with a size and a
 * few flag bits per id; PackedList keeps plan entries (a digest and a few
 * strings each) as ids in typed arrays and hands them out as plain objects.
 */
import type { Digest } from '../model.js';

const CHUNK_BITS = 14;
/** Entries per chunk: storage grows a chunk at a time, never by copying everything. */
const CHUNK = 1 << CHUNK_BITS;
const WORDS = 8; // 32 bytes as 8 × uint32
const PREFIX = 'sha256:';

/**
 * Writes the 32 bytes of `sha256:<hex>` into `out`. Buffer's native hex
 * decoding, three times faster than a loop over char codes, and the digest
 * table parses one per reference of every manifest. Digests reaching here were
 * validated as lowercase hex.
 */
function parseInto(digest: Digest, out: Buffer): void {
  out.write(digest.slice(PREFIX.length), 0, 32, 'hex');
}

function format(bytes: Uint8Array, offset: number): Digest {
  return `${PREFIX}${Buffer.from(bytes.buffer, bytes.byteOffset + offset, 32).toString('hex')}` as Digest;
}

/** Digests in chunks of 32-byte slots, addressed by position. */
class DigestColumn {
  private readonly bytes: Uint8Array[] = [];
  /** The same chunks as 32-bit words, to hash and compare without making a string. */
  private readonly words: Uint32Array[] = [];

  private slot(index: number): Uint8Array {
    const chunk = index >>> CHUNK_BITS;
    while (this.bytes.length <= chunk) {
      const buffer = new ArrayBuffer(CHUNK * 32);
      this.bytes.push(new Uint8Array(buffer));
      this.words.push(new Uint32Array(buffer));
    }
    return this.bytes[chunk] as Uint8Array;
  }

  setBytes(index: number, bytes: Uint8Array, offset: number): void {
    this.slot(index).set(bytes.subarray(offset, offset + 32), (index & (CHUNK - 1)) * 32);
  }

  get(index: number): Digest {
    return format(this.bytes[index >>> CHUNK_BITS] as Uint8Array, (index & (CHUNK - 1)) * 32);
  }

  firstByte(index: number): number {
    return (this.bytes[index >>> CHUNK_BITS] as Uint8Array)[(index & (CHUNK - 1)) * 32] as number;
  }

  /** Word `w` (0–7) of the digest at `index`. */
  word(index: number, w: number): number {
    return (this.words[index >>> CHUNK_BITS] as Uint32Array)[(index & (CHUNK - 1)) * WORDS + w] as number;
  }

  /** Does the digest at `index` equal `key` (8 words)? */
  equals(index: number, key: Uint32Array): boolean {
    const words = this.words[index >>> CHUNK_BITS] as Uint32Array;
    const at = (index & (CHUNK - 1)) * WORDS;
    for (let w = 0; w < WORDS; w++) if (words[at + w] !== key[w]) return false;
    return true;
  }
}

/** A byte per position (flags), in chunks. */
class ByteColumn {
  private readonly chunks: Uint8Array[] = [];

  get(index: number): number {
    return (this.chunks[index >>> CHUNK_BITS] as Uint8Array)[index & (CHUNK - 1)] as number;
  }

  set(index: number, value: number): void {
    const chunk = index >>> CHUNK_BITS;
    while (this.chunks.length <= chunk) this.chunks.push(new Uint8Array(CHUNK));
    (this.chunks[chunk] as Uint8Array)[index & (CHUNK - 1)] = value;
  }
}

type UintChunk = Uint8Array | Uint16Array | Uint32Array;

/**
 * A whole number (below 2^32) per position, 0 until set, in chunks only as
 * wide as the largest value so far needs: 1, 2 or 4 bytes. Plan entries name
 * a repository, a tag and a reason by the id of a string, and there are rarely
 * more than a few thousand distinct ones; on a million-revision tree this
 * halves the plan's lists and the mark's record of who used each blob.
 */
export class UintColumn {
  private chunks: UintChunk[] = [];
  private bytes: 1 | 2 | 4 = 1;

  get(index: number): number {
    return this.chunks[index >>> CHUNK_BITS]?.[index & (CHUNK - 1)] ?? 0;
  }

  set(index: number, value: number): void {
    if (value >= 2 ** (8 * this.bytes)) this.widen(value);
    const chunk = index >>> CHUNK_BITS;
    while (this.chunks.length <= chunk) this.chunks.push(this.make(CHUNK));
    (this.chunks[chunk] as UintChunk)[index & (CHUNK - 1)] = value;
  }

  private make(n: number): UintChunk {
    return this.bytes === 1 ? new Uint8Array(n) : this.bytes === 2 ? new Uint16Array(n) : new Uint32Array(n);
  }

  /** Every chunk copied into wider ones, once per width: at most twice in the column's life. */
  private widen(value: number): void {
    if (value > 0xffffffff || !Number.isInteger(value) || value < 0) throw new RangeError(`${value} does not fit a UintColumn`);
    this.bytes = value > 0xffff ? 4 : 2;
    this.chunks = this.chunks.map((narrow) => {
      const wide = this.make(CHUNK);
      wide.set(narrow);
      return wide;
    });
  }
}

/**
 * A blob size per position: 4 bytes each, and the rare size of 4 GiB or more
 * in a map beside (a layer can be that large; a million blobs rarely have one).
 */
class SizeColumn {
  private readonly chunks: Uint32Array[] = [];
  private readonly large = new Map<number, number>();

  get(index: number): number {
    const size = (this.chunks[index >>> CHUNK_BITS] as Uint32Array)[index & (CHUNK - 1)] as number;
    return size === LARGE ? (this.large.get(index) as number) : size;
  }

  set(index: number, size: number): void {
    const chunk = index >>> CHUNK_BITS;
    while (this.chunks.length <= chunk) this.chunks.push(new Uint32Array(CHUNK));
    if (size >= LARGE) this.large.set(index, size);
    else this.large.delete(index);
    (this.chunks[chunk] as Uint32Array)[index & (CHUNK - 1)] = Math.min(size, LARGE);
  }
}

/** A size that SizeColumn keeps in its map. */
const LARGE = 0xffffffff;

export const Flag = {
  /** Present under blobs/ (its size is known). */
  blob: 1,
  /** Marked by the simulated garbage-collect. */
  marked: 2,
  /** Its data is newer than the grace allows: regsweep's own sweep leaves it. */
  recent: 8,
} as const;

/**
 * Every distinct digest once, with an id, a size and flags. An open-addressing
 * hash table over the digests' own bytes (sha256 is already uniform, so its
 * first word is the hash).
 */
export class DigestTable {
  private readonly digests = new DigestColumn();
  private readonly sizes = new SizeColumn();
  private readonly flags = new ByteColumn();
  private slots = new Int32Array(1 << 12);
  /** Its own ArrayBuffer (never a slice of Buffer's pool), so keyWords covers exactly these 32 bytes. */
  private readonly key = Buffer.from(new ArrayBuffer(32));
  private readonly keyWords = new Uint32Array(this.key.buffer, this.key.byteOffset, WORDS);
  count = 0;

  /** The id of a digest, added when new. */
  id(digest: Digest): number {
    parseInto(digest, this.key);
    return this.lookup(true);
  }

  /** The id of a digest given as 32 bytes, added when new. */
  idOfBytes(bytes: Uint8Array, offset: number): number {
    this.key.set(bytes.subarray(offset, offset + 32));
    return this.lookup(true);
  }

  /** The id of a digest, or -1 when it was never added. */
  find(digest: Digest): number {
    parseInto(digest, this.key);
    return this.lookup(false);
  }

  /** The id of a digest given as 32 bytes, or -1 when it was never added. */
  findBytes(bytes: Uint8Array, offset: number): number {
    this.key.set(bytes.subarray(offset, offset + 32));
    return this.lookup(false);
  }

  digest(id: number): Digest {
    return this.digests.get(id);
  }

  /** The first byte of a digest (its blob's prefix directory, as a number), without making a string. */
  firstByte(id: number): number {
    return this.digests.firstByte(id);
  }

  size(id: number): number {
    return this.sizes.get(id);
  }

  setSize(id: number, size: number): void {
    this.sizes.set(id, size);
  }

  has(id: number, flag: number): boolean {
    return (this.flags.get(id) & flag) !== 0;
  }

  set(id: number, flag: number): void {
    this.flags.set(id, this.flags.get(id) | flag);
  }

  private lookup(insert: boolean): number {
    const mask = this.slots.length - 1;
    const k = this.keyWords;
    for (let slot = (k[0] as number) & mask; ; slot = (slot + 1) & mask) {
      const held = this.slots[slot] as number;
      if (held === 0) {
        if (!insert) return -1;
        return this.insert(slot);
      }
      if (this.digests.equals(held - 1, k)) return held - 1;
    }
  }

  private insert(slot: number): number {
    const id = this.count++;
    this.digests.setBytes(id, this.key, 0);
    this.flags.set(id, 0);
    this.sizes.set(id, 0);
    this.slots[slot] = id + 1;
    // At most 70% full keeps linear probes short.
    if (this.count * 10 > this.slots.length * 7) this.grow();
    return id;
  }

  private grow(): void {
    const slots = new Int32Array(this.slots.length * 2);
    const mask = slots.length - 1;
    for (let id = 0; id < this.count; id++) {
      let slot = this.digests.word(id, 0) & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = id + 1;
    }
    this.slots = slots;
  }
}

/**
 * A list of records that each hold one digest and a few short strings (a
 * repository, a tag, a reason), stored as 32 bytes plus one small integer per
 * string; repeated strings are kept once. Iterating yields plain objects.
 */
export class PackedList<T extends object> implements Iterable<T> {
  /** One column of ids per key: digest ids in `table` for the digest key, string ids for the others. */
  private readonly fields: UintColumn[];
  private readonly strings: string[] = [];
  private readonly stringIds = new Map<string, number>();
  /** JSON text of strings[id], made when first written. */
  private readonly jsonTexts: Array<string | undefined> = [];
  length = 0;

  /**
   * `keys` in the order objects are made (and written to JSON); `digestKey`
   * is one of them. Digests go in `table`, which may be shared with a Ledger
   * that holds them anyway.
   */
  constructor(
    /** The keys of every entry, in the order at() makes them. */
    readonly keys: ReadonlyArray<keyof T & string>,
    private readonly digestKey: keyof T & string,
    /** Where the digests are: a plan's other compact records keep theirs here too. */
    readonly table: DigestTable = new DigestTable(),
  ) {
    this.fields = keys.map(() => new UintColumn());
  }

  push(item: T): void {
    const index = this.length++;
    const record = item as Record<string, unknown>;
    this.keys.forEach((key, k) => {
      const column = this.fields[k] as UintColumn;
      if (key === this.digestKey) {
        column.set(index, this.table.id(record[key] as Digest));
        return;
      }
      const text = record[key] as string;
      let id = this.stringIds.get(text);
      if (id === undefined) {
        id = this.strings.length;
        this.strings.push(text);
        this.stringIds.set(text, id);
      }
      column.set(index, id);
    });
  }

  at(index: number): T | undefined {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) return undefined;
    const item: Record<string, unknown> = {};
    this.keys.forEach((key, k) => {
      item[key] = this.valueAt(index, k);
    });
    return item as T;
  }

  *[Symbol.iterator](): Iterator<T> {
    for (let i = 0; i < this.length; i++) yield this.at(i) as T;
  }

  /** The id in `table` of entry `index`'s digest, unchecked: no string made. */
  digestIdAt(index: number): number {
    return (this.fields[this.keys.indexOf(this.digestKey)] as UintColumn).get(index);
  }

  /** Value `key` (an index into `keys`) of entry `index`, unchecked: at() without making the entry's object. */
  valueAt(index: number, key: number): string | undefined {
    const id = (this.fields[key] as UintColumn).get(index);
    return this.keys[key] === this.digestKey ? this.table.digest(id) : this.strings[id];
  }

  /**
   * valueAt as JSON text, or undefined for a missing value: each string's
   * text is made once and kept, and a digest's needs no escaping. The report
   * writes tens of thousands of entries with a few values each.
   */
  jsonAt(index: number, key: number): string | undefined {
    if (this.keys[key] === this.digestKey) return `"${this.valueAt(index, key)}"`;
    const id = (this.fields[key] as UintColumn).get(index);
    const known = this.jsonTexts[id];
    if (known !== undefined || this.strings[id] === undefined) return known;
    const text = JSON.stringify(this.strings[id]);
    this.jsonTexts[id] = text;
    return text;
  }

  /** JSON.stringify writes the list as an ordinary array. */
  toJSON(): T[] {
    return [...this];
  }
}
