import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { BlockList, type Server } from 'node:net';
import { capConnectionsPerAddress, connectionKey } from '../../../server/http/connection-cap.js';

/**
 * The per-address connection cap's key (SECURITY-CASES J3, J6): IPv6 per /64 (one host usually
 * holds a whole /64, and 2^64 addresses would each get a fresh budget up to the global
 * maxConnections), IPv4-mapped IPv6 as its IPv4 address. No traffic: fake sockets on a fake
 * server, so any source address can be tried.
 */

class FakeSocket extends EventEmitter {
  destroyed = false;
  constructor(readonly remoteAddress: string) {
    super();
  }
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('close');
  }
}

function fakeServer(max: number, exempt = new BlockList()) {
  const server = new EventEmitter();
  const refused: string[] = [];
  const open = capConnectionsPerAddress(server as unknown as Server, max, exempt, (key) => refused.push(key));
  const connect = (address: string) => {
    const socket = new FakeSocket(address);
    server.emit('connection', socket);
    return socket;
  };
  return { open, refused, connect };
}

describe('connection cap: one counter per IPv4 address and per IPv6 /64', () => {
  it('connectionKey: IPv6 by its /64 (any spelling), IPv4-mapped as IPv4, junk refused', () => {
    assert.equal(connectionKey('10.0.0.1'), '10.0.0.1');
    assert.equal(connectionKey('::ffff:10.0.0.1'), '10.0.0.1');
    assert.equal(connectionKey('::FFFF:10.0.0.1'), '10.0.0.1');
    assert.equal(connectionKey('2001:db8:1:2::1'), '2001:0db8:0001:0002::/64');
    assert.equal(connectionKey('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:0db8:0001:0002::/64');
    assert.equal(connectionKey('2001:0DB8:0001:0002:0:0:0:9'), '2001:0db8:0001:0002::/64');
    assert.equal(connectionKey('2001:db8:1:3::1'), '2001:0db8:0001:0003::/64');
    assert.equal(connectionKey('::1'), '0000:0000:0000:0000::/64');
    assert.equal(connectionKey('fe80::1'), 'fe80:0000:0000:0000::/64');
    for (const bad of ['', 'a', '10.0.0.1:80', '[::1]', 'fe80::1%eth0'])
      assert.equal(connectionKey(bad), undefined, bad);
  });

  it('caps distinct /128s of one /64 together; another /64 and IPv4 have their own budget', () => {
    const { open, refused, connect } = fakeServer(3);
    const sameSlash64 = Array.from({ length: 10 }, (_, i) => connect(`2001:db8:1:2::${(i + 1).toString(16)}`));
    assert.equal(sameSlash64.filter((s) => !s.destroyed).length, 3, 'ten addresses of one /64: three admitted');
    assert.deepEqual([...new Set(refused)], ['2001:0db8:0001:0002::/64']);
    assert.equal(open.get('2001:0db8:0001:0002::/64'), 3);

    assert.equal(connect('2001:db8:1:3::1').destroyed, false, 'the next /64 is another client');
    assert.equal(connect('10.0.0.1').destroyed, false);
    assert.equal(connect('::ffff:10.0.0.1').destroyed, false);
    assert.equal(connect('::ffff:10.0.0.1').destroyed, false);
    assert.equal(connect('10.0.0.1').destroyed, true, 'IPv4-mapped IPv6 counts against the same IPv4 address');

    // Closing one frees one slot of the /64, for any address in it.
    sameSlash64[0]!.destroy();
    assert.equal(connect('2001:db8:1:2:abcd::1').destroyed, false);
    assert.equal(connect('2001:db8:1:2:abcd::2').destroyed, true);
    for (const s of sameSlash64) s.destroy();
  });

  it('a trusted proxy is exempt by its own address, even inside a capped /64', () => {
    const exempt = new BlockList();
    exempt.addAddress('2001:db8:1:2::53', 'ipv6');
    const { connect } = fakeServer(1, exempt);
    assert.equal(connect('2001:db8:1:2::1').destroyed, false);
    assert.equal(connect('2001:db8:1:2::2').destroyed, true);
    for (let i = 0; i < 5; i++) assert.equal(connect('2001:db8:1:2::53').destroyed, false);
  });
});
