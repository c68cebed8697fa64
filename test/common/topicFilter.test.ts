import { describe, expect, it } from 'vitest';
import { TopicFilter } from '../../src/common/index.js';

const match = (filter: string, topic: string) => new TopicFilter(filter).match(topic);

describe('TopicFilter', () => {
  it('captures what each + matched', () => {
    expect(match('sensors/+/+', 'sensors/pump1/temperature')).toEqual(['pump1', 'temperature']);
    expect(match('sensors/+/status', 'sensors/pump1/status')).toEqual(['pump1']);
    expect(match('+/pump1/+', 'plant/pump1/rpm')).toEqual(['plant', 'rpm']);
    // An empty level is a level.
    expect(match('sensors/+', 'sensors/')).toEqual(['']);
  });

  it('captures the rest of the topic as one for #', () => {
    expect(match('sensors/#', 'sensors/pump1/temperature/raw')).toEqual(['pump1/temperature/raw']);
    expect(match('sensors/+/#', 'sensors/pump1/a/b')).toEqual(['pump1', 'a/b']);
    expect(match('#', 'a/b/c')).toEqual(['a/b/c']);
  });

  it('matches exact levels with no captures', () => {
    expect(match('sensors/pump1/temperature', 'sensors/pump1/temperature')).toEqual([]);
    expect(match('sensors/pump1/temperature', 'sensors/pump1/pressure')).toBeNull();
    expect(match('sensors/pump1', 'Sensors/pump1')).toBeNull();
  });

  it('does not match a topic with more or fewer levels', () => {
    expect(match('sensors/+/+', 'sensors/pump1')).toBeNull();
    expect(match('sensors/+/+', 'sensors/pump1/temperature/raw')).toBeNull();
    expect(match('sensors/+', 'sensors')).toBeNull();
    expect(match('sensors/pump1', 'sensors/pump1/temperature')).toBeNull();
    expect(match('sensors/pump1/temperature', 'sensors/pump1')).toBeNull();
    expect(match('sensors/+/#', 'sensors')).toBeNull();
  });

  it('lets sensors/# match sensors itself, capturing nothing', () => {
    expect(match('sensors/#', 'sensors')).toEqual([]);
    expect(match('sensors/#', 'sensorsx')).toBeNull();
    expect(match('sensors/#', 'other/sensors')).toBeNull();
  });

  it('keeps $ topics away from leading wildcards, but not from named ones', () => {
    expect(match('#', '$SYS/broker/uptime')).toBeNull();
    expect(match('+/broker/uptime', '$SYS/broker/uptime')).toBeNull();
    expect(match('+/+/+', '$SYS/broker/uptime')).toBeNull();
    expect(match('$SYS/#', '$SYS/broker/uptime')).toEqual(['broker/uptime']);
    expect(match('$SYS/broker/+', '$SYS/broker/uptime')).toEqual(['uptime']);
  });

  it('keeps the filter it was made from', () => {
    expect(new TopicFilter('sensors/+/+').filter).toBe('sensors/+/+');
  });
});
