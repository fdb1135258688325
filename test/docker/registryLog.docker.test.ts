/**
 * The engine's log of a container read as the pull index reads it, on a real
 * Docker engine: framed (non-TTY) and TTY logs, a read that continues from its
 * mark, a mark the json-file driver rotated away, a log driver that keeps
 * nothing to read back, and a swarm service whose replaced task containers
 * are read too.
 */
import { createSocket } from 'node:dgram';
import type Dockerode from 'dockerode';
import { afterEach, describe, expect, it } from 'vitest';
import { DockerodeEngine } from '../../src/docker/dockerodeEngine.js';
import type { ContainerInfo } from '../../src/docker/engine.js';
import { locateNamed } from '../../src/docker/locator.js';
import { readRegistryLogs, registryLogContainers } from '../../src/docker/registryLog.js';
import { type SourceMark, type SourceRead, hashLine } from '../../src/plan/pullIndex.js';
import { TEST_LABEL, dockerAvailable, docker, execInContainer, removeContainers, uniqueName } from '../support/docker.js';
import { type SwarmRegistry, pollUntil, startSwarmRegistry } from '../support/e2eRegistry.js';

/**
 * A container that prints, when told (`say`), a batch of numbered lines to
 * stdout and stderr (stdout only with ONLY_OUT set) and then writes
 * /tmp/said: a log that grows exactly when the test wants it to. The
 * engine copies the two streams apart, so their lines may interleave in the
 * log in any order.
 */
const SPEAKER = [
  'b=0',
  'while :; do',
  '  if [ -e /tmp/say ]; then',
  '    n=$(cat /tmp/say); rm /tmp/say; b=$((b+1)); i=0',
  '    while [ $i -lt $n ]; do echo "batch $b line $i out é"; [ -n "$ONLY_OUT" ] || echo "batch $b line $i err" >&2; i=$((i+1)); done',
  '    echo $b > /tmp/said',
  '  fi',
  '  sleep 0.05',
  'done',
].join('\n');

async function speaker(options: { tty?: boolean; onlyOut?: boolean; logConfig?: { Type: string; Config: Record<string, string> } } = {}): Promise<{ container: Dockerode.Container; info: ContainerInfo }> {
  const container = await docker().createContainer({
    name: uniqueName('regsweep-log'),
    Image: 'registry:2',
    Entrypoint: ['/bin/sh', '-c', SPEAKER],
    Env: options.onlyOut ? ['ONLY_OUT=1'] : [],
    Tty: options.tty ?? false,
    Labels: { [TEST_LABEL]: '1' },
    HostConfig: { NetworkMode: 'none', ...(options.logConfig ? { LogConfig: options.logConfig } : {}) },
  });
  await container.start();
  return { container, info: (await new DockerodeEngine().container(container.id)) as ContainerInfo };
}

/**
 * Makes the speaker print `n` lines to each stream, and waits until the
 * engine's log has the last of both: its log copier runs behind the process.
 */
