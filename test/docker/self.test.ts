/**
 * Finding the container regsweep runs in. Every mountinfo and cgroup text
 * below was captured from a real process (trimmed to the lines that matter and
 * a few that might mislead): containers of the private test dockerd (Docker
 * 20.10, cgroup v1, data root /tmp/rsw.SzmMRD/data) started the ways people
 * start regsweep, a Podman 4.3 container, and this machine itself, which is
 * no container but has a /.dockerenv. The one exception is marked.
 */
import type Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { DockerodeEngine } from '../../src/docker/dockerodeEngine.js';
import { UsageError } from '../../src/errors.js';
import { containerIdFromCgroup, containerIdFromMountinfo, readSelfEvidence, selfContainer } from '../../src/docker/self.js';

const lines = (...l: string[]): string => `${l.join('\n')}\n`;

/** Lines every Docker container's mountinfo has, whatever its id; none of them names it. */
const DOCKER_COMMON = [
  '75 74 0:42 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw',
  '76 74 0:43 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755',
  '90 76 0:47 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k',
  '55 75 0:43 /null /proc/keys rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755',
];

/** `docker run --network host --hostname foo registry:2` (hostname: foo). */
const HOST_NET_FOO = '89e4197b770d21c849e1ee48220dd5fe4a8bfa4adf90ffaedf40be360dc07e09';
const hostNetFooMountinfo = lines(
  '74 49 0:39 / / rw,relatime master:2 - overlay overlay rw,lowerdir=/tmp/rsw.SzmMRD/data/overlay2/l/CJEWSFHZPZTDZMUEL6GVBO5U5N:/tmp/rsw.SzmMRD/data/overlay2/l/SWHKTZXS2EY2Z3I64EARB43JSJ,upperdir=/tmp/rsw.SzmMRD/data/overlay2/76e62698a45f8beecd71557aa07849020b16c96b6e4ff0c610c4438024ba6236/diff,workdir=/tmp/rsw.SzmMRD/data/overlay2/76e62698a45f8beecd71557aa07849020b16c96b6e4ff0c610c4438024ba6236/work',
  ...DOCKER_COMMON,
  '78 74 0:22 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs rw',
  '80 79 0:29 /docker/89e4197b770d21c849e1ee48220dd5fe4a8bfa4adf90ffaedf40be360dc07e09 /sys/fs/cgroup/cpu ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu',
  '91 74 254:0 /tmp/rsw.SzmMRD/data/containers/89e4197b770d21c849e1ee48220dd5fe4a8bfa4adf90ffaedf40be360dc07e09/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '92 74 254:0 /tmp/rsw.SzmMRD/data/containers/89e4197b770d21c849e1ee48220dd5fe4a8bfa4adf90ffaedf40be360dc07e09/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '93 74 254:0 /tmp/rsw.SzmMRD/data/containers/89e4197b770d21c849e1ee48220dd5fe4a8bfa4adf90ffaedf40be360dc07e09/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '94 74 254:0 /tmp/rsw.SzmMRD/data/volumes/efa7eecf9300868bcc0c0cdc53bed82e3e196e5826c5f23801f2bdeaef60e872/_data /var/lib/registry rw,relatime master:1 - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
);

/** `docker run --network host registry:2`: its hostname is the host's own (vm), as on the host. */
const HOST_NET = 'b4cda2731da7f6e5c425307ff64fc1fa51fe435b8110d36e255531c642995adb';
const hostNetMountinfo = lines(
  '74 49 0:39 / / rw,relatime master:2 - overlay overlay rw,lowerdir=/tmp/rsw.SzmMRD/data/overlay2/l/HKLDHFXVD5O2HUOUCAQCTPLADP:/tmp/rsw.SzmMRD/data/overlay2/l/SWHKTZXS2EY2Z3I64EARB43JSJ,upperdir=/tmp/rsw.SzmMRD/data/overlay2/c8ea602a20406de2f93a13e6307216577d40b005c1d62facc64eef2ece6f54c1/diff,workdir=/tmp/rsw.SzmMRD/data/overlay2/c8ea602a20406de2f93a13e6307216577d40b005c1d62facc64eef2ece6f54c1/work',
  ...DOCKER_COMMON,
  '91 74 254:0 /tmp/rsw.SzmMRD/data/containers/b4cda2731da7f6e5c425307ff64fc1fa51fe435b8110d36e255531c642995adb/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '92 74 254:0 /tmp/rsw.SzmMRD/data/containers/b4cda2731da7f6e5c425307ff64fc1fa51fe435b8110d36e255531c642995adb/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '93 74 254:0 /tmp/rsw.SzmMRD/data/containers/b4cda2731da7f6e5c425307ff64fc1fa51fe435b8110d36e255531c642995adb/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
);

