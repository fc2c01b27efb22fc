import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { acceptListVerb, ListRewriter } from '../../../../server/http/vault/list-verb.js';
import { echo, exchange, listening, req, seen, status, stop } from './list-echo.js';

/** Feeds the pieces in order to one reader and returns what it passed on. */
function through(pieces: string[]): string {
  const rewriter = new ListRewriter();
  return pieces.map((p) => rewriter.feed(Buffer.from(p, 'latin1')).toString('latin1')).join('');
}

/** Every way to cut `text` in two, each fed as two reads, plus one byte at a time. */
function everyCut(text: string): string[][] {
  const cuts = [[text], [...text]];
  for (let i = 1; i < text.length; i++) cuts.push([text.slice(0, i), text.slice(i)]);
  return cuts;
}

const LIST_NEXT = 'LIST /next HTTP/1.1\r\nHost: x\r\n\r\n';
const LISTED_NEXT = 'GET /next?list=true HTTP/1.1\r\nHost: x\r\n\r\n';
/** A body that reads as a blank line and a LIST to a reader that lost the framing. */
const TRAP = '\r\n\r\nLIST /trap HTTP/1.1\r\n\r\n';
const head = (line: string, headers: string[]) => [line, 'Host: x', ...headers, '', ''].join('\r\n');

/** The reader follows `request`: the LIST after it is rewritten, every byte of it passed on unchanged. */
function follows(request: string, cut = false) {
  for (const pieces of cut ? everyCut(request + LIST_NEXT) : [[request + LIST_NEXT]])
    assert.equal(through(pieces), request + LISTED_NEXT, JSON.stringify(pieces.slice(0, 2)).slice(0, 120));
}

/** The reader stops following after `request`: everything after it passes on unchanged, the LIST too. */
function letsThrough(request: string) {
  assert.equal(through([request + LIST_NEXT]), request + LIST_NEXT, JSON.stringify(request).slice(0, 120));
}

const chunked = (value = 'chunked') => head('POST /c HTTP/1.1', [`Transfer-Encoding: ${value}`]);
const sized = (body: string) => head('POST /p HTTP/1.1', [`Content-Length: ${body.length}`]) + body;

/**
 * The framing reader of the LIST hand-over (server/http/vault/list-verb.ts `ListRewriter`): byte
 * for byte what it passes on for the requests pipelined after a LIST, then the same sequences on
 * a real connection.
 */