async function say(container: Dockerode.Container, n: number, onlyOut = false): Promise<void> {
  const before = (await execInContainer(container, ['cat', '/tmp/said'])).stdout.trim();
  const b = before === '' ? 1 : Number(before) + 1;
  await execInContainer(container, ['sh', '-c', `echo ${n} > /tmp/say.new && mv /tmp/say.new /tmp/say`]);
  await pollUntil('the batch in the engine’s log', 10_000, async () => {
    const tail = ((await container.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer).toString('utf8');
    return tail.includes(`batch ${b} line ${n - 1} out é`) && (onlyOut || tail.includes(`batch ${b} line ${n - 1} err`)) ? true : undefined;
  });
}

async function read(c: ContainerInfo, mark?: SourceMark): Promise<{ lines: Array<{ text: string; at: number }>; read: SourceRead }> {
  const lines: Array<{ text: string; at: number }> = [];
  const reads = await readRegistryLogs(new DockerodeEngine(), [c], (id) => (id === c.id ? mark : undefined), (text, at) => lines.push({ text, at }));
  expect(reads).toHaveLength(1);
  return { lines, read: reads[0] as SourceRead };
}

const batch = (b: number, n: number, stream: 'out é' | 'err'): string[] => Array.from({ length: n }, (_, i) => `batch ${b} line ${i} ${stream}`);

afterEach(async () => {
  await removeContainers({ label: TEST_LABEL });
});

describe.skipIf(!dockerAvailable())('registry logs through the real engine', () => {
  it('a framed (non-TTY) log: every line of both streams once, with engine times; a read from its mark continues and hands on only what is new', async () => {
    const { container, info } = await speaker();
    await say(container, 40);
    const first = await read(info);
    expect(first.lines.map((l) => l.text).filter((t) => t.endsWith('out é'))).toEqual(batch(1, 40, 'out é'));
    expect(first.lines.map((l) => l.text).filter((t) => t.endsWith('err'))).toEqual(batch(1, 40, 'err'));
    expect(first.lines).toHaveLength(80);
    expect(first.read).toMatchObject({ kind: 'container', id: info.id, created: info.created, continued: false });
    // Engine times, not ours: within the container's life, in order within each stream (the engine copies
    // the two streams apart, so across them the log's order and its times can differ a little).
    expect(first.read.first).toBeGreaterThanOrEqual(info.created);
    expect(first.read.first).toBeLessThanOrEqual(Date.now());
    for (const stream of ['out é', 'err']) {
      const times = first.lines.filter((l) => l.text.endsWith(stream)).map((l) => l.at);
      expect(times).toEqual([...times].sort((a, b) => a - b));
    }
    const last = first.lines.at(-1)?.text as string;
    expect(first.read.mark).toMatchObject({ line: hashLine(last), running: true });
    expect(first.read.mark?.ts).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$/);

    const nothing = await read(info, first.read.mark);
    expect(nothing.lines).toEqual([]);
    expect(nothing.read).toMatchObject({ continued: true, mark: first.read.mark });
    expect(nothing.read.first).toBeUndefined();

    await say(container, 5);
    const next = await read(info, first.read.mark);
    expect(next.read.continued).toBe(true);
    expect(next.lines.map((l) => l.text).sort()).toEqual([...batch(2, 5, 'out é'), ...batch(2, 5, 'err')].sort());
  });

  it('a TTY log: the same lines, without the terminal’s carriage returns', async () => {
    const { container, info } = await speaker({ tty: true });
    await say(container, 10);
    const { lines, read: r } = await read(info);
    expect(lines.map((l) => l.text).sort()).toEqual([...batch(1, 10, 'out é'), ...batch(1, 10, 'err')].sort());
    expect(r.continued).toBe(false);
    const again = await read(info, r.mark);
    expect(again).toMatchObject({ lines: [], read: { continued: true } });
  });

  it('a line longer than any chunk the engine sends, and than its 16 KiB partial messages, arrives whole', async () => {
    const long = 'x'.repeat(40_000);
    const container = await docker().createContainer({
      Image: 'registry:2',
      Entrypoint: ['/bin/sh', '-c', `echo before; echo ${long}; echo after`],
      Labels: { [TEST_LABEL]: '1' },
      HostConfig: { NetworkMode: 'none' },
    });
    await container.start();
    await container.wait();
    const info = (await new DockerodeEngine().container(container.id)) as ContainerInfo;
    const { lines, read: r } = await read(info);
    expect(lines.map((l) => l.text)).toEqual(['before', long, 'after']);
    expect(r.mark?.running).toBe(false);
  });

  it('a big log (200,000 lines of both streams) streams through whole, in order, each line once', async () => {
    const container = await docker().createContainer({
      Image: 'registry:2',
      Entrypoint: ['/bin/sh', '-c', 'seq 1 100000; seq 1 100000 | sed s/^/err/ >&2'],
      Labels: { [TEST_LABEL]: '1' },
      HostConfig: { NetworkMode: 'none' },
    });
    await container.start();
    await container.wait();
    const info = (await new DockerodeEngine().container(container.id)) as ContainerInfo;
    let out = 0;
    let err = 0;
    let disorder = 0;
    const reads = await readRegistryLogs(new DockerodeEngine(), [info], () => undefined, (text) => {
      if (text.startsWith('err')) {
        if (Number(text.slice(3)) !== ++err) disorder++;
      } else if (Number(text) !== ++out) disorder++;
    });
    expect({ out, err, disorder }).toEqual({ out: 100_000, err: 100_000, disorder: 0 });
    expect(reads[0]?.mark?.line).toMatch(/^[0-9a-f]{16}$/);
  });

  it('json-file rotation (max-size 1k, max-file 2) takes the marked line away: the next read is not continued and hands on what is left; then one with nothing new is', async () => {
    // One stream: lines rotate away in the order they were written.
    const { container, info } = await speaker({ onlyOut: true, logConfig: { Type: 'json-file', Config: { 'max-size': '1k', 'max-file': '2' } } });
    await say(container, 2, true);
    const first = await read(info);
    expect(first.lines.map((l) => l.text)).toEqual(batch(1, 2, 'out é'));

    // About 6 KiB of log: far past two files of 1 KiB, so batch 1 and most of batch 2 are gone.
    await say(container, 60, true);
    const second = await read(info, first.read.mark);
    expect(second.read.continued).toBe(false);
    const texts = second.lines.map((l) => l.text);
    expect(texts.length).toBeGreaterThan(0);
    expect(texts.length).toBeLessThan(60);
    // What is left is the end of batch 2, whole and in order.
    expect(texts).toEqual(batch(2, 60, 'out é').slice(60 - texts.length));
    expect(second.read.first).toBe(second.lines[0]?.at);

    const third = await read(info, second.read.mark);
    expect(third).toMatchObject({ lines: [], read: { continued: true, mark: second.read.mark } });
  });

  it('the none log driver keeps nothing to read back: a failed read saying so, and the other containers are still read', async () => {
    const silent = await speaker({ logConfig: { Type: 'none', Config: {} } });
    const loud = await speaker();
    await say(loud.container, 1);
    const lines: string[] = [];
    const reads = await readRegistryLogs(new DockerodeEngine(), [silent.info, loud.info], () => undefined, (text) => lines.push(text));
    expect(reads[0]).toEqual({ kind: 'container', id: silent.info.id, created: silent.info.created, failed: expect.stringMatching(/^cannot read the log of container [0-9a-f]{12}: its log driver keeps no log the engine can read back \(the engine says: configured logging driver does not support reading\)$/) });
    expect(reads[1]).toMatchObject({ id: loud.info.id, continued: false });
    expect(lines.sort()).toEqual(['batch 1 line 0 err', 'batch 1 line 0 out é']);
  });

  it('a remote log driver (syslog) is read back through the engine’s local cache, and fails like none with the cache disabled', async () => {
    // A syslog server that takes every datagram. It must listen: the engine
    // caches a line only once the remote driver has sent it, and a send to a
    // closed UDP port fails (ECONNREFUSED, after the ICMP reply to the send
    // before it), so that line would never reach the cache.
    const server = createSocket('udp4');
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
    try {
      const syslog = { 'syslog-address': `udp://127.0.0.1:${server.address().port}` };
      const cached = await speaker({ logConfig: { Type: 'syslog', Config: syslog } });
      const uncached = await speaker({ logConfig: { Type: 'syslog', Config: { ...syslog, 'cache-disabled': 'true' } } });
      await say(cached.container, 3);
      const { lines, read: r } = await read(cached.info);
      expect(lines.map((l) => l.text).sort()).toEqual([...batch(1, 3, 'out é'), ...batch(1, 3, 'err')].sort());
      expect(r.failed).toBeUndefined();
      const off = await read(uncached.info);
      expect(off.lines).toEqual([]);
      expect(off.read.failed).toMatch(/its log driver keeps no log the engine can read back/);
    } finally {
      server.close();
    }
  });
});