/** `docker run --hostname something-else registry:2` (default network). */
const OTHER_HOSTNAME = '4f0b992a7a2dec4b44e3a0429059453262bfe31a47999b127cd7cd2202754051';
const otherHostnameMountinfo = lines(
  ...DOCKER_COMMON,
  '91 74 254:0 /tmp/rsw.SzmMRD/data/containers/4f0b992a7a2dec4b44e3a0429059453262bfe31a47999b127cd7cd2202754051/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '92 74 254:0 /tmp/rsw.SzmMRD/data/containers/4f0b992a7a2dec4b44e3a0429059453262bfe31a47999b127cd7cd2202754051/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '93 74 254:0 /tmp/rsw.SzmMRD/data/containers/4f0b992a7a2dec4b44e3a0429059453262bfe31a47999b127cd7cd2202754051/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
);

/** `docker run --volumes-from capt-reg --network host registry:2`: an anonymous volume's name is 64 hex digits too. */
const VOLUMES_FROM = '5e677ef551381630443081b24226d50c375b527b478a4c69e09365226a777d64';
const volumesFromMountinfo = lines(
  '110 62 0:49 / / rw,relatime master:3 - overlay overlay rw,lowerdir=/tmp/rsw.SzmMRD/data/overlay2/l/GGKZA7CSGCBEHRRO2Q7XUVMAXV:/tmp/rsw.SzmMRD/data/overlay2/l/SWHKTZXS2EY2Z3I64EARB43JSJ,upperdir=/tmp/rsw.SzmMRD/data/overlay2/c49574baf5a442574a47b5f9bb732d24a11b4000c47a43dbeb4581124ce91fef/diff,workdir=/tmp/rsw.SzmMRD/data/overlay2/c49574baf5a442574a47b5f9bb732d24a11b4000c47a43dbeb4581124ce91fef/work',
  '126 112 0:56 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k',
  '127 110 254:0 /tmp/rsw.SzmMRD/data/containers/5e677ef551381630443081b24226d50c375b527b478a4c69e09365226a777d64/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '128 110 254:0 /tmp/rsw.SzmMRD/data/containers/5e677ef551381630443081b24226d50c375b527b478a4c69e09365226a777d64/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '129 110 254:0 /tmp/rsw.SzmMRD/data/containers/5e677ef551381630443081b24226d50c375b527b478a4c69e09365226a777d64/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '130 110 254:0 /tmp/rsw.SzmMRD/data/volumes/2d4e9e16f1f5028c177f2ed7345bc867a4ceff1bcfd688a68edd746dcc506a1c/_data /var/lib/registry rw,relatime master:1 - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
);

/** `docker run --cgroupns private --network host --hostname foo registry:2`: its cgroups name nothing. */
const PRIVATE_CGROUPNS = 'c0eab6837e00305b1e42368bffe09d0d6eb7ed8038e2640a0aa76c64536fe257';
const privateCgroupnsMountinfo = lines(
  '116 115 0:29 / /sys/fs/cgroup/cpu ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu',
  '127 110 254:0 /tmp/rsw.SzmMRD/data/containers/c0eab6837e00305b1e42368bffe09d0d6eb7ed8038e2640a0aa76c64536fe257/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '128 110 254:0 /tmp/rsw.SzmMRD/data/containers/c0eab6837e00305b1e42368bffe09d0d6eb7ed8038e2640a0aa76c64536fe257/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '129 110 254:0 /tmp/rsw.SzmMRD/data/containers/c0eab6837e00305b1e42368bffe09d0d6eb7ed8038e2640a0aa76c64536fe257/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
);
const privateCgroupnsCgroup = lines('9:name=systemd:/', '8:pids:/', '4:memory:/', '1:cpu:/', '0::/');

