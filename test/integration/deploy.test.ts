import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../server/config.js';

/** No Docker engine runs here: deploy files are validated, not run (the images, compose and Kubernetes: test/deploy). */
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

describe('deploy files', () => {
  it('ships an example config that the server accepts as it is', async () => {
    const config = await loadConfig({ file: join(root, 'deploy', 'coffer.yaml'), env: {} });
    assert.equal(config.kek, 'shamir:');
    assert.equal(config.data_dir, '/var/lib/coffer');
    // It listens on the network, so it must serve TLS (a plain-HTTP one would refuse to start).
    assert.equal(config.listen, '0.0.0.0:8740');
    assert.equal(config.tls_cert_file, '/etc/coffer/tls/server.pem');
    assert.equal(config.tls_key_file, '/etc/coffer/tls/server-key.pem');
    assert.notEqual(config.insecure_no_tls, true);
  });

  it('hardens the systemd unit and points it at the config', async () => {
    const unit = await readFile(join(root, 'deploy', 'coffer.service'), 'utf8');
    for (const line of ['NoNewPrivileges=true', 'ProtectSystem=strict', 'LimitCORE=0', 'StateDirectoryMode=0700'])
      assert.ok(unit.includes(line), line);
    assert.match(unit, /--config \/etc\/coffer\/coffer\.yaml/);
  });

  it('rejects a config file with an unknown key, naming it', async () => {
    await assert.rejects(
      loadConfig({ file: join(root, 'package.json'), env: {} }),
      /configuration: Unrecognized keys?: .*"name"/,
    );
  });
});
