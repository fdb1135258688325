import { describe, expect, it } from 'vitest';
import { updateOrder } from '../../src/docker/dockerodeEngine.js';

describe('updateOrder: start-first only where two tasks of the service can serve at once', () => {
  it('start-first with ports published through the ingress mesh, or none', () => {
    expect(updateOrder({ TaskTemplate: {}, EndpointSpec: { Ports: [{ PublishMode: 'ingress' }] } })).toBe('start-first');
    expect(updateOrder({ TaskTemplate: { Networks: [{ Target: 'overlay-id' }] } }, 'host-id')).toBe('start-first');
    expect(updateOrder({})).toBe('start-first');
  });
  it('stop-first on the host network (by name or by id) or with a host-mode port: the new task could not bind it', () => {
    expect(updateOrder({ TaskTemplate: { Networks: [{ Target: 'host' }] } })).toBe('stop-first');
    expect(updateOrder({ TaskTemplate: { Networks: [{ Target: 'host-id' }] } }, 'host-id')).toBe('stop-first');
    expect(updateOrder({ TaskTemplate: {}, EndpointSpec: { Ports: [{ PublishMode: 'ingress' }, { PublishMode: 'host' }] } })).toBe('stop-first');
  });
});