/** The same containers' /proc/self/cgroup (cgroup v1, cgroupfs driver, the host's cgroup namespace). */
const hostNetFooCgroup = lines(
  '9:name=systemd:/docker/89e4197b770d21c849e1ee48220dd5fe4a8bfa4adf90ffaedf40be360dc07e09',
  '8:pids:/docker/89e4197b770d21c849e1ee48220dd5fe4a8bfa4adf90ffaedf40be360dc07e09',
  '4:memory:/docker/89e4197b770d21c849e1ee48220dd5fe4a8bfa4adf90ffaedf40be360dc07e09',
  '1:cpu:/docker/89e4197b770d21c849e1ee48220dd5fe4a8bfa4adf90ffaedf40be360dc07e09',
  '0::/docker/89e4197b770d21c849e1ee48220dd5fe4a8bfa4adf90ffaedf40be360dc07e09',
);

/** `podman run --network host --hostname foo registry:2` (Podman 4.3, rootful, cgroupfs): no /.dockerenv, a /run/.containerenv. */
const PODMAN = 'de49a6f950833e8673ccf669c94ad2f07a4e4a9f9945ad64c09e8f1cd76c92a5';
const podmanMountinfo = lines(
  '113 63 0:50 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/containers/storage/overlay/l/CFPEI5OW7FMA2D6BE4IAVH752N,upperdir=/var/lib/containers/storage/overlay/5a7d691eb3fa45b5e25e47855e68e9e6345a3c0cff67ae74d822e3cd56f2a066/diff,workdir=/var/lib/containers/storage/overlay/5a7d691eb3fa45b5e25e47855e68e9e6345a3c0cff67ae74d822e3cd56f2a066/work,uuid=on,fsync=volatile',
  '120 113 254:0 /run/containers/storage/overlay-containers/de49a6f950833e8673ccf669c94ad2f07a4e4a9f9945ad64c09e8f1cd76c92a5/userdata/.containerenv /run/.containerenv rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '121 113 254:0 /run/containers/storage/overlay-containers/de49a6f950833e8673ccf669c94ad2f07a4e4a9f9945ad64c09e8f1cd76c92a5/userdata/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '122 113 254:0 /run/containers/storage/overlay-containers/de49a6f950833e8673ccf669c94ad2f07a4e4a9f9945ad64c09e8f1cd76c92a5/userdata/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '123 113 254:0 /run/containers/storage/overlay-containers/de49a6f950833e8673ccf669c94ad2f07a4e4a9f9945ad64c09e8f1cd76c92a5/userdata/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '125 124 0:29 /libpod_parent/libpod-de49a6f950833e8673ccf669c94ad2f07a4e4a9f9945ad64c09e8f1cd76c92a5 /sys/fs/cgroup/cpu ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu',
  '134 113 254:0 /var/lib/containers/storage/volumes/8d4ce5d4f0ee1937d11d0ee12ffdd92c6eef4fa63e183abd49ea6f802914e3f8/_data /var/lib/registry rw,nosuid,nodev,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
);
const podmanCgroup = lines(
  '9:name=systemd:/libpod_parent/libpod-de49a6f950833e8673ccf669c94ad2f07a4e4a9f9945ad64c09e8f1cd76c92a5',
  '4:memory:/libpod_parent/libpod-de49a6f950833e8673ccf669c94ad2f07a4e4a9f9945ad64c09e8f1cd76c92a5',
  '0::/libpod_parent/libpod-de49a6f950833e8673ccf669c94ad2f07a4e4a9f9945ad64c09e8f1cd76c92a5',
);

/**
 * This machine, no container, while the test dockerd runs a container: that
 * container's root (an overlay in the data root) is mounted in the host's
 * namespace. The machine has a /.dockerenv all the same, and its hostname is
 * `vm`, the hostname a `--network host` container gets too.
 */
