/**
 * The cluster topology's Temporal server without a server: the environment
 * deploy/temporal/config.yaml is rendered with (every variable it reads set,
 * per service), the database taken from DATABASE_URL, the start arguments,
 * and that the config file reads exactly the variables the runner sets.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { freePorts } from '../../scripts/lib/process.ts';
import {
  MAX_MEMBERSHIP_PORT,
  TEMPORAL_CLUSTER_PORT_DEFAULTS,
  ephemeralTemporalClusterPorts,
  TEMPORAL_CONFIG_FILE,
  TEMPORAL_SERVICES,
  servicePorts,
  temporalDatabaseOf,
  temporalServiceArgs,
  temporalServiceEnv,
  temporalUiConfig,
} from '../../scripts/lib/temporal-cluster.ts';

const db = temporalDatabaseOf('postgresql://postgres@127.0.0.1:54321/orderflow');

describe('temporal cluster config', () => {
  it('takes host, port, user and password from a DATABASE_URL', () => {
    expect(db).toEqual({ host: '127.0.0.1', port: 54321, user: 'postgres', password: '' });
    expect(temporalDatabaseOf('postgresql://app:p%40ss@db.internal/orderflow')).toEqual({
      host: 'db.internal',
      port: 5432,
      user: 'app',
      password: 'p@ss',
    });
  });

  it('gives each service its own metrics port and every service the same peers', () => {
    const ports = TEMPORAL_CLUSTER_PORT_DEFAULTS;
    const envs = TEMPORAL_SERVICES.map((s) => temporalServiceEnv(s, ports, db));
    expect(envs.map((e) => e.METRICS_PORT)).toEqual(['8001', '8002', '8000', '8003']);
    for (const env of envs) {
      expect(env).toMatchObject({
        FRONTEND_GRPC_PORT: '7233',
        HISTORY_MEMBERSHIP_PORT: '6934',
        BIND_ON_IP: '127.0.0.1',
        TEMPORAL_BROADCAST_ADDRESS: '127.0.0.1',
        POSTGRES_SEEDS: '127.0.0.1',
        DB_PORT: '54321',
        FRONTEND_ADDRESS: '127.0.0.1:7233',
      });
    }
    expect(servicePorts('matching', ports)).toEqual([7235, 6935]);
  });

  it('starts one service from the shared config file without auth', () => {
    expect(temporalServiceArgs('history')).toEqual([
      '--config-file',
      TEMPORAL_CONFIG_FILE,
      '--allow-no-auth',
      'start',
      '--service',
      'history',
    ]);
  });

  it('sets every variable the config template reads, with the same defaults', () => {
    const template = fs.readFileSync(TEMPORAL_CONFIG_FILE, 'utf8');
    expect(template.split('\n')[0]).toBe('# enable-template');
    const read = new Set([...template.matchAll(/env "([A-Z_]+)"/g)].map((m) => m[1]));
    const set = new Set(
      Object.keys(temporalServiceEnv('frontend', TEMPORAL_CLUSTER_PORT_DEFAULTS, db)),
    );
    expect([...read].filter((v) => !set.has(v!))).toEqual([]);
    // The template's port defaults are TEMPORAL_CLUSTER_PORT_DEFAULTS.
    const defaults = Object.fromEntries(
      [...template.matchAll(/default "(\d+)" \(env "([A-Z_]+_PORT)"\)/g)].map((m) => [m[2], m[1]]),
    );
    const expected = temporalServiceEnv('frontend', TEMPORAL_CLUSTER_PORT_DEFAULTS, db);
    for (const [name, value] of Object.entries(defaults)) {
      if (name === 'DB_PORT' || name === 'METRICS_PORT') continue;
      expect(value, name).toBe(expected[name]);
    }
    expect(Object.keys(defaults)).toContain('HISTORY_GRPC_PORT');
    expect(template).toMatch(
      /dict "frontend" "8000" "history" "8001" "matching" "8002" "worker" "8003"/,
    );
    expect(TEMPORAL_CLUSTER_PORT_DEFAULTS.metrics).toEqual({
      frontend: 8000,
      history: 8001,
      matching: 8002,
      worker: 8003,
    });
  });

  it('keeps membership ports of a test cluster within PostgreSQL SMALLINT, all ports distinct', async () => {
    const ports = await ephemeralTemporalClusterPorts(freePorts);
    const membership = TEMPORAL_SERVICES.map((s) => servicePorts(s, ports)[1]);
    for (const p of membership) expect(p).toBeLessThanOrEqual(MAX_MEMBERSHIP_PORT);
    const all = [
      ...TEMPORAL_SERVICES.flatMap((s) => servicePorts(s, ports)),
      ports.frontendHttp,
      ports.ui,
      ...Object.values(ports.metrics),
    ];
    expect(new Set(all).size).toBe(all.length);
  });

  it('points the Web UI server at the frontend', () => {
    const ui = temporalUiConfig('127.0.0.1:7233', 8233);
    expect(ui).toContain('temporalGrpcAddress: 127.0.0.1:7233');
    expect(ui).toContain('port: 8233');
  });
});
