import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { addReference, emptyPins, parseReference, pinCount, readPinList } from '../../src/plan/pins.js';

const X = `sha256:${'a'.repeat(64)}` as const;
const Y = `sha256:${'b'.repeat(64)}` as const;

describe('parseReference', () => {
  it.each([
    [`team/web@${X}`, 'team/web'],
    [`localhost:5000/team/web@${X}`, 'team/web'],
    [`localhost/team/web@${X}`, 'team/web'],
    [`registry.example.com/team/web@${X}`, 'team/web'],
    [`registry.example.com:443/a/b/c/d@${X}`, 'a/b/c/d'],
    [`127.0.0.1:5000/app@${X}`, 'app'],
    [`[::1]:5000/app@${X}`, 'app'],
    // A swarm service pins its image as name:tag@digest.
    [`localhost:5000/app:v1.2-alpine@${X}`, 'app'],
    [`app:latest@${X}`, 'app'],
    // No `library/` is added: the registry stores `registry` as `registry`.
    [`registry@${X}`, 'registry'],
    // A first component without `.` or `:` that is not `localhost` is part of the path.
    [`team/web/api@${X}`, 'team/web/api'],
    [`my-registry/team/web@${X}`, 'my-registry/team/web'],
    // One component is never a host.
    [`localhost@${X}`, 'localhost'],
    [`docker-pullable://localhost:5000/team/web@${X}`, 'team/web'],
  ])('%s is repository %s', (text, repository) => {
    expect(parseReference(text)).toEqual({ repository, digest: X });
  });

  it('a bare digest means any repository', () => {
    expect(parseReference(X)).toEqual({ digest: X });
    expect(parseReference(`docker-pullable://${X}`)).toEqual({ digest: X });
  });

  it.each([
    'registry:2', // by tag only: no pin
    'team/web',
    `sha256:${'A'.repeat(64)}`, // not lowercase
    `sha256:${'a'.repeat(63)}`,
    `sha512:${'a'.repeat(128)}`,
    `Team/web@${X}`, // upper case in the path
    `team//web@${X}`,
    `team/web:-bad@${X}`,
    `@${X}`,
    `bad_host:x/app@${X}`,
    `team/web@${X}@${X}`,
  ])('%s pins nothing', (text) => {
    expect(parseReference(text)).toBeUndefined();
  });
});

describe('readPinList', () => {
  it('reads lines, comments, blank lines and kubectl output, noting each user once', () => {
    const pinned = emptyPins();
    const text = [
      '# pinned by the deploy tool',
      '',
      `team/web@${X}   # the web tier`,
      `  localhost:5000/team/web@${X}`,
      `${Y}`,
      // kubectl get pods -A -o jsonpath='{..imageID}': one line, separated by spaces.
      `docker-pullable://registry.example.com/app@${Y} docker-pullable://localhost:5000/team/web/api@${X}\r`,
    ].join('\n');
    readPinList(text, { source: 'pins.txt', user: 'file pins.txt' }, pinned);
    expect(pinned.byRepository).toEqual(
      new Map([
        ['team/web', new Map([[X, ['file pins.txt']]])],
        ['app', new Map([[Y, ['file pins.txt']]])],
        ['team/web/api', new Map([[X, ['file pins.txt']]])],
      ]),
    );
    expect(pinned.anywhere).toEqual(new Map([[Y, ['file pins.txt']]]));
    expect(pinCount(pinned)).toBe(4);
  });

  it('refuses a bad reference with the source and the line, and a comment never hides a bad one before it', () => {
    const bad = (text: string): unknown => {
      try {
        readPinList(text, { source: 'pins.txt', user: 'file pins.txt' }, emptyPins());
      } catch (error) {
        return error;
      }
      return undefined;
    };
    const error = bad(`team/web@${X}\n\n# fine\napp:v1 # no digest\n`);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toBe('--keep-digests pins.txt, line 4: "app:v1" is not REPOSITORY@sha256:<64 hex> or sha256:<64 hex>');
    expect((bad(`${X} team/web@sha256:abc`) as Error).message).toMatch(/^--keep-digests pins.txt, line 1: "team\/web@sha256:abc"/);
    expect(bad(`${X}#comment`)).toBeInstanceOf(UsageError);
  });
});

describe('addReference', () => {
  it('pins what names a digest, ignores the rest, and lists every user of a digest', () => {
    const pinned = emptyPins();
    expect(addReference(pinned, 'registry:2', 'container reg')).toBe(false);
    expect(addReference(pinned, `localhost:5000/app@${X}`, 'container web-1')).toBe(true);
    expect(addReference(pinned, `localhost:5000/app:v1@${X}`, 'service stack_app')).toBe(true);
    expect(addReference(pinned, `127.0.0.1:5000/app@${X}`, 'container web-1')).toBe(true);
    expect(pinned.byRepository.get('app')?.get(X)).toEqual(['container web-1', 'service stack_app']);
    expect(pinCount(pinned)).toBe(1);
  });
});