const hostMountinfo = lines(
  '22 27 0:21 / /proc rw,relatime - proc proc rw',
  '23 27 0:22 / /sys rw,relatime - sysfs sysfs rw',
  '24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12358000k,nr_inodes=3089500,mode=755',
  '25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24731184k',
  '26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000',
  '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '28 27 0:25 / /mnt/sandboxing/model_tools_env/v1/python ro,nosuid,nodev,relatime - tmpfs model_tools_unavailable ro,size=4k,mode=755',
  '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
  '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
  '40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd',
  '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
  '42 27 254:0 /tmp/rsw.SzmMRD/data /tmp/rsw.SzmMRD/data rw,relatime shared:1 - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '47 27 0:4 net:[4026531833] /tmp/rsw.SzmMRD/exec/netns/default rw - nsfs nsfs rw',
  '46 42 0:39 / /tmp/rsw.SzmMRD/data/overlay2/7fdff7f71bac6ddf617e9e8fdb71d6f26c0d63c7e2f7ecfd9fb854918afcbec2/merged rw,relatime shared:2 - overlay overlay rw,lowerdir=/tmp/rsw.SzmMRD/data/overlay2/l/HMFIQLDDVUMSIAJVMLHVDGCNAM:/tmp/rsw.SzmMRD/data/overlay2/l/SWHKTZXS2EY2Z3I64EARB43JSJ,upperdir=/tmp/rsw.SzmMRD/data/overlay2/7fdff7f71bac6ddf617e9e8fdb71d6f26c0d63c7e2f7ecfd9fb854918afcbec2/diff,workdir=/tmp/rsw.SzmMRD/data/overlay2/7fdff7f71bac6ddf617e9e8fdb71d6f26c0d63c7e2f7ecfd9fb854918afcbec2/work',
);
/** Its cgroups: one names a 32-hex-digit group of the machine's own supervisor, no container. */
const hostCgroup = lines('9:name=systemd:/', '8:pids:/', '5:devices:/', '4:memory:/process_api/62df9d23f739a6baeb80c8fe79bc166b', '3:cpuset:/', '1:cpu:/', '0::/');

describe('the container id in /proc/self/mountinfo', () => {
  it.each([
    ['--network host --hostname foo', hostNetFooMountinfo, HOST_NET_FOO],
    ['--network host (the host’s hostname)', hostNetMountinfo, HOST_NET],
    ['--hostname something-else', otherHostnameMountinfo, OTHER_HOSTNAME],
    ['--volumes-from a registry (its volume named by 64 hex digits too)', volumesFromMountinfo, VOLUMES_FROM],
    ['--cgroupns private', privateCgroupnsMountinfo, PRIVATE_CGROUPNS],
    ['podman run --network host --hostname foo', podmanMountinfo, PODMAN],
  ])('docker run %s', (_how, mountinfo, id) => {
    expect(containerIdFromMountinfo(mountinfo)).toBe(id);
  });

  it('finds none on the host, though a container’s overlay is mounted there', () => {
    expect(containerIdFromMountinfo(hostMountinfo)).toBeUndefined();
  });

  it('finds none when /etc files come from two containers: no guess', () => {
    const mixed = hostNetFooMountinfo.replace(`${HOST_NET_FOO}/hosts /etc/hosts`, `${HOST_NET}/hosts /etc/hosts`);
    expect(containerIdFromMountinfo(mixed)).toBeUndefined();
  });

  it('reads a container directory only where it is mounted over /etc/hostname, /etc/hosts or /etc/resolv.conf', () => {
    const elsewhere = hostNetFooMountinfo.replaceAll(/ \/etc\/(hostname|hosts|resolv\.conf) /g, ' /mnt/$1 ');
    expect(containerIdFromMountinfo(elsewhere)).toBeUndefined();
    expect(containerIdFromMountinfo('')).toBeUndefined();
  });

  it('finds it with the data root on a file system of its own (the root column is then relative to it)', () => {
    const ownFs = hostNetFooMountinfo.replaceAll('/tmp/rsw.SzmMRD/data/containers/', '/containers/');
    expect(containerIdFromMountinfo(ownFs)).toBe(HOST_NET_FOO);
  });
});

