import { describe, expect, it } from 'vitest';
import type { ContainerInfo, Engine } from '../../src/docker/engine.js';
import type { Target } from '../../src/docker/locator.js';
import { engineSince, readRegistryLogs, registryLogContainers } from '../../src/docker/registryLog.js';
import { type SourceMark, type SourceRead, hashLine } from '../../src/plan/pullIndex.js';
import { FakeEngine } from '../support/fakeEngine.js';

const line = (second: number, text: string, nanos = '000000000'): { ts: string; text: string } => ({ ts: `2026-12-04T00:00:${String(second).padStart(2, '0')}.${nanos}Z`, text });
const msAt = (second: number): number => Date.parse('2026-12-04T00:00:00Z') + second * 1000;

/** Reads the given containers with the given marks; what was handed on and the reads. */
async function read(engine: FakeEngine, containers: ContainerInfo[], marks: Record<string, SourceMark> = {}): Promise<{ lines: Array<[string, number]>; reads: SourceRead[] }> {
  const lines: Array<[string, number]> = [];
  const reads = await readRegistryLogs(engine, containers, (id) => marks[id], (text, at) => lines.push([text, at]));
  return { lines, reads };
}

describe('engineSince: the mark as the `since` the engine takes', () => {
  it('keeps every nanosecond as digits and pads what the engine trimmed', () => {
    expect(engineSince('2024-12-04T00:00:00.123456789Z')).toBe('1733270400.123456789');
    expect(engineSince('2024-12-04T00:00:00.8Z')).toBe('1733270400.800000000');
    expect(engineSince('2024-12-04T00:00:00Z')).toBe('1733270400.000000000');
    expect(engineSince('2024-12-04T01:00:00.000000001+01:00')).toBe('1733270400.000000001');
  });

  it('refuses a time that is not the engine’s', () => {
    expect(() => engineSince('yesterday')).toThrow(/unreadable time/);
  });
});

