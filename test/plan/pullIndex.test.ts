import { describe, expect, it } from 'vitest';
import type { Digest } from '../../src/model.js';
import { emptyTally, parseLogLine, tallyLine, type Pull } from '../../src/plan/accessLog.js';
import { PullIndex, PullIndexCorrupt, type SourceRead } from '../../src/plan/pullIndex.js';

const D = `sha256:${'ab'.repeat(32)}` as Digest;
const T0 = Date.parse('2026-12-01T00:00:00Z');
const mark = (ts: string, running = true) => ({ ts, line: 'h', running });

describe('registry log lines (as 2.8.2 and 3.0.0 print them)', () => {
  // Shapes copied from the real binaries' output (text and JSON formatter, and the combined access line).
  const lines: [string, Pull | undefined][] = [
    [
      'time="2026-12-04T00:35:54.401115037Z" level=info msg="response completed" go.version=go1.19.8 http.request.host="127.0.0.1:15020" http.request.id=6766ec1a http.request.method=GET http.request.remoteaddr="127.0.0.1:59662" http.request.uri=/v2/team/web/manifests/v1 http.request.useragent=curl/7.88.1 http.response.contenttype="application/json; charset=utf-8" http.response.duration=1.327823ms http.response.status=200 http.response.written=2',
      { repository: 'team/web', tag: 'v1', at: Date.parse('2026-12-04T00:35:54.401Z') },
    ],
    [
      `{"go.version":"go1.23.5","http.request.method":"HEAD","http.request.uri":"/v2/team/web/manifests/${D}","http.response.status":200,"level":"info","msg":"response completed","service":"registry","time":"2026-12-04T00:35:59.025303553Z","version":"v3.0.0"}`,
      { repository: 'team/web', digest: D, at: Date.parse('2026-12-04T00:35:59.025Z') },
    ],
    ['127.0.0.1 - - [04/Dec/2026:00:35:55 +0100] "GET /v2/app/manifests/latest HTTP/1.1" 200 92 "" "docker/27"', { repository: 'app', tag: 'latest', at: Date.parse('2026-12-03T23:35:55Z') }],
    ['127.0.0.1 - - [04/Dec/2026:00:35:55 +0000] "GET /v2/app/manifests/latest HTTP/1.1" 404 92 "" "curl"', undefined],
    ['127.0.0.1 - - [04/Dec/2026:00:35:55 +0000] "PUT /v2/app/manifests/latest HTTP/1.1" 201 0 "" "curl"', undefined],
    ['127.0.0.1 - - [04/Dec/2026:00:35:55 +0000] "GET /v2/app/blobs/sha256:00 HTTP/1.1" 200 0 "" "curl"', undefined],
    ['time="2026-12-04T00:35:54Z" level=error msg="response completed with error" http.request.method=GET http.request.uri=/v2/a/manifests/v1 http.response.status=404', undefined],
  ];
  it.each(lines)('%s', (line, pull) => {
    const parsed = parseLogLine(line);
    expect(parsed.pull).toEqual(pull);
    expect(parsed.kind).toBe(pull ? 'pull' : 'registry');
  });
  it('counts junk and lines of other programs, skipping them', () => {
    const tally = emptyTally();
    const pulls: Pull[] = [];
    for (const l of ['hello', '{"not":"a log"}', '{torn', lines[0]?.[0] as string, '']) tallyLine(tally, l, (p) => pulls.push(p));
    expect(tally).toMatchObject({ lines: 4, junk: 3, pulls: 1 });
    expect(pulls).toHaveLength(1);
  });
});