describe('the container id in /proc/self/cgroup', () => {
  it('cgroup v1, cgroupfs: /docker/<id>', () => {
    expect(containerIdFromCgroup(hostNetFooCgroup)).toBe(HOST_NET_FOO);
  });

  it('podman, cgroupfs: libpod-<id>', () => {
    expect(containerIdFromCgroup(podmanCgroup)).toBe(PODMAN);
  });

  // Not captured (the test machine has no systemd): the systemd driver's documented layout, cgroup v2, and Docker in Docker.
  it.each([
    ['systemd driver, cgroup v2', `0::/system.slice/docker-${HOST_NET}.scope`, HOST_NET],
    ['systemd driver, a child group', `0::/system.slice/docker-${HOST_NET}.scope/init`, HOST_NET],
    ['podman under systemd', `0::/machine.slice/libpod-${PODMAN}.scope/container`, PODMAN],
    ['Docker in Docker: the innermost', `4:memory:/docker/${HOST_NET}/docker/${HOST_NET_FOO}`, HOST_NET_FOO],
    ['podman’s conmon is not the container', `0::/machine.slice/libpod-conmon-${PODMAN}.scope`, undefined],
  ])('%s', (_how, text, id) => {
    expect(containerIdFromCgroup(text)).toBe(id);
  });

  it('finds none in a private cgroup namespace, nor on the host', () => {
    expect(containerIdFromCgroup(privateCgroupnsCgroup)).toBeUndefined();
    expect(containerIdFromCgroup(hostCgroup)).toBeUndefined();
  });
});

describe('selfContainer', () => {
  const host = { mountinfo: hostMountinfo, cgroup: hostCgroup, dockerenv: true, hostname: 'vm' };

  it('takes this machine, with its /.dockerenv, for no container', () => {
    expect(selfContainer(host)).toBeUndefined();
  });

  it('REGSWEEP_SELF_CONTAINER first, as said', () => {
    expect(selfContainer({ override: 'regsweep-1', mountinfo: hostNetFooMountinfo })).toEqual({ ref: 'regsweep-1', how: 'override' });
    expect(selfContainer({ ...host, override: 'regsweep-1' })).toEqual({ ref: 'regsweep-1', how: 'override' });
  });

  it('mountinfo before cgroup, without a /.dockerenv', () => {
    expect(selfContainer({ mountinfo: hostNetFooMountinfo, cgroup: podmanCgroup, hostname: 'foo' })).toEqual({ ref: HOST_NET_FOO, how: 'mountinfo' });
    expect(selfContainer({ mountinfo: podmanMountinfo, cgroup: podmanCgroup, dockerenv: false, hostname: 'foo' })).toEqual({ ref: PODMAN, how: 'mountinfo' });
  });

  it('cgroup when mountinfo tells nothing', () => {
    expect(selfContainer({ mountinfo: hostMountinfo, cgroup: hostNetFooCgroup })).toEqual({ ref: HOST_NET_FOO, how: 'cgroup' });
    expect(selfContainer({ cgroup: hostNetFooCgroup })).toEqual({ ref: HOST_NET_FOO, how: 'cgroup' });
  });

  it('last, a Docker-made hostname where /.dockerenv says Docker; never a hostname alone', () => {
    const blind = { mountinfo: hostMountinfo, cgroup: privateCgroupnsCgroup };
    expect(selfContainer({ ...blind, dockerenv: true, hostname: 'c0eab6837e00' })).toEqual({ ref: 'c0eab6837e00', how: 'hostname' });
    expect(selfContainer({ ...blind, dockerenv: false, hostname: 'c0eab6837e00' })).toBeUndefined();
    expect(selfContainer({ ...blind, dockerenv: true, hostname: 'foo' })).toBeUndefined();
    expect(selfContainer({ ...blind, dockerenv: true, hostname: 'registry-01' })).toBeUndefined();
  });
});