describe('readRegistryLogs on a fake engine', () => {
  it('a first read hands on every line with its engine time and marks the last one', async () => {
    const engine = new FakeEngine();
    const c = engine.addContainer({ id: 'reg', created: msAt(0) });
    engine.appendLog('reg', [line(1, 'a'), line(2, 'b', '500000000')]);
    const { lines, reads } = await read(engine, [c]);
    expect(lines).toEqual([['a', msAt(1)], ['b', msAt(2) + 500]]);
    expect(reads).toEqual([{ kind: 'container', id: 'reg', created: msAt(0), first: msAt(1), continued: false, mark: { ts: line(2, 'b', '500000000').ts, line: hashLine('b'), running: true } }]);
    expect(engine.callsOf('containerLogs')).toEqual(['containerLogs reg']);
  });

  it('continues from the mark: the marked line is found again and not handed on twice', async () => {
    const engine = new FakeEngine();
    const c = engine.addContainer({ id: 'reg' });
    engine.appendLog('reg', [line(1, 'a'), line(2, 'b', '000000007')]);
    const first = await read(engine, [c]);
    engine.appendLog('reg', [line(3, 'c'), line(4, 'd')]);
    const mark = first.reads[0]?.mark as SourceMark;
    const { lines, reads } = await read(engine, [c], { reg: mark });
    // From two seconds before the mark: a line of the other stream may follow it in the log with an earlier time.
    expect(engine.callsOf('containerLogs').at(-1)).toBe(`containerLogs reg ${engineSince(line(0, '', '000000007').ts)}`);
    expect(lines.map(([t]) => t)).toEqual(['c', 'd']);
    expect(reads[0]).toMatchObject({ continued: true, first: msAt(3), mark: { ts: line(4, 'd').ts, line: hashLine('d') } });
  });

  it('nothing new since the mark: continued, no line, the old mark kept', async () => {
    const engine = new FakeEngine();
    const c = engine.addContainer({ id: 'reg' });
    engine.appendLog('reg', [line(1, 'a')]);
    const mark = (await read(engine, [c])).reads[0]?.mark as SourceMark;
    const { lines, reads } = await read(engine, [c], { reg: mark });
    expect(lines).toEqual([]);
    expect(reads[0]).toEqual({ kind: 'container', id: 'reg', created: c.created, continued: true, mark });
  });

  it('a marked line rotated away: not continued, and every line found is handed on', async () => {
    const engine = new FakeEngine();
    const c = engine.addContainer({ id: 'reg' });
    engine.appendLog('reg', [line(1, 'a'), line(2, 'b')]);
    const mark = (await read(engine, [c])).reads[0]?.mark as SourceMark;
    engine.appendLog('reg', [line(3, 'c'), line(4, 'd')]);
    engine.rotateLog('reg', 3);
    const { lines, reads } = await read(engine, [c], { reg: mark });
    expect(lines.map(([t]) => t)).toEqual(['d']);
    expect(reads[0]).toMatchObject({ continued: false, first: msAt(4), mark: { line: hashLine('d') } });
  });

  it('another line of the same time as the mark is no overlap: only the marked line itself is', async () => {
    const engine = new FakeEngine();
    const c = engine.addContainer({ id: 'reg' });
    const mark: SourceMark = { ts: line(2, 'gone').ts, line: hashLine('gone'), running: true };
    engine.appendLog('reg', [line(2, 'same time, another line'), line(3, 'c')]);
    const { lines, reads } = await read(engine, [c], { reg: mark });
    expect(lines.map(([t]) => t)).toEqual(['same time, another line', 'c']);
    expect(reads[0]).toMatchObject({ continued: false, first: msAt(2) });
  });

  it('lines of the mark’s time before the marked line were read with it: skipped, the marked one found', async () => {
    const engine = new FakeEngine();
    const c = engine.addContainer({ id: 'reg' });
    engine.appendLog('reg', [line(1, 'a'), line(2, 'stderr twin'), line(2, 'marked')]);
    const mark = (await read(engine, [c])).reads[0]?.mark as SourceMark;
    engine.appendLog('reg', [line(2, 'after, same time'), line(3, 'c')]);
    const { lines, reads } = await read(engine, [c], { reg: mark });
    expect(lines.map(([t]) => t)).toEqual(['after, same time', 'c']);
    expect(reads[0]?.continued).toBe(true);
  });

  it('a line of the other stream that follows the marked line in the log with an earlier time is new: handed on; what came before the mark is not again', async () => {
    const engine = new FakeEngine();
    const c = engine.addContainer({ id: 'reg' });
    engine.appendLog('reg', [line(1, 'old, within the lag'), line(3, 'marked', '500000000')]);
    const mark = (await read(engine, [c])).reads[0]?.mark as SourceMark;
    engine.appendLog('reg', [line(3, 'stderr, stamped before the mark', '100000000'), line(4, 'new')]);
    const { lines, reads } = await read(engine, [c], { reg: mark });
    expect(lines.map(([t]) => t)).toEqual(['stderr, stamped before the mark', 'new']);
    expect(reads[0]).toMatchObject({ continued: true, first: msAt(3) + 100, mark: { line: hashLine('new') } });
  });

  it('a marked line gone, lines are handed on as soon as one is well past its time, not held to the end of the log', async () => {
    const log = [line(9, 'a'), line(11, 'b'), line(13, 'c'), line(14, 'd')];
    let delivered = 0;
    // An engine that says how far its stream has got when each line is handed on.
    const engine = {
      containerLogs: async (_id: string, options: { onLine: (ts: string, text: string) => void }) => {
        for (const l of log) {
          delivered++;
          options.onLine(l.ts, l.text);
        }
      },
    } as unknown as Engine;
    const c = new FakeEngine().addContainer({ id: 'reg' });
    const mark: SourceMark = { ts: line(10, 'gone').ts, line: hashLine('gone'), running: true };
    const handed: Array<[string, number]> = [];
    const reads = await readRegistryLogs(engine, [c], () => mark, (text) => handed.push([text, delivered]));
    // 13 s is more than two seconds past the mark (10 s): a, b and c go on then; d as it comes.
    expect(handed).toEqual([['a', 3], ['b', 3], ['c', 3], ['d', 4]]);
    expect(reads[0]?.continued).toBe(false);
  });

  it('a container whose log cannot be read fails alone: the others are read', async () => {
    const engine = new FakeEngine();
    const bad = engine.addContainer({ id: 'bad' });
    const good = engine.addContainer({ id: 'good', running: false });
    engine.appendLog('good', [line(5, 'x')]);
    engine.failOn('containerLogs', 'bad', { error: new Error('cannot read the log of container bad: its log driver keeps no log the engine can read back') });
    const { lines, reads } = await read(engine, [bad, good]);
    expect(reads[0]).toEqual({ kind: 'container', id: 'bad', created: bad.created, failed: 'cannot read the log of container bad: its log driver keeps no log the engine can read back' });
    expect(reads[1]).toMatchObject({ id: 'good', first: msAt(5), mark: { running: false } });
    expect(lines).toEqual([['x', msAt(5)]]);
  });

  it('a line the engine gave no readable time fails the read', async () => {
    const engine = new FakeEngine();
    const c = engine.addContainer({ id: 'reg' });
    engine.appendLog('reg', [{ ts: 'not-a-time', text: 'x' }]);
    const { reads } = await read(engine, [c]);
    expect(reads[0]?.failed).toMatch(/unreadable time/);
  });
});

