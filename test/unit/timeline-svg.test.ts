/**
 * The lab's timeline picture (test/lab/timeline-svg.ts, `npm run lab -- --svg FILE`) from synthetic data:
 * well-formed XML, one red mark per lost ping, labels escaped, axes covering the data.
 */
import t from 'tap';
import { escapeXml, type Timeline, timelineSvg } from '../lab/timeline-svg.js';

interface El {
  name: string;
  attrs: Record<string, string>;
  text: string;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decode(s: string, where: string): string {
  return s.replace(/&([^;]*);|&/g, (m, name: string | undefined) => {
    const c = name === undefined ? undefined : ENTITIES[name];
    if (c === undefined) throw new Error(`bad entity ${JSON.stringify(m)} in ${where}`);
    return c;
  });
}

/**
 * A small XML parser, enough for what timelineSvg writes: throws unless tags nest and close, there is one
 * root, attributes are quoted and unique, and `<`/`&` appear only as markup or entities. Returns every
 * element with its decoded attributes and text.
 */
function parseXml(xml: string): El[] {
  const all: El[] = [];
  const stack: El[] = [];
  let roots = 0;
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const text = decode(xml.slice(i, lt < 0 ? xml.length : lt), 'text');
    if (stack.length) stack.at(-1)!.text += text;
    else if (text.trim()) throw new Error(`text outside the root: ${text.trim().slice(0, 40)}`);
    if (lt < 0) break;
    if (xml.startsWith('</', lt)) {
      const gt = xml.indexOf('>', lt);
      const name = xml.slice(lt + 2, gt).trim();
      const open = stack.pop();
      if (open?.name !== name) throw new Error(`</${name}> closes <${open?.name}>`);
      i = gt + 1;
      continue;
    }
    const name = /^[A-Za-z_][\w:.-]*/.exec(xml.slice(lt + 1))?.[0];
    if (!name) throw new Error(`bad tag at ${lt}: ${xml.slice(lt, lt + 20)}`);
    const el: El = { name, attrs: {}, text: '' };
    if (!stack.length && roots++) throw new Error(`second root <${name}>`);
    let j = lt + 1 + name.length;
    for (;;) {
      while (/\s/.test(xml[j] ?? '')) j++;
      if (xml.startsWith('/>', j) || xml[j] === '>') break;
      const attr = /^([A-Za-z_][\w:.-]*)=(["'])/.exec(xml.slice(j));
      if (!attr) throw new Error(`bad attribute in <${name}> at ${j}: ${xml.slice(j, j + 20)}`);
      const close = xml.indexOf(attr[2]!, j + attr[0].length);
      const value = xml.slice(j + attr[0].length, close);
      if (close < 0 || value.includes('<')) throw new Error(`bad value of ${attr[1]} in <${name}>`);
      if (attr[1]! in el.attrs) throw new Error(`${attr[1]} twice in <${name}>`);
      el.attrs[attr[1]!] = decode(value, `${name} ${attr[1]}`);
      j = close + 1;
    }
    all.push(el);
    if (xml[j] === '>') stack.push(el);
    i = j + (xml[j] === '>' ? 1 : 2);
  }
  if (stack.length) throw new Error(`<${stack.at(-1)!.name}> not closed`);
  if (!roots) throw new Error('no root element');
  return all;
}

t.test('the checker itself catches broken XML', async (t) => {
  t.equal(parseXml('<svg a="1"><g><text>x &amp; y</text></g><line/></svg>').length, 4);
  for (const bad of [
    '<svg><g></svg>',
    '<svg><g></g>',
    '<svg a="<"></svg>',
    '<svg>a < b</svg>',
    '<svg>a & b</svg>',
    '<svg a=1></svg>',
    '<svg a="1" a="2"></svg>',
    '<svg></svg><svg></svg>',
  ]) {
    t.throws(() => parseXml(bad), `rejects ${bad}`);
  }
});

const START = 1_700_000_000_000;
const NASTY = `<script>alert("x") & 'y'</script>`;

/** 20 s of pings every 100 ms both ways: 5 lost in a row one way, 3 single ones the other way. */
function sample(): Timeline {
  const pings: Timeline['pings'] = [];
  for (let i = 0; i < 200; i++) {
    const rtt = 1 + (i % 10) * 0.3; // 1 .. 3.7 ms
    pings.push({ at: START + i * 100, rttMs: i >= 100 && i < 105 ? null : rtt, series: 'to cloud' });
    pings.push({
      at: START + i * 100 + 5,
      rttMs: [50, 102, 150].includes(i) ? null : rtt,
      series: 'to on-prem',
    });
  }
  return {
    title: 'lab & <test>',
    start: START,
    pings,
    events: [
      { at: START + 10_000, kind: 'cut', label: 'link 1 cut (silent)' },
      { at: START + 10_300, side: 'on-prem', kind: 'health', label: 't1 up -> down' },
      { at: START + 10_310, side: 'on-prem', kind: 'route-switch', label: 'route t1 -> t2' },
      { at: START + 10_320, side: 'a"b', kind: 'health', label: NASTY },
      { at: START + 16_000, kind: 'repair', label: 'link 1 repaired' },
    ],
  };
}

t.test(
  'synthetic run: well-formed, one mark per lost ping, escaped labels, axes over the data',
  async (t) => {
    const svg = timelineSvg(sample());
    const els = parseXml(svg);
    t.equal(els[0]?.name, 'svg', 'the root is <svg>');
    t.equal(els[0]?.attrs.xmlns, 'http://www.w3.org/2000/svg');
    t.notMatch(svg, /<script|href=|@import|url\(/i, 'nothing external, nothing executable');

    const lost = els.filter((e) => e.attrs.class === 'lost');
    t.equal(lost.length, 8, 'one mark per lost ping (5 + 3)');
    // x = 70 + s / 20 * 910: the run at 10.0-10.4 s, the single ones at 5.005, 10.205, 15.005 s.
    t.same(
      lost.map((e) => Math.round(Number(e.attrs.x1))).sort((a, b) => a - b),
      [298, 525, 530, 534, 534, 539, 543, 753],
      'each mark at its ping',
    );
    t.ok(
      lost.every((e) => e.attrs.stroke === '#d32f2f'),
      'lost marks are red',
    );
    t.equal(
      els.filter((e) => e.name === 'polyline').length,
      6,
      'answered pings: one line per stretch without loss',
    );

    const labels = els.filter((e) => e.name === 'g' && e.attrs.class === 'event');
    t.equal(labels.length, 5, 'one line per event');
    const texts = els.filter((e) => e.name === 'text').map((e) => e.text);
    t.ok(texts.includes(`a"b: ${NASTY}`), 'the nasty label round-trips through escaping');
    t.ok(texts.includes('on-prem: route t1 -> t2'), 'side and label');
    t.ok(texts.includes('lab & <test>'), 'the title');
    t.match(
      svg,
      '&lt;script&gt;alert(&quot;x&quot;) &amp; &apos;y&apos;&lt;/script&gt;',
      'escaped in the source',
    );

    const ticks = (cls: string) => els.filter((e) => e.attrs.class === cls).map((e) => e.text);
    t.same(ticks('x-tick'), ['0', '2', '4', '6', '8', '10', '12', '14', '16', '18', '20'], 'x: 0 to 20 s');
    t.same(ticks('y-tick'), ['0', '1', '2', '3', '4'], 'y: 0 to 4 ms (highest RTT 3.7)');
    t.ok(texts.includes('RTT to cloud') && texts.includes('RTT to on-prem'), 'legend: both series');
    for (const kind of ['cut', 'repair', 'health change', 'route switch', 'lost ping']) {
      t.ok(texts.includes(kind), `legend: ${kind}`);
    }
  },
);

t.test('events before the start and RTTs above rttMaxMs stay on the picture', async (t) => {
  const svg = timelineSvg({
    title: 'x',
    start: START,
    rttMaxMs: 2,
    pings: [
      { at: START, rttMs: 1 },
      { at: START + 3000, rttMs: 50 },
    ],
    events: [{ at: START - 1500, kind: 'cut', label: 'early' }],
  });
  const els = parseXml(svg);
  t.same(
    els.filter((e) => e.attrs.class === 'x-tick').map((e) => e.text),
    ['-1.5', '-1.0', '-0.5', '0.0', '0.5', '1.0', '1.5', '2.0', '2.5', '3.0'],
    'x: from the early event to the last ping',
  );
  t.same(
    els.filter((e) => e.attrs.class === 'y-tick').map((e) => e.text),
    ['0.0', '0.5', '1.0', '1.5', '2.0'],
    'y: up to rttMaxMs',
  );
  const top = Math.min(...els.filter((e) => e.attrs.class === 'y-tick').map((e) => Number(e.attrs.y)));
  const line = els.find((e) => e.name === 'polyline')!;
  const ys = line.attrs.points!.split(' ').map((p) => Number(p.split(',')[1]));
  t.equal(Math.min(...ys), top, 'the 50 ms ping is drawn at the top, not off the picture');
});

t.test('no data at all still gives a well-formed picture', async (t) => {
  const els = parseXml(timelineSvg({ title: '', start: START, pings: [], events: [] }));
  t.equal(els.filter((e) => e.attrs.class === 'lost').length, 0, 'no lost marks');
  t.ok(
    els.some((e) => e.attrs.class === 'x-tick'),
    'still an x axis',
  );
});

t.test('escapeXml', async (t) => {
  t.equal(escapeXml(`<a href="x">&'</a>`), '&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;');
  t.equal(escapeXml('bell\u0007 nul\u0000 tab\t'), 'bell? nul? tab\t', 'characters XML 1.0 forbids');
  t.equal(escapeXml('lone \ud800 surrogate, pair \u{1f600}'), 'lone ? surrogate, pair \u{1f600}');
});