describe('readSelfEvidence', () => {
  it('reads the override alone when there is one', () => {
    expect(readSelfEvidence({ REGSWEEP_SELF_CONTAINER: 'me' })).toEqual({ override: 'me' });
  });

  it.runIf(process.platform === 'linux')('reads this process’s mountinfo and cgroup', () => {
    const evidence = readSelfEvidence({ REGSWEEP_SELF_CONTAINER: '' });
    expect(evidence.override).toBeUndefined();
    expect(evidence.mountinfo).toMatch(/^\d+ \d+ \d+:\d+ \S+ \/ /m);
    expect(evidence.cgroup).toMatch(/^\d+:[^:\n]*:\//m);
    expect(typeof evidence.dockerenv).toBe('boolean');
    expect(evidence.hostname).toBeTruthy();
  });
});

describe('DockerodeEngine.self', () => {
  /** A dockerode that knows the given containers by name, id or id prefix, as the engine does, and lists what it was asked. */
  function engineKnowing(...containers: Array<{ id: string; name: string }>): { engine: DockerodeEngine; asked: string[] } {
    const asked: string[] = [];
    const docker = {
      getContainer: (ref: string) => ({
        inspect: async () => {
          asked.push(ref);
          const c = containers.find((k) => k.name === ref) ?? containers.find((k) => k.id.startsWith(ref));
          if (!c) throw Object.assign(new Error('no such container'), { statusCode: 404 });
          return { Id: c.id, Name: `/${c.name}`, Image: 'sha256:1', Config: { Image: 'regsweep', Env: [] }, State: { Running: true, Paused: false }, Mounts: [] };
        },
      }),
    } as unknown as Docker;
    return { engine: new DockerodeEngine(() => {}, docker), asked };
  }

  it('looks up the container the mounts name, whatever its hostname', async () => {
    const { engine, asked } = engineKnowing({ id: HOST_NET_FOO, name: 'regsweep' });
    expect((await engine.self({ mountinfo: hostNetFooMountinfo, hostname: 'foo' }))?.id).toBe(HOST_NET_FOO);
    expect(asked).toEqual([HOST_NET_FOO]);
  });

  it('asks nothing on the host', async () => {
    const { engine, asked } = engineKnowing({ id: HOST_NET_FOO, name: 'regsweep' });
    expect(await engine.self({ mountinfo: hostMountinfo, cgroup: hostCgroup, dockerenv: true, hostname: 'vm' })).toBeUndefined();
    expect(asked).toEqual([]);
  });

  it('is in no container of this engine when the engine does not know the id', async () => {
    const { engine } = engineKnowing({ id: PODMAN, name: 'regsweep' });
    expect(await engine.self({ mountinfo: hostNetFooMountinfo })).toBeUndefined();
  });

  it('REGSWEEP_SELF_CONTAINER may name the container', async () => {
    const { engine } = engineKnowing({ id: HOST_NET_FOO, name: 'regsweep' });
    expect((await engine.self({ override: 'regsweep', mountinfo: hostMountinfo }))?.id).toBe(HOST_NET_FOO);
  });

  it('REGSWEEP_SELF_CONTAINER naming no container is a refusal (exit 2), not ignored', async () => {
    const { engine } = engineKnowing({ id: HOST_NET_FOO, name: 'regsweep' });
    const refused = await engine.self({ override: 'regsweep-typo', mountinfo: hostNetFooMountinfo }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(UsageError);
    expect((refused as UsageError).exitCode).toBe(2);
    expect((refused as UsageError).message).toBe('REGSWEEP_SELF_CONTAINER names no container of this Docker engine: regsweep-typo; name the container regsweep runs in, or unset it');
  });

  it('takes a hostname only as the start of the id it finds, not as another container’s name', async () => {
    const { engine } = engineKnowing({ id: PRIVATE_CGROUPNS, name: 'regsweep' }, { id: HOST_NET, name: '0123456789ab' });
    const blind = { mountinfo: hostMountinfo, cgroup: privateCgroupnsCgroup, dockerenv: true };
    expect((await engine.self({ ...blind, hostname: 'c0eab6837e00' }))?.id).toBe(PRIVATE_CGROUPNS);
    expect(await engine.self({ ...blind, hostname: '0123456789ab' })).toBeUndefined();
  });
});