describe('the pull index', () => {
  it('keeps the latest pull of each tag and digest; a tag answers for its name and its current digest', () => {
    const index = PullIndex.empty();
    index.record({ repository: 'app', tag: 'v1', at: T0 + 5 });
    index.record({ repository: 'app', tag: 'v1', at: T0 });
    index.record({ repository: 'app', digest: D, at: T0 + 9 });
    expect(index.lastPull('app', 'v1', undefined)).toBe(T0 + 5);
    expect(index.lastPull('app', 'v1', D)).toBe(T0 + 9);
    expect(index.lastPull('app', 'v2', undefined)).toBeUndefined();
    expect(index.repositoryLastPull('app')).toBe(T0 + 9);
    expect([...index.digestsPulledSince('app', T0 + 9)]).toEqual([[D, T0 + 9]]);
    expect(index.digestsPulledSince('app', T0 + 10).size).toBe(0);
  });

  it('reads back what it wrote, and refuses any damage: a flipped byte, a cut, another file', () => {
    const index = PullIndex.empty();
    index.record({ repository: 'app', tag: 'v1', at: T0 });
    index.advance([{ kind: 'file', id: 'a.log', first: T0 - 1000 }], T0 + 1000);
    const text = index.serialize();
    const back = PullIndex.parse(text);
    expect(back.lastPull('app', 'v1', undefined)).toBe(T0);
    expect(back.coverage).toEqual({ from: T0 - 1000, to: T0 + 1000 });
    expect(() => PullIndex.parse(text.replace('"v1"', '"v2"'))).toThrow(/checksum/);
    expect(() => PullIndex.parse(text.slice(0, text.length - 5))).toThrow(PullIndexCorrupt);
    expect(() => PullIndex.parse('{"hello":1}\n{}')).toThrow(/not a regsweep pull index/);
    expect(() => PullIndex.parse('')).toThrow(PullIndexCorrupt);
  });

  describe('coverage', () => {
    const container = (id: string, extra: Partial<SourceRead>): SourceRead => ({ kind: 'container', id, ...extra });

    it('a new container whose log starts at its creation covers from its creation', () => {
      const index = PullIndex.empty();
      index.advance([container('c1', { created: T0, first: T0 + 500, mark: mark('m1') })], T0 + 10_000);
      expect(index.coverage).toEqual({ from: T0, to: T0 + 10_000 });
    });

    it('a container whose log starts well after its creation (rotated) covers from its first line', () => {
      const index = PullIndex.empty();
      index.advance([container('c1', { created: T0, first: T0 + 3_600_000, mark: mark('m1') })], T0 + 7_200_000);
      expect(index.coverage?.from).toBe(T0 + 3_600_000);
    });

    it('keeps its start while each read finds the marked line again, and begins again after a gap', () => {
      const index = PullIndex.empty();
      index.advance([container('c1', { created: T0, first: T0, mark: mark('m1') })], T0 + 1000);
      index.advance([container('c1', { created: T0, continued: true, first: T0 + 1500, mark: mark('m2') })], T0 + 2000);
      expect(index.coverage).toEqual({ from: T0, to: T0 + 2000 });
      // The mark was rotated away: lines between may be lost.
      index.advance([container('c1', { created: T0, continued: false, first: T0 + 2500, mark: mark('m3') })], T0 + 3000);
      expect(index.coverage).toEqual({ from: T0 + 2500, to: T0 + 3000 });
      expect(index.mark('c1')?.ts).toBe('m3');
    });

    it('a running container removed unread, or a log that cannot be read, is a gap', () => {
      const index = PullIndex.empty();
      index.advance([container('c1', { created: T0, first: T0, mark: mark('m1') })], T0 + 1000);
      index.advance([container('c2', { created: T0 + 4000, first: T0 + 4100, mark: mark('n1') })], T0 + 5000);
      expect(index.coverage?.from).toBe(T0 + 4000);
      expect(index.mark('c1')).toBeUndefined();
      index.advance([container('c2', { failed: 'no log driver' })], T0 + 6000);
      expect(index.coverage?.from).toBe(T0 + 6000);
      expect(index.mark('c2')?.ts).toBe('n1');
    });

    it('a stopped container removed after its last read loses nothing', () => {
      const index = PullIndex.empty();
      index.advance([container('c1', { created: T0, first: T0, mark: mark('m1', false) })], T0 + 1000);
      index.advance([container('c2', { created: T0 + 4000, first: T0 + 4100, mark: mark('n1') })], T0 + 5000);
      expect(index.coverage?.from).toBe(T0);
    });

    it('a file continues the coverage when it starts before the last read, else begins it again; no read changes nothing', () => {
      const index = PullIndex.empty();
      index.advance([{ kind: 'file', id: 'a', first: T0, last: T0 + 1000 }], T0 + 1000);
      index.advance([{ kind: 'file', id: 'b', first: T0 + 900, last: T0 + 2000 }], T0 + 2000);
      expect(index.coverage).toEqual({ from: T0, to: T0 + 2000 });
      index.advance([], T0 + 9000);
      expect(index.coverage).toEqual({ from: T0, to: T0 + 2000 });
      index.advance([{ kind: 'file', id: 'c', first: T0 + 2500, last: T0 + 3000 }], T0 + 3000);
      expect(index.coverage).toEqual({ from: T0 + 2500, to: T0 + 3000 });
    });

    it('files read alone end the coverage at their latest line (or where it ended before, if later); a container read ends it now', () => {
      const index = PullIndex.empty();
      // Rotated files: the latest line of any of them is where they end, not now.
      index.advance([{ kind: 'file', id: 'a.1.gz', first: T0, last: T0 + 500 }, { kind: 'file', id: 'a', first: T0 + 400, last: T0 + 800 }], T0 + 60_000);
      // (Each file is taken as a log of its own: the coverage begins where the latest-starting one does.)
      expect(index.coverage).toEqual({ from: T0 + 400, to: T0 + 800 });
      // An older file than the index has seen: it ends where the coverage ended before.
      index.advance([{ kind: 'file', id: 'a.1.gz', first: T0, last: T0 + 500 }], T0 + 90_000);
      expect(index.coverage).toEqual({ from: T0 + 400, to: T0 + 800 });
      // An empty file (just rotated?) tells nothing of the time since: a gap, so nothing is covered until more is read.
      index.advance([{ kind: 'file', id: 'empty' }], T0 + 95_000);
      expect(index.coverage).toEqual({ from: T0 + 800, to: T0 + 800 });
      // The engine gives a container's log up to now.
      index.advance([container('c1', { created: T0 - 1000, first: T0 - 1000, mark: mark('m1') }), { kind: 'file', id: 'a', first: T0 + 400, last: T0 + 800 }], T0 + 100_000);
      expect(index.coverage).toEqual({ from: T0 + 800, to: T0 + 100_000 });
    });
  });
});