describe('LIST hand-over: the framing reader', () => {
  it('follows a Content-Length body, however the reads cut it, and never rewrites it', () => {
    follows(sized(TRAP), true);
    follows(head('POST /p HTTP/1.1', ['Content-Length: 0']));
    // A body's bare LFs (pretty-printed JSON) are the body's, even in the read that brought its head.
    follows(sized('{\n  "data": {\n    "a": "1"\n  }\n}\n'), true);
    follows(head('POST /p HTTP/1.1', [`Content-Length: ${TRAP.length}`, `content-length:  ${TRAP.length} `]) + TRAP);
  });

  it('stops following a Content-Length it cannot trust: two different ones, not a number, 16 digits', () => {
    letsThrough(head('POST /p HTTP/1.1', ['Content-Length: 3', 'Content-Length: 4']) + 'abc');
    letsThrough(head('POST /p HTTP/1.1', ['Content-Length: 3x']) + 'abc');
    letsThrough(head('POST /p HTTP/1.1', ['Content-Length: -3']) + 'abc');
    letsThrough(head('POST /p HTTP/1.1', [`Content-Length: ${'0'.repeat(15)}3`]) + 'abc');
    follows(head('POST /p HTTP/1.1', [`Content-Length: ${'0'.repeat(14)}3`]) + 'abc');
  });

  it('follows a chunked body: sizes with extensions, spaces and tabs, several chunks, trailers; however the reads cut it', () => {
    const body =
      `${TRAP.length.toString(16)};name="v";x=1\r\n${TRAP}\r\n` +
      `5\r\nhello\r\n` +
      `A \t\r\n0123456789\r\n` +
      `0\r\nX-Trailer: LIST /t HTTP/1.1\r\nX-Other: 1\r\n\r\n`;
    follows(chunked() + body, true);
    follows(chunked() + '0\r\n\r\n');
    // Every trailer line is a trailer, up to the blank line (the last one here reads as framing to a reader that stopped early).
    follows(chunked() + `0\r\nX-A: 1\r\nX-B: 2\r\nContent-Length: ${LIST_NEXT.length}\r\n\r\n`);
    follows(chunked() + '4\r\n{\n}\n\r\n0\r\n\r\n');
    follows(chunked('Chunked') + '0\r\n\r\n');
    follows(chunked('gzip, chunked') + '3\r\nabc\r\n0\r\n\r\n');
    follows(chunked('gzip ,chunked ') + '3\r\nabc\r\n0\r\n\r\n');
    // A size line or the trailers' end on a bare LF is followed as such (node's parser decides on it).
    follows(chunked() + '3\nabc\r\n0\r\n\n');
    follows(chunked() + `${'0'.repeat(11)}3\r\nabc\r\n0\r\n\r\n`);
  });

  it('stops following a chunked body it cannot read: a bad size line, a chunking it does not know', () => {
    for (const size of ['x3', ' 3', '3x', `${'0'.repeat(12)}3`, '', '3;a\rb', '-3'])
      letsThrough(chunked() + `${size}\r\nabc\r\n0\r\n\r\n`);
    for (const value of ['chunked, gzip', 'xchunked', 'chunkedx', 'gzip', 'chunked;q=1'])
      letsThrough(chunked(value) + '3\r\nabc\r\n0\r\n\r\n');
    letsThrough(head('POST /c HTTP/1.1', ['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked']) + '0\r\n\r\n');
  });

  it('follows a chunk-size line and a trailer of 4096 bytes, not one more', () => {
    const sizeLine = (n: number) => `3;${'e'.repeat(n - 4)}\r\n`; // n bytes with its CRLF
    follows(chunked() + `${sizeLine(4096)}abc\r\n0\r\n\r\n`);
    letsThrough(chunked() + `${sizeLine(4097)}abc\r\n0\r\n\r\n`);
    const trailer = (n: number) => `X: ${'t'.repeat(n - 5)}\r\n`;
    follows(chunked() + `0\r\n${trailer(4096)}\r\n`);
    letsThrough(chunked() + `0\r\n${trailer(4097)}\r\n`);
  });

  it('stops following an upgrade, a CONNECT, or a head with a bare LF', () => {
    letsThrough(head('GET /ws HTTP/1.1', ['Upgrade: websocket', 'Connection: Upgrade']));
    letsThrough(head('CONNECT 127.0.0.1:443 HTTP/1.1', []));
    letsThrough('GET /x HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n');
    // Once it stops, nothing it is given later is rewritten either.
    const rewriter = new ListRewriter();
    rewriter.feed(Buffer.from(head('GET /ws HTTP/1.1', ['Upgrade: websocket'])));
    assert.equal(rewriter.feed(Buffer.from(LIST_NEXT)).toString(), LIST_NEXT);
  });

  it('follows blank lines between requests, and a LIST whose head or target arrives in pieces', () => {
    assert.equal(through(['\r\n\r\n\n' + LIST_NEXT]), '\r\n\r\n\n' + LISTED_NEXT);
    assert.equal(through(['LIS', 'T /a', '?b=1', ' HTTP/1.1\r\n\r\n']), 'GET /a?b=1&list=true HTTP/1.1\r\n\r\n');
    assert.equal(through(['L', 'I', 'S', 'T', ' ', '/a', ' HTTP/1.1\r\n\r\n']), 'GET /a?list=true HTTP/1.1\r\n\r\n');
    assert.equal(through(['LIST /a?', 'b HTTP/1.1\r\n\r\n']), 'GET /a?b&list=true HTTP/1.1\r\n\r\n');
    assert.equal(through(['LIST /a#f HTTP/1.1\r\n\r\n']), 'GET /a?list=true#f HTTP/1.1\r\n\r\n');
    for (const pieces of everyCut(head('GET /h HTTP/1.1', ['X-A: b']) + LIST_NEXT))
      assert.equal(through(pieces), head('GET /h HTTP/1.1', ['X-A: b']) + LISTED_NEXT);
    // Not a LIST: anything that differs in its first five bytes passes on as it is.
    for (const other of ['LISTEN /a HTTP/1.1\r\n\r\n', 'LIS /a HTTP/1.1\r\n\r\n', 'list /a HTTP/1.1\r\n\r\n'])
      assert.equal(through([other]), other);
  });

  it('passes a long run of blank lines on in one step per read, and follows the LIST after it', () => {
    // A stream of CRLFs is allowed between requests; it must cost a copy per read, not a loop turn per byte.
    // 4 MiB took about 1 s of CPU when each byte was a loop turn with its own output piece (a
    // pre-auth denial of service) and takes under 70 ms now, on a loaded 2-core machine.
    const rewriter = new ListRewriter();
    const run = Buffer.alloc(64 * 1024, '\r\n');
    const started = process.hrtime.bigint();
    for (let i = 0; i < 64; i++) {
      const out = rewriter.feed(run);
      assert.equal(out.length, run.length);
      assert.ok(out.equals(run));
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.ok(ms < 400, `4 MiB of blank lines took ${ms.toFixed(0)} ms`);
    assert.equal(rewriter.feed(Buffer.from('\n' + LIST_NEXT, 'latin1')).toString('latin1'), '\n' + LISTED_NEXT);
  });

  it('follows a head of up to 16 KiB, and stops past it', () => {
    const padded = (total: number) => {
      const start = 'GET /big HTTP/1.1\r\nX-Pad: ';
      return start + 'p'.repeat(total - start.length - 4) + '\r\n\r\n';
    };
    // The head's last byte arrives on its own once 16 KiB are in: still a head it follows.
    const atLimit = padded(16 * 1024 + 1);
    assert.equal(through([atLimit.slice(0, -1), atLimit.slice(-1) + LIST_NEXT]), atLimit + LISTED_NEXT);
    const past = padded(16 * 1024 + 2);
    assert.equal(through([past.slice(0, -1), past.slice(-1) + LIST_NEXT]), past + LIST_NEXT);
    assert.equal(through([past + LIST_NEXT]), past + LIST_NEXT);
    // A LIST head counts as rewritten: 10 bytes longer than sent (`total` is the rewritten length).
    const listHead = (total: number) => `LIST /${'a'.repeat(total - 37)} HTTP/1.1\r\nHost: x\r\n\r\n`;
    const listed = (total: number) => listHead(total).replace(' HTTP', '?list=true HTTP').replace('LIST', 'GET');
    assert.equal(listed(16 * 1024 + 1).length, 16 * 1024 + 1);
    assert.equal(through([listHead(16 * 1024 + 1) + LIST_NEXT]), listed(16 * 1024 + 1) + LISTED_NEXT);
    assert.equal(through([listHead(16 * 1024 + 2) + LIST_NEXT]), listed(16 * 1024 + 2) + LIST_NEXT);
    // Its target up to 16 KiB gets the parameter (the head is past the limit then); one byte more, not even that.
    assert.equal(through([listHead(16 * 1024 + 32) + LIST_NEXT]), listed(16 * 1024 + 32) + LIST_NEXT);
    const sent = listHead(16 * 1024 + 33);
    assert.equal(through([sent + LIST_NEXT]), sent.replace('LIST', 'GET') + LIST_NEXT);
    // A LIST target alone past the limit: passed on as it is, then nothing more is rewritten.
    const target = `/${'a'.repeat(16 * 1024)}`;
    assert.equal(
      through([`LIST ${target} HTTP/1.1\r\n\r\n${LIST_NEXT}`]),
      `GET ${target} HTTP/1.1\r\n\r\n${LIST_NEXT}`,
    );
  });
});

describe('LIST hand-over: bodies pipelined after a LIST on a real connection', () => {
  let server: Server;
  let port: number;

  beforeEach(async () => {
    server = createServer(echo);
    acceptListVerb(server);
    port = await listening(server);
  });
  afterEach(() => stop(server));

  const open = () => connect(port, '127.0.0.1');

  it('answers in order: a Content-Length body in pieces, a chunked body with trailers, each LIST after them', async () => {
    const posted = sized(TRAP);
    const chunkedBody = `${TRAP.length.toString(16)};a=1\r\n${TRAP}\r\n3\r\nabc\r\n0\r\nX-T: LIST /t HTTP/1.1\r\n\r\n`;
    const answers = await exchange(
      open(),
      [
        req('LIST /a'),
        posted.slice(0, posted.length - 10),
        posted.slice(-10) + LIST_NEXT,
        chunked().slice(0, 20),
        chunked().slice(20) + chunkedBody.slice(0, 7),
        chunkedBody.slice(7) + req('LIST /last?x=1'),
      ],
      5,
    );
    assert.deepEqual(
      answers.map((a) => [status(a), seen(a).line, seen(a).body]),
      [
        [200, 'GET /a?list=true', ''],
        [200, 'POST /p', TRAP],
        [200, 'GET /next?list=true', ''],
        [200, 'POST /c', `${TRAP}abc`],
        [200, 'GET /last?x=1&list=true', ''],
      ],
    );
  });

  it('answers a LIST after a pretty-printed JSON body sent with its head in one read', async () => {
    const body = '{\n  "data": {\n    "a": "1"\n  }\n}\n';
    const answers = await exchange(open(), [req('LIST /a'), req('POST /p', [], body) + req('LIST /b')], 3);
    assert.deepEqual(
      answers.map((a) => [status(a), seen(a).line, seen(a).body]),
      [
        [200, 'GET /a?list=true', ''],
        [200, 'POST /p', body],
        [200, 'GET /b?list=true', ''],
      ],
    );
  });

  it('answers a LIST after blank lines, and one whose first letters arrive alone', async () => {
    const answers = await exchange(
      open(),
      [req('GET /a'), req('LIST /b'), '\r\n', 'LIS', 'T /c HTTP/1.1\r\nHost: x\r\n\r\n'],
      3,
    );
    assert.deepEqual(
      answers.map((a) => [status(a), seen(a).line, seen(a).tunnel]),
      [
        [200, 'GET /a', false],
        [200, 'GET /b?list=true', true],
        [200, 'GET /c?list=true', true],
      ],
    );
  });

  it('a bad request while a response is under way cuts the connection without writing a status into that response', async () => {
    for (const pieces of [
      [req('GET /stream'), req('FOO /x')],
      [req('LIST /l'), req('GET /stream'), 'LIST /x HTTP/1.2\r\nHost: x\r\n\r\n'],
    ]) {
      const text = (await exchange(open(), pieces, 99)).join('');
      assert.match(text, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\n8\r\nstarted \r\n$/, JSON.stringify(pieces));
      assert.doesNotMatch(text, /400 Bad Request/, JSON.stringify(pieces));
    }
    // With no response under way the refusal is written, as node writes it.
    const [refused] = await exchange(open(), [req('FOO /x')], 1);
    assert.equal(refused, 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
});