describe.skipIf(!dockerAvailable() || process.getuid?.() !== 0)('a swarm service’s registry logs, real engine', () => {
  let swarm: SwarmRegistry | undefined;
  afterEach(async () => {
    await swarm?.stop();
    swarm = undefined;
  });

  it('the task container a restart replaced is still read, with the requests it served', async () => {
    swarm = await startSwarmRegistry('regsweep-logsvc');
    const engine = new DockerodeEngine();
    const before = (await engine.serviceContainers(swarm.service)) as ContainerInfo[];
    expect(before).toHaveLength(1);
    const old = before[0] as ContainerInfo;
    expect((await fetch(`http://127.0.0.1:${swarm.port}/v2/old/manifests/v1`)).status).toBe(404);
    await engine.restartService(swarm.service, [old.id]);

    const target = await locateNamed(engine, swarm.service);
    expect(target.containers.map((c) => c.id)).not.toContain(old.id);
    const containers = await registryLogContainers(engine, target);
    expect(containers.map((c) => c.id).sort()).toEqual([old.id, ...target.containers.map((c) => c.id)].sort());
    expect(containers.find((c) => c.id === old.id)?.running).toBe(false);

    const lines: string[] = [];
    const reads = await readRegistryLogs(engine, containers, () => undefined, (text) => lines.push(text));
    expect(reads.every((r) => r.failed === undefined)).toBe(true);
    expect(lines.some((l) => l.includes('/v2/old/manifests/v1'))).toBe(true);
  });
});
