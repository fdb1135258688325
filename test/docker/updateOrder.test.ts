import { describe, expect, it } from 'vitest';
import { updateOrder } from '../../src/docker/dockerodeEngine.js';

describe('updateOrder: start-first only where two tasks of the service can serve at once', () => {
  it('start-first with ports published through the ingress mesh, or none', () => {
    expect(updateOrder({ TaskTemplate: {}, EndpointSpec: { Ports: [{ PublishMode: 'ingress' }] } }, new Set())).toBe('start-first');
    expect(updateOrder({ TaskTemplate: { Networks: [{ Target: 'overlay-id' }] } }, new Set(['host-id']))).toBe('start-first');
    expect(updateOrder({}, new Set())).toBe('start-first');
  });
  it('stop-first on the host network (by name or by id) or with a host-mode port: the new task could not bind it', () => {
    expect(updateOrder({ TaskTemplate: { Networks: [{ Target: 'host' }] } }, new Set())).toBe('stop-first');
    // Swarm names the host network by an id of its own (k2u3…), not the engine's: the caller inspects each target's driver.
    expect(updateOrder({ TaskTemplate: { Networks: [{ Target: 'k2u3vmjxkigyzktx4r9kmigt5' }] } }, new Set(['k2u3vmjxkigyzktx4r9kmigt5']))).toBe('stop-first');
    expect(updateOrder({ TaskTemplate: {}, EndpointSpec: { Ports: [{ PublishMode: 'ingress' }, { PublishMode: 'host' }] } }, new Set())).toBe('stop-first');
  });
});