describe('registryLogContainers', () => {
  const targetOf = (over: Partial<Target>): Target => ({ kind: 'container', name: 'reg', root: '/r', containers: [], ...over });

  it('a service target: its running tasks and the ended ones swarm still keeps, not the removed ones', async () => {
    const engine = new FakeEngine();
    engine.addContainer({ id: 't1' });
    engine.addService('svc', ['t1']);
    await engine.restartService('svc', ['t1']);
    await engine.restartService('svc', engine.serviceTasks('svc'));
    const [running] = engine.serviceTasks('svc');
    engine.removeContainer('t1');
    const target = targetOf({ kind: 'service', name: 'svc', containers: [engine.state(running as string)] });
    const found = await registryLogContainers(engine, target);
    expect(found.map((c) => c.id)).toEqual([running, 't1-g1']);
    expect(found.find((c) => c.id === 't1-g1')?.running).toBe(false);
  });

  it('a container target without services: its own containers only; a path: none', async () => {
    const engine = new FakeEngine();
    const c = engine.addContainer({ id: 'reg' });
    expect((await registryLogContainers(engine, targetOf({ containers: [c] }))).map((x) => x.id)).toEqual(['reg']);
    expect(await registryLogContainers(engine, targetOf({ kind: 'path', name: '/r', containers: [] }))).toEqual([]);
    expect(engine.callsOf('serviceTaskContainers')).toEqual([]);
  });

  it('a volume target whose container is a swarm task: the ended tasks of its service too', async () => {
    const engine = new FakeEngine();
    engine.addContainer({ id: 'v1' });
    engine.addService('on-volume', ['v1']);
    await engine.restartService('on-volume', ['v1']);
    const target = targetOf({ kind: 'volume', name: 'vol', containers: engine.serviceTasks('on-volume').map((id) => engine.state(id)) });
    expect((await registryLogContainers(engine, target)).map((c) => c.id).sort()).toEqual(['v1', 'v1-g1']);
  });

  it('a bucket target: the ended tasks of the services serving it too', async () => {
    const engine = new FakeEngine();
    engine.addContainer({ id: 's1' });
    engine.addService('on-bucket', ['s1']);
    await engine.restartService('on-bucket', ['s1']);
    const target = targetOf({ containers: engine.serviceTasks('on-bucket').map((id) => engine.state(id)), services: ['on-bucket'] });
    expect((await registryLogContainers(engine, target)).map((c) => c.id).sort()).toEqual(['s1', 's1-g1']);
  });
});
